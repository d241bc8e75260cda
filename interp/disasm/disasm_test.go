package disasm

import (
	"encoding/binary"
	"slices"
	"testing"
)

func raw(op, dst, src uint8, off int16, imm int32) []byte {
	b := make([]byte, 8)
	b[0] = op
	b[1] = src<<4 | dst&0x0f
	binary.LittleEndian.PutUint16(b[2:], uint16(off))
	binary.LittleEndian.PutUint32(b[4:], uint32(imm))
	return b
}

// The expected texts are print_bpf_insn's format strings in
// kernel/bpf/disasm.c filled in by hand, without the "(xx) " prefix.
func TestInsn(t *testing.T) {
	tests := []struct {
		name string
		code []byte
		want string
	}{
		// ALU64, immediate and register.
		{"add64 imm", raw(0x07, 0, 0, 0, 1), "r0 += 1"},
		{"add64 reg", raw(0x0f, 0, 1, 0, 0), "r0 += r1"},
		{"sub64 imm negative", raw(0x17, 2, 0, 0, -5), "r2 -= -5"},
		{"mul64", raw(0x2f, 3, 4, 0, 0), "r3 *= r4"},
		{"div64", raw(0x37, 0, 0, 0, 10), "r0 /= 10"},
		{"sdiv64 reg", raw(0x3f, 0, 1, 1, 0), "r0 s/= r1"},
		{"sdiv64 imm", raw(0x37, 0, 0, 1, -3), "r0 s/= -3"},
		{"or64", raw(0x4f, 1, 2, 0, 0), "r1 |= r2"},
		{"and64", raw(0x57, 1, 0, 0, 255), "r1 &= 255"},
		{"lsh64", raw(0x67, 1, 0, 0, 32), "r1 <<= 32"},
		{"rsh64", raw(0x7f, 1, 3, 0, 0), "r1 >>= r3"},
		{"neg64", raw(0x87, 0, 0, 0, 0), "r0 = -r0"},
		{"mod64", raw(0x9f, 0, 1, 0, 0), "r0 %= r1"},
		{"smod64 imm", raw(0x97, 0, 0, 1, 3), "r0 s%= 3"},
		{"xor64", raw(0xaf, 9, 9, 0, 0), "r9 ^= r9"},
		{"mov64 imm", raw(0xb7, 0, 0, 0, 1), "r0 = 1"},
		{"mov64 reg", raw(0xbf, 6, 1, 0, 0), "r6 = r1"},
		{"movsx64 s8", raw(0xbf, 0, 1, 8, 0), "r0 = (s8)r1"},
		{"movsx64 s16", raw(0xbf, 0, 1, 16, 0), "r0 = (s16)r1"},
		{"movsx64 s32", raw(0xbf, 0, 1, 32, 0), "r0 = (s32)r1"},
		{"arsh64", raw(0xc7, 1, 0, 0, 63), "r1 s>>= 63"},
		{"arsh64 reg", raw(0xcf, 1, 2, 0, 0), "r1 s>>= r2"},
		{"addr_space_cast", raw(0xbf, 1, 2, 1, 1<<16), "r1 = addr_space_cast(r2, 1, 0)"},
		{"percpu addr", raw(0xbf, 1, 2, -1, 0), "r1 = &(void __percpu *)(r2)"},

		// ALU32.
		{"add32 imm", raw(0x04, 0, 0, 0, 1), "w0 += 1"},
		{"add32 reg", raw(0x0c, 0, 1, 0, 0), "w0 += w1"},
		{"mov32 reg", raw(0xbc, 0, 1, 0, 0), "w0 = w1"},
		{"mov32 imm", raw(0xb4, 2, 0, 0, -1), "w2 = -1"},
		{"movsx32 s16", raw(0xbc, 0, 1, 16, 0), "w0 = (s16)w1"},
		{"movsx32 s8", raw(0xbc, 3, 4, 8, 0), "w3 = (s8)w4"},
		{"neg32", raw(0x84, 5, 0, 0, 0), "w5 = -w5"},
		{"sdiv32", raw(0x3c, 1, 2, 1, 0), "w1 s/= w2"},
		{"smod32 imm", raw(0x94, 1, 0, 1, 7), "w1 s%= 7"},
		{"arsh32", raw(0xc4, 1, 0, 0, 3), "w1 s>>= 3"},

		// Byte swaps: the 32-bit class still names rN.
		{"le16", raw(0xd4, 0, 0, 0, 16), "r0 = le16 r0"},
		{"le32", raw(0xd4, 0, 0, 0, 32), "r0 = le32 r0"},
		{"be16", raw(0xdc, 0, 0, 0, 16), "r0 = be16 r0"},
		{"be64", raw(0xdc, 3, 0, 0, 64), "r3 = be64 r3"},
		{"bswap16", raw(0xd7, 1, 0, 0, 16), "r1 = bswap16 r1"},
		{"bswap64", raw(0xd7, 0, 0, 0, 64), "r0 = bswap64 r0"},

		// Loads.
		{"ldx u64", raw(0x79, 0, 1, 8, 0), "r0 = *(u64 *)(r1 +8)"},
		{"ldx u32", raw(0x61, 2, 1, 0, 0), "r2 = *(u32 *)(r1 +0)"},
		{"ldx u16", raw(0x69, 2, 10, -2, 0), "r2 = *(u16 *)(r10 -2)"},
		{"ldx u8", raw(0x71, 2, 1, 3, 0), "r2 = *(u8 *)(r1 +3)"},
		{"ldsx s8", raw(0x91, 0, 1, 1, 0), "r0 = *(s8 *)(r1 +1)"},
		{"ldsx s16", raw(0x89, 0, 1, 2, 0), "r0 = *(s16 *)(r1 +2)"},
		{"ldsx s32", raw(0x81, 0, 1, -4, 0), "r0 = *(s32 *)(r1 -4)"},

		// Stores.
		{"stx u32", raw(0x63, 10, 1, -4, 0), "*(u32 *)(r10 -4) = r1"},
		{"stx u64", raw(0x7b, 10, 1, -8, 0), "*(u64 *)(r10 -8) = r1"},
		{"stx u16", raw(0x6b, 1, 2, 6, 0), "*(u16 *)(r1 +6) = r2"},
		{"stx u8", raw(0x73, 1, 2, 0, 0), "*(u8 *)(r1 +0) = r2"},
		{"st u8", raw(0x72, 10, 0, -1, 7), "*(u8 *)(r10 -1) = 7"},
		{"st u64 negative", raw(0x7a, 10, 0, -16, -1), "*(u64 *)(r10 -16) = -1"},
		{"st u32", raw(0x62, 1, 0, 4, 100), "*(u32 *)(r1 +4) = 100"},
		{"st u16", raw(0x6a, 1, 0, 2, 1), "*(u16 *)(r1 +2) = 1"},
		{"nospec", raw(0xc2, 0, 0, 0, 0), "nospec"},

		// Atomics.
		{"lock add64", raw(0xdb, 10, 1, -8, 0x00), "lock *(u64 *)(r10 -8) += r1"},
		{"lock and32", raw(0xc3, 10, 1, -4, 0x50), "lock *(u32 *)(r10 -4) &= r1"},
		{"lock or64", raw(0xdb, 1, 2, 0, 0x40), "lock *(u64 *)(r1 +0) |= r2"},
		{"lock xor32", raw(0xc3, 1, 2, 8, 0xa0), "lock *(u32 *)(r1 +8) ^= r2"},
		{"fetch add64", raw(0xdb, 10, 1, -8, 0x01), "r1 = atomic64_fetch_add((u64 *)(r10 -8), r1)"},
		{"fetch and32", raw(0xc3, 10, 1, -4, 0x51), "r1 = atomic_fetch_and((u32 *)(r10 -4), r1)"},
		{"fetch or64", raw(0xdb, 2, 3, 16, 0x41), "r3 = atomic64_fetch_or((u64 *)(r2 +16), r3)"},
		{"fetch xor32", raw(0xc3, 2, 3, 0, 0xa1), "r3 = atomic_fetch_xor((u32 *)(r2 +0), r3)"},
		{"xchg64", raw(0xdb, 10, 1, -8, 0xe1), "r1 = atomic64_xchg((u64 *)(r10 -8), r1)"},
		{"xchg32", raw(0xc3, 10, 1, -8, 0xe1), "r1 = atomic_xchg((u32 *)(r10 -8), r1)"},
		{"cmpxchg64", raw(0xdb, 10, 1, -8, 0xf1), "r0 = atomic64_cmpxchg((u64 *)(r10 -8), r0, r1)"},
		{"cmpxchg32", raw(0xc3, 10, 1, -8, 0xf1), "r0 = atomic_cmpxchg((u32 *)(r10 -8), r0, r1)"},
		{"load_acquire u8", raw(0xd3, 0, 1, 4, 0x100), "r0 = load_acquire((u8 *)(r1 +4))"},
		{"load_acquire u64", raw(0xdb, 2, 1, 0, 0x100), "r2 = load_acquire((u64 *)(r1 +0))"},
		{"store_release u16", raw(0xcb, 1, 2, -2, 0x110), "store_release((u16 *)(r1 -2), r2)"},

		// Legacy packet access.
		{"ld abs u8", raw(0x30, 0, 0, 0, 12), "r0 = *(u8 *)skb[12]"},
		{"ld abs u32", raw(0x20, 0, 0, 0, 0), "r0 = *(u32 *)skb[0]"},
		{"ld ind u16", raw(0x48, 0, 7, 0, 14), "r0 = *(u16 *)skb[r7 + 14]"},

		// Jumps.
		{"ja", raw(0x05, 0, 0, 2, 0), "goto pc+2"},
		{"ja back", raw(0x05, 0, 0, -1, 0), "goto pc-1"},
		{"gotol", raw(0x06, 0, 0, 0, 70000), "gotol pc+70000"},
		{"gotox", raw(0x0d, 3, 0, 0, 0), "gotox r3"},
		{"jeq imm", raw(0x15, 1, 0, 1, 0), "if r1 == 0x0 goto pc+1"},
		{"jgt imm", raw(0x25, 1, 0, 3, 5), "if r1 > 0x5 goto pc+3"},
		{"jge reg", raw(0x3d, 1, 2, 0, 0), "if r1 >= r2 goto pc+0"},
		{"jset imm", raw(0x45, 1, 0, 2, 0x80), "if r1 & 0x80 goto pc+2"},
		{"jne imm negative", raw(0x55, 0, 0, 4, -1), "if r0 != 0xffffffff goto pc+4"},
		{"jsgt reg", raw(0x6d, 1, 2, 1, 0), "if r1 s> r2 goto pc+1"},
		{"jsge imm", raw(0x75, 1, 0, 1, 0), "if r1 s>= 0x0 goto pc+1"},
		{"jlt reg", raw(0xad, 1, 2, 7, 0), "if r1 < r2 goto pc+7"},
		{"jle imm", raw(0xb5, 1, 0, 7, 9), "if r1 <= 0x9 goto pc+7"},
		{"jslt reg", raw(0xcd, 1, 2, -4, 0), "if r1 s< r2 goto pc-4"},
		{"jsle imm", raw(0xd5, 1, 0, -4, 16), "if r1 s<= 0x10 goto pc-4"},
		{"jeq32 imm", raw(0x16, 1, 0, 1, 0), "if w1 == 0x0 goto pc+1"},
		{"jne32 reg", raw(0x5e, 1, 2, 1, 0), "if w1 != w2 goto pc+1"},
		{"jslt32 imm", raw(0xc6, 3, 0, -2, -2), "if w3 s< 0xfffffffe goto pc-2"},
		{"may_goto", raw(0xe5, 0, 0, 5, 0), "may_goto pc+5"},
		{"exit", raw(0x95, 0, 0, 0, 0), "exit"},

		// Calls.
		{"call helper", raw(0x85, 0, 0, 0, 1), "call bpf_map_lookup_elem#1"},
		{"call ktime", raw(0x85, 0, 0, 0, 5), "call bpf_ktime_get_ns#5"},
		{"call last helper", raw(0x85, 0, 0, 0, 211), "call bpf_cgrp_storage_delete#211"},
		{"call unknown helper", raw(0x85, 0, 0, 0, 212), "call unknown#212"},
		{"call negative helper", raw(0x85, 0, 0, 0, -1), "call unknown#-1"},
		{"call subprog", raw(0x85, 0, 1, 0, 3), "call pc+3"},
		{"call subprog back", raw(0x85, 0, 1, 0, -10), "call pc-10"},
		{"call kfunc", raw(0x85, 0, 2, 0, 1234), "call kernel-function#1234"},
		{"callx", raw(0x8d, 2, 0, 0, 0), "callx r2"},

		// Opcodes the ISA does not define.
		{"alu64 op 0xe0", raw(0xe7, 0, 0, 0, 0), "invalid insn 0xe7"},
		{"alu32 op 0xf0", raw(0xfc, 0, 0, 0, 0), "invalid insn 0xfc"},
		{"ldsx u64", raw(0x99, 0, 1, 0, 0), "invalid insn 0x99"},
		{"ldx abs mode", raw(0x21, 0, 1, 0, 0), "invalid insn 0x21"},
		{"st atomic-like mode", raw(0xa2, 0, 0, 0, 0), "invalid insn 0xa2"},
		{"stx memsx", raw(0x83, 0, 1, 0, 0), "invalid insn 0x83"},
		{"atomic bad imm", raw(0xdb, 0, 1, 0, 0x10), "invalid insn 0xdb"},
		{"ld imm w", raw(0x00, 0, 0, 0, 0), "invalid insn 0x00"},
		{"ld mem", raw(0x60, 0, 0, 0, 0), "invalid insn 0x60"},
		{"jmp32 call", raw(0x86, 0, 0, 0, 1), "invalid insn 0x86"},
		{"jmp32 exit", raw(0x96, 0, 0, 0, 0), "invalid insn 0x96"},
		{"jmp32 ja x", raw(0x0e, 0, 0, 0, 0), "invalid insn 0x0e"},
		{"jmp op 0xf0", raw(0xf5, 0, 0, 0, 0), "invalid insn 0xf5"},
		{"jcond other src", raw(0xe5, 0, 1, 0, 0), "invalid insn 0xe5"},

		// Short input.
		{"truncated", []byte{0xb7, 0, 0}, "(truncated insn)"},
		{"truncated lddw", raw(0x18, 1, 0, 0, 1), "(truncated lddw)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, w := Insn(tt.code, 0)
			if got != tt.want || w != 1 {
				t.Errorf("Insn(% x) = %q, %d; want %q, 1", tt.code, got, w, tt.want)
			}
		})
	}
}

func TestLddw(t *testing.T) {
	lddw := func(dst, src uint8, lo, hi int32) []byte {
		return append(raw(0x18, dst, src, 0, lo), raw(0, 0, 0, 0, hi)...)
	}
	tests := []struct {
		name string
		code []byte
		want string
	}{
		{"imm", lddw(1, 0, -0x65432110, 0x12345678), "r1 = 0x123456789abcdef0"},
		{"small", lddw(0, 0, 5, 0), "r0 = 0x5"},
		{"zero", lddw(0, 0, 0, 0), "r0 = 0x0"},
		{"all ones", lddw(2, 0, -1, -1), "r2 = 0xffffffffffffffff"},
		{"map fd", lddw(1, 1, 5, 0), "r1 = map[fd:5]"},
		{"map value", lddw(1, 2, 5, 16), "r1 = map[fd:5][0]+16"},
		{"btf id", lddw(3, 3, 7, 2), "r3 = 0x200000007"},
		{"func", lddw(2, 4, 12, 0), "r2 = subprog[+12]"},
		{"map idx", lddw(1, 5, 0, 0), "r1 = map[idx:0]"},
		{"map idx value", lddw(1, 6, 2, 8), "r1 = map[idx:2][0]+8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, w := Insn(tt.code, 0)
			if got != tt.want || w != 2 {
				t.Errorf("Insn(% x) = %q, %d; want %q, 2", tt.code, got, w, tt.want)
			}
		})
	}
}

func TestProgram(t *testing.T) {
	var code []byte
	for _, b := range [][]byte{
		raw(0xb7, 0, 0, 0, 0),
		raw(0x18, 1, 1, 0, 3), raw(0, 0, 0, 0, 0),
		raw(0xbf, 2, 10, 0, 0),
		raw(0x07, 2, 0, 0, -4),
		raw(0x85, 0, 0, 0, 1),
		raw(0x15, 0, 0, 1, 0),
		raw(0x61, 0, 0, 0, 0),
		raw(0x95, 0, 0, 0, 0),
	} {
		code = append(code, b...)
	}
	want := []string{
		"   0: r0 = 0",
		"   1: r1 = map[fd:3]",
		"   3: r2 = r10",
		"   4: r2 += -4",
		"   5: call bpf_map_lookup_elem#1",
		"   6: if r0 == 0x0 goto pc+1",
		"   7: r0 = *(u32 *)(r0 +0)",
		"   8: exit",
	}
	if got := Program(code); !slices.Equal(got, want) {
		t.Errorf("Program:\n got %q\nwant %q", got, want)
	}

	// A trailing lddw without its second half, then stray bytes.
	got := Program(append(raw(0x18, 0, 0, 0, 1), 0xb7))
	want = []string{"   0: (truncated lddw)", "   1: (truncated insn)"}
	if !slices.Equal(got, want) {
		t.Errorf("Program(truncated) = %q, want %q", got, want)
	}

	if got := Program(nil); len(got) != 0 {
		t.Errorf("Program(nil) = %q, want none", got)
	}
}

func TestInsnPC(t *testing.T) {
	code := append(raw(0xb7, 0, 0, 0, 7), raw(0x95, 0, 0, 0, 0)...)
	if got, _ := Insn(code, 1); got != "exit" {
		t.Errorf("Insn(code, 1) = %q, want exit", got)
	}
	for _, pc := range []int{-1, 2, 1 << 60} {
		if got, w := Insn(code, pc); w != 1 || got == "" {
			t.Errorf("Insn(code, %d) = %q, %d; want some text, 1", pc, got, w)
		}
	}
}

// Every helper ID has a name, and the names keep the kernel's order at the
// points the kernel's test programs most often hit.
func TestHelperNames(t *testing.T) {
	for id, name := range helperNames {
		if name == "" {
			t.Errorf("helper %d has no name", id)
		}
	}
	for id, want := range map[int]string{
		0: "bpf_unspec", 12: "bpf_tail_call", 14: "bpf_get_current_pid_tgid",
		25: "bpf_perf_event_output", 112: "bpf_probe_read_user",
		130: "bpf_ringbuf_output", 131: "bpf_ringbuf_reserve", 181: "bpf_loop",
		209: "bpf_user_ringbuf_drain",
	} {
		if helperNames[id] != want {
			t.Errorf("helper %d = %q, want %q", id, helperNames[id], want)
		}
	}
}

func FuzzInsn(f *testing.F) {
	f.Add(raw(0x18, 1, 2, 0, 5), 0)
	f.Add(append(raw(0x18, 1, 0, 0, 5), raw(0, 0, 0, 0, 0)...), 0)
	f.Add(raw(0xdb, 10, 1, -8, 0xf1), 0)
	f.Add([]byte{0x95}, 0)
	f.Add([]byte{}, 3)
	f.Fuzz(func(t *testing.T, code []byte, pc int) {
		text, w := Insn(code, pc)
		if w != 1 && w != 2 {
			t.Fatalf("Insn(% x, %d) width %d", code, pc, w)
		}
		if text == "" {
			t.Fatalf("Insn(% x, %d) gave no text", code, pc)
		}
		if w == 2 && (pc+2)*8 > len(code) {
			t.Fatalf("Insn(% x, %d) width 2 past the end", code, pc)
		}
		Program(code)
	})
}
