package program

import (
	"slices"
	"testing"

	"github.com/cilium/ebpf/asm"
)

// TestEffects: helpers that change the system, and calls nobody here
// knows, are listed once each; reads and quiet helpers are not.
func TestEffects(t *testing.T) {
	insns := asm.Instructions{
		asm.FnGetCurrentPidTgid.Call(),
		asm.FnProbeReadUser.Call(),
		asm.FnSendSignal.Call(),
		asm.FnSendSignal.Call(),
		asm.FnProbeWriteUser.Call(),
		asm.BuiltinFunc(9999).Call(),
		{OpCode: asm.OpCode(asm.JumpClass).SetJumpOp(asm.Call).SetSource(asm.RegSource)},
		asm.Return(),
	}
	want := []string{"bpf_send_signal", "bpf_probe_write_user", "helper 9999", "callx"}
	if got := Effects(insns); !slices.Equal(got, want) {
		t.Errorf("Effects = %q, want %q", got, want)
	}
	if got := Effects(asm.Instructions{asm.FnMapLookupElem.Call(), asm.FnProbeReadKernel.Call(), asm.Return()}); got != nil {
		t.Errorf("Effects of reads = %q", got)
	}
}
