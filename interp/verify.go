package interp

import (
	"fmt"
	"math/bits"
	"sort"

	"github.com/cilium/ebpf"
	"github.com/tracebroker/tracebroker/interp/disasm"
)

// verify decodes p.code into p.insns and proves what the run loop relies
// on: every opcode and register is known, r10 is never written, every
// jump and call lands on an instruction start inside its own function,
// no function falls off its end, constant stack offsets stay in the
// frame, helpers are in the table, the call graph has no cycles and is at
// most MaxFrames deep, and no path reads a register before writing it.
// Everything that depends on values (pointer arithmetic, map pointers,
// loop counts) is checked at run time instead.
func (p *Program) verify() error {
	n := len(p.code) / 8
	p.insns = make([]insn, n)
	for pc := 0; pc < n; pc++ {
		w, err := p.decode(pc)
		if err != nil {
			return err
		}
		pc += w - 1
	}
	funcs, err := p.checkFlow()
	if err != nil {
		return err
	}
	if err := p.checkSuccessors(); err != nil {
		return err
	}
	if err := p.checkCalls(funcs); err != nil {
		return err
	}
	for _, f := range funcs {
		if err := p.checkInit(f); err != nil {
			return err
		}
	}
	return nil
}

func (p *Program) text(pc int) string {
	if pc < 0 || pc >= len(p.code)/8 {
		return "?"
	}
	s, _ := disasm.Insn(p.code, pc)
	return s
}

func (p *Program) errf(pc int, format string, args ...any) error {
	return &VerifyError{PC: pc, Insn: p.text(pc), Msg: fmt.Sprintf(format, args...)}
}

// decode fills p.insns[pc] (and the tail slot of a 64-bit immediate) and
// returns how many slots it used.
func (p *Program) decode(pc int) (int, error) {
	r := rawAt(p.code, pc)
	in := &p.insns[pc]
	in.dst, in.src = r.dst, r.src
	if r.dst > 10 || r.src > 10 {
		// src of a 64-bit immediate load is a pseudo kind, checked below.
		if !(r.code == clsLD|modeIMM|0x18 && r.dst <= 10) {
			return 0, p.errf(pc, "invalid register r%d", max(r.dst, r.src))
		}
	}
	cls := r.code & 7
	switch cls {
	case clsALU, clsALU64:
		return 1, p.decodeALU(pc, r, in)
	case clsJMP, clsJMP32:
		return 1, p.decodeJump(pc, r, in)
	case clsLD:
		return p.decodeLD(pc, r, in)
	case clsLDX, clsST, clsSTX:
		return 1, p.decodeMem(pc, r, in)
	}
	panic("unreachable")
}

func (p *Program) decodeALU(pc int, r raw, in *insn) error {
	is64 := r.code&7 == clsALU64
	code := r.code >> 4
	x := r.code&srcX != 0
	in.imm = int64(r.imm)
	if r.dst == 10 {
		return p.errf(pc, "r10 is read-only")
	}
	if code == 0xd { // byte swap
		if r.src != 0 || r.off != 0 {
			return p.errf(pc, "byte swap uses reserved fields")
		}
		var o op
		switch {
		case is64 && x:
			return p.errf(pc, "invalid opcode 0x%02x", r.code)
		case is64: // BPF_ALU64|BPF_END: unconditional swap
			o = opBswap16
		case x: // to big-endian
			o = opBswap16
		default:
			o = opLe16
		}
		switch r.imm {
		case 16:
		case 32:
			o++
		case 64:
			o += 2
		default:
			return p.errf(pc, "invalid byte swap width %d", r.imm)
		}
		in.op = o
		return nil
	}
	base := aluOps[code]
	if base == opInvalid && code != 0 {
		return p.errf(pc, "invalid opcode 0x%02x", r.code)
	}
	if code == 0x8 { // neg
		if x || r.src != 0 || r.off != 0 || r.imm != 0 {
			return p.errf(pc, "neg uses reserved fields")
		}
		in.op = opNeg64
		if !is64 {
			in.op = opNeg32
		}
		return nil
	}
	if x && r.imm != 0 || !x && r.src != 0 {
		return p.errf(pc, "ALU uses reserved fields")
	}
	o := base
	switch {
	case code == 0xb && r.off != 0: // movsx
		if !x {
			return p.errf(pc, "ALU uses reserved fields")
		}
		switch {
		case r.off == 8 && is64:
			o = opMovsx8_64
		case r.off == 16 && is64:
			o = opMovsx16_64
		case r.off == 32 && is64:
			o = opMovsx32_64
		case r.off == 8:
			o = opMovsx8_32
		case r.off == 16:
			o = opMovsx16_32
		default:
			return p.errf(pc, "invalid movsx offset %d", r.off)
		}
		in.op = o
		return nil
	case (code == 0x3 || code == 0x9) && r.off == 1: // sdiv, smod
		o = base + 2
	case r.off != 0:
		return p.errf(pc, "ALU uses reserved fields")
	}
	if x {
		o++
	}
	if !is64 {
		o += alu32Delta
	}
	if !x {
		if (code == 0x3 || code == 0x9) && r.imm == 0 {
			// The kernel refuses a constant divisor of zero too.
			return p.errf(pc, "division by zero")
		}
		// An immediate shift by the width or more is refused by the
		// kernel but defined by RFC 9669 (the count is masked), and the
		// conformance suite runs it: accept and mask, as at run time.
	}
	in.op = o
	return nil
}

func (p *Program) decodeJump(pc int, r raw, in *insn) error {
	n := len(p.insns)
	is32 := r.code&7 == clsJMP32
	code := r.code >> 4
	x := r.code&srcX != 0
	in.imm = int64(r.imm)
	target := func(rel int64) error {
		t := int64(pc) + rel + 1
		if t < 0 || t >= int64(n) {
			return p.errf(pc, "jump out of range to %d", t)
		}
		in.off = int32(t)
		return nil
	}
	switch code {
	case 0x0: // ja
		if x || r.src != 0 || r.dst != 0 {
			return p.errf(pc, "ja uses reserved fields")
		}
		in.op = opJa
		if is32 { // gotol: the offset is the 32-bit immediate
			if r.off != 0 {
				return p.errf(pc, "ja uses reserved fields")
			}
			return target(int64(r.imm))
		}
		if r.imm != 0 {
			return p.errf(pc, "ja uses reserved fields")
		}
		return target(int64(r.off))
	case 0x8: // call
		if is32 {
			return p.errf(pc, "invalid opcode 0x%02x", r.code)
		}
		if x { // callx: helper id in dst
			if r.src != 0 || r.off != 0 || r.imm != 0 {
				return p.errf(pc, "callx uses reserved fields")
			}
			in.op = opCallx
			return nil
		}
		if r.off != 0 || r.dst != 0 {
			return p.errf(pc, "call uses reserved fields")
		}
		switch r.src {
		case 0:
			id := int(r.imm)
			if id <= 0 || id >= len(p.helpers) || p.helpers[id] == nil {
				return p.errf(pc, "helper %d is not in the helper table", r.imm)
			}
			in.op = opCall
			return nil
		case pseudoCall:
			in.op = opCallLocal
			return target(int64(r.imm))
		case pseudoKfuncCall:
			return p.errf(pc, "kfunc calls are not supported")
		}
		return p.errf(pc, "call uses reserved fields")
	case 0x9: // exit
		if is32 || x || r.src != 0 || r.dst != 0 || r.off != 0 || r.imm != 0 {
			return p.errf(pc, "exit uses reserved fields")
		}
		in.op = opExit
		return nil
	}
	base := jmpOps[code]
	if base == opInvalid {
		return p.errf(pc, "invalid opcode 0x%02x", r.code)
	}
	if x && r.imm != 0 || !x && r.src != 0 {
		return p.errf(pc, "jump uses reserved fields")
	}
	o := base
	if x {
		o++
	}
	if is32 {
		o += jmp32Delta
	}
	in.op = o
	return target(int64(r.off))
}

func (p *Program) decodeLD(pc int, r raw, in *insn) (int, error) {
	if r.code != clsLD|modeIMM|0x18 {
		if mode := r.code & 0xe0; mode == modeABS || mode == modeIND {
			return 0, p.errf(pc, "legacy packet access (BPF_ABS/BPF_IND) is not supported")
		}
		return 0, p.errf(pc, "invalid opcode 0x%02x", r.code)
	}
	if pc+1 >= len(p.insns) {
		return 0, p.errf(pc, "64-bit immediate load has no second half")
	}
	t := rawAt(p.code, pc+1)
	if t.code != 0 || t.dst != 0 || t.src != 0 || t.off != 0 || r.off != 0 {
		return 0, p.errf(pc, "64-bit immediate load uses reserved fields")
	}
	if r.dst == 10 {
		return 0, p.errf(pc, "r10 is read-only")
	}
	in.op = opLdImm64
	in.src = 0
	p.insns[pc+1].op = opLdImm64Tail
	lo, hi := uint64(uint32(r.imm)), uint64(uint32(t.imm))
	switch r.src {
	case 0:
		in.imm = int64(hi<<32 | lo)
	case pseudoMapFD, pseudoMapIdx, pseudoMapValue, pseudoMapIdxValue:
		idx := int(r.imm)
		if idx < 0 || idx >= len(p.maps) {
			return 0, p.errf(pc, "map %d was not supplied (%d maps)", r.imm, len(p.maps))
		}
		m := p.maps[idx]
		if r.src == pseudoMapFD || r.src == pseudoMapIdx {
			if hi != 0 {
				return 0, p.errf(pc, "map load uses reserved fields")
			}
			in.imm = int64(mapHandle(idx))
			break
		}
		if m.typ != ebpf.Array {
			return 0, p.errf(pc, "direct value access needs an array map, map %d is %v", idx, m.typ)
		}
		if hi >= uint64(m.valueSize) {
			return 0, p.errf(pc, "direct value offset %d is outside the %d-byte value", hi, m.valueSize)
		}
		in.imm = int64(mapValueAddr(idx, 0, m.shift) + hi)
	case pseudoBTFID:
		return 0, p.errf(pc, "BTF id loads are not supported")
	case pseudoFunc:
		return 0, p.errf(pc, "function pointers (callbacks) are not supported")
	default:
		return 0, p.errf(pc, "invalid source %d for a 64-bit immediate load", r.src)
	}
	return 2, nil
}

var sizeBytes = [4]int32{4, 2, 1, 8} // BPF_W, BPF_H, BPF_B, BPF_DW

func (p *Program) decodeMem(pc int, r raw, in *insn) error {
	cls, mode, size := r.code&7, r.code&0xe0, (r.code>>3)&3
	in.off = int32(r.off)
	in.imm = int64(r.imm)
	nbytes := sizeBytes[size]
	base := r.dst // the address register
	switch cls {
	case clsLDX:
		base = r.src
		if r.dst == 10 {
			return p.errf(pc, "r10 is read-only")
		}
		if r.imm != 0 {
			return p.errf(pc, "load uses reserved fields")
		}
		switch mode {
		case modeMEM:
			in.op = [4]op{opLdxW, opLdxH, opLdxB, opLdxDW}[size]
		case modeMEMSX:
			if size == 3 {
				return p.errf(pc, "invalid opcode 0x%02x", r.code)
			}
			in.op = [4]op{opLdxSW, opLdxSH, opLdxSB}[size]
		default:
			return p.errf(pc, "invalid opcode 0x%02x", r.code)
		}
	case clsST:
		if mode != modeMEM || r.src != 0 {
			return p.errf(pc, "invalid opcode 0x%02x", r.code)
		}
		in.op = [4]op{opStW, opStH, opStB, opStDW}[size]
	case clsSTX:
		if r.imm != 0 && mode == modeMEM {
			return p.errf(pc, "store uses reserved fields")
		}
		switch mode {
		case modeMEM:
			in.op = [4]op{opStxW, opStxH, opStxB, opStxDW}[size]
		case modeATOMIC:
			o, ok := atomicOp(r.imm, size)
			if !ok {
				return p.errf(pc, "invalid atomic operation 0x%x", r.imm)
			}
			in.op = o
			if r.imm&atomicFetch != 0 && r.src == 10 {
				return p.errf(pc, "r10 is read-only")
			}
		default:
			return p.errf(pc, "invalid opcode 0x%02x", r.code)
		}
	}
	if base == 10 {
		off := int32(r.off)
		if off < -StackSize || off+nbytes > 0 {
			return p.errf(pc, "invalid stack off=%d size=%d", off, nbytes)
		}
	}
	return nil
}

func atomicOp(imm int32, size uint8) (op, bool) {
	var o op
	switch imm {
	case 0x00:
		o = opAtomicAdd32
	case 0x40:
		o = opAtomicOr32
	case 0x50:
		o = opAtomicAnd32
	case 0xa0:
		o = opAtomicXor32
	case 0x00 | atomicFetch:
		o = opAtomicFetchAdd32
	case 0x40 | atomicFetch:
		o = opAtomicFetchOr32
	case 0x50 | atomicFetch:
		o = opAtomicFetchAnd32
	case 0xa0 | atomicFetch:
		o = opAtomicFetchXor32
	case atomicXchg:
		o = opAtomicXchg32
	case atomicCmpxchg:
		o = opAtomicCmpxchg32
	default:
		return 0, false
	}
	switch size {
	case 0: // BPF_W
		return o, true
	case 3: // BPF_DW
		return o + (opAtomicAdd64 - opAtomicAdd32), true
	}
	return 0, false
}

// function is one bpf-to-bpf function: [start, end).
type function struct{ start, end int }

// checkFlow splits the program into functions at local-call targets and
// checks every jump stays inside its function, lands on an instruction
// start and that no function's last instruction falls through.
func (p *Program) checkFlow() ([]function, error) {
	starts := map[int]bool{0: true}
	for _, in := range p.insns {
		if in.op == opCallLocal {
			starts[int(in.off)] = true
		}
	}
	sorted := make([]int, 0, len(starts))
	for s := range starts {
		sorted = append(sorted, s)
	}
	sort.Ints(sorted)
	funcs := make([]function, len(sorted))
	for i, s := range sorted {
		end := len(p.insns)
		if i+1 < len(sorted) {
			end = sorted[i+1]
		}
		funcs[i] = function{s, end}
	}
	for _, f := range funcs {
		if p.insns[f.start].op == opLdImm64Tail {
			return nil, p.errf(f.start, "call into the middle of a 64-bit immediate load")
		}
		for pc := f.start; pc < f.end; pc++ {
			in := p.insns[pc]
			if in.op.isJump() {
				t := int(in.off)
				if t < f.start || t >= f.end {
					return nil, p.errf(pc, "jump out of its function to %d", t)
				}
				if p.insns[t].op == opLdImm64Tail {
					return nil, p.errf(pc, "jump into the middle of a 64-bit immediate load at %d", t)
				}
			}
		}
		last := f.end - 1
		if p.insns[last].op == opLdImm64Tail {
			last--
		}
		if o := p.insns[last].op; o != opExit && o != opJa {
			return nil, p.errf(last, "last instruction of the function at %d falls through", f.start)
		}
	}
	return funcs, nil
}

// checkSuccessors restates, over the decoded form, what the run loop
// relies on when it indexes instructions without a bounds check: every
// instruction that can run next is inside the program. checkFlow and
// decode already imply it; this keeps the proof next to its use.
func (p *Program) checkSuccessors() error {
	n := len(p.insns)
	for pc, in := range p.insns {
		var next [2]int
		k := 0
		switch {
		case in.op == opExit || in.op == opLdImm64Tail:
		case in.op == opJa:
			next[0], k = int(in.off), 1
		case in.op.isCondJump() || in.op == opCallLocal:
			next[0], next[1], k = int(in.off), pc+1, 2
		case in.op == opLdImm64:
			next[0], k = pc+2, 1
		default:
			next[0], k = pc+1, 1
		}
		for _, t := range next[:k] {
			if t < 0 || t >= n || p.insns[t].op == opLdImm64Tail || p.insns[t].op == opInvalid {
				return p.errf(pc, "control can reach %d, which is not an instruction", t)
			}
		}
	}
	return nil
}

// checkCalls refuses recursion, as the kernel does, and call chains
// deeper than MaxFrames.
func (p *Program) checkCalls(funcs []function) error {
	index := map[int]int{}
	for i, f := range funcs {
		index[f.start] = i
	}
	callees := make([][]int, len(funcs))
	sites := make([][]int, len(funcs))
	for i, f := range funcs {
		for pc := f.start; pc < f.end; pc++ {
			if p.insns[pc].op == opCallLocal {
				callees[i] = append(callees[i], index[int(p.insns[pc].off)])
				sites[i] = append(sites[i], pc)
			}
		}
	}
	const (
		unvisited = iota
		active
		done
	)
	state := make([]int, len(funcs))
	depth := make([]int, len(funcs)) // frames from this function down
	var visit func(i int) error
	visit = func(i int) error {
		state[i] = active
		depth[i] = 1
		for k, c := range callees[i] {
			switch state[c] {
			case active:
				return p.errf(sites[i][k], "recursive call")
			case unvisited:
				if err := visit(c); err != nil {
					return err
				}
			}
			if depth[c]+1 > depth[i] {
				depth[i] = depth[c] + 1
			}
		}
		state[i] = done
		return nil
	}
	if err := visit(0); err != nil {
		return err
	}
	if depth[0] > MaxFrames {
		return p.errf(-1, "call chain is %d frames deep, more than %d", depth[0], MaxFrames)
	}
	return nil
}

// regUse gives the registers the instruction at pc reads, writes and
// leaves undefined, as bit masks. A call reads as many argument registers
// as its helper takes.
func (p *Program) regUse(pc int) (reads, writes, clobbers uint16) {
	in := p.insns[pc]
	x := p.code[pc*8]&srcX != 0
	d, s := uint16(1)<<in.dst, uint16(1)<<in.src
	const args = 0b111110 // r1-r5
	switch o := in.op; {
	case o == opMov64K || o == opMov32K || o == opLdImm64:
		return 0, d, 0
	case o == opMov64X || o == opMov32X || o >= opMovsx8_64 && o <= opMovsx32_64 || o == opMovsx8_32 || o == opMovsx16_32:
		return s, d, 0
	case o == opNeg64 || o == opNeg32 || o >= opLe16 && o <= opBswap64:
		return d, d, 0
	case o >= opAdd64K && o <= opMovsx16_32:
		if x {
			return d | s, d, 0
		}
		return d, d, 0
	case o == opJa || o == opLdImm64Tail:
		return 0, 0, 0
	case o.isCondJump():
		if x {
			return d | s, 0, 0
		}
		return d, 0, 0
	case o == opCall:
		n := p.helperArgs[in.imm]
		if p.helperVoid[in.imm] {
			return uint16((1<<(n+1))-1) &^ 1, 0, args | 1
		}
		return uint16((1<<(n+1))-1) &^ 1, 1, args
	case o == opCallx:
		return d, 1, args
	case o == opCallLocal:
		return 0, 1, args
	case o == opExit:
		return 1, 0, 0
	case o >= opLdxB && o <= opLdxSW:
		return s, d, 0
	case o >= opStB && o <= opStDW:
		return d, 0, 0
	case o >= opStxB && o <= opStxDW:
		return d | s, 0, 0
	case o == opAtomicCmpxchg32 || o == opAtomicCmpxchg64:
		return d | s | 1, 1, 0
	case o >= opAtomicFetchAdd32 && o <= opAtomicXchg32 || o >= opAtomicFetchAdd64 && o <= opAtomicXchg64:
		return d | s, s, 0
	case o >= opAtomicAdd32 && o <= opAtomicCmpxchg64:
		return d | s, 0, 0
	}
	return 0, 0, 0
}

// checkInit is a forward data-flow pass over one function: the set of
// registers written on every path into each instruction. A read of a
// register outside that set is refused, as the kernel refuses it ("R3
// !read_ok"), so no program depends on leftovers from a helper call.
func (p *Program) checkInit(f function) error {
	entry := uint16(1 << 10)
	if f.start == 0 {
		entry |= uint16((1<<(p.args+1))-1) &^ 1
	} else {
		entry |= 0b111110 // a callee's arguments come from its caller
	}
	in := make([]uint16, f.end-f.start)
	seen := make([]bool, f.end-f.start)
	in[0], seen[0] = entry, true
	work := []int{f.start}
	for len(work) > 0 {
		pc := work[len(work)-1]
		work = work[:len(work)-1]
		state := in[pc-f.start]
		ins := p.insns[pc]
		reads, writes, clobbers := p.regUse(pc)
		if missing := reads &^ state; missing != 0 {
			r := bits.TrailingZeros16(missing)
			return p.errf(pc, "r%d is read before it is written", r)
		}
		out := (state &^ clobbers) | writes
		flow := func(t int) {
			i := t - f.start
			if !seen[i] {
				seen[i], in[i] = true, out
				work = append(work, t)
			} else if in[i]&out != in[i] {
				in[i] &= out
				work = append(work, t)
			}
		}
		switch {
		case ins.op == opExit:
		case ins.op == opJa:
			flow(int(ins.off))
		case ins.op.isCondJump():
			flow(int(ins.off))
			flow(pc + 1)
		case ins.op == opLdImm64:
			flow(pc + 2)
		default:
			flow(pc + 1)
		}
	}
	return nil
}
