package bpf

import (
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// NoV4ISAEnv, set to 1, makes HaveV4ISA answer false on any kernel, so
// that the code older kernels get runs through this kernel's verifier
// (the tests use it; so can a user whose kernel misjudges the probe).
const NoV4ISAEnv = "TRACEBROKER_NO_V4ISA"

var v4ISA = sync.OnceValue(probeV4ISA)

// HaveV4ISA reports whether the running kernel loads the v4 instructions
// the compiler emits (sign-extending loads, signed division: Linux 6.6).
// The kernel is asked once, with a program that holds both.
func HaveV4ISA() bool {
	if os.Getenv(NoV4ISAEnv) == "1" {
		return false
	}
	return v4ISA()
}

// probeV4ISA loads a socket filter that uses a sign-extending load and a
// signed division. cilium/ebpf's features.HaveV4ISA is no answer: it
// tries a 32-bit-offset jump (gotol), which Debian's 6.1 accepts while
// it refuses sign-extending loads ("BPF_LDX uses reserved fields"). Any
// error is a no: the older spellings load everywhere.
func probeV4ISA() bool {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.SocketFilter,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R1, -2),
			asm.StoreMem(asm.R10, -8, asm.R1, asm.DWord),
			asm.LoadMemSX(asm.R0, asm.R10, -8, asm.Byte),
			asm.Mov.Imm(asm.R1, 2),
			asm.SDiv.Reg(asm.R0, asm.R1),
			asm.Return(),
		},
	})
	if err != nil {
		return false
	}
	prog.Close()
	return true
}
