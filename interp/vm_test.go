package interp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

func load(t testing.TB, insns asm.Instructions, maps map[string]*Map, opts Options) *Program {
	t.Helper()
	p, err := LoadInstructions(insns, maps, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// keyOnStack stores a 32-bit key at r10-4 and points r2 at it, with the
// map named name in r1: the setup of every map helper call.
func keyOnStack(name string, key int32) asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.R10, -4, int64(key), asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(name),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
	}
}

// TestFaults: every access outside the program's regions stops the run
// with an error naming the instruction and the place.
func TestFaults(t *testing.T) {
	arr := mustMap(t, &ebpf.MapSpec{Name: "arr", Type: ebpf.Array, KeySize: 4, ValueSize: 12, MaxEntries: 2})
	maps := map[string]*Map{"arr": arr}
	lookup := append(keyOnStack("arr", 1), asm.FnMapLookupElem.Call(), asm.JNE.Imm(asm.R0, 0, "ok"), asm.Return(), asm.Mov.Reg(asm.R1, asm.R0).WithSymbol("ok"))
	tests := []struct {
		name  string
		insns asm.Instructions
		ctx   []byte
		want  string
	}{
		{"NULL", asm.Instructions{asm.Mov.Imm(asm.R1, 0), asm.LoadMem(asm.R0, asm.R1, 0, asm.DWord), asm.Return()}, nil,
			"insn 1 (r0 = *(u64 *)(r1 +0)): memory access fault: read of 8 bytes at 0x0: NULL"},
		{"integer as pointer", asm.Instructions{asm.LoadImm(asm.R1, 0x7fff12345678, asm.DWord), asm.LoadMem(asm.R0, asm.R1, 0, asm.Byte), asm.Return()}, nil,
			"read of 1 bytes at 0x7fff12345678: no region"},
		{"past the context", asm.Instructions{asm.LoadMem(asm.R0, asm.R1, 6, asm.Word), asm.Return()}, make([]byte, 8),
			"read of 4 bytes at 0x1100000000000006: context+6 (8 bytes)"},
		{"before the context", asm.Instructions{asm.LoadMem(asm.R0, asm.R1, -1, asm.Byte), asm.Return()}, make([]byte, 8),
			"read of 1 bytes at 0x10ffffffffffffff"},
		{"context is read-only", asm.Instructions{asm.StoreImm(asm.R1, 0, 1, asm.Byte), asm.Mov.Imm(asm.R0, 0), asm.Return()}, make([]byte, 8),
			"write of 1 bytes at 0x1100000000000000: context+0 (8 bytes)"},
		{"above r10", asm.Instructions{asm.Mov.Reg(asm.R1, asm.R10), asm.LoadMem(asm.R0, asm.R1, 0, asm.DWord), asm.Return()}, nil,
			"stack (frame 0, r10+0)"},
		{"below the stack", asm.Instructions{asm.Mov.Reg(asm.R1, asm.R10), asm.Add.Imm(asm.R1, -520), asm.LoadMem(asm.R0, asm.R1, 0, asm.DWord), asm.Return()}, nil,
			"read of 8 bytes at 0xffffffffffffff8: no region"},
		{"past a map value", append(lookup, asm.LoadMem(asm.R0, asm.R1, 8, asm.DWord), asm.Return()), nil,
			`map "arr" value (slot 1, offset 8 of 12)`},
		{"into the next map value", append(lookup, asm.LoadMem(asm.R0, asm.R1, 12, asm.Word), asm.Return()), nil,
			`map "arr" value (slot 1, offset 12 of 12)`},
		{"past the last map value", append(lookup, asm.LoadMem(asm.R0, asm.R1, 16, asm.Word), asm.Return()), nil,
			`map "arr" value (slot 2, offset 0 of 12)`},
		{"map handle", append(keyOnStack("arr", 0), asm.LoadMem(asm.R0, asm.R1, 0, asm.DWord), asm.Return()), nil,
			"a map handle, which is not memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := load(t, tt.insns, maps, Options{})
			_, err := p.Run(nil, tt.ctx)
			var re *RunError
			if !errors.As(err, &re) || !errors.Is(err, ErrFault) {
				t.Fatalf("err = %v, want a fault", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %q\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

// TestDeadFrame: a pointer into a callee's frame stops being memory when
// the callee returns.
func TestDeadFrame(t *testing.T) {
	insns := asm.Instructions{
		asm.Call.Label("f"),
		asm.LoadMem(asm.R0, asm.R0, 0, asm.DWord), // r0 points into f's frame
		asm.Return(),
		asm.StoreImm(asm.R10, -8, 7, asm.Word).WithSymbol("f"),
		asm.Mov.Reg(asm.R0, asm.R10),
		asm.Add.Imm(asm.R0, -8),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord), // fine while f runs
		asm.Return(),
	}
	p := load(t, insns, nil, Options{})
	_, err := p.Run(nil, nil)
	if !errors.Is(err, ErrFault) || !strings.Contains(err.Error(), "insn 1 ") {
		t.Fatalf("err = %v, want a fault at insn 1", err)
	}
}

// TestCalls: callee-saved registers survive, arguments arrive, and each
// frame starts zeroed even when an earlier call left data behind.
func TestCalls(t *testing.T) {
	insns := asm.Instructions{
		asm.Mov.Imm(asm.R6, 6),
		asm.Mov.Imm(asm.R9, 9),
		asm.Mov.Imm(asm.R1, 40),
		asm.Mov.Imm(asm.R2, 2),
		asm.Call.Label("dirty"),
		asm.Mov.Imm(asm.R1, 40),
		asm.Mov.Imm(asm.R2, 2),
		asm.Call.Label("sum"),
		asm.Add.Reg(asm.R0, asm.R6), // 42 + 6
		asm.Add.Reg(asm.R0, asm.R9), // + 9
		asm.Return(),
		// dirty leaves garbage in its frame and clobbers r6.
		asm.StoreImm(asm.R10, -8, 0x5555, asm.Word).WithSymbol("dirty"),
		asm.Mov.Imm(asm.R6, 0),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
		// sum returns r1+r2 plus whatever its (fresh) frame holds.
		asm.LoadMem(asm.R0, asm.R10, -8, asm.DWord).WithSymbol("sum"),
		asm.Add.Reg(asm.R0, asm.R1),
		asm.Add.Reg(asm.R0, asm.R2),
		asm.Mov.Imm(asm.R9, 0),
		asm.Return(),
	}
	p := load(t, insns, nil, Options{})
	r0, err := p.Run(nil, nil)
	if err != nil || r0 != 57 {
		t.Fatalf("r0 = %d, %v; want 57", r0, err)
	}
}

// TestBudget: a loop that never ends is stopped by the budget, after
// exactly as many instructions as the budget allows plus the jump that
// crosses it.
func TestBudget(t *testing.T) {
	insns := asm.Instructions{
		asm.Mov.Imm(asm.R0, 0),
		asm.Add.Imm(asm.R0, 1).WithSymbol("loop"),
		asm.Ja.Label("loop"),
		asm.Return(),
	}
	p := load(t, insns, nil, Options{Budget: 1000})
	n := 0
	_, err := p.Run(&Env{Step: func(int, *[11]uint64) { n++ }}, nil)
	if !errors.Is(err, ErrBudget) {
		t.Fatalf("err = %v, want the budget", err)
	}
	// mov, then (add, ja) pairs: the check after a jump sees 1+2k > 1000.
	if n != 1001 {
		t.Fatalf("ran %d instructions, want 1001", n)
	}
	p = load(t, insns, nil, Options{})
	if _, err := p.Run(nil, nil); !errors.Is(err, ErrBudget) || !strings.Contains(err.Error(), "insn 2 (goto pc-2)") {
		t.Fatalf("default budget: %v", err)
	}
}

// TestStep: the tracer sees every executed instruction in order, with
// the registers before it runs.
func TestStep(t *testing.T) {
	insns := asm.Instructions{
		asm.Mov.Imm(asm.R0, 1),
		asm.JEq.Imm(asm.R0, 1, "skip"),
		asm.Mov.Imm(asm.R0, 2),
		asm.Add.Imm(asm.R0, 40).WithSymbol("skip"),
		asm.Return(),
	}
	p := load(t, insns, nil, Options{})
	var pcs []int
	var r0s []uint64
	r0, err := p.Run(&Env{Step: func(pc int, r *[11]uint64) { pcs = append(pcs, pc); r0s = append(r0s, r[0]) }}, nil)
	if err != nil || r0 != 41 {
		t.Fatalf("r0 = %d, %v", r0, err)
	}
	if got, want := pcs, []int{0, 1, 3, 4}; !equalInts(got, want) {
		t.Fatalf("pcs %v, want %v", got, want)
	}
	if r0s[3] != 41 || r0s[2] != 1 {
		t.Fatalf("registers seen %v", r0s)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestConcurrentRuns: one Program, many goroutines, one shared map;
// atomic adds through map-value pointers lose nothing.
func TestConcurrentRuns(t *testing.T) {
	arr := mustMap(t, &ebpf.MapSpec{Name: "arr", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	h := mustMap(t, &ebpf.MapSpec{Name: "h", Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 16})
	one := make([]byte, 8)
	for k := int32(0); k < 4; k++ {
		if err := h.Update(binary.LittleEndian.AppendUint32(nil, uint32(k)), one[:8:8], UpdateAny); err != nil {
			t.Fatal(err)
		}
	}
	insns := append(keyOnStack("arr", 0),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
	)
	insns = append(insns,
		// key = cpu % 4: four hash entries, four keys
		asm.FnGetSmpProcessorId.Call(),
		asm.And.Imm(asm.R0, 3),
		asm.StoreMem(asm.R10, -4, asm.R0, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference("h"),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	)
	p := load(t, insns, map[string]*Map{"arr": arr, "h": h}, Options{})
	const workers, runs = 8, 5000
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			env := &Env{CPU: uint32(w)}
			for i := 0; i < runs; i++ {
				if _, err := p.Run(env, nil); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	v, _, _ := arr.Lookup([]byte{0, 0, 0, 0})
	if got := binary.LittleEndian.Uint64(v); got != workers*runs {
		t.Fatalf("array counter %d, want %d", got, workers*runs)
	}
	for k := uint32(0); k < 4; k++ {
		v, ok, _ := h.Lookup(binary.LittleEndian.AppendUint32(nil, k))
		if got := binary.LittleEndian.Uint64(v); !ok || got != 2*runs {
			t.Fatalf("hash key %d: %d, want %d", k, got, 2*runs)
		}
	}
}

// TestAtomics covers every atomic on the stack against plain Go
// arithmetic, 32 and 64 bit, fetch forms included. (Raw encodings:
// cilium/ebpf v0.22 marshals only the add form of its atomic ops.)
func TestAtomics(t *testing.T) {
	var a, b uint64 = 0xf0f0_1234_5678_9abc, 0x0ff0_0000_ffff_0001
	m32 := func(x uint64) uint64 { return x & 0xffffffff }
	hi := a &^ 0xffffffff
	tests := []struct {
		name     string
		code     uint8 // 0xdb DW, 0xc3 W
		imm      int32
		mem, src uint64 // memory and source register afterwards
	}{
		{"add", 0xdb, 0x00, a + b, b},
		{"or", 0xdb, 0x40, a | b, b},
		{"and", 0xdb, 0x50, a & b, b},
		{"xor", 0xdb, 0xa0, a ^ b, b},
		{"fetch_add", 0xdb, 0x01, a + b, a},
		{"fetch_or", 0xdb, 0x41, a | b, a},
		{"fetch_and", 0xdb, 0x51, a & b, a},
		{"fetch_xor", 0xdb, 0xa1, a ^ b, a},
		{"xchg", 0xdb, 0xe1, b, a},
		{"add32", 0xc3, 0x00, hi | m32(a+b), b},
		{"or32", 0xc3, 0x40, hi | m32(a|b), b},
		{"and32", 0xc3, 0x50, hi | m32(a&b), b},
		{"xor32", 0xc3, 0xa0, hi | m32(a^b), b},
		{"fetch_add32", 0xc3, 0x01, hi | m32(a+b), m32(a)},
		{"fetch_or32", 0xc3, 0x41, hi | m32(a|b), m32(a)},
		{"fetch_and32", 0xc3, 0x51, hi | m32(a&b), m32(a)},
		{"fetch_xor32", 0xc3, 0xa1, hi | m32(a^b), m32(a)},
		{"xchg32", 0xc3, 0xe1, hi | m32(b), m32(a)},
	}
	lddw := func(reg uint8, v uint64) []byte {
		return prog(raw8(0x18, reg, 0, 0, int32(uint32(v))), raw8(0, 0, 0, 0, int32(uint32(v>>32))))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code := prog(
				lddw(1, a),
				raw8(0x7b, 10, 1, -8, 0), // *(u64 *)(r10 -8) = r1
				lddw(2, b),
				raw8(tt.code, 10, 2, -8, tt.imm),
				raw8(0x79, 0, 10, -8, 0), // r0 = *(u64 *)(r10 -8)
				exitI,
			)
			p, err := Load(code, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var src uint64
			r0, err := p.Run(&Env{Step: func(pc int, r *[11]uint64) {
				if pc == 7 {
					src = r[2]
				}
			}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r0 != tt.mem || src != tt.src {
				t.Fatalf("memory %#x src %#x, want %#x %#x", r0, src, tt.mem, tt.src)
			}
		})
	}
	// cmpxchg: r0 gets the old value; memory changes only if it equalled r0.
	for _, c := range []struct {
		code     uint8
		r0, want uint64
	}{
		{0xdb, a, b}, {0xdb, 1, a},
		{0xc3, m32(a) | 0xdead<<32, hi | m32(b)}, {0xc3, 1, a},
	} {
		code := prog(
			lddw(1, a),
			raw8(0x7b, 10, 1, -8, 0),
			lddw(2, b),
			lddw(0, c.r0),
			raw8(c.code, 10, 2, -8, 0xf1),
			raw8(0xbf, 6, 0, 0, 0),   // r6 = r0 (old value)
			raw8(0x79, 0, 10, -8, 0), // r0 = memory
			exitI,
		)
		p, err := Load(code, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var old uint64
		r0, err := p.Run(&Env{Step: func(pc int, r *[11]uint64) {
			if pc == 10 {
				old = r[6]
			}
		}}, nil)
		wantOld := a
		if c.code == 0xc3 {
			wantOld = m32(a)
		}
		if err != nil || r0 != c.want || old != wantOld {
			t.Fatalf("cmpxchg %#x r0=%#x: memory %#x old %#x (%v), want %#x %#x", c.code, c.r0, r0, old, err, c.want, wantOld)
		}
	}
}

// TestContextWrite: with WritableContext the program's stores land in
// the caller's buffer and nowhere else.
func TestContextWrite(t *testing.T) {
	buf := bytes.Repeat([]byte{0xee}, 32)
	ctx := buf[8:16:16]
	insns := asm.Instructions{
		asm.StoreImm(asm.R1, 0, 0x11, asm.Byte),
		asm.StoreImm(asm.R1, 4, 0x22334455, asm.Word),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	}
	p := load(t, insns, nil, Options{WritableContext: true})
	if _, err := p.Run(nil, ctx); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Repeat([]byte{0xee}, 8), 0x11, 0xee, 0xee, 0xee, 0x55, 0x44, 0x33, 0x22)
	want = append(want, bytes.Repeat([]byte{0xee}, 16)...)
	if !bytes.Equal(buf, want) {
		t.Fatalf("buffer % x\nwant   % x", buf, want)
	}
}
