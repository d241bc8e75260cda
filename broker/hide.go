package broker

import (
	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
)

// hideRaw makes each probe of a plugin's raw eBPF return at once on an
// event of process pid, as the script compiler does for the programs it
// generates (compile.Options.HidePID): the daemon hides its own events
// from token holders, and a raw program is a token holder's as much as a
// script is. The check goes before the program's first instruction,
// which keeps every jump and call of the program where it was (they are
// relative); r6 holds the context across the helper call, which the
// program cannot have relied on (the verifier refuses a read of a
// register before it is written). BEGIN and END run in the daemon by
// design, as for scripts.
func hideRaw(prog *program.Program, pid int) {
	if pid <= 0 || pid > 1<<31-1 {
		return
	}
	for _, p := range prog.Probes {
		if p.Kind == program.Begin || p.Kind == program.End {
			continue
		}
		skip := asm.JNE.Imm(asm.R0, int32(pid), "")
		skip.Offset = 2 // over the return
		check := asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.FnGetCurrentPidTgid.Call(),
			asm.RSh.Imm(asm.R0, 32),
			skip,
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
			asm.Mov.Reg(asm.R1, asm.R6),
		}
		p.Insns = append(check, p.Insns...)
	}
}
