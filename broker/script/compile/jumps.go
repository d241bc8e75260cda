package compile

import (
	"math"

	"github.com/cilium/ebpf/asm"
)

// A BPF jump's offset is 16 bits, and cilium/ebpf truncates a label's
// distance to it without a word: a jump that spans more than 32,767
// instructions lands elsewhere, into the body instead of at the end
// of a probe, past the checks that end it at once (the trace stopped,
// the daemon's own events, the predicate). So a program whose jumps do
// not all reach is refused (MaxInsns allows far longer programs than
// one jump spans).

// farJump returns the distance of the first jump of insns that a
// 16-bit offset cannot hold, or 0 if every jump reaches.
func farJump(insns asm.Instructions) int {
	at := make(map[string]int, len(insns)/8)
	slot := 0
	for _, ins := range insns {
		if s := ins.Symbol(); s != "" {
			at[s] = slot
		}
		slot += int(ins.Size() / asm.InstructionSize)
	}
	slot = 0
	for _, ins := range insns {
		if ref := ins.Reference(); ref != "" && ins.OpCode.Class().IsJump() && !ins.IsFunctionReference() {
			if to, ok := at[ref]; ok {
				if d := to - slot - 1; d < math.MinInt16 || d > math.MaxInt16 {
					return d
				}
			}
		}
		slot += int(ins.Size() / asm.InstructionSize)
	}
	return 0
}
