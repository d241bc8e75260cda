package compile

import (
	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
)

// hidePID makes the probe return at once on an event of Options.HidePID.
// The broker daemon is the trusted base that every session runs
// through: it writes each session's output, its audit log and its
// attestations, so a token holder tracing syscalls would otherwise read,
// through them, what other sessions see. BEGIN and END run in the
// daemon by design, once, and are not hidden.
func (g *gen) hidePID() {
	pid := g.c.opts.HidePID
	switch g.in.kind {
	case program.Begin, program.End, program.Gatekeeper:
		return
	}
	if pid == 0 || pid > 1<<31-1 {
		return
	}
	g.call(asm.FnGetCurrentPidTgid)
	g.emit(asm.RSh.Imm(asm.R0, 32))
	g.emit(asm.JEq.Imm(asm.R0, int32(pid), g.end))
}
