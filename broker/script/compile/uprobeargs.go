package compile

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/internal/dwarfargs"
)

// A uprobe's args->NAME (args.NAME) is the probed function's parameter
// NAME, as the binary's DWARF declares it, read as bpftrace 0.17 reads
// it: parameter i from the i-th integer register of the System V x86-64
// calling convention, the registers arg0-arg5 read. So a uprobe's
// parameters are fields of its context (its pt_regs), at their
// registers' offsets, and everything a tracepoint's fields have comes
// with them: sized and sign-extended loads, the collector's copies of
// the strings they point to in interpreter mode, the reads classified
// as the context's. A pointer parameter is typed by the binary's DWARF,
// converted to BTF, so args->foo->a and args->s.name read through the
// same struct access as (struct Foo *)arg0, with probe_read_user.
//
// The binary's named structs, unions, enums and typedefs are also there
// for casts and sizeof ((struct Foo *)arg0), after the script's own
// definitions and before the kernel's, as in bpftrace.

// DebugInfo is what the compiler needs to know about uprobes' binaries'
// DWARF.
type DebugInfo interface {
	// Params returns the parameters of fn in the file at path (an
	// UprobeTarget's Path and Func). A file without DWARF gives an
	// error wrapping dwarfargs.ErrNoDebugInfo.
	Params(path, fn string) ([]dwarfargs.Param, error)
	// Type is Types.Type over the DWARF of the file at path.
	Type(path, kind, name string) (btf.Type, error)
}

// uprobeArgRegs is how many parameters registers pass (rdi, rsi, rdx,
// rcx, r8, r9).
const uprobeArgRegs = 6

// uprobeArg types args->NAME in a uprobe.
func (c *compiler) uprobeArg(in *instance, e *syntax.FieldAccess) ty {
	if in.usdt != nil {
		c.errorf(e.Pos(), e.End(), "The args builtin can only be used with tracepoint/kfunc/uprobe probes (usdt used here)")
		return ty{}
	}
	if !c.uprobeParams(in, e) {
		return ty{}
	}
	i := -1
	for j := range in.fields {
		if in.fields[j].Name == e.Field {
			i = j
			break
		}
	}
	if i < 0 {
		c.errorf(e.Pos(), e.End(), "Can't find function parameter %s", e.Field)
		return ty{}
	}
	f := in.fields[i]
	if i >= uprobeArgRegs {
		c.errorf(e.Pos(), e.End(), "%s is parameter %d of %s: only the first %d, passed in registers, can be read", e.Field, i+1, in.fn, uprobeArgRegs)
		return ty{}
	}
	t, why := c.btfValue(in.params[i])
	if why != "" {
		if _, rec := t.bt.(*btf.Array); t.k == kRecord && !rec {
			why = "is passed by value: only integer and pointer parameters, passed in registers, can be read"
		}
		c.errorf(e.Pos(), e.End(), "args->%s has type '%s', which %s", f.Name, f.Type, why)
		return ty{}
	}
	t.width = f.Size
	// The traced process's memory, read with probe_read_user.
	t.user = true
	return t
}

// uprobeParams reads in's function's parameters from its binary's
// DWARF, once, into in.fields (the context's fields, at their
// registers' offsets in pt_regs) and in.params.
func (c *compiler) uprobeParams(in *instance, e *syntax.FieldAccess) bool {
	if in.params != nil {
		return true
	}
	if c.opts.Debug == nil {
		c.errorf(e.Pos(), e.End(), "uprobe args are not available here: the binaries' debug info is not read")
		return false
	}
	params, err := c.opts.Debug.Params(in.path, in.fn)
	switch {
	case errors.Is(err, dwarfargs.ErrNoDebugInfo):
		// bpftrace's words, at the probe.
		c.errorf(in.spec.From, in.spec.To, "No debuginfo found for %s", in.spec.Parts[0])
		return false
	case errors.Is(err, dwarfargs.ErrNoFunc):
		// A function the DWARF does not describe (a wildcard's
		// _start, an address) has no parameters to name.
		params = nil
	case err != nil:
		c.errorf(e.Pos(), e.End(), "%v", err)
		return false
	}
	in.params = make([]btf.Type, 0, len(params))
	in.fields = make([]Field, 0, len(params))
	for i, p := range params {
		f := Field{Name: p.Name, Type: p.CType, Offset: -1, Kind: FieldArray}
		if n, err := btf.Sizeof(p.Type); err == nil {
			f.Size = n
		}
		if i < uprobeArgRegs {
			f.Offset = int(ptRegs[fmt.Sprintf("arg%d", i)])
		}
		switch u := btf.UnderlyingType(p.Type).(type) {
		case *btf.Pointer:
			f.Kind, f.Size = FieldPtr, 8
		case *btf.Int:
			f.Kind, f.Signed = FieldInt, u.Encoding&btf.Signed != 0
		case *btf.Enum:
			f.Kind, f.Signed = FieldInt, u.Signed
		}
		if f.Kind == FieldInt && (f.Size > 8 || f.Size <= 0) {
			f.Kind = FieldArray // __int128: two registers
		}
		in.params = append(in.params, p.Type)
		in.fields = append(in.fields, f)
	}
	return true
}

// debugTypes are the types uprobes' binaries define, in the order of
// the probes, then the kernel's.
type debugTypes struct {
	debug DebugInfo
	paths []string
	next  Types
}

func (d debugTypes) Type(kind, name string) (btf.Type, error) {
	for _, p := range d.paths {
		if t, err := d.debug.Type(p, kind, name); err == nil {
			return t, nil
		}
	}
	if d.next == nil {
		return nil, fmt.Errorf("%s %s: %w", kind, name, btf.ErrNotFound)
	}
	return d.next.Type(kind, name)
}

// uprobeTypes puts the types of the uprobes' binaries after the
// script's and before the kernel's.
func (c *compiler) uprobeTypes() {
	if c.opts.Debug == nil {
		return
	}
	var paths []string
	seen := map[string]bool{}
	for _, in := range c.instances {
		if (in.kind == program.Uprobe || in.kind == program.Uretprobe) && in.path != "" && !seen[in.path] {
			seen[in.path] = true
			paths = append(paths, in.path)
		}
	}
	if len(paths) == 0 {
		return
	}
	if s, ok := c.opts.Types.(scriptTypes); ok {
		s.next = debugTypes{debug: c.opts.Debug, paths: paths, next: s.next}
		c.opts.Types = s
		return
	}
	c.opts.Types = debugTypes{debug: c.opts.Debug, paths: paths, next: c.opts.Types}
}
