package gatekeeper

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/gatekeeper/abi"
)

// vetPolicy adds to interp's verifier what a policy must obey beyond
// being safe to run, proved over bytecode interp has already verified
// (so every opcode is known and every jump lands on an instruction):
//
//   - Reads of the Request at a known offset stay inside abi.Size
//     bytes. interp's verifier does not know how large a context will be;
//     at run time it bounds-checks every access and faults (which denies)
//     but only when the read happens. A policy that reads past the end
//     was written for another ABI, and is refused at load instead.
//   - It writes only its own stack. interp lets a program store into a
//     map value through the pointer lookup returns, which would let a
//     policy change trusted_keys (or keep state in .rodata) for every
//     decision after it, and races concurrent decisions. A policy is
//     a pure function of the Request, so a store, an atomic or a helper's
//     destination must be provably on the stack.
//
// The proof is a forward data-flow over each function: every register
// is a constant, the context plus a constant, the stack (r10) plus a
// constant, or unknown. It follows what compilers emit (ctx saved in a
// callee-saved register, r1 = r10 - N before a helper); a pointer
// spilled to the stack and reloaded, or moved by a variable amount, is
// unknown, and a store through it is refused. Loads through unknown
// pointers are left to interp's run-time checks, which fault and deny.
func vetPolicy(code []byte) error {
	n := len(code) / 8
	if n == 0 {
		return nil
	}
	v := &vetter{code: code, n: n, in: make([]vregs, n), seen: make([]bool, n), problem: make([]string, n)}
	entry := vregs{}
	for i := range entry {
		entry[i] = vTopVal
	}
	entry[asm.R10] = vval{k: vStack}
	main := entry
	main[asm.R1] = vval{k: vCtx}
	v.flow(0, main)
	for pc := 0; pc < n; pc++ { // subprograms: arguments are unknown
		if r := v.raw(pc); r.code == 0x85 && r.src == 1 {
			v.flow(pc+1+int(r.imm), entry)
		}
		if v.raw(pc).code == 0x18 {
			pc++
		}
	}
	for len(v.work) > 0 {
		pc := v.work[len(v.work)-1]
		v.work = v.work[:len(v.work)-1]
		v.step(pc)
	}
	for pc, msg := range v.problem {
		if msg != "" {
			return fmt.Errorf("insn %d: %s", pc, msg)
		}
	}
	return nil
}

type vkind uint8

const (
	vNone  vkind = iota // not reached yet
	vConst              // the integer n
	vCtx                // the Request + n
	vStack              // r10 + n
	vTop                // anything
)

type vval struct {
	k vkind
	n int64
}

var vTopVal = vval{k: vTop}

type vregs [11]vval

func join(a, b vval) vval {
	switch {
	case a.k == vNone:
		return b
	case b.k == vNone, a == b:
		return a
	}
	return vTopVal
}

// offset moves a pointer or constant by d, giving up on values far
// outside any region: a huge offset could carry a pointer into another
// region's tag.
func (x vval) offset(d int64) vval {
	switch x.k {
	case vConst:
		return vval{k: vConst, n: x.n + d}
	case vCtx, vStack:
		if n := x.n + d; d > -1<<20 && d < 1<<20 && n > -1<<20 && n < 1<<20 {
			return vval{k: x.k, n: n}
		}
	}
	return vTopVal
}

type vetter struct {
	code    []byte
	n       int
	in      []vregs // state on entry to each instruction
	seen    []bool
	work    []int
	problem []string // by pc, from the latest (so final) visit
}

type vraw struct {
	code     uint8
	dst, src uint8
	off      int16
	imm      int32
}

func (v *vetter) raw(pc int) vraw {
	b := v.code[pc*8:]
	return vraw{code: b[0], dst: b[1] & 0xf, src: b[1] >> 4,
		off: int16(binary.LittleEndian.Uint16(b[2:])), imm: int32(binary.LittleEndian.Uint32(b[4:]))}
}

// flow merges st into the state of pc and queues pc if it changed.
func (v *vetter) flow(pc int, st vregs) {
	if pc < 0 || pc >= v.n {
		return // interp's verifier refuses this; nothing to prove
	}
	old := v.in[pc]
	merged := old
	if v.seen[pc] {
		for i := range merged {
			merged[i] = join(old[i], st[i])
		}
	} else {
		merged = st
	}
	if v.seen[pc] && merged == old {
		return
	}
	v.seen[pc] = true
	v.in[pc] = merged
	v.work = append(v.work, pc)
}

// Helpers whose first argument is a destination the helper writes.
var helperWritesR1 = map[int32]bool{
	int32(asm.FnProbeReadKernel):    true,
	int32(asm.FnProbeReadKernelStr): true,
}

func (v *vetter) step(pc int) {
	st := v.in[pc]
	r := v.raw(pc)
	v.problem[pc] = ""
	bad := func(format string, args ...any) {
		if v.problem[pc] == "" {
			v.problem[pc] = fmt.Sprintf(format, args...)
		}
	}
	storeTo := func(reg uint8, off int16, what string) {
		switch a := st[reg]; a.k {
		case vStack:
		case vCtx:
			bad("%s into the Request (r%d%+d): the Request is read-only", what, reg, off)
		default:
			bad("%s through r%d, which is not provably a pointer to the policy's stack: a policy may write only its stack", what, reg)
		}
	}
	cls := r.code & 7
	size := [4]int64{4, 2, 1, 8}[(r.code>>3)&3]
	next := pc + 1
	switch cls {
	case 0x00: // LD: only the 64-bit immediate gets past interp
		if r.src == 0 && pc+1 < v.n {
			hi := int64(binary.LittleEndian.Uint32(v.code[(pc+1)*8+4:]))
			st[r.dst] = vval{k: vConst, n: hi<<32 | int64(uint32(r.imm))}
		} else {
			st[r.dst] = vTopVal // a map handle or value: not the stack
		}
		next = pc + 2
	case 0x01: // LDX
		if a := st[r.src]; a.k == vCtx {
			lo := a.n + int64(r.off)
			if lo < 0 || lo+size > int64(abi.Size) {
				bad("reads %d bytes at Request offset %d, outside the %d-byte Request (ABI version %d)", size, lo, abi.Size, abi.Version)
			}
		}
		st[r.dst] = vTopVal
	case 0x02: // ST
		storeTo(r.dst, r.off, "stores")
	case 0x03: // STX
		if r.code&0xe0 != 0xc0 {
			storeTo(r.dst, r.off, "stores")
		} else {
			storeTo(r.dst, r.off, "an atomic operation writes")
			switch {
			case r.imm == 0xf1: // cmpxchg
				st[0] = vTopVal
			case r.imm&1 != 0: // fetch, xchg
				st[r.src] = vTopVal
			}
		}
	case 0x04, 0x07: // ALU, ALU64
		v.alu(&st, r, cls == 0x07)
	case 0x05, 0x06: // JMP, JMP32
		switch op := r.code & 0xf0; {
		case op == 0x00: // ja
			t := int(r.off)
			if cls == 0x06 {
				t = int(r.imm)
			}
			v.flow(pc+1+t, st)
			return
		case op == 0x90: // exit
			return
		case op == 0x80: // call
			switch {
			case r.code&0x08 != 0:
				bad("callx: a policy calls helpers by constant id")
			case r.src == 0:
				if helperWritesR1[r.imm] {
					if st[1].k != vStack {
						bad("%s writes through r1, which is not provably a pointer to the policy's stack", helperName(asm.BuiltinFunc(r.imm)))
					}
					if src, n := st[3], st[2]; src.k == vCtx && n.k == vConst {
						end := src.n + n.n
						if asm.BuiltinFunc(r.imm) == asm.FnProbeReadKernelStr {
							end = src.n + 1 // a string read stops at its NUL
						}
						if src.n < 0 || n.n < 0 || end > int64(abi.Size) {
							bad("%s reads %d bytes at Request offset %d, outside the %d-byte Request", helperName(asm.BuiltinFunc(r.imm)), n.n, src.n, abi.Size)
						}
					}
				}
			}
			for i := asm.R0; i <= asm.R5; i++ {
				st[i] = vTopVal
			}
		default: // conditional
			v.flow(pc+1+int(r.off), st)
		}
	}
	v.flow(next, st)
}

// alu tracks what the pointer arithmetic of compilers needs: moves and
// adding or subtracting constants. Everything else makes dst unknown.
func (v *vetter) alu(st *vregs, r vraw, is64 bool) {
	d, s := &st[r.dst], st[r.src]
	x := r.code&0x08 != 0
	var operand vval
	if x {
		operand = s
	} else {
		operand = vval{k: vConst, n: int64(r.imm)}
	}
	op := r.code & 0xf0
	switch {
	case !is64 && op == 0xb0 && r.off == 0 && operand.k == vConst:
		*d = vval{k: vConst, n: int64(uint32(operand.n))}
	case !is64:
		*d = vTopVal
	case op == 0xb0 && r.off == 0: // mov (not movsx)
		*d = operand
	case op == 0x00 && operand.k == vConst: // add
		*d = d.offset(operand.n)
	case op == 0x00 && d.k == vConst && operand.k != vTop && operand.k != vNone:
		*d = operand.offset(d.n)
	case op == 0x10 && operand.k == vConst && operand.n != math.MinInt64: // sub
		*d = d.offset(-operand.n)
	default:
		*d = vTopVal
	}
}
