// Package disasm prints raw eBPF bytecode (RFC 9669, including the v4
// additions) in the syntax of the kernel's verifier log and bpftool
// (print_bpf_insn in kernel/bpf/disasm.c), so that what the interpreter
// reports reads the same as what the kernel would have said.
//
// The "(xx) " opcode prefix of the verifier log is left out, as libbpf's
// selftests do when they compare disassembly: callers that want it have the
// bytes. Where disasm.c needs a callback (map references, subprograms) the
// text follows bpftool's callbacks, adapted to unloaded bytecode, which
// holds file descriptors and indexes rather than kernel IDs.
package disasm

import (
	"encoding/binary"
	"fmt"
)

const slot = 8

// Instruction classes and fields, as in include/uapi/linux/bpf.h.
const (
	classLD    = 0x00
	classLDX   = 0x01
	classST    = 0x02
	classSTX   = 0x03
	classALU   = 0x04
	classJMP   = 0x05
	classJMP32 = 0x06
	classALU64 = 0x07

	srcX = 0x08 // BPF_X; for BPF_END it is BPF_TO_BE

	modeIMM    = 0x00
	modeABS    = 0x20
	modeIND    = 0x40
	modeMEM    = 0x60
	modeMEMSX  = 0x80
	modeATOMIC = 0xc0
	modeNOSPEC = 0xc0 // only in class ST, internal to the kernel

	sizeDW = 0x18

	opDIV   = 0x30
	opNEG   = 0x80
	opMOD   = 0x90
	opMOV   = 0xb0
	opEND   = 0xd0
	opJA    = 0x00
	opCALL  = 0x80
	opEXIT  = 0x90
	opJCOND = 0xe0

	atomicFetch    = 0x01
	atomicXchg     = 0xe0 | atomicFetch
	atomicCmpXchg  = 0xf0 | atomicFetch
	atomicLoadAcq  = 0x100
	atomicStoreRel = 0x110

	pseudoCall      = 1 // call src_reg: bpf-to-bpf, imm is relative
	pseudoKfuncCall = 2

	pseudoMapFD       = 1 // lddw src_reg values
	pseudoMapValue    = 2
	pseudoFunc        = 4
	pseudoMapIdx      = 5
	pseudoMapIdxValue = 6

	offAddrSpaceCast = 1
	offPercpuAddr    = -1
)

var aluOps = [16]string{
	"+=", "-=", "*=", "/=", "|=", "&=", "<<=", ">>=",
	"", "%=", "^=", "=", "s>>=", "", "", "",
}

var jmpOps = [16]string{
	1: "==", 2: ">", 3: ">=", 4: "&", 5: "!=", 6: "s>", 7: "s>=",
	10: "<", 11: "<=", 12: "s<", 13: "s<=",
}

// Indexed by BPF_SIZE >> 3: W, H, B, DW.
var (
	ldstTypes = [4]string{"u32", "u16", "u8", "u64"}
	ldsxTypes = [4]string{"s32", "s16", "s8", ""}
)

var atomicOps = map[int32]string{0x00: "add", 0x50: "and", 0x40: "or", 0xa0: "xor"}

type insn struct {
	op       uint8
	dst, src uint8
	off      int16
	imm      int32
}

func decode(b []byte) insn {
	return insn{
		op:  b[0],
		dst: b[1] & 0x0f,
		src: b[1] >> 4,
		off: int16(binary.LittleEndian.Uint16(b[2:])),
		imm: int32(binary.LittleEndian.Uint32(b[4:])),
	}
}

func (i insn) class() uint8 { return i.op & 0x07 }
func (i insn) alu() uint8   { return i.op & 0xf0 }
func (i insn) mode() uint8  { return i.op & 0xe0 }
func (i insn) size() uint8  { return i.op & 0x18 }
func (i insn) isX() bool    { return i.op&srcX != 0 }

func invalid(op uint8) string { return fmt.Sprintf("invalid insn 0x%02x", op) }

// Insn formats the instruction starting at slot pc of code (8-byte slots,
// little-endian, as loaded by the kernel). It returns the text and the number
// of 8-byte slots the instruction occupies (2 for the 64-bit immediate load,
// else 1). Never panics: truncated or invalid input gives text like
// "invalid insn 0xNN" / "(truncated lddw)" and width 1.
func Insn(code []byte, pc int) (text string, width int) {
	if pc < 0 || pc >= (len(code)+slot-1)/slot {
		return fmt.Sprintf("(pc %d out of range)", pc), 1
	}
	b := code[pc*slot:]
	if len(b) < slot {
		return "(truncated insn)", 1
	}
	i := decode(b)
	switch i.class() {
	case classALU, classALU64:
		return alu(i), 1
	case classLDX:
		return ldx(i), 1
	case classST:
		return st(i), 1
	case classSTX:
		return stx(i), 1
	case classLD:
		return ld(i, b[slot:])
	default:
		return jmp(i), 1
	}
}

// Program formats every instruction, one line per instruction, each line
// prefixed with its slot number as bpftool does: "   0: r0 = 0".
// (Second slot of a lddw gets no line.)
func Program(code []byte) []string {
	var lines []string
	for pc := 0; pc*slot < len(code); {
		text, w := Insn(code, pc)
		lines = append(lines, fmt.Sprintf("%4d: %s", pc, text))
		pc += w
	}
	return lines
}

func alu(i insn) string {
	r := byte('r')
	if i.class() == classALU {
		r = 'w'
	}
	switch op := i.alu(); {
	case op == opEND:
		// The kernel names the register rN even for the 32-bit class.
		if i.class() == classALU64 {
			return fmt.Sprintf("r%d = bswap%d r%d", i.dst, i.imm, i.dst)
		}
		order := "le"
		if i.isX() {
			order = "be"
		}
		return fmt.Sprintf("r%d = %s%d r%d", i.dst, order, i.imm, i.dst)
	case op == opNEG:
		return fmt.Sprintf("%c%d = -%c%d", r, i.dst, r, i.dst)
	case op >= 0xe0:
		return invalid(i.op)
	case i.op == classALU64|opMOV|srcX && i.off == offAddrSpaceCast:
		return fmt.Sprintf("r%d = addr_space_cast(r%d, %d, %d)", i.dst, i.src, uint32(i.imm)>>16, uint16(i.imm))
	case i.op == classALU64|opMOV|srcX && i.off == offPercpuAddr:
		return fmt.Sprintf("r%d = &(void __percpu *)(r%d)", i.dst, i.src)
	}
	sym := aluOps[i.alu()>>4]
	if (i.alu() == opDIV || i.alu() == opMOD) && i.off == 1 {
		sym = "s" + sym
	}
	if !i.isX() {
		return fmt.Sprintf("%c%d %s %d", r, i.dst, sym, i.imm)
	}
	cast := ""
	if i.alu() == opMOV {
		switch i.off {
		case 8, 16, 32:
			cast = fmt.Sprintf("(s%d)", i.off)
		}
	}
	return fmt.Sprintf("%c%d %s %s%c%d", r, i.dst, sym, cast, r, i.src)
}

func ldx(i insn) string {
	var typ string
	switch i.mode() {
	case modeMEM:
		typ = ldstTypes[i.size()>>3]
	case modeMEMSX:
		typ = ldsxTypes[i.size()>>3]
	}
	if typ == "" {
		return invalid(i.op)
	}
	return fmt.Sprintf("r%d = *(%s *)(r%d %+d)", i.dst, typ, i.src, i.off)
}

func st(i insn) string {
	switch i.mode() {
	case modeMEM:
		return fmt.Sprintf("*(%s *)(r%d %+d) = %d", ldstTypes[i.size()>>3], i.dst, i.off, i.imm)
	case modeNOSPEC:
		return "nospec"
	}
	return invalid(i.op)
}

func stx(i insn) string {
	typ := ldstTypes[i.size()>>3]
	if i.mode() == modeMEM {
		return fmt.Sprintf("*(%s *)(r%d %+d) = r%d", typ, i.dst, i.off, i.src)
	}
	if i.mode() != modeATOMIC {
		return invalid(i.op)
	}
	width := ""
	if i.size() == sizeDW {
		width = "64"
	}
	if name, ok := atomicOps[i.imm]; ok {
		return fmt.Sprintf("lock *(%s *)(r%d %+d) %s r%d", typ, i.dst, i.off, aluOps[i.imm>>4], i.src)
	} else if name, ok = atomicOps[i.imm&^atomicFetch]; ok && i.imm&atomicFetch != 0 {
		return fmt.Sprintf("r%d = atomic%s_fetch_%s((%s *)(r%d %+d), r%d)", i.src, width, name, typ, i.dst, i.off, i.src)
	}
	switch i.imm {
	case atomicCmpXchg:
		return fmt.Sprintf("r0 = atomic%s_cmpxchg((%s *)(r%d %+d), r0, r%d)", width, typ, i.dst, i.off, i.src)
	case atomicXchg:
		return fmt.Sprintf("r%d = atomic%s_xchg((%s *)(r%d %+d), r%d)", i.src, width, typ, i.dst, i.off, i.src)
	case atomicLoadAcq:
		return fmt.Sprintf("r%d = load_acquire((%s *)(r%d %+d))", i.dst, typ, i.src, i.off)
	case atomicStoreRel:
		return fmt.Sprintf("store_release((%s *)(r%d %+d), r%d)", typ, i.dst, i.off, i.src)
	}
	return invalid(i.op)
}

// ld takes the bytes after the instruction because lddw reads the next slot.
func ld(i insn, next []byte) (string, int) {
	typ := ldstTypes[i.size()>>3]
	switch {
	case i.mode() == modeABS:
		return fmt.Sprintf("r0 = *(%s *)skb[%d]", typ, i.imm), 1
	case i.mode() == modeIND:
		return fmt.Sprintf("r0 = *(%s *)skb[r%d + %d]", typ, i.src, i.imm), 1
	case i.mode() != modeIMM || i.size() != sizeDW:
		return invalid(i.op), 1
	case len(next) < slot:
		return "(truncated lddw)", 1
	}
	hi := decode(next).imm
	var v string
	switch i.src {
	case pseudoMapFD:
		v = fmt.Sprintf("map[fd:%d]", uint32(i.imm))
	case pseudoMapValue:
		v = fmt.Sprintf("map[fd:%d][0]+%d", uint32(i.imm), uint32(hi))
	case pseudoMapIdx:
		v = fmt.Sprintf("map[idx:%d]", uint32(i.imm))
	case pseudoMapIdxValue:
		v = fmt.Sprintf("map[idx:%d][0]+%d", uint32(i.imm), uint32(hi))
	case pseudoFunc:
		v = fmt.Sprintf("subprog[%+d]", i.imm)
	default:
		v = fmt.Sprintf("0x%x", uint64(uint32(hi))<<32|uint64(uint32(i.imm)))
	}
	return fmt.Sprintf("r%d = %s", i.dst, v), 2
}

func jmp(i insn) string {
	r := byte('r')
	jmp32 := i.class() == classJMP32
	if jmp32 {
		r = 'w'
	}
	switch i.alu() {
	case opCALL:
		switch {
		case jmp32:
			return invalid(i.op)
		case i.isX():
			// clang's callx; disasm.c has no case for it (the kernel
			// rejects it), so the syntax is LLVM's.
			return fmt.Sprintf("callx r%d", i.dst)
		case i.src == pseudoCall:
			return fmt.Sprintf("call pc%+d", i.imm)
		}
		return fmt.Sprintf("call %s#%d", helperName(i), i.imm)
	case opJA:
		switch {
		case !jmp32 && !i.isX():
			return fmt.Sprintf("goto pc%+d", i.off)
		case jmp32 && !i.isX():
			return fmt.Sprintf("gotol pc%+d", i.imm)
		case !jmp32 && i.isX():
			return fmt.Sprintf("gotox r%d", i.dst)
		}
		return invalid(i.op)
	case opEXIT:
		if jmp32 || i.isX() {
			return invalid(i.op)
		}
		return "exit"
	case opJCOND:
		if jmp32 || i.isX() || i.src != 0 {
			return invalid(i.op)
		}
		return fmt.Sprintf("may_goto pc%+d", i.off)
	}
	sym := jmpOps[i.alu()>>4]
	if sym == "" {
		return invalid(i.op)
	}
	if i.isX() {
		return fmt.Sprintf("if %c%d %s %c%d goto pc%+d", r, i.dst, sym, r, i.src, i.off)
	}
	return fmt.Sprintf("if %c%d %s 0x%x goto pc%+d", r, i.dst, sym, uint32(i.imm), i.off)
}

func helperName(i insn) string {
	switch {
	case i.src == 0 && i.imm >= 0 && int(i.imm) < len(helperNames):
		return helperNames[i.imm]
	case i.src == pseudoKfuncCall:
		return "kernel-function"
	}
	return "unknown"
}
