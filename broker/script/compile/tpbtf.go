package compile

import (
	"slices"
	"strconv"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// tp_btf:NAME probes attach to a kernel tracepoint through its BTF type
// (btf_trace_NAME). The context is the tracepoint's arguments, a u64
// each, as for rawtracepoint, but the verifier knows their types: args.NAME
// reads an argument as its C type says, arg0..argN the raw u64 slots.
//
// A direct load of a pointer argument from the context gives the verifier
// a typed kernel pointer, which it then restricts (no arithmetic on a
// pointer that may be NULL, none but + and -): pointers are read with
// probe_read_kernel instead, which gives a plain integer, as everything
// else in the language is.

func (c *compiler) expandTpBTF(p *syntax.Probe, s *syntax.ProbeSpec) []*instance {
	if len(s.Parts) != 1 || s.Parts[0] == "" {
		c.errorf(s.From, s.To, "tp_btf probe must be tp_btf:NAME")
		return nil
	}
	if c.opts.BTFTracepoints == nil {
		c.errorf(s.From, s.To, "tp_btf probes are not available")
		return nil
	}
	names, err := c.opts.BTFTracepoints.Match(s.Parts[0])
	if err != nil {
		c.errorf(s.From, s.To, "%v", err)
		return nil
	}
	if len(names) == 0 {
		if hasWildcard(s.Parts[0]) {
			c.errorf(s.From, s.To, "No probes matched %s", s.Raw)
		} else {
			c.errorf(s.From, s.To, "no BTF tracepoint named %s", s.Parts[0])
		}
		return nil
	}
	if !c.roomFor(s, len(names)) {
		return nil
	}
	var out []*instance
	for _, n := range names {
		args, err := c.opts.BTFTracepoints.Args(n)
		if err != nil {
			c.errorf(s.From, s.To, "%v", err)
			return nil
		}
		if len(args) > maxRawArgs {
			c.errorf(s.From, s.To, "tp_btf:%s has %d arguments, more than a BPF program can take (%d)", n, len(args), maxRawArgs)
			return nil
		}
		in := &instance{probe: p, spec: s, kind: program.TpBTF, name: "tp_btf:" + n, event: n, fields: slices.Clone(args)}
		out = append(out, in)
	}
	return out
}

// btfField types args.NAME in a tp_btf, kfunc or kretfunc probe.
func (c *compiler) btfField(in *instance, e *syntax.FieldAccess) ty {
	f := findField(in.fields, e.Field)
	if f == nil {
		if in.kind != program.TpBTF {
			c.errorf(e.Pos(), e.To, "Can't find function parameter %s", e.Field)
			return ty{}
		}
		c.errorf(e.FieldPos, e.To, "tracepoint %s has no argument named '%s'%s", in.event, e.Field, btfArgList(in.fields))
		return ty{}
	}
	t := c.btfFieldType(f)
	if t.k == 0 {
		c.errorf(e.FieldPos, e.To, "args.%s has type '%s', which can not be read: only integer and pointer arguments can", f.Name, f.Type)
	}
	return t
}

// btfFieldType is the type of a BTF-typed argument slot; the zero ty for
// one that can not be read (a struct passed by value).
func (c *compiler) btfFieldType(f *Field) ty {
	switch f.Kind {
	case FieldInt:
		return ty{k: kInt, signed: f.Signed}
	case FieldPtr:
		return c.fieldPointer(pointerType(f.Type, f.User), f.Type)
	}
	return ty{}
}

// btfArgList lists the arguments for a message: " (it has: a, b)".
func btfArgList(fields []Field) string {
	s := ""
	for _, f := range fields {
		if f.Name == "" || f.Name == retvalField {
			continue
		}
		if s != "" {
			s += ", "
		}
		s += f.Name
	}
	if s == "" {
		return " (its arguments have no names: use arg0, arg1, ...)"
	}
	return " (it has: " + s + ")"
}

// btfSlot types argN in a tp_btf probe: argument N's raw u64 slot.
func (c *compiler) btfSlot(in *instance, e *syntax.Ident) ty {
	n, err := strconv.Atoi(e.Name[3:])
	if err != nil || n >= len(in.fields) {
		c.errorf(e.From, e.To, "tracepoint %s has %d argument%s (%s)", in.event, len(in.fields), plural(len(in.fields)), argRange(len(in.fields)))
		return ty{}
	}
	// Any argument's slot reads as its raw u64, a struct or union passed
	// by value too (the kernel copies it into the slot, so it is at most
	// 8 bytes).
	return tUint
}

func argRange(n int) string {
	switch n {
	case 0:
		return "no argN"
	case 1:
		return "arg0"
	}
	return "arg0-arg" + strconv.Itoa(n-1)
}

// btfArg loads a tp_btf argument into rAcc: an integer straight from the
// context, at its declared size and sign, a pointer through
// probe_read_kernel (see above); raw reads the whole u64 slot.
func (g *gen) btfArg(f *Field, raw bool) {
	if f.Kind == FieldPtr {
		slot := g.alloc(8)
		g.emit(storeImm64(asm.R10, slot, 0))
		g.readCtx(slot, f.Offset, 8)
		g.emit(asm.LoadMem(rAcc, asm.R10, slot, asm.DWord))
		return
	}
	size, ok := map[int]asm.Size{1: asm.Byte, 2: asm.Half, 4: asm.Word, 8: asm.DWord}[f.Size]
	switch {
	case raw || !ok:
		g.emit(asm.LoadMem(rAcc, rCtx, int16(f.Offset), asm.DWord))
	case f.Signed && size != asm.DWord:
		g.loadSX(rAcc, rCtx, int16(f.Offset), size)
	default:
		g.emit(asm.LoadMem(rAcc, rCtx, int16(f.Offset), size))
	}
}

// btfSlot loads argN of a tp_btf probe into rAcc.
func (g *gen) btfSlot(name string) {
	n, _ := strconv.Atoi(name[3:])
	g.btfArg(&g.in.fields[n], true)
}
