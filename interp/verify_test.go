package interp

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// raw8 encodes one instruction slot by hand, for encodings cilium/ebpf's
// assembler will not produce.
func raw8(code, dst, src uint8, off int16, imm int32) []byte {
	b := []byte{code, dst | src<<4, 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint16(b[2:], uint16(off))
	binary.LittleEndian.PutUint32(b[4:], uint32(imm))
	return b
}

func prog(slots ...[]byte) []byte { return bytes.Join(slots, nil) }

func marshal(t testing.TB, insns asm.Instructions) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := insns.Marshal(&b, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

var (
	exit0 = prog(raw8(0xb7, 0, 0, 0, 0), raw8(0x95, 0, 0, 0, 0)) // r0 = 0; exit
	exitI = raw8(0x95, 0, 0, 0, 0)
	movR0 = raw8(0xb7, 0, 0, 0, 0)
)

// TestVerifierRejects: each program breaks one rule; the error names the
// instruction and the rule, and nothing runs.
func TestVerifierRejects(t *testing.T) {
	arr := mustMap(t, &ebpf.MapSpec{Name: "arr", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 4})
	hash := mustMap(t, &ebpf.MapSpec{Name: "h", Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 4})
	tests := []struct {
		name string
		code []byte
		opts Options
		want string
	}{
		{"empty", nil, Options{}, "empty program"},
		{"partial slot", []byte{0x95, 0, 0}, Options{}, "not a whole number"},
		{"unknown opcode", prog(raw8(0xff, 0, 0, 0, 0), exitI), Options{}, "insn 0 (invalid insn 0xff): invalid opcode 0xff"},
		{"register 11", prog(raw8(0xb7, 11, 0, 0, 0), exitI), Options{}, "invalid register r11"},
		{"write r10", prog(raw8(0xb7, 10, 0, 0, 0), exitI), Options{}, "r10 is read-only"},
		{"load into r10", prog(raw8(0x79, 10, 1, 0, 0), exitI), Options{}, "r10 is read-only"},
		{"lddw into r10", prog(raw8(0x18, 10, 0, 0, 1), raw8(0, 0, 0, 0, 0), exitI), Options{}, "r10 is read-only"},
		{"fall off the end", prog(movR0), Options{}, "falls through"},
		{"jump past the end", prog(raw8(0x05, 0, 0, 5, 0), exit0), Options{}, "jump out of range to 6"},
		{"jump backwards out", prog(raw8(0x05, 0, 0, -2, 0), exit0), Options{}, "jump out of range to -1"},
		{"jump into lddw", prog(raw8(0x05, 0, 0, 1, 0), raw8(0x18, 0, 0, 0, 1), raw8(0, 0, 0, 0, 0), exitI), Options{}, "middle of a 64-bit immediate"},
		{"lddw cut short", prog(movR0, exitI, raw8(0x18, 0, 0, 0, 1)), Options{}, "no second half"},
		{"lddw bad tail", prog(raw8(0x18, 0, 0, 0, 1), raw8(0x07, 0, 0, 0, 0), exitI), Options{}, "reserved fields"},
		{"jump into another function", prog(raw8(0x85, 0, 1, 0, 2), raw8(0x05, 0, 0, 2, 0), exitI, movR0, exitI), Options{}, "jump out of its function"},
		{"function falls through", prog(raw8(0x85, 0, 1, 0, 1), exitI, raw8(0xb7, 0, 0, 0, 1)), Options{}, "falls through"},
		{"recursion", prog(raw8(0x85, 0, 1, 0, 1), exitI, raw8(0x85, 0, 1, 0, -1), movR0, exitI), Options{}, "recursive call"},
		{"stack below frame", prog(raw8(0x7a, 10, 0, -520, 1), exit0), Options{}, "invalid stack off=-520 size=8"},
		{"stack above frame", prog(raw8(0x62, 10, 0, -2, 1), exit0), Options{}, "invalid stack off=-2 size=4"},
		{"unknown helper", prog(raw8(0x85, 0, 0, 0, 9999), exitI), Options{}, "helper 9999 is not in the helper table"},
		{"helper not in a custom table", prog(raw8(0x85, 0, 0, 0, 5), exitI), Options{Helpers: []Helper{{ID: 8, Name: "cpu", Fn: helperCPU}}}, "helper 5 is not in the helper table"},
		{"kfunc", prog(raw8(0x85, 0, 2, 0, 5), exitI), Options{}, "kfunc calls are not supported"},
		{"uninitialised r0 at exit", prog(exitI), Options{}, "r0 is read before it is written"},
		{"uninitialised r2", prog(raw8(0xbf, 0, 2, 0, 0), exitI), Options{}, "r2 is read before it is written"},
		{"r1 after a helper call", prog(raw8(0x85, 0, 0, 0, 5), raw8(0xbf, 0, 1, 0, 0), exitI), Options{}, "r1 is read before it is written"},
		{"helper argument unset", prog(raw8(0x85, 0, 0, 0, 1), exitI), Options{Maps: []*Map{arr}}, "r2 is read before it is written"},
		{"uninitialised on one path", prog(raw8(0x15, 1, 0, 1, 0), raw8(0xb7, 3, 0, 0, 1), raw8(0xbf, 0, 3, 0, 0), exitI), Options{}, "r3 is read before it is written"},
		{"constant division by zero", prog(movR0, raw8(0x37, 0, 0, 0, 0), exitI), Options{}, "division by zero"},
		{"bad byte swap width", prog(movR0, raw8(0xdc, 0, 0, 0, 17), exitI), Options{}, "invalid byte swap width 17"},
		{"bad movsx", prog(raw8(0xbf, 0, 1, 7, 0), exitI), Options{}, "invalid movsx offset 7"},
		{"bad atomic", prog(movR0, raw8(0xdb, 10, 0, -8, 0x33), exitI), Options{}, "invalid atomic operation 0x33"},
		{"atomic on a byte", prog(movR0, raw8(0xd3, 10, 0, -8, 0), exitI), Options{}, "invalid atomic"},
		{"legacy packet load", prog(raw8(0x30, 0, 0, 0, 0), exitI), Options{}, "legacy packet access"},
		{"map not supplied", prog(raw8(0x18, 1, 1, 0, 3), raw8(0, 0, 0, 0, 0), exit0), Options{}, "map 3 was not supplied"},
		{"direct value of a hash", prog(raw8(0x18, 1, 2, 0, 0), raw8(0, 0, 0, 0, 0), exit0), Options{Maps: []*Map{hash}}, "needs an array map"},
		{"direct value offset", prog(raw8(0x18, 1, 2, 0, 0), raw8(0, 0, 0, 0, 8), exit0), Options{Maps: []*Map{arr}}, "offset 8 is outside the 8-byte value"},
		{"BTF id load", prog(raw8(0x18, 1, 3, 0, 0), raw8(0, 0, 0, 0, 0), exit0), Options{}, "BTF id loads"},
		{"exit with fields", prog(movR0, raw8(0x95, 1, 0, 0, 0)), Options{}, "exit uses reserved fields"},
		{"ALU imm with src", prog(movR0, raw8(0x07, 0, 1, 0, 1), exitI), Options{}, "reserved fields"},
		{"too many args", exit0, Options{Args: 6}, "at most 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Load(tt.code, tt.opts)
			if err == nil {
				t.Fatalf("loaded, want error %q", tt.want)
			}
			if p != nil {
				t.Fatal("a Program came back with the error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestCallDepth: a chain of eight frames loads and runs, nine do not.
func TestCallDepth(t *testing.T) {
	chain := func(frames int) []byte {
		var slots [][]byte
		for i := 0; i < frames-1; i++ {
			// call the next function; add one to r0 on the way back
			slots = append(slots, raw8(0x85, 0, 1, 0, 2), raw8(0x07, 0, 0, 0, 1), exitI)
		}
		return prog(append(slots, raw8(0xb7, 0, 0, 0, 100), exitI)...)
	}
	p, err := Load(chain(MaxFrames), Options{})
	if err != nil {
		t.Fatal(err)
	}
	r0, err := p.Run(nil, nil)
	if err != nil || r0 != 100+MaxFrames-1 {
		t.Fatalf("r0 = %d, %v; want %d", r0, err, 100+MaxFrames-1)
	}
	if _, err := Load(chain(MaxFrames+1), Options{}); err == nil || !strings.Contains(err.Error(), "9 frames deep") {
		t.Fatalf("9 frames: %v", err)
	}
}

func mustMap(t testing.TB, spec *ebpf.MapSpec) *Map {
	t.Helper()
	m, err := NewMap(spec, MapOptions{CPUs: 4})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
