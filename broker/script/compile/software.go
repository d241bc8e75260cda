package compile

import (
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// softwareSpec is software:EVENT[:COUNT]: a perf software event sampled
// on every CPU every COUNT events, with bpftrace 0.17's errors.
func (c *compiler) softwareSpec(s *syntax.ProbeSpec, mk func(program.ProbeKind, string) *instance) []*instance {
	if len(s.Parts) == 0 || s.Parts[0] == "" {
		c.errorf(s.From, s.To, "software probe must have a software event name")
		return nil
	}
	if hasWildcard(s.Parts[0]) {
		// bpftrace's words, which name the wrong probe type.
		c.errorf(s.From, s.To, "wildcards are not allowed for hardware probe type")
		return nil
	}
	if len(s.Parts) > 2 {
		c.errorf(s.From, s.To, "software probe can only have an integer count")
		return nil
	}
	count := ""
	if len(s.Parts) == 2 {
		count = s.Parts[1]
	}
	e, n, err := program.SoftwareSample(s.Parts[0], count)
	if err != nil {
		c.errorf(s.From, s.To, "%v", err)
		return nil
	}
	name := "software:" + s.Parts[0]
	if count != "" {
		name += ":" + count
	}
	in := mk(program.Software, name)
	in.event, in.sample = e.Name, n
	return []*instance{in}
}
