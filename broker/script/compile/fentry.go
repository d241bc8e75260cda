package compile

import (
	"slices"
	"strings"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// kfunc:[MODULE:]FUNC and kretfunc:[MODULE:]FUNC (fentry/fexit, f/fr)
// attach a BPF trampoline to a kernel function. Their context is the
// function's arguments, a u64 slot each, as a tp_btf probe's, typed by
// the function's BTF: args->NAME reads them as tp_btf's args do (the
// same fields, so what tp_btf args learn, these learn). A kretfunc's
// context also holds the return value, after the arguments: retval.
//
// Every probe is named kfunc:MODULE:FUNC, the module written out, as
// bpftrace 0.17 names them (its probe builtin and its listing): one
// name, one function, which is what a token's probe: scope matches.

// KernelFuncs is what the compiler needs to know about the kernel's
// functions for kfunc/kretfunc probes.
type KernelFuncs interface {
	// Available says why the kernel would refuse fentry/fexit
	// programs, or nil: a probe of the running kernel, not a guess.
	Available() error
	// Match returns the module:function pairs matching a glob pattern
	// in each part, sorted.
	Match(module, fn string) ([][2]string, error)
	// Proto returns a function's arguments as fields, argument i at
	// Offset 8*slot as for BTFTracepoints.Args, and its return value
	// (nil: void) as a field at the offset after them.
	Proto(module, fn string) (args []Field, ret *Field, err error)
}

// retvalField names the return value among a kretfunc's fields; no
// args->NAME can spell it.
const retvalField = "$retval"

// btfContext reports whether a probe's context is BTF-typed argument
// slots: tp_btf, kfunc, kretfunc.
func btfContext(k program.ProbeKind) bool {
	return k == program.TpBTF || k == program.Fentry || k == program.Fexit
}

func (c *compiler) expandFentry(p *syntax.Probe, s *syntax.ProbeSpec) []*instance {
	mod, fn := "*", ""
	switch len(s.Parts) {
	case 1:
		fn = s.Parts[0]
	case 2:
		mod, fn = s.Parts[0], s.Parts[1]
	}
	if mod == "" || fn == "" {
		c.errorf(s.From, s.To, "kfunc should specify a function")
		return nil
	}
	if !c.available(s, c.opts.Funcs) {
		return nil
	}
	matches, err := c.opts.Funcs.Match(mod, fn)
	if err != nil {
		c.errorf(s.From, s.To, "%v", err)
		return nil
	}
	if len(matches) == 0 {
		if hasWildcard(strings.Join(s.Parts, ":")) {
			c.errorf(s.From, s.To, "No probes matched %s", s.Raw)
		} else {
			c.errorf(s.From, s.To, "%s", c.whyNoFunc(mod, fn))
		}
		return nil
	}
	if !c.roomFor(s, len(matches)) {
		return nil
	}
	kind := program.Fentry
	if s.Provider == "kretfunc" {
		kind = program.Fexit
	}
	var out []*instance
	for _, m := range matches {
		args, ret, err := c.opts.Funcs.Proto(m[0], m[1])
		if err != nil {
			c.errorf(s.From, s.To, "%v", err)
			return nil
		}
		slots := len(args)
		if n := len(args); n > 0 {
			slots = args[n-1].Offset/8 + 1
		}
		if slots > maxRawArgs {
			c.errorf(s.From, s.To, "%s:%s:%s has %d argument slots, more than a BPF program can take (%d)", s.Provider, m[0], m[1], slots, maxRawArgs)
			return nil
		}
		fields := slices.Clone(args)
		if kind == program.Fexit && ret != nil {
			r := *ret
			r.Name = retvalField
			fields = append(fields, r)
		}
		in := &instance{probe: p, spec: s, kind: kind, name: s.Provider + ":" + m[0] + ":" + m[1], cat: m[0], event: m[1], fields: fields}
		out = append(out, in)
	}
	return out
}

// whyNoFunc says, as bpftrace 0.17 does, why a function named without
// wildcards is no kfunc target: not in BTF, too many parameters, or not
// traceable (inlined, notrace).
func (c *compiler) whyNoFunc(mod, fn string) string {
	if mod == "*" {
		mod = "vmlinux"
	}
	args, _, err := c.opts.Funcs.Proto(mod, fn)
	switch {
	case err != nil:
		return "No BTF found for " + fn
	case len(args) > maxFuncParams:
		return "functions with more than 6 parameters are not supported."
	}
	return `function not traceable (probably it is inlined or marked as "notrace")`
}

// maxFuncParams is btftp.MaxParams: bpftrace 0.17 offers no function
// with more parameters.
const maxFuncParams = 6

// fentryIdent types the identifiers a kfunc/kretfunc probe gives a
// meaning of its own: retval (kretfunc), func. ok is false for the rest.
func (c *compiler) fentryIdent(in *instance, e *syntax.Ident) (t ty, ok bool) {
	switch e.Name {
	case "retval":
		f := findField(in.fields, retvalField)
		if f == nil {
			if in.kind == program.Fexit {
				c.errorf(e.From, e.To, "%s returns void: it has no retval", in.name)
			} else {
				c.errorf(e.From, e.To, "Can't find a field $retval")
			}
			return ty{}, true
		}
		t := c.btfFieldType(f)
		if t.k == 0 {
			c.errorf(e.From, e.To, "retval has type '%s', which can not be read: only integer and pointer return values can", f.Type)
		}
		return t, true
	case "func":
		// The function is fixed at load; bpftrace 0.17 refuses func
		// here, later versions give the function's name, as this does.
		return tStr(strLen), true
	}
	return ty{}, false
}

// kfunc reports whether the probe is a kfunc or kretfunc's, whose
// collector copies a function's arguments and nothing they point to but
// the reads it is told to make: a read through a kernel pointer that
// cannot be spelled as one makes the probe one only the kernel can run.
func (g *gen) kfunc() bool { return g.in.kind == program.Fentry || g.in.kind == program.Fexit }
