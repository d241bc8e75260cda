package broker

import (
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/gatekeeper/abi"
)

// judgeRawReads sets what a plugin's raw eBPF reads. Nobody knows its
// expressions, so it is judged by the helpers it calls and by how its
// output is printed, conservatively (program.HelperReads): a kernel-read
// helper is kernel memory, a user-read helper arbitrary user memory. What
// the plugin may have claimed is not kept.
func judgeRawReads(prog *program.Program) {
	printed := program.SchemaReads(prog.Schema)
	for _, p := range prog.Probes {
		r := program.HelperReads(p.Insns) | printed
		if (p.Kind == program.Begin || p.Kind == program.End) && r&program.ReadsUser != 0 {
			// BEGIN and END run in the broker: the user memory they
			// read is the daemon's own, as good as root (as for
			// scripts, compile's finishReads).
			r |= program.ReadsKernel
		}
		p.Reads, p.ReadSites = r, nil
	}
}

// readBits ties each program.Reads class to its bit in the gatekeeper
// Request's reads field.
var readBits = []struct {
	class program.Reads
	bit   uint64
}{
	{program.ReadsContext, abi.ReadContext},
	{program.ReadsUserContext, abi.ReadUserContext},
	{program.ReadsUser, abi.ReadUser},
	{program.ReadsKernel, abi.ReadKernel},
	{program.ReadsKernelAddr, abi.ReadKernelAddr},
}

// requestReads is the reads field of the Request for a probe that reads r.
func requestReads(r program.Reads) uint64 {
	var bits uint64
	for _, b := range readBits {
		if r&b.class != 0 {
			bits |= b.bit
		}
	}
	return bits
}
