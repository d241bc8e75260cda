package program

import (
	"testing"

	"github.com/cilium/ebpf/asm"
)

const (
	user   = ReadsUser
	kernel = ReadsKernel
	kaddr  = ReadsKernelAddr
)

// TestHelperReads: raw eBPF is judged by its helpers, and what is not
// known to read nothing counts as reading everything.
func TestHelperReads(t *testing.T) {
	for _, tt := range []struct {
		insns asm.Instructions
		want  Reads
	}{
		{asm.Instructions{asm.FnMapLookupElem.Call(), asm.FnGetCurrentComm.Call(), asm.FnRingbufOutput.Call()}, 0},
		{asm.Instructions{asm.FnProbeReadUserStr.Call()}, user},
		{asm.Instructions{asm.FnProbeReadKernel.Call()}, kernel},
		{asm.Instructions{asm.FnProbeRead.Call()}, user | kernel},
		{asm.Instructions{asm.FnGetCurrentTaskBtf.Call()}, kernel | kaddr},
		{asm.Instructions{asm.FnKallsymsLookupName.Call()}, kaddr},
		{asm.Instructions{asm.FnSnprintf.Call()}, user | kernel},
		{asm.Instructions{asm.BuiltinFunc(5000).Call()}, user | kernel | kaddr},
		{asm.Instructions{{OpCode: asm.Call.Op(asm.ImmSource), Src: asm.PseudoKfuncCall, Constant: 1}}, user | kernel | kaddr},
		{asm.Instructions{{OpCode: asm.Call.Op(asm.RegSource), Dst: asm.R2}}, user | kernel | kaddr},
	} {
		if got := HelperReads(tt.insns); got != tt.want {
			t.Errorf("%v: %s, want %s", tt.insns, got, tt.want)
		}
	}
}

// TestSchemaReads: how a program's output is printed can reveal kernel
// addresses: a ksym value, a kernel stack in perf mode, also inside a
// tuple or a map key.
func TestSchemaReads(t *testing.T) {
	for _, tt := range []struct {
		name string
		s    Schema
		want Reads
	}{
		{"nothing", Schema{Formats: []*Format{{Args: []Arg{{Type: Type{Kind: Int, Size: 8}}}}}}, 0},
		{"kstack", Schema{Maps: []*Map{{Keys: []Type{{Kind: KStack, Size: 8}}}}}, 0},
		{"kstack perf", Schema{Maps: []*Map{{Keys: []Type{{Kind: KStack, Size: 8, Perf: true}}}}}, kaddr},
		{"ustack perf", Schema{Maps: []*Map{{Keys: []Type{{Kind: UStack, Size: 8, Perf: true}}}}}, 0},
		{"ksym in a tuple", Schema{Formats: []*Format{nil, {Args: []Arg{{Type: Type{Kind: Tuple, Elems: []Type{{Kind: Int}, {Kind: KSym}}}}}}}}, kaddr},
		{"ksym value", Schema{Maps: []*Map{nil, {Value: Type{Kind: KSym, Size: 8}}}}, kaddr},
	} {
		if got := SchemaReads(tt.s); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}
