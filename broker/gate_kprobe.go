package broker

import (
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/gatekeeper"
)

// decideEach asks the gatekeeper about a probe under each name it
// attaches as (Probe.AttachNames): a kprobe.multi or uprobe.multi probe
// on many functions is judged function by function, as the probes it
// stands for would be, so that a policy naming functions sees every
// one. One denial denies the probe; a function allowed only interpreted
// makes the probe so.
func decideEach(g *Gate, r gatekeeper.Request, p *program.Probe) (gatekeeper.Decision, error) {
	var first gatekeeper.Decision
	for i, name := range p.AttachNames() {
		r.Attach = truncate(name, 127)
		d := g.Keeper.Decide(&r)
		if !d.Admitted() {
			return d, &DeniedError{Probe: name, Decision: d}
		}
		if i == 0 || d.Mode == gatekeeper.ModeInterpreter && first.Mode != gatekeeper.ModeInterpreter {
			first = d
		}
	}
	return first, nil
}

// multiAttach is what an attestation lists of a probe on many functions
// (kprobe.multi, uprobe.multi): each function's own probe name; nil for
// a probe on one.
func multiAttach(p *program.Probe) []string {
	if len(p.Funcs) == 0 {
		return nil
	}
	return p.AttachNames()
}
