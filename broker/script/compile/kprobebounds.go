package compile

import "github.com/tracebroker/tracebroker/broker/script/syntax"

// roomForKprobeFuncs says whether n more functions on kprobe.multi
// links fit MaxKprobeFuncs, all the program's probes together, and
// reports the spec that passes it. One link is bounded, but a program
// may have MaxProbes of them: `kprobe:a*, kprobe:b*, …` would put every
// function of the kernel under a probe, and one pattern written 1024
// times each of its functions under 1024 links.
func (c *compiler) roomForKprobeFuncs(s *syntax.ProbeSpec, n int) bool {
	total := n
	for _, in := range c.instances {
		total += len(in.funcs)
	}
	if total > MaxKprobeFuncs {
		c.errorf(s.From, s.To, "%s matches %d functions, which makes %d on kprobe.multi probes in all; at most %d may attach", s.Raw, n, total, MaxKprobeFuncs)
		return false
	}
	return true
}
