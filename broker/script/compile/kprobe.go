package compile

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// Kprobes is what the compiler needs to know about the kernel's kprobes.
type Kprobes interface {
	// Available is nil when the kernel can attach kprobes, else why it
	// cannot (a probe of the kernel, bpf/kprobe.Supported).
	Available() error
	// Match returns the traceable functions (available_filter_functions
	// minus the kprobe blacklist) of module ("" for any) that pattern
	// matches, sorted, without repeats.
	Match(module, pattern string) ([]string, error)
	// Size is a function's length in bytes, when the kernel tells it.
	Size(fn string) (uint64, bool)
	// Multi reports whether one kprobe.multi link can attach a program
	// to many functions.
	Multi() bool
}

// MaxKprobeLinks is bpftrace 0.17's bound (BPFTRACE_MAX_PROBES) on the
// kprobes a wildcard attaches one by one, each its own perf event and
// program: a kernel without kprobe.multi makes each of them cost a
// breakpoint and an RCU grace period to remove.
const MaxKprobeLinks = 512

// MaxKprobeFuncs bounds the functions one kprobe.multi link attaches to:
// every traceable function of a kernel (kprobe:*) is 50,000 to 80,000,
// which a tracer should not be able to slow all at once by mistake.
const MaxKprobeFuncs = program.MaxKprobeFuncs

// bannedKretprobes are the functions bpftrace 0.17 refuses a kretprobe
// on: the return trampoline takes a spinlock these take.
var bannedKretprobes = map[string]bool{
	"_raw_spin_lock": true, "_raw_spin_lock_irqsave": true,
	"_raw_spin_unlock_irqrestore": true, "queued_spin_lock_slowpath": true,
}

// bannedKretprobe is bpftrace 0.17's refusal as it prints it when it
// attaches ("ERROR: error: kretprobe:..."): refused here before
// anything is attached, with the location, its words kept whole.
const bannedKretprobe = "error: kretprobe:%s can't be used as it might lock up your system."

// expandKprobe resolves kprobe:[MODULE:]FUNC[+OFFSET] and
// kretprobe:[MODULE:]FUNC, FUNC possibly a wildcard. A wildcard makes
// one kprobe.multi probe where the kernel has them and the block does
// not tell its attach points apart (probe, func), else one probe per
// function, as bpftrace 0.17 does.
func (c *compiler) expandKprobe(p *syntax.Probe, s *syntax.ProbeSpec) []*instance {
	kind := program.Kprobe
	if s.Provider == "kretprobe" {
		kind = program.Kretprobe
	}
	var module, fn string
	switch len(s.Parts) {
	case 1:
		fn = s.Parts[0]
	case 2:
		module, fn = s.Parts[0], s.Parts[1]
		if module == "" || hasWildcard(module) {
			c.errorf(s.From, s.To, "%s probe module must be a module's name, without wildcards: %s:MODULE:FUNCTION", s.Provider, s.Provider)
			return nil
		}
	default:
		c.errorf(s.From, s.To, "%s probe type requires 1 argument (FUNCTION) or 2 (MODULE:FUNCTION)", s.Provider)
		return nil
	}
	var offset uint64
	if i := strings.IndexByte(fn, '+'); i >= 0 {
		if kind == program.Kretprobe {
			c.errorf(s.From, s.To, "Offset not allowed: a kretprobe fires at the function's return")
			return nil
		}
		off, err := strconv.ParseUint(fn[i+1:], 0, 64)
		if err != nil {
			c.errorf(s.From, s.To, "Invalid offset %q in %s", fn[i+1:], s.Raw)
			return nil
		}
		fn, offset = fn[:i], off
		if hasWildcard(fn) {
			c.errorf(s.From, s.To, "Offset not allowed with a wildcard: %s", s.Raw)
			return nil
		}
	}
	if fn == "" {
		c.errorf(s.From, s.To, "kprobes should be attached to a function")
		return nil
	}
	// A banned function is refused whether or not this kernel can
	// trace it (queued_spin_lock_slowpath is notrace on some), as
	// bpftrace refuses it whatever the kernel says.
	if kind == program.Kretprobe && bannedKretprobes[fn] {
		c.errorf(s.From, s.To, bannedKretprobe, fn)
		return nil
	}
	if !c.available(s, c.opts.Kprobes) {
		return nil
	}
	funcs, err := c.opts.Kprobes.Match(module, fn)
	if err != nil {
		c.errorf(s.From, s.To, "%v", err)
		return nil
	}
	wild := hasWildcard(fn)
	switch {
	case len(funcs) == 0 && wild:
		c.unresolved(p, s, "No probes matched "+s.Raw)
		return nil
	case len(funcs) == 0 && module != "":
		c.unresolved(p, s, fmt.Sprintf("%s is not a traceable function of module %s (is the module loaded?)", fn, module))
		return nil
	case len(funcs) == 0:
		c.unresolved(p, s, fmt.Sprintf("%s is not traceable (either non-existing, inlined, or marked as \"notrace\")", fn))
		return nil
	}
	if kind == program.Kretprobe {
		for _, f := range funcs {
			if bannedKretprobes[f] {
				c.errorf(s.From, s.To, bannedKretprobe, f)
				return nil
			}
		}
	}
	if offset != 0 {
		if size, ok := c.opts.Kprobes.Size(fn); ok && offset >= size {
			c.errorf(s.From, s.To, "Offset outside the function bounds ('%s' size is %d)", fn, size)
			return nil
		}
	}
	mk := func(name, fn string) *instance {
		return &instance{probe: p, spec: s, kind: kind, name: name, cat: module, event: fn, offset: offset}
	}
	if wild && c.opts.Kprobes.Multi() && !c.namesAttachPoint(p) {
		if len(funcs) > MaxKprobeFuncs {
			c.errorf(s.From, s.To, "%s matches %d functions; one kprobe.multi probe attaches at most %d", s.Raw, len(funcs), MaxKprobeFuncs)
			return nil
		}
		if !c.roomForKprobeFuncs(s, len(funcs)) {
			return nil
		}
		in := mk(kind.String()+":"+strings.Join(s.Parts, ":"), "")
		in.funcs = funcs
		return []*instance{in}
	}
	if len(funcs) > MaxKprobeLinks {
		c.errorf(s.From, s.To, "Can't attach to %d probes because it exceeds the current limit of %d probes.", len(funcs), MaxKprobeLinks)
		return nil
	}
	if !c.roomFor(s, len(funcs)) {
		return nil
	}
	out := make([]*instance, len(funcs))
	for i, f := range funcs {
		out[i] = mk(program.KprobeName(kind, module, f, offset), f)
	}
	return out
}

// attachPointBuiltin finds the builtins whose value is the attach point.
var attachPointBuiltin = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\b(probe|func)\b`) })

// namesAttachPoint reports whether a block may use `probe` or `func`,
// whose value each attach point's program has as a constant, so that
// one program cannot serve many functions. It looks at the block's
// text, not its tree: a string that says "func" costs a kprobe.multi
// link, never a wrong value.
func (c *compiler) namesAttachPoint(p *syntax.Probe) bool {
	from, to := p.Specs[len(p.Specs)-1].To.Offset, p.Body.End().Offset
	if from < 0 || to > len(c.file.Src) || from > to {
		return true
	}
	return attachPointBuiltin().Match(c.file.Src[from:to])
}

// funcName is the `func` builtin's value for one attach point: the
// function of a kprobe (at any offset into it), the last part of a
// uprobe's name.
func funcName(in *instance) string {
	if in.kind == program.Kprobe || in.kind == program.Kretprobe {
		return in.event
	}
	return in.name[strings.LastIndexByte(in.name, ':')+1:]
}

// isKprobe: the probe's context is a kernel function's pt_regs.
func isKprobe(k program.ProbeKind) bool { return k == program.Kprobe || k == program.Kretprobe }

// available reports whether the kernel offers s's probes through src
// (the compiler's Kprobes or Funcs), saying at s why not: no source was
// given, or the kernel lacks them.
func (c *compiler) available(s *syntax.ProbeSpec, src interface{ Available() error }) bool {
	if src == nil {
		c.errorf(s.From, s.To, "%s probes are not available", s.Provider)
		return false
	}
	if err := src.Available(); err != nil {
		c.errorf(s.From, s.To, "%s probes are not available: %v", s.Provider, err)
		return false
	}
	return true
}
