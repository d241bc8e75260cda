// Package progen generates random eBPF programs that the kernel verifier
// accepts and whose result depends on nothing but their input: the bytes
// of one array-map value (and an initially empty hash map). The
// interpreter's differential test runs them both in the interpreter and in
// the kernel and compares the outcome.
//
// Every program has the same frame:
//
//	prologue  key 0 on the stack, map_lookup_elem on the array MapName,
//	          exit if NULL, r6 = value pointer (never written again);
//	          zero the stack area [r10-StackBytes, r10); give r0-r5 and
//	          r7-r9 random constants.
//	body      random ALU64/ALU32 (all ops, sdiv/smod, movsx, neg, byte
//	          swaps), 64-bit immediates, loads (zero- and sign-extending),
//	          stores and atomics on the first MemBytes of the value and on
//	          the stack area, at constant and at variable (masked register)
//	          offsets; structured forward jumps (JMP and JMP32, every
//	          condition, K and X, ja and gotol); bounded loops; bpf-to-bpf
//	          calls, nested up to four frames deep, some taking pointers to
//	          the caller's stack and to the map value, some finding the
//	          value with a direct value load; helper calls:
//	          map_lookup/update/delete_elem on the hash map KVName,
//	          probe_read_kernel(_str) between the value and the stack,
//	          ringbuf_output/reserve/submit/discard/query on the ring
//	          buffer RingName (records filled from the value, one or two
//	          reservations at a time, released in either order).
//	epilogue  store r0-r5 and r7-r9 at RegsOff in the value, copy the
//	          stack area to StackOff, exit with r0.
//
// So the whole map value, the hash map's contents and the records in the
// ring buffer after the run, plus r0, are the program's result.
package progen

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

const (
	// MapName is the array map the programs compute in (by reference).
	MapName = "mem"
	// KVName is the hash map (4-byte keys, 8-byte values, KVEntries
	// entries, initially empty) the programs update, look up and delete
	// from through helpers.
	KVName = "kv"
	// KVEntries is the hash map's capacity: small, so that it fills.
	KVEntries = 4
	// RingName is the ring buffer (RingSize bytes, initially empty) the
	// programs write records to.
	RingName = "rb"
	// RingSize is the ring buffer's size: the smallest the kernel allows,
	// so that it fills.
	RingSize = 4096
	// MemBytes is the part of the value the body reads and writes.
	MemBytes = 256
	// StackBytes is the stack area the body reads and writes:
	// [r10-StackBytes, r10), zeroed by the prologue.
	StackBytes = 64
	// RegsOff is where the epilogue stores r0-r5, r7-r9 (8 bytes each, in
	// that order).
	RegsOff = MemBytes
	// StackOff is where the epilogue copies the stack area.
	StackOff = RegsOff + 8*9 // r0-r5, r7-r9
	// ValueSize is the size of the map's value.
	ValueSize = StackOff + StackBytes

	keyOff   = -StackBytes - 8  // the lookup key's stack slot
	kvKeyOff = -StackBytes - 16 // a hash-map helper call's key (u32)
	kvValOff = -StackBytes - 24 // and value (u64)
)

// scalarRegs are the registers the main program computes with: all but
// r6 (the value pointer) and r10.
var scalarRegs = []asm.Register{asm.R0, asm.R1, asm.R2, asm.R3, asm.R4, asm.R5, asm.R7, asm.R8, asm.R9}

// MapSpec is the array map a generated program expects under MapName.
func MapSpec() *ebpf.MapSpec {
	return &ebpf.MapSpec{
		Name:       MapName,
		Type:       ebpf.Array,
		KeySize:    4,
		ValueSize:  ValueSize,
		MaxEntries: 1,
	}
}

// KVSpec is the hash map a generated program expects under KVName.
func KVSpec() *ebpf.MapSpec {
	return &ebpf.MapSpec{
		Name:       KVName,
		Type:       ebpf.Hash,
		KeySize:    4,
		ValueSize:  8,
		MaxEntries: KVEntries,
	}
}

// RingSpec is the ring buffer a generated program expects under RingName.
func RingSpec() *ebpf.MapSpec {
	return &ebpf.MapSpec{
		Name:       RingName,
		Type:       ebpf.RingBuf,
		MaxEntries: RingSize,
	}
}

// Config shapes the generated programs. The zero value is usable.
type Config struct {
	// Insns is about how many body instructions to generate (0: 64).
	Insns int
	// MaxDepth bounds the nesting of conditionals and loops (0: 3).
	MaxDepth int
	// NoLoops leaves out bounded loops (back jumps).
	NoLoops bool
	// NoCalls leaves out bpf-to-bpf calls.
	NoCalls bool
	// NoHelpers leaves out helper calls (the program then uses neither
	// KVName nor RingName).
	NoHelpers bool
	// NoRing leaves out the ring-buffer helpers (RingName).
	NoRing bool
	// Drop, if set, leaves out the constructs it returns true for, by
	// their number in generation order (GenerateItems counts them): an
	// instruction, or a conditional, loop or call with all it contains.
	// Everything else stays exactly as without Drop, since dropped
	// constructs are generated all the same and then cut, so the
	// programs stay valid. It is for minimising a failing program.
	Drop func(item int) bool
}

// Generate returns a random program. The same rng state and Config give
// the same program.
func Generate(rng *rand.Rand, cfg Config) asm.Instructions {
	insns, _ := GenerateItems(rng, cfg)
	return insns
}

// GenerateItems is Generate that also returns the number of constructs
// Config.Drop may leave out.
func GenerateItems(rng *rand.Rand, cfg Config) (asm.Instructions, int) {
	if cfg.Insns <= 0 {
		cfg.Insns = 64
	}
	if cfg.MaxDepth <= 0 {
		cfg.MaxDepth = 3
	}
	g := &gen{rng: rng, cfg: cfg, b: &builder{}}
	if !cfg.NoCalls {
		for i := 0; i < 1+rng.IntN(3); i++ {
			g.subs = append(g.subs, &subprog{name: fmt.Sprintf("sub%d", i), kind: subKind(rng.IntN(3))})
		}
	}
	g.main()
	for i, s := range g.subs {
		start, nfix, called := len(g.b.insns), len(g.b.fixups), g.called()
		g.sub(i)
		if !s.called { // the kernel refuses unreachable code
			g.b.cut(start, nfix)
			g.setCalled(called)
		}
	}
	return g.b.resolve(), g.items
}

func (g *gen) called() []bool {
	c := make([]bool, len(g.subs))
	for i, s := range g.subs {
		c[i] = s.called
	}
	return c
}

func (g *gen) setCalled(c []bool) {
	for i, s := range g.subs {
		s.called = c[i]
	}
}

// Uses reports whether the program refers to the map called name.
func Uses(insns asm.Instructions, name string) bool {
	for _, ins := range insns {
		if ins.IsLoadFromMap() && ins.Reference() == name {
			return true
		}
	}
	return false
}

type gen struct {
	rng   *rand.Rand
	cfg   Config
	b     *builder
	subs  []*subprog
	items int // constructs generated so far
}

// subKind is what a subprogram gets from its caller.
type subKind int

const (
	subScalars  subKind = iota // r1-r5 scalars; computes on its own stack
	subPointers                // r1 = the caller's stack area, r2 = the map value (kept in r8, r9)
	subDirect                  // r1 = the caller's stack area (kept in r9); r8 = the map value, by a direct value load
)

type subprog struct {
	name   string
	kind   subKind
	called bool
}

// area is memory the code may use: [reg+lo, reg+lo+n).
type area struct {
	reg   asm.Register
	lo, n int
	stack bool // the kernel wants stack accesses aligned
}

// scope is what the code being generated may do.
type scope struct {
	regs     uint16 // registers that hold scalars
	reserved uint16 // loop counters of enclosing loops: read, never written
	depth    int
	mem      []area
	callee   int          // subprograms this code may call: those from this index on
	helpers  bool         // may call helpers (the main program)
	inSub    bool         // in a subprogram
	mapReg   asm.Register // a register pointing to the start of the map value, if any
	hasMap   bool
}

func (s scope) writable() uint16 { return s.regs &^ s.reserved }

func mask(rs ...asm.Register) uint16 {
	var m uint16
	for _, r := range rs {
		m |= 1 << r
	}
	return m
}

const argRegs = 1<<asm.R1 | 1<<asm.R2 | 1<<asm.R3 | 1<<asm.R4 | 1<<asm.R5

func (g *gen) pick(m uint16) asm.Register {
	var rs []asm.Register
	for r := asm.Register(0); r <= asm.R10; r++ {
		if m&(1<<r) != 0 {
			rs = append(rs, r)
		}
	}
	return rs[g.rng.IntN(len(rs))]
}

var (
	mapArea   = area{reg: asm.R6, lo: 0, n: MemBytes}
	stackArea = area{reg: asm.R10, lo: -StackBytes, n: StackBytes, stack: true}
)

func (g *gen) main() {
	b := g.b
	b.emit(
		asm.StoreImm(asm.R10, keyOff, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, keyOff),
		asm.LoadMapPtr(asm.R1, 0).WithReference(MapName),
		asm.FnMapLookupElem.Call(),
	)
	ok := b.label()
	b.jump(asm.JNE.Imm(asm.R0, 0, ""), ok)
	b.emit(asm.Return())
	b.place(ok)
	b.emit(asm.Mov.Reg(asm.R6, asm.R0))
	g.zeroStack()
	sc := scope{regs: mask(scalarRegs...), mem: []area{mapArea, stackArea}, helpers: true, mapReg: asm.R6, hasMap: true}
	for _, r := range scalarRegs {
		g.initReg(r)
	}
	g.block(g.cfg.Insns, sc)
	for i, r := range scalarRegs {
		b.emit(asm.StoreMem(asm.R6, int16(RegsOff+8*i), r, asm.DWord))
	}
	for off := 0; off < StackBytes; off += 8 {
		b.emit(
			asm.LoadMem(asm.R1, asm.R10, int16(off-StackBytes), asm.DWord),
			asm.StoreMem(asm.R6, int16(StackOff+off), asm.R1, asm.DWord),
		)
	}
	b.emit(asm.Return())
}

// sub emits subprogram i. r0 and r6-r9 start undefined in a callee, so
// it sets them; it computes on its own stack frame (and, as its kind
// says, the caller's stack area and the map value) and returns r0. It may
// call the subprograms after it. The caller's r6-r9 and stack frame must
// survive it.
func (g *gen) sub(i int) {
	b := g.b
	s := g.subs[i]
	start := len(b.insns)
	g.zeroStack()
	b.insns[start] = b.insns[start].WithSymbol(s.name)
	sc := scope{mem: []area{stackArea}, inSub: true, callee: i + 1}
	all := mask(asm.R0, asm.R1, asm.R2, asm.R3, asm.R4, asm.R5, asm.R6, asm.R7, asm.R8, asm.R9)
	switch s.kind {
	case subScalars:
		sc.regs = all
	case subPointers:
		b.emit(asm.Mov.Reg(asm.R8, asm.R1), asm.Mov.Reg(asm.R9, asm.R2))
		g.initReg(asm.R1)
		g.initReg(asm.R2)
		sc.regs = all &^ mask(asm.R8, asm.R9)
		sc.mem = append(sc.mem, area{reg: asm.R8, n: StackBytes, stack: true}, area{reg: asm.R9, n: MemBytes})
		sc.mapReg, sc.hasMap = asm.R9, true
	case subDirect:
		off := 8 * g.rng.IntN(MemBytes/8)
		b.emit(asm.Mov.Reg(asm.R9, asm.R1), asm.LoadMapValue(asm.R8, 0, uint32(off)).WithReference(MapName))
		g.initReg(asm.R1)
		sc.regs = all &^ mask(asm.R8, asm.R9)
		sc.mem = append(sc.mem, area{reg: asm.R9, n: StackBytes, stack: true}, area{reg: asm.R8, lo: -off, n: MemBytes})
	}
	for _, r := range []asm.Register{asm.R0, asm.R6, asm.R7, asm.R8, asm.R9} {
		if sc.regs&(1<<r) != 0 {
			g.initReg(r)
		}
	}
	g.block(g.cfg.Insns/4+1, sc)
	b.emit(asm.Return())
}

func (g *gen) zeroStack() {
	for off := -StackBytes; off < 0; off += 8 {
		g.b.emit(stImm(asm.R10, int16(off), 0, asm.DWord))
	}
}

// stImm is a store of an immediate, DWord included (asm.StoreImm refuses
// it, though BPF_ST|BPF_MEM|BPF_DW is valid: the immediate is sign
// extended).
func stImm(dst asm.Register, off int16, v int32, size asm.Size) asm.Instruction {
	return asm.Instruction{OpCode: asm.StoreImmOp(size), Dst: dst, Offset: off, Constant: int64(v)}
}

func (g *gen) initReg(r asm.Register) {
	switch g.rng.IntN(3) {
	case 0:
		g.b.emit(asm.Mov.Imm(r, g.imm32()))
	case 1:
		g.b.emit(asm.Mov.Imm32(r, g.imm32()))
	default:
		g.b.emit(asm.LoadImm(r, int64(g.imm64()), asm.DWord))
	}
}

var interesting64 = []uint64{
	0, 1, 2, 3, 7, 8, 31, 32, 63, 64, 0xff, 0x80, 0x7f, 0xffff, 0x8000,
	0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, 0x1_0000_0001,
	math.MaxInt64, 1 << 63, math.MaxUint64, math.MaxUint64 - 1,
	0xffffffff_80000000, 0xffffffff_7fffffff, 0x80000000_00000001,
}

func (g *gen) imm64() uint64 {
	switch g.rng.IntN(4) {
	case 0:
		return interesting64[g.rng.IntN(len(interesting64))]
	case 1:
		return uint64(int64(g.rng.IntN(33) - 16))
	case 2:
		return uint64(int64(g.imm32()))
	}
	return g.rng.Uint64()
}

var interesting32 = []int32{
	0, 1, 2, 3, 7, 8, 16, 31, 32, 63, 64, -1, -2, -8, 0xff, 0x80, 0x7f, 0xffff,
	0x8000, -0x8000, math.MaxInt32, math.MinInt32, math.MinInt32 + 1,
}

func (g *gen) imm32() int32 {
	switch g.rng.IntN(3) {
	case 0:
		return interesting32[g.rng.IntN(len(interesting32))]
	case 1:
		return int32(g.rng.IntN(33) - 16)
	}
	return int32(g.rng.Uint32())
}

// block emits about n instructions.
func (g *gen) block(n int, sc scope) {
	for n > 0 {
		n -= g.item(n, sc)
	}
}

// item emits one construct of at most about n instructions and returns
// how many it emitted (at least 1). No jump lands inside a construct but
// those it makes itself.
func (g *gen) item(n int, sc scope) int {
	id := g.items
	g.items++
	start, nfix, total, called := len(g.b.insns), len(g.b.fixups), g.b.total, g.called()
	defer func() {
		if g.cfg.Drop != nil && g.cfg.Drop(id) {
			g.b.cut(start, nfix)
			g.setCalled(called)
		}
	}()
	if sc.depth < g.cfg.MaxDepth && n >= 3 {
		switch g.rng.IntN(18) {
		case 0, 1:
			g.ifThen(n, sc)
		case 2:
			g.ifElse(n, sc)
		case 3:
			if !g.cfg.NoLoops {
				g.loop(n, sc)
			}
		case 4:
			if sc.callee < len(g.subs) {
				g.call(sc)
			}
		case 5:
			if sc.helpers && !g.cfg.NoHelpers {
				g.helper(sc)
			}
		}
	}
	if g.b.total == total {
		g.simple(sc)
	}
	return g.b.total - total // what Drop cuts counts too, so that it changes nothing else
}

func (g *gen) ifThen(n int, sc scope) {
	end := g.b.label()
	g.b.jump(g.cond(sc), end)
	inner := sc
	inner.depth++
	g.block(g.rng.IntN(min(n-1, 16)), inner)
	g.b.place(end)
}

func (g *gen) ifElse(n int, sc scope) {
	els, end := g.b.label(), g.b.label()
	g.b.jump(g.cond(sc), els)
	inner := sc
	inner.depth++
	m := min(n-2, 24)
	a := g.rng.IntN(m + 1)
	g.block(a, inner)
	if g.rng.IntN(2) == 0 {
		g.b.jump(asm.Ja.Label(""), end)
	} else {
		g.b.jump(asm.LongJump(""), end) // gotol: JMP32|JA, offset in imm
	}
	g.b.place(els)
	g.block(m-a, inner)
	g.b.place(end)
}

// loop emits a counted loop: c = k; do { body } while (--c != 0). The
// body never writes c, which is one of r6-r9 (calls keep them).
func (g *gen) loop(n int, sc scope) {
	free := sc.writable() & mask(asm.R6, asm.R7, asm.R8, asm.R9)
	if free == 0 || n < 4 {
		return
	}
	c := g.pick(free)
	g.b.emit(asm.Mov.Imm(c, int32(1+g.rng.IntN(4))))
	head := g.b.label()
	g.b.place(head)
	inner := sc
	inner.depth++
	inner.reserved |= 1 << c
	g.block(g.rng.IntN(min(n-3, 12))+1, inner)
	switch g.rng.IntN(3) {
	case 0:
		g.b.emit(asm.Sub.Imm(c, 1))
	case 1:
		g.b.emit(asm.Add.Imm32(c, -1))
	default:
		g.b.emit(asm.Add.Imm(c, -1))
	}
	switch g.rng.IntN(4) {
	case 0:
		g.b.jump(asm.JNE.Imm(c, 0, ""), head)
	case 1:
		g.b.jump(asm.JNE.Imm32(c, 0, ""), head)
	case 2:
		g.b.jump(asm.JSGT.Imm(c, 0, ""), head)
	default:
		g.b.jump(asm.JGT.Imm32(c, 0, ""), head)
	}
}

// call calls a subprogram after those sc is in, passing it what its kind
// wants: a pointer to the caller's stack area and to the map value.
func (g *gen) call(sc scope) {
	s := g.subs[sc.callee+g.rng.IntN(len(g.subs)-sc.callee)]
	s.called = true
	if s.kind == subPointers {
		if sc.hasMap {
			g.b.emit(asm.Mov.Reg(asm.R2, sc.mapReg))
		} else {
			g.b.emit(asm.LoadMapValue(asm.R2, 0, 0).WithReference(MapName))
		}
	}
	if s.kind != subScalars {
		g.b.emit(asm.Mov.Reg(asm.R1, asm.R10), asm.Add.Imm(asm.R1, -StackBytes))
	}
	g.b.emit(asm.Call.Label(s.name))
	g.reinitArgs(sc)
}

// reinitArgs gives r1-r5, which a call leaves undefined, values again.
func (g *gen) reinitArgs(sc scope) {
	for _, r := range []asm.Register{asm.R1, asm.R2, asm.R3, asm.R4, asm.R5} {
		if g.rng.IntN(2) == 0 {
			g.b.emit(asm.Mov.Reg(r, g.pick(sc.regs&^argRegs)))
		} else {
			g.initReg(r)
		}
	}
}

// helper calls a helper whose effect is deterministic: a hash-map
// operation on KVName or a probe_read_kernel(_str) copy.
func (g *gen) helper(sc scope) {
	b := g.b
	switch g.rng.IntN(5) {
	case 0:
		g.probeRead()
		g.reinitArgs(sc)
		return
	case 1, 2:
		if !g.cfg.NoRing {
			g.ring(sc)
			g.reinitArgs(sc)
			return
		}
	}
	// The key: mostly 0-5 so that keys repeat and the map fills.
	if g.rng.IntN(2) == 0 {
		b.emit(asm.StoreImm(asm.R10, kvKeyOff, int64(g.rng.IntN(6)), asm.Word))
	} else {
		b.emit(
			asm.Mov.Reg(asm.R1, g.pick(sc.regs)),
			asm.And.Imm(asm.R1, 7),
			asm.StoreMem(asm.R10, kvKeyOff, asm.R1, asm.Word),
		)
	}
	switch g.rng.IntN(4) {
	case 0, 1: // update
		b.emit(asm.StoreMem(asm.R10, kvValOff, g.pick(sc.regs), asm.DWord))
		b.emit(
			asm.LoadMapPtr(asm.R1, 0).WithReference(KVName),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, kvKeyOff),
			asm.Mov.Reg(asm.R3, asm.R10),
			asm.Add.Imm(asm.R3, kvValOff),
			asm.Mov.Imm(asm.R4, []int32{0, 0, 1, 2, 3, 4}[g.rng.IntN(6)]), // ANY, NOEXIST, EXIST, invalid
			asm.FnMapUpdateElem.Call(),
		)
	case 2: // delete
		b.emit(
			asm.LoadMapPtr(asm.R1, 0).WithReference(KVName),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, kvKeyOff),
			asm.FnMapDeleteElem.Call(),
		)
	default: // lookup; through the pointer, maybe an atomic add; r0 = the value or 0
		b.emit(
			asm.LoadMapPtr(asm.R1, 0).WithReference(KVName),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, kvKeyOff),
			asm.FnMapLookupElem.Call(),
		)
		null := b.label()
		b.jump(asm.JEq.Imm(asm.R0, 0, ""), null)
		switch g.rng.IntN(3) {
		case 0:
			b.emit(atomicInsn(asm.AddAtomic, asm.R0, g.pick(mask(asm.R7, asm.R8, asm.R9)), asm.DWord, 0))
		case 1:
			b.emit(asm.StoreMem(asm.R0, 0, g.pick(mask(asm.R7, asm.R8, asm.R9)), asm.DWord))
		}
		b.emit(asm.LoadMem(asm.R0, asm.R0, 0, asm.DWord))
		b.place(null)
	}
	g.reinitArgs(sc)
}

// probeRead copies between the map value and the stack area, one way or
// the other, never overlapping and always in bounds: the kernel's copy
// is not a memmove, and past the value's end lies other kernel memory.
func (g *gen) probeRead() {
	n := 1 + g.rng.IntN(StackBytes)
	stackOff := -StackBytes + g.rng.IntN(StackBytes-n+1)
	mapOff := g.rng.IntN(MemBytes - n + 1)
	dst, dOff, src, sOff := asm.R10, stackOff, asm.R6, mapOff
	if g.rng.IntN(2) == 0 {
		dst, dOff, src, sOff = src, sOff, dst, dOff
	}
	fn := asm.FnProbeReadKernel
	if g.rng.IntN(2) == 0 {
		fn = asm.FnProbeReadKernelStr
	}
	g.b.emit(
		asm.Mov.Reg(asm.R1, dst),
		asm.Add.Imm(asm.R1, int32(dOff)),
		asm.Mov.Imm(asm.R2, int32(n)),
		asm.Mov.Reg(asm.R3, src),
		asm.Add.Imm(asm.R3, int32(sOff)),
		fn.Call(),
	)
}

// ring writes to the ring buffer (ringbuf_output, or one or two
// reservations filled from the value and submitted, or discarded, in
// either order) or queries it. Records are filled completely: the
// kernel's reserved memory is not zeroed.
func (g *gen) ring(sc scope) {
	b := g.b
	rb := asm.LoadMapPtr(asm.R1, 0).WithReference(RingName)
	holders := sc.writable() & mask(asm.R7, asm.R8, asm.R9) // survive the calls
	switch k := g.rng.IntN(5); {
	case k == 0:
		b.emit(rb, asm.Mov.Imm(asm.R2, int32(g.rng.IntN(4))), asm.FnRingbufQuery.Call()) // AVAIL_DATA, RING_SIZE, CONS_POS, PROD_POS
	case k == 1 || holders == 0:
		n := 1 + g.rng.IntN(ValueSize)
		b.emit(
			rb,
			asm.Mov.Reg(asm.R2, asm.R6),
			asm.Add.Imm(asm.R2, int32(g.rng.IntN(ValueSize-n+1))),
			asm.Mov.Imm(asm.R3, int32(n)),
			asm.Mov.Imm(asm.R4, g.ringFlags()),
			asm.FnRingbufOutput.Call(),
		)
	default:
		var ptrs []asm.Register
		var sizes []int
		for i := 0; i < 1+g.rng.IntN(2) && holders != 0; i++ {
			p := g.pick(holders)
			holders &^= 1 << p
			size := g.ringSize()
			flags := int32(0)
			if g.rng.IntN(16) == 0 {
				flags = 1 // the kernel wants 0: no record
			}
			b.emit(rb, asm.Mov.Imm(asm.R2, int32(size)), asm.Mov.Imm(asm.R3, flags), asm.FnRingbufReserve.Call(), asm.Mov.Reg(p, asm.R0))
			ptrs, sizes = append(ptrs, p), append(sizes, size)
		}
		order := g.rng.Perm(len(ptrs))
		for _, i := range order {
			p, size := ptrs[i], sizes[i]
			null := b.label()
			b.jump(asm.JEq.Imm(p, 0, ""), null)
			fn := asm.FnRingbufDiscard
			if size <= ValueSize && g.rng.IntN(4) != 0 {
				fn = asm.FnRingbufSubmit
				if size > 0 {
					b.emit(
						asm.Mov.Reg(asm.R1, p),
						asm.Mov.Imm(asm.R2, int32(size)),
						asm.Mov.Reg(asm.R3, asm.R6),
						asm.Add.Imm(asm.R3, int32(g.rng.IntN(ValueSize-size+1))),
						asm.FnProbeReadKernel.Call(),
					)
				}
			}
			b.emit(asm.Mov.Reg(asm.R1, p), asm.Mov.Imm(asm.R2, g.ringFlags()), fn.Call())
			b.place(null)
		}
		for _, p := range ptrs {
			g.initReg(p)
		}
		g.initReg(asm.R0) // submit and discard return nothing: r0 is undefined
	}
}

// ringSize is a record size: mostly small enough to fill from the value,
// sometimes near the ring's size (a record takes 8 more bytes).
func (g *gen) ringSize() int {
	switch g.rng.IntN(8) {
	case 0:
		return RingSize - 8*g.rng.IntN(3) - g.rng.IntN(8)
	case 1:
		return RingSize/2 - 8 + g.rng.IntN(16)
	case 2:
		return g.rng.IntN(9)
	}
	return 1 + g.rng.IntN(ValueSize)
}

// ringFlags are the flags of ringbuf_output, submit and discard: none,
// BPF_RB_NO_WAKEUP, BPF_RB_FORCE_WAKEUP, rarely an invalid one.
func (g *gen) ringFlags() int32 {
	return []int32{0, 0, 1, 2, 0, 0, 1, 2, 0, 0, 1, 2, 0, 0, 1, 4}[g.rng.IntN(16)]
}

var jumpOps = []asm.JumpOp{asm.JEq, asm.JGT, asm.JGE, asm.JSet, asm.JNE, asm.JSGT, asm.JSGE, asm.JLT, asm.JLE, asm.JSLT, asm.JSLE}

// cond is a conditional jump whose target the caller sets.
func (g *gen) cond(sc scope) asm.Instruction {
	op := jumpOps[g.rng.IntN(len(jumpOps))]
	dst := g.pick(sc.regs)
	wide := g.rng.IntN(2) == 0
	if g.rng.IntN(2) == 0 {
		src := g.pick(sc.regs)
		if wide {
			return op.Reg(dst, src, "")
		}
		return op.Reg32(dst, src, "")
	}
	if wide {
		return op.Imm(dst, g.imm32(), "")
	}
	return op.Imm32(dst, g.imm32(), "")
}

var aluOps = []asm.ALUOp{asm.Add, asm.Sub, asm.Mul, asm.Div, asm.SDiv, asm.Mod, asm.SMod, asm.Or, asm.And, asm.LSh, asm.RSh, asm.ArSh, asm.Xor, asm.Mov}

var sizes = []asm.Size{asm.Byte, asm.Half, asm.Word, asm.DWord}

// simple emits one straight-line instruction, or a few that belong
// together.
func (g *gen) simple(sc scope) {
	w := sc.writable()
	dst := g.pick(w)
	src := g.pick(sc.regs)
	switch k := g.rng.IntN(22); {
	case k < 7: // ALU, 64 or 32 bit, K or X
		op := aluOps[g.rng.IntN(len(aluOps))]
		wide := g.rng.IntN(2) == 0
		if g.rng.IntN(2) == 0 {
			if wide {
				g.b.emit(op.Reg(dst, src))
			} else {
				g.b.emit(op.Reg32(dst, src))
			}
			return
		}
		imm := g.imm32()
		switch op {
		case asm.Div, asm.SDiv, asm.Mod, asm.SMod:
			if imm == 0 { // the kernel refuses a constant divisor of 0
				imm = int32(g.rng.IntN(7)) - 3 | 1
			}
		case asm.LSh, asm.RSh, asm.ArSh: // and a constant shift >= the width
			if wide {
				imm = int32(g.rng.IntN(64))
			} else {
				imm = int32(g.rng.IntN(32))
			}
		}
		if wide {
			g.b.emit(op.Imm(dst, imm))
		} else {
			g.b.emit(op.Imm32(dst, imm))
		}
	case k == 7: // neg, movsx
		switch g.rng.IntN(7) {
		case 0:
			g.b.emit(asm.Neg.Imm(dst, 0))
		case 1:
			g.b.emit(asm.Neg.Imm32(dst, 0))
		case 2:
			g.b.emit(asm.MovSX8.Reg(dst, src))
		case 3:
			g.b.emit(asm.MovSX16.Reg(dst, src))
		case 4:
			g.b.emit(asm.MovSX32.Reg(dst, src))
		case 5:
			g.b.emit(asm.MovSX8.Reg32(dst, src))
		default:
			g.b.emit(asm.MovSX16.Reg32(dst, src))
		}
	case k == 8: // byte swaps
		size := []asm.Size{asm.Half, asm.Word, asm.DWord}[g.rng.IntN(3)]
		switch g.rng.IntN(3) {
		case 0:
			g.b.emit(asm.HostTo(asm.LE, dst, size))
		case 1:
			g.b.emit(asm.HostTo(asm.BE, dst, size))
		default:
			g.b.emit(asm.BSwap(dst, size))
		}
	case k == 9:
		g.initReg(dst)
	case k < 17: // loads and stores
		a := sc.mem[g.rng.IntN(len(sc.mem))]
		g.mem(a, dst, src)
	case k < 19:
		a := sc.mem[g.rng.IntN(len(sc.mem))]
		g.atomic(sc, a, dst, src)
	default:
		g.indexed(sc)
	}
}

// at picks a constant offset for an access of size bytes in the area:
// anywhere (aligned if asked or on the stack), within the first n-extra
// bytes.
func (g *gen) at(a area, size, extra int, align bool) int16 {
	if align || a.stack || g.rng.IntN(2) == 0 {
		return int16(a.lo + g.rng.IntN((a.n-extra)/size)*size)
	}
	return int16(a.lo + g.rng.IntN(a.n-extra-size+1))
}

// access emits a load (zero- or sign-extending), register store or
// immediate store of a random size at base+off; off places it in a.
func (g *gen) access(a area, base, dst, src asm.Register, off func(size int) int16) {
	size := sizes[g.rng.IntN(len(sizes))]
	switch g.rng.IntN(4) {
	case 0:
		g.b.emit(asm.LoadMem(dst, base, off(size.Sizeof()), size))
	case 1:
		if size == asm.DWord {
			size = sizes[g.rng.IntN(3)]
		}
		g.b.emit(asm.LoadMemSX(dst, base, off(size.Sizeof()), size))
	case 2:
		g.b.emit(asm.StoreMem(base, off(size.Sizeof()), src, size))
	default:
		g.b.emit(stImm(base, off(size.Sizeof()), g.imm32(), size))
	}
}

func (g *gen) mem(a area, dst, src asm.Register) {
	g.access(a, a.reg, dst, src, func(size int) int16 { return g.at(a, size, 0, false) })
}

// indexed accesses memory at a variable offset: p = (x & mask) + base;
// an access at p+off; then p is a scalar again. Stack accesses and
// atomics need an aligned p.
func (g *gen) indexed(sc scope) {
	w := sc.writable()
	p := g.pick(w)
	others := w &^ (1 << p)
	if others == 0 {
		g.initReg(p)
		return
	}
	a := sc.mem[g.rng.IntN(len(sc.mem))]
	atomic := !a.stack && g.rng.IntN(4) == 0 // the kernel refuses atomics at a variable stack offset
	aligned := a.stack || atomic
	window := min(8<<g.rng.IntN(4), a.n/2) // 8..64 bytes of possible indexes
	m := int32(window - 1)
	g.b.emit(asm.Mov.Reg(p, g.pick(sc.regs&^(1<<p))))
	switch g.rng.IntN(3) {
	case 0:
		g.b.emit(asm.And.Imm(p, m))
	case 1:
		g.b.emit(asm.And.Imm32(p, m))
	default: // zero-extend, then keep the top bits of the low word
		g.b.emit(asm.Mov.Reg32(p, p), asm.RSh.Imm(p, int32(32-bitsLen(m))))
	}
	if aligned {
		g.b.emit(asm.And.Imm(p, ^int32(7)))
	}
	if g.rng.IntN(2) == 0 && !(sc.inSub && a.stack) {
		// Not scalar += a stack pointer in a subprogram: Linux 6.18's
		// verifier then takes the pointer for one into frame 0, the main
		// program's stack (adjust_ptr_min_max_vals gives dst the
		// pointer's type but not its frameno), while it points into the
		// subprogram's own frame or its caller's, which need not be the
		// main program: the kernel's idea of the stack is then wrong (see
		// TestKernelQuirks).
		g.b.emit(asm.Add.Reg(p, a.reg))
	} else { // the same with the operands the other way round
		q := g.pick(others)
		g.b.emit(asm.Mov.Reg(q, a.reg), asm.Add.Reg(q, p))
		p = q
		others = w &^ (1 << p)
	}
	// Constant offsets keep every index in the area.
	off := func(size int) int16 {
		if aligned {
			return int16(a.lo + g.rng.IntN((a.n-int(m)-8)/8+1)*8)
		}
		return int16(a.lo + g.rng.IntN(a.n-int(m)-size+1))
	}
	dst := g.pick(others)
	src := g.pick(sc.regs &^ (1 << p))
	if atomic {
		g.atomic(sc, area{reg: p, lo: int(off(8)), n: 8}, dst, src)
	} else {
		g.access(a, p, dst, src, off)
	}
	g.initReg(p)
}

func bitsLen(x int32) int {
	n := 0
	for ; x != 0; x >>= 1 {
		n++
	}
	return n
}

var atomicOps = []asm.AtomicOp{
	asm.AddAtomic, asm.OrAtomic, asm.AndAtomic, asm.XorAtomic,
	asm.FetchAdd, asm.FetchOr, asm.FetchAnd, asm.FetchXor,
	asm.Xchg, asm.CmpXchg,
}

// atomic emits an atomic operation on an aligned word or double word of
// the area. The fetching ones write src (cmpxchg: r0), so src must be
// writable.
func (g *gen) atomic(sc scope, a area, dst, src asm.Register) {
	op := atomicOps[g.rng.IntN(len(atomicOps))]
	if op == asm.CmpXchg && (sc.reserved&1 != 0 || sc.regs&1 == 0 || a.reg == asm.R0) {
		op = asm.AddAtomic
	}
	fetch := true
	switch op {
	case asm.AddAtomic, asm.OrAtomic, asm.AndAtomic, asm.XorAtomic:
		fetch = false
	case asm.CmpXchg:
	default:
		src = dst
	}
	size := asm.Word
	if g.rng.IntN(2) == 0 {
		size = asm.DWord
	}
	off := g.at(a, size.Sizeof(), 0, true)
	if fetch && a.stack {
		// A plain load of the same bytes first, with no jump target in
		// between. Linux 6.18's stack liveness takes an atomic on a stack
		// slot for a write only, not a read, so a checkpoint before it
		// prunes paths on which the slot holds something else, and the
		// verifier then believes the value fetched on the one path it
		// explored (see TestKernelQuirks): it may hard-wire a branch on
		// it. The load makes the slot live, so the paths are told apart.
		t := sc.writable() &^ (1 << src)
		if op == asm.CmpXchg {
			t &^= 1
		}
		if t == 0 {
			op = asm.AddAtomic
		} else {
			g.b.emit(asm.LoadMem(g.pick(t), a.reg, off, size))
		}
	}
	g.b.emit(atomicInsn(op, a.reg, src, size, off))
	if op == asm.CmpXchg && size == asm.Word {
		// A 64-bit read of r0 right away, with no jump target in between.
		// x86 leaves rax alone when cmpxchg succeeds, so the kernel's
		// verifier adds the zero extension RFC 9669 asks for after a
		// 32-bit cmpxchg, but only when it sees r0 read as 64 bits on a
		// path it explores: on Linux 6.18 a path that state pruning cuts
		// at a checkpoint after the cmpxchg keeps the upper half (see
		// TestKernelQuirks). This keeps the kernel to the RFC so the
		// interpreter's zero extension is still checked.
		g.b.emit(asm.Add.Imm(asm.R0, 0))
	}
}

// atomicInsn is op.Mem(dst, src, size, off) with the operation in the
// immediate too: cilium/ebpf v0.22.0's Instruction.Marshal takes the
// immediate from Constant before it derives Constant from the opcode, so
// an atomic built with AtomicOp.Mem (Constant 0) is marshalled as a plain
// atomic add whatever its operation.
func atomicInsn(op asm.AtomicOp, dst, src asm.Register, size asm.Size, off int16) asm.Instruction {
	ins := op.Mem(dst, src, size, off)
	ins.Constant = int64(op >> 8)
	return ins
}
