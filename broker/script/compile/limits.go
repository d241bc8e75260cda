package compile

import (
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"math"
)

// Bounds on one compilation, so that no script — however its probes
// expand — makes the compiler allocate or work without bound. The
// parser bounds the tree (syntax.MaxNodes, syntax.MaxDepth); these
// bound what is repeated for every attach point of a probe block, each
// checked before the work it guards.
const (
	// MaxProbes bounds the attach points of a program. bpftrace 0.17
	// stops at 512 (BPFTRACE_MAX_PROBES); every syscall tracepoint of
	// this project's kernel, tracepoint:syscalls:*, is 722.
	MaxProbes = 1024
	// MaxCheckWork bounds the sum, over the attach points, of the size
	// of the block each runs (syntax.Probe.Nodes): checking and code
	// generation repeat a block for each, and what they keep grows with
	// this sum. The largest real script (923 nodes) fits 280 times, and
	// 722 syscall tracepoints may run a block of 360 nodes.
	MaxCheckWork = 1 << 18
	// MaxInsns bounds the instructions generated for all probes
	// together, a quarter of the kernel's limit for one program
	// (BPF_COMPLEXITY_LIMIT_INSNS, 1M). The largest real script
	// generates 4,548; what this many cost to generate is in
	// BenchmarkCompileWorstAccepted.
	MaxInsns = 1 << 18
	// MaxMaps bounds a program's maps, each of which the kernel (or the
	// interpreter) allocates whole: the kernel lets one BPF program use
	// 64 maps (MAX_USED_MAPS), and every probe uses three of its own.
	MaxMaps = 61
)

// checkMaps reports the first map past MaxMaps, before any is declared.
func (c *compiler) checkMaps() bool {
	if len(c.mapOrder) <= MaxMaps {
		return true
	}
	m := c.maps[c.mapOrder[MaxMaps]]
	c.errorf(m.pos, m.end, "program is too large: %s is its map number %d, and a program may have %d", m.name, MaxMaps+1, MaxMaps)
	return false
}

// maxDiagnostics bounds the errors and warnings a compilation keeps: a
// block repeated over many probes repeats its mistakes, and a large
// script may make one per statement. The first are what a user reads.
const maxDiagnostics = 100

// note records a diagnostic, up to maxDiagnostics of them and then one
// more error at most, so that a full list of warnings cannot hide that
// the program has an error.
func (c *compiler) note(e *syntax.Error) {
	if len(c.errs) >= maxDiagnostics && (e.Warning || !c.errs[len(c.errs)-1].Warning) {
		return
	}
	c.errs = append(c.errs, e)
}

// budget is what a compilation has used of its bounds.
type budget struct {
	// full: a spec passed MaxProbes, and expanding stops there.
	full bool
	// insns counts the instructions generated for the probes done.
	insns int
}

// roomFor says whether n more attach points of s fit MaxProbes, and
// reports s if not: called before anything is read about them.
func (c *compiler) roomFor(s *syntax.ProbeSpec, n int) bool {
	if total := len(c.instances) + n; total > MaxProbes && !c.full {
		c.errorf(s.From, s.To, "%s matches %d probes, which makes %d in all; at most %d may attach", s.Raw, n, total, MaxProbes)
		c.full = true
	}
	return !c.full
}

// checkWork reports a program whose blocks, repeated for each attach
// point, come to more than MaxCheckWork, at the spec that weighs most.
func (c *compiler) checkWork() bool {
	work := 0
	weight := map[*syntax.ProbeSpec]int{}
	var heaviest *syntax.ProbeSpec
	for _, in := range c.instances {
		work += in.probe.Nodes
		weight[in.spec] += in.probe.Nodes
		if heaviest == nil || weight[in.spec] > weight[heaviest] {
			heaviest = in.spec
		}
	}
	if work <= MaxCheckWork {
		return true
	}
	n := 0
	for _, in := range c.instances {
		if in.spec == heaviest {
			n++
		}
	}
	c.errorf(heaviest.From, heaviest.To, "program is too large: its blocks, once for each probe they attach to, come to %d expressions and statements, more than %d (here %d probes run a block of %d); attach to fewer probes or shorten the block",
		work, MaxCheckWork, n, weight[heaviest]/n)
	return false
}

// insnBudget unwinds code generation once the program passes MaxInsns.
type insnBudget struct{}

// budget is called for every instruction emitted.
func (g *gen) budget() {
	if g.c.insns+len(g.insns) >= MaxInsns {
		panic(insnBudget{})
	}
}

// generateBounded is generate within MaxInsns, all probes together; ok
// is false when the budget ran out, which is reported at in's spec.
func (c *compiler) generateBounded(in *instance) (p *program.Probe, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, budget := r.(insnBudget); !budget {
				panic(r)
			}
			s := in.spec
			c.errorf(s.From, s.To, "program is too large: its code passes %d instructions at %s", MaxInsns, in.name)
			p, ok = nil, false
		}
	}()
	p = c.generate(in)
	if d := farJump(p.Insns); d != 0 {
		s := in.spec
		c.errorf(s.From, s.To, "program is too large: a jump in the code for %s spans %d instructions, more than a BPF jump reaches (%d); shorten the blocks", in.name, d, math.MaxInt16)
		return nil, false
	}
	c.insns += len(p.Insns)
	return p, true
}
