package program

import (
	"fmt"
	"strings"
)

// MaxUprobeFuncs bounds the functions a program's uprobes attach to, all
// together, where they attach with uprobe.multi links: a library's every
// function (uprobe:libc:*, about 3,000) breaks into every process that
// maps it at each call, which a tracer should not do by mistake, nor
// by writing many patterns. One by one, uprobes stay bounded by the
// compiler's 1024 probes.
const MaxUprobeFuncs = 1 << 12

// MaxTokenUprobes bounds the uprobes a token holder's trace attaches,
// one by one and on uprobe.multi links together: what the daemon let a
// token attach before uprobe.multi links (the compiler's 1024 probes),
// so that a faster way to attach is not a way to put a breakpoint in
// more of another user's functions.
const MaxTokenUprobes = 1 << 10

// UprobeMulti reports whether p is a uprobe or uretprobe on many
// functions, attached with one uprobe.multi link (Funcs, Offsets).
func (p *Probe) UprobeMulti() bool {
	return (p.Kind == Uprobe || p.Kind == Uretprobe) && len(p.Funcs) > 0
}

// UprobeName is the name of a uprobe or uretprobe on fn (a symbol, or an
// address as written) of the file path, as bpftrace's `probe` prints
// it: KIND:PATH:FUNC.
func UprobeName(kind ProbeKind, path, fn string) string {
	return kind.String() + ":" + path + ":" + fn
}

// AttachPoints is how many places p attaches to: each function of a
// uprobe.multi probe, as bpftrace 0.17, which has no such links, counts
// them ("Attaching N probes..."); one for any other probe (a
// kprobe.multi probe is one, as bpftrace counts it).
func (p *Probe) AttachPoints() int {
	if p.UprobeMulti() {
		return len(p.Funcs)
	}
	return 1
}

// AttachPoints is the sum of the probes' AttachPoints: the N of
// "Attaching N probes...".
func (p *Program) AttachPoints() int {
	n := 0
	for _, pr := range p.Probes {
		n += pr.AttachPoints()
	}
	return n
}

// Uprobes counts the places the program's uprobes and uretprobes attach
// to: each of one by one, each function of a uprobe.multi probe.
func (p *Program) Uprobes() int {
	n := 0
	for _, pr := range p.Probes {
		if pr.Kind == Uprobe || pr.Kind == Uretprobe {
			n += pr.AttachPoints()
		}
	}
	return n
}

// CheckUprobes refuses a program whose uprobes attach to more than max
// places in all (Uprobes): MaxUprobeFuncs for anyone, MaxTokenUprobes
// for a token holder of the daemon. The compiler bounds a script alike;
// this holds for a program handed over whole, whatever made it.
func (p *Program) CheckUprobes(max int) error {
	if n := p.Uprobes(); n > max {
		return fmt.Errorf("the program's uprobes attach to %d functions; at most %d may attach", n, max)
	}
	return nil
}

// checkUprobeMultiName: a uprobe on many functions (Funcs at Offsets, a
// uprobe.multi link) is named KIND:PATH:PATTERN, PATTERN a wildcard
// every function matches as bpftrace matches names ('*' the only
// wildcard), each function once and at a non-zero offset.
func (p *Probe) checkUprobeMultiName() error {
	is := fmt.Sprintf("%s on %d functions of %s (%s...)", p.Kind, len(p.Funcs), p.Path, p.Funcs[0])
	pattern, ok := strings.CutPrefix(p.Name, p.Kind.String()+":"+p.Path+":")
	if !ok || p.Path == "" || !strings.Contains(pattern, "*") || p.Event != "" || p.Category != "" || p.Offset != 0 || p.RefCtrOffset != 0 || len(p.Offsets) != len(p.Funcs) {
		return &NameError{p.Name, is}
	}
	seen := make(map[string]bool, len(p.Funcs))
	for i, f := range p.Funcs {
		if f == "" || strings.Contains(f, "*") || seen[f] || p.Offsets[i] == 0 || !wildcardMatch(pattern, f) {
			return &NameError{p.Name, fmt.Sprintf("%s on %s at offset %#x", p.Kind, f, p.Offsets[i])}
		}
		seen[f] = true
	}
	return nil
}

// wildcardMatch is bpftrace's wildcard_match of a name, as the uprobe
// resolver lists functions (bpf/uprobe.MatchName): '*' the only
// wildcard, the pieces between them found first to last, each at its
// first place after the one before.
func wildcardMatch(pattern, name string) bool {
	var tokens []string
	for _, t := range strings.Split(pattern, "*") {
		if t != "" {
			tokens = append(tokens, t)
		}
	}
	if !strings.HasPrefix(pattern, "*") && len(tokens) > 0 && !strings.HasPrefix(name, tokens[0]) {
		return false
	}
	next := 0
	for _, t := range tokens {
		i := strings.Index(name[next:], t)
		if i < 0 {
			return false
		}
		next += i + len(t)
	}
	return strings.HasSuffix(pattern, "*") || next == len(name)
}
