package compile

import (
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// enumTypes are fakeTypes that know three kernel enum constants.
type enumTypes struct{ fakeTypes }

func (enumTypes) EnumValue(name string) (int64, bool) {
	v, ok := map[string]int64{"BTF_VAR_STATIC": 7777, "TASK_DEAD": 128, "AA": 99}[name]
	return v, ok
}

// immediates are the constants a program's ALU and 64-bit loads take.
func immediates(insns asm.Instructions) []int64 {
	var out []int64
	for _, ins := range insns {
		if ins.OpCode.Class().IsALU() && ins.OpCode.Source() == asm.ImmSource || ins.OpCode.IsDWordLoad() {
			out = append(out, ins.Constant)
		}
	}
	return out
}

func TestEnumIdents(t *testing.T) {
	for _, tt := range []struct {
		src       string
		have, not []int64
		err       string
	}{
		// sizeof an enum constant is 8, its value unused.
		{`BEGIN { @ = sizeof(BTF_VAR_STATIC); }`, []int64{8}, []int64{7777}, ""},
		{`BEGIN { @ = TASK_DEAD + 1; }`, []int64{128}, nil, ""},
		// The script's own enum comes before the kernel's.
		{`enum E { AA = 3, BB }; BEGIN { @ = AA * 1000 + BB; }`, []int64{3, 4}, []int64{99}, ""},
		{`BEGIN { @ = NOSUCH; }`, nil, nil, "stdin:1:13-19: ERROR: Unknown identifier: 'NOSUCH'"},
	} {
		t.Run(tt.src, func(t *testing.T) {
			f, err := syntax.Parse("stdin", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			p, _, err := Compile(f, Options{Tracepoints: fakeTracepoints{}, Types: enumTypes{newFakeTypes()}})
			if tt.err != "" {
				l, _ := err.(syntax.ErrorList)
				if got := l.Format("stdin", []byte(tt.src)); !strings.Contains(got, tt.err) {
					t.Fatalf("got %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			imm := immediates(p.Probes[0].Insns)
			for _, v := range tt.have {
				if !slices.Contains(imm, v) {
					t.Errorf("no instruction takes %d: %v", v, imm)
				}
			}
			for _, v := range tt.not {
				if slices.Contains(imm, v) {
					t.Errorf("an instruction takes %d: %v", v, imm)
				}
			}
		})
	}
}
