package compile

import (
	"regexp"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// A uprobe wildcard becomes one probe on all the functions it matches,
// attached with one uprobe.multi link, where the kernel has them
// (Options.UprobeMulti, Linux 6.6): attaching and detaching a thousand
// uprobes one perf event at a time takes the kernel about a minute,
// one link a few seconds. Its code is generated once for all of them.
// What differs between the functions is what `probe` and `func` say:
// the link gives each function its index as its attach cookie, and the
// code reads the names at that index of a read-only array, the probe
// names map, which the compiler fills.

// userArgs finds the builtin whose fields are the probed function's own
// parameters (DWARF): their number and types differ from function to
// function, so that one program cannot serve many.
var userArgs = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\bargs\b`) })

// uprobeMulti says whether s, a uprobe or uretprobe spec of p, attaches
// with one uprobe.multi link: its function is a wildcard, the kernel has
// the links, and p's block does not read its functions' parameters by
// name. It looks at the block's text, not its tree, as namesAttachPoint
// does: a string that says "args" costs the link, never a wrong value.
func (c *compiler) uprobeMulti(p *syntax.Probe, s *syntax.ProbeSpec) bool {
	if !c.opts.UprobeMulti || len(s.Parts) != 2 || !strings.Contains(s.Parts[1], "*") {
		return false
	}
	from, to := p.Specs[len(p.Specs)-1].To.Offset, p.Body.End().Offset
	if from < 0 || to > len(c.file.Src) || from > to {
		return false
	}
	return !userArgs().Match(c.file.Src[from:to])
}

// uprobeMultiInstance is the one probe of s on every function of
// targets, named by the pattern as written (KIND:PATH:PATTERN).
func (c *compiler) uprobeMultiInstance(s *syntax.ProbeSpec, kind program.ProbeKind, targets []UprobeTarget, mk func(program.ProbeKind, string) *instance) *instance {
	t := targets[0]
	in := mk(kind, program.UprobeName(kind, t.Path, s.Parts[1]))
	in.path, in.fn, in.binary = t.Path, s.Parts[1], t.Binary
	in.funcs, in.offsets = make([]string, len(targets)), make([]uint64, len(targets))
	for i, t := range targets {
		in.funcs[i], in.offsets[i] = t.Func, t.Offset
	}
	return in
}

// maxUprobes is the bound on the functions the program's uprobes attach to.
func (c *compiler) maxUprobes() int {
	if c.opts.MaxUprobes > 0 {
		return c.opts.MaxUprobes
	}
	return program.MaxUprobeFuncs
}

// roomForUprobes says whether n more functions under uprobes fit
// maxUprobes, the program's uprobes together, one by one or on
// uprobe.multi links, and reports the spec that passes it. One link is
// bounded by it, but a program may have MaxProbes of them:
// `uprobe:libc:a*, uprobe:libc:b*, …` would break into every function
// of the library, and one pattern written 1024 times each of its
// functions 1024 times.
func (c *compiler) roomForUprobes(s *syntax.ProbeSpec, n int) bool {
	total := n
	for _, in := range c.instances {
		if in.kind == program.Uprobe || in.kind == program.Uretprobe {
			total += max(len(in.funcs), 1)
		}
	}
	if max := c.maxUprobes(); total > max {
		if total == n {
			c.errorf(s.From, s.To, "%s matches %d functions; at most %d uprobes may attach", s.Raw, n, max)
		} else {
			c.errorf(s.From, s.To, "%s matches %d functions, which makes %d uprobes in all; at most %d may attach", s.Raw, n, total, max)
		}
		return false
	}
	return true
}

// Fields of a probe names map value: the probe's name, then the
// function's, strLen bytes each, NUL-padded.
const (
	namesProbe = 0
	namesFunc  = strLen
	namesValue = 2 * strLen
)

// attachPointInto writes the name of the attach point that fired, at
// field of its probe names map value (namesProbe, namesFunc), into the
// n bytes at off: the code of a uprobe.multi probe, which serves every
// function of it.
func (g *gen) attachPointInto(field int, off int16, n int) {
	in := g.in
	if !in.named {
		in.named, in.nameBase = true, g.c.names
		g.c.names += len(in.funcs)
		g.c.namedProbes = append(g.c.namedProbes, in)
	}
	g.zero(off, n)
	key := g.alloc(8)
	g.emit(asm.Mov.Reg(asm.R1, rCtx))
	g.call(asm.FnGetAttachCookie)
	// The cookie is the function's index in the probe (0 where none
	// was given): past the probe's functions, no name is read.
	done := g.newLabel()
	g.emit(asm.JGE.Imm(asm.R0, int32(len(in.funcs)), done))
	g.emit(asm.Add.Imm(asm.R0, int32(in.nameBase)))
	g.emit(asm.StoreMem(asm.R10, key, asm.R0, asm.Word))
	g.mapPtr(asm.R1, program.NamesMap)
	g.stackPtr(asm.R2, key)
	g.call(asm.FnMapLookupElem)
	g.emit(asm.JEq.Imm(asm.R0, 0, done))
	g.emit(asm.Add.Imm(asm.R0, int32(field)))
	g.copyFrom(off, asm.R0, min(n, strLen))
	g.label(done)
}

// declareNames creates the probe names map, once the code is
// generated, if a uprobe.multi probe's code reads it: each function's
// probe and function name at its probe's nameBase plus its index.
func (c *compiler) declareNames(prog *program.Program) {
	if c.names == 0 {
		return
	}
	spec := &ebpf.MapSpec{Name: program.NamesMap, Type: ebpf.Array, KeySize: 4, ValueSize: namesValue, MaxEntries: uint32(c.names)}
	for _, in := range c.namedProbes {
		for i, f := range in.funcs {
			v := make([]byte, namesValue)
			copy(v[namesProbe:namesProbe+strLen], program.UprobeName(in.kind, in.path, f))
			copy(v[namesFunc:namesFunc+strLen], f)
			spec.Contents = append(spec.Contents, ebpf.MapKV{Key: uint32(in.nameBase + i), Value: v})
		}
	}
	prog.Maps = append(prog.Maps, spec)
}
