package interp

//go:generate go run ./internal/mktrace

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"sync/atomic"
	"unsafe"
)

// Env is the execution context the caller supplies for one run: what the
// "current task" helpers report, where trace_printk writes, and an
// optional per-instruction tracer.
type Env struct {
	CPU       uint32
	PID, TGID uint32 // thread id and process id, as get_current_pid_tgid reports them
	UID, GID  uint32
	Comm      [16]byte
	Cgroup    uint64 // get_current_cgroup_id: the task's cgroup v2 id
	// Task is what get_current_task returns: the task's kernel address
	// as the event recorded it; 0 where none was.
	Task uint64
	// Cookie is what get_attach_cookie returns: the cookie of the
	// attachment that fired, as the kernel would have given it.
	Cookie uint64
	// Ktime returns CLOCK_MONOTONIC nanoseconds (ktime_get_ns); nil reads
	// the clock. Replays set it to the recorded event time.
	Ktime func() uint64
	// Printk receives trace_printk output; nil discards it.
	Printk io.Writer
	// Step, if set, is called before each instruction with its slot and
	// the registers r0-r10. It makes a run much slower; it is for
	// debugging (tracebroker interp run -v).
	Step func(pc int, regs *[11]uint64)
}

var zeroEnv Env

// reservation is a ring-buffer record handed out by ringbuf_reserve and
// not yet submitted or discarded.
type reservation struct {
	ring *Map
	seq  uint64
	buf  []byte
	live bool
}

const maxReservations = 64

// frame is what a bpf-to-bpf call saves.
type frame struct {
	ret   int
	saved [4]uint64 // r6-r9
}

// machine is the state of one run. Programs keep a pool of them so a run
// allocates nothing.
type machine struct {
	regs     [16]uint64 // r0-r10; 16 so that an index masked with 15 needs no bounds check
	prog     *Program
	env      *Env
	ctx      []byte
	stack    []byte // MaxFrames*StackSize, frame 0 at the bottom
	stackTop uint64 // bytes of stack the live frames own
	depth    int
	frames   [MaxFrames]frame
	resv     []reservation
	pc       int // of the helper being called, for its errors

	// The region access found last: its base address, length, memory
	// and whether it is writable.
	cBase uint64
	cLen  uint64
	cData []byte
	cW    bool

	seg      int
	executed uint64
}

func newMachine(p *Program) any {
	return &machine{
		prog:  p,
		stack: aligned8(MaxFrames * StackSize),
		resv:  make([]reservation, 0, maxReservations),
	}
}

// Run runs the program once. ctx is the program's context: r1 points to
// it (r1 is 0 when it is empty) and, when Options.Args is 2 or more, r2
// holds its length, as the conformance suite expects. env may be nil.
func (p *Program) Run(env *Env, ctx []byte) (uint64, error) {
	m := p.pool.Get().(*machine)
	if env == nil {
		env = &zeroEnv
	}
	m.env, m.ctx = env, ctx
	r0, err := m.run()
	m.env, m.ctx, m.cData, m.cLen = nil, nil, nil, 0
	p.pool.Put(m)
	return r0, err
}

func (m *machine) run() (uint64, error) {
	exec := m.exec
	if m.env.Step != nil {
		exec = m.execTraced
	}
	r0, pc, err := exec()
	leaked := 0
	for i := range m.resv {
		if m.resv[i].live {
			m.resv[i].ring.ringFinish(m.resv[i].seq, false, 0)
			leaked++
		}
		m.resv[i] = reservation{}
	}
	m.resv = m.resv[:0]
	if err != nil {
		return 0, &RunError{PC: pc, Insn: m.prog.text(pc), Err: err}
	}
	if leaked > 0 {
		// The kernel's verifier proves every reservation is released;
		// ours does not track references, so this is checked at exit.
		return 0, &RunError{PC: pc, Insn: m.prog.text(pc), Err: fmt.Errorf("%d ring-buffer reservations neither submitted nor discarded (discarded now)", leaked)}
	}
	return r0, nil
}

// exec is the interpreter loop. The verifier has proved every register
// index is at most 10, every jump target is an instruction start inside
// the program and the last instruction of every function is exit or ja,
// so the loop checks only what depends on values: memory, the budget and
// the call depth.
//
// execTraced (vm_trace.go) is the same loop with a call to Env.Step
// before every instruction, generated from this one so the common case
// pays nothing for tracing.
//
// Instructions are counted per straight-line segment: the count is
// brought up to date only when control transfers, which is exact and
// costs nothing on the instructions in between.
func (m *machine) exec() (r0 uint64, epc int, err error) {
	p := m.prog
	insns := p.insns
	base := unsafe.Pointer(unsafe.SliceData(insns))
	budget := p.budget
	r := &m.regs
	*r = [16]uint64{}
	if len(m.ctx) > 0 {
		r[1] = ctxBase
	}
	if p.args >= 2 {
		r[2] = uint64(len(m.ctx))
	}
	m.depth = 0
	m.stackTop = StackSize
	m.uncache()
	clear(m.stack[:StackSize])
	r[10] = stackBase + StackSize

	pc := 0
	m.seg, m.executed = 0, 0
	var addr uint64
	var size uint64
	var write bool

	for {
		// The verifier proved pc is always an instruction of the program.
		in := (*insn)(unsafe.Add(base, uintptr(pc)*unsafe.Sizeof(insn{})))
		//trace:step
		switch in.op {
		case opAdd64K:
			r[in.dst&15] += uint64(in.imm)
		case opAdd64X:
			r[in.dst&15] += r[in.src&15]
		case opSub64K:
			r[in.dst&15] -= uint64(in.imm)
		case opSub64X:
			r[in.dst&15] -= r[in.src&15]
		case opMul64K:
			r[in.dst&15] *= uint64(in.imm)
		case opMul64X:
			r[in.dst&15] *= r[in.src&15]
		case opDiv64K:
			r[in.dst&15] /= uint64(in.imm) // the verifier refuses a zero immediate
		case opDiv64X:
			if s := r[in.src&15]; s != 0 {
				r[in.dst&15] /= s
			} else {
				r[in.dst&15] = 0
			}
		case opSdiv64K:
			r[in.dst&15] = uint64(int64(r[in.dst&15]) / in.imm)
		case opSdiv64X:
			if s := int64(r[in.src&15]); s != 0 {
				r[in.dst&15] = uint64(int64(r[in.dst&15]) / s)
			} else {
				r[in.dst&15] = 0
			}
		case opOr64K:
			r[in.dst&15] |= uint64(in.imm)
		case opOr64X:
			r[in.dst&15] |= r[in.src&15]
		case opAnd64K:
			r[in.dst&15] &= uint64(in.imm)
		case opAnd64X:
			r[in.dst&15] &= r[in.src&15]
		case opLsh64K:
			r[in.dst&15] <<= uint64(in.imm) & 63
		case opLsh64X:
			r[in.dst&15] <<= r[in.src&15] & 63
		case opRsh64K:
			r[in.dst&15] >>= uint64(in.imm) & 63
		case opRsh64X:
			r[in.dst&15] >>= r[in.src&15] & 63
		case opNeg64:
			r[in.dst&15] = -r[in.dst&15]
		case opMod64K:
			r[in.dst&15] %= uint64(in.imm)
		case opMod64X:
			if s := r[in.src&15]; s != 0 {
				r[in.dst&15] %= s
			}
		case opSmod64K:
			r[in.dst&15] = uint64(int64(r[in.dst&15]) % in.imm)
		case opSmod64X:
			if s := int64(r[in.src&15]); s != 0 {
				r[in.dst&15] = uint64(int64(r[in.dst&15]) % s)
			}
		case opXor64K:
			r[in.dst&15] ^= uint64(in.imm)
		case opXor64X:
			r[in.dst&15] ^= r[in.src&15]
		case opMov64K:
			r[in.dst&15] = uint64(in.imm)
		case opMov64X:
			r[in.dst&15] = r[in.src&15]
		case opMovsx8_64:
			r[in.dst&15] = uint64(int64(int8(r[in.src&15])))
		case opMovsx16_64:
			r[in.dst&15] = uint64(int64(int16(r[in.src&15])))
		case opMovsx32_64:
			r[in.dst&15] = uint64(int64(int32(r[in.src&15])))
		case opArsh64K:
			r[in.dst&15] = uint64(int64(r[in.dst&15]) >> (uint64(in.imm) & 63))
		case opArsh64X:
			r[in.dst&15] = uint64(int64(r[in.dst&15]) >> (r[in.src&15] & 63))

		case opAdd32K:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) + uint32(in.imm))
		case opAdd32X:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) + uint32(r[in.src&15]))
		case opSub32K:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) - uint32(in.imm))
		case opSub32X:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) - uint32(r[in.src&15]))
		case opMul32K:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) * uint32(in.imm))
		case opMul32X:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) * uint32(r[in.src&15]))
		case opDiv32K:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) / uint32(in.imm))
		case opDiv32X:
			if s := uint32(r[in.src&15]); s != 0 {
				r[in.dst&15] = uint64(uint32(r[in.dst&15]) / s)
			} else {
				r[in.dst&15] = 0
			}
		case opSdiv32K:
			r[in.dst&15] = uint64(uint32(int32(r[in.dst&15]) / int32(in.imm)))
		case opSdiv32X:
			if s := int32(r[in.src&15]); s != 0 {
				r[in.dst&15] = uint64(uint32(int32(r[in.dst&15]) / s))
			} else {
				r[in.dst&15] = 0
			}
		case opOr32K:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) | uint32(in.imm))
		case opOr32X:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) | uint32(r[in.src&15]))
		case opAnd32K:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) & uint32(in.imm))
		case opAnd32X:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) & uint32(r[in.src&15]))
		case opLsh32K:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) << (uint32(in.imm) & 31))
		case opLsh32X:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) << (uint32(r[in.src&15]) & 31))
		case opRsh32K:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) >> (uint32(in.imm) & 31))
		case opRsh32X:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) >> (uint32(r[in.src&15]) & 31))
		case opNeg32:
			r[in.dst&15] = uint64(-uint32(r[in.dst&15]))
		case opMod32K:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) % uint32(in.imm))
		case opMod32X:
			// By zero the low half stays and the high half is cleared
			// (RFC 9669 §4.1), like every other 32-bit result.
			if s := uint32(r[in.src&15]); s != 0 {
				r[in.dst&15] = uint64(uint32(r[in.dst&15]) % s)
			} else {
				r[in.dst&15] = uint64(uint32(r[in.dst&15]))
			}
		case opSmod32K:
			r[in.dst&15] = uint64(uint32(int32(r[in.dst&15]) % int32(in.imm)))
		case opSmod32X:
			if s := int32(r[in.src&15]); s != 0 {
				r[in.dst&15] = uint64(uint32(int32(r[in.dst&15]) % s))
			} else {
				r[in.dst&15] = uint64(uint32(r[in.dst&15]))
			}
		case opXor32K:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) ^ uint32(in.imm))
		case opXor32X:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]) ^ uint32(r[in.src&15]))
		case opMov32K:
			r[in.dst&15] = uint64(uint32(in.imm))
		case opMov32X:
			r[in.dst&15] = uint64(uint32(r[in.src&15]))
		case opMovsx8_32:
			r[in.dst&15] = uint64(uint32(int32(int8(r[in.src&15]))))
		case opMovsx16_32:
			r[in.dst&15] = uint64(uint32(int32(int16(r[in.src&15]))))
		case opArsh32K:
			r[in.dst&15] = uint64(uint32(int32(r[in.dst&15]) >> (uint32(in.imm) & 31)))
		case opArsh32X:
			r[in.dst&15] = uint64(uint32(int32(r[in.dst&15]) >> (uint32(r[in.src&15]) & 31)))

		case opLe16:
			r[in.dst&15] = uint64(uint16(r[in.dst&15]))
		case opLe32:
			r[in.dst&15] = uint64(uint32(r[in.dst&15]))
		case opLe64:
		case opBswap16:
			r[in.dst&15] = uint64(bits.ReverseBytes16(uint16(r[in.dst&15])))
		case opBswap32:
			r[in.dst&15] = uint64(bits.ReverseBytes32(uint32(r[in.dst&15])))
		case opBswap64:
			r[in.dst&15] = bits.ReverseBytes64(r[in.dst&15])

		case opJa:
			goto jump
		case opJeqK:
			if r[in.dst&15] == uint64(in.imm) {
				goto jump
			}
		case opJeqX:
			if r[in.dst&15] == r[in.src&15] {
				goto jump
			}
		case opJgtK:
			if r[in.dst&15] > uint64(in.imm) {
				goto jump
			}
		case opJgtX:
			if r[in.dst&15] > r[in.src&15] {
				goto jump
			}
		case opJgeK:
			if r[in.dst&15] >= uint64(in.imm) {
				goto jump
			}
		case opJgeX:
			if r[in.dst&15] >= r[in.src&15] {
				goto jump
			}
		case opJsetK:
			if r[in.dst&15]&uint64(in.imm) != 0 {
				goto jump
			}
		case opJsetX:
			if r[in.dst&15]&r[in.src&15] != 0 {
				goto jump
			}
		case opJneK:
			if r[in.dst&15] != uint64(in.imm) {
				goto jump
			}
		case opJneX:
			if r[in.dst&15] != r[in.src&15] {
				goto jump
			}
		case opJsgtK:
			if int64(r[in.dst&15]) > in.imm {
				goto jump
			}
		case opJsgtX:
			if int64(r[in.dst&15]) > int64(r[in.src&15]) {
				goto jump
			}
		case opJsgeK:
			if int64(r[in.dst&15]) >= in.imm {
				goto jump
			}
		case opJsgeX:
			if int64(r[in.dst&15]) >= int64(r[in.src&15]) {
				goto jump
			}
		case opJltK:
			if r[in.dst&15] < uint64(in.imm) {
				goto jump
			}
		case opJltX:
			if r[in.dst&15] < r[in.src&15] {
				goto jump
			}
		case opJleK:
			if r[in.dst&15] <= uint64(in.imm) {
				goto jump
			}
		case opJleX:
			if r[in.dst&15] <= r[in.src&15] {
				goto jump
			}
		case opJsltK:
			if int64(r[in.dst&15]) < in.imm {
				goto jump
			}
		case opJsltX:
			if int64(r[in.dst&15]) < int64(r[in.src&15]) {
				goto jump
			}
		case opJsleK:
			if int64(r[in.dst&15]) <= in.imm {
				goto jump
			}
		case opJsleX:
			if int64(r[in.dst&15]) <= int64(r[in.src&15]) {
				goto jump
			}

		case opJeq32K:
			if uint32(r[in.dst&15]) == uint32(in.imm) {
				goto jump
			}
		case opJeq32X:
			if uint32(r[in.dst&15]) == uint32(r[in.src&15]) {
				goto jump
			}
		case opJgt32K:
			if uint32(r[in.dst&15]) > uint32(in.imm) {
				goto jump
			}
		case opJgt32X:
			if uint32(r[in.dst&15]) > uint32(r[in.src&15]) {
				goto jump
			}
		case opJge32K:
			if uint32(r[in.dst&15]) >= uint32(in.imm) {
				goto jump
			}
		case opJge32X:
			if uint32(r[in.dst&15]) >= uint32(r[in.src&15]) {
				goto jump
			}
		case opJset32K:
			if uint32(r[in.dst&15])&uint32(in.imm) != 0 {
				goto jump
			}
		case opJset32X:
			if uint32(r[in.dst&15])&uint32(r[in.src&15]) != 0 {
				goto jump
			}
		case opJne32K:
			if uint32(r[in.dst&15]) != uint32(in.imm) {
				goto jump
			}
		case opJne32X:
			if uint32(r[in.dst&15]) != uint32(r[in.src&15]) {
				goto jump
			}
		case opJsgt32K:
			if int32(r[in.dst&15]) > int32(in.imm) {
				goto jump
			}
		case opJsgt32X:
			if int32(r[in.dst&15]) > int32(r[in.src&15]) {
				goto jump
			}
		case opJsge32K:
			if int32(r[in.dst&15]) >= int32(in.imm) {
				goto jump
			}
		case opJsge32X:
			if int32(r[in.dst&15]) >= int32(r[in.src&15]) {
				goto jump
			}
		case opJlt32K:
			if uint32(r[in.dst&15]) < uint32(in.imm) {
				goto jump
			}
		case opJlt32X:
			if uint32(r[in.dst&15]) < uint32(r[in.src&15]) {
				goto jump
			}
		case opJle32K:
			if uint32(r[in.dst&15]) <= uint32(in.imm) {
				goto jump
			}
		case opJle32X:
			if uint32(r[in.dst&15]) <= uint32(r[in.src&15]) {
				goto jump
			}
		case opJslt32K:
			if int32(r[in.dst&15]) < int32(in.imm) {
				goto jump
			}
		case opJslt32X:
			if int32(r[in.dst&15]) < int32(r[in.src&15]) {
				goto jump
			}
		case opJsle32K:
			if int32(r[in.dst&15]) <= int32(in.imm) {
				goto jump
			}
		case opJsle32X:
			if int32(r[in.dst&15]) <= int32(r[in.src&15]) {
				goto jump
			}

		case opCall:
			m.pc = pc
			v, err := p.helpers[in.imm](Call{m}, r[1], r[2], r[3], r[4], r[5])
			if err != nil {
				return 0, pc, err
			}
			r[0] = v
		case opCallx:
			id := r[in.dst&15]
			if id >= uint64(len(p.helpers)) || p.helpers[id] == nil {
				return 0, pc, fmt.Errorf("callx: helper %d is not in the helper table", id)
			}
			m.pc = pc
			v, err := p.helpers[id](Call{m}, r[1], r[2], r[3], r[4], r[5])
			if err != nil {
				return 0, pc, err
			}
			r[0] = v
		case opCallLocal:
			if m.depth+1 >= MaxFrames {
				return 0, pc, fmt.Errorf("call depth exceeds %d frames", MaxFrames)
			}
			f := &m.frames[m.depth]
			f.ret = pc + 1
			f.saved = [4]uint64{r[6], r[7], r[8], r[9]}
			m.depth++
			clear(m.stack[m.stackTop : m.stackTop+StackSize])
			m.stackTop += StackSize
			m.uncache()
			r[10] = stackBase + m.stackTop
			goto jump
		case opExit:
			if m.depth == 0 {
				return r[0], pc, nil
			}
			m.executed += uint64(pc - m.seg + 1)
			m.depth--
			f := &m.frames[m.depth]
			r[6], r[7], r[8], r[9] = f.saved[0], f.saved[1], f.saved[2], f.saved[3]
			m.stackTop -= StackSize
			m.uncache()
			r[10] = stackBase + m.stackTop
			pc, m.seg = f.ret, f.ret
			continue

		case opLdImm64:
			r[in.dst&15] = uint64(in.imm)
			pc += 2
			continue

		case opLdxB:
			addr, size, write = r[in.src&15]+uint64(in.off), 1, false
			var b []byte
			if off := addr - m.cBase; off < m.cLen && 1 <= m.cLen-off {
				b = m.cData[off : off+1]
			} else if b = m.mem(addr, 1, false); b == nil {
				goto fault
			}
			r[in.dst&15] = uint64(b[0])
		case opLdxH:
			addr, size, write = r[in.src&15]+uint64(in.off), 2, false
			var b []byte
			if off := addr - m.cBase; off < m.cLen && 2 <= m.cLen-off {
				b = m.cData[off : off+2]
			} else if b = m.mem(addr, 2, false); b == nil {
				goto fault
			}
			r[in.dst&15] = uint64(binary.LittleEndian.Uint16(b))
		case opLdxW:
			addr, size, write = r[in.src&15]+uint64(in.off), 4, false
			var b []byte
			if off := addr - m.cBase; off < m.cLen && 4 <= m.cLen-off {
				b = m.cData[off : off+4]
			} else if b = m.mem(addr, 4, false); b == nil {
				goto fault
			}
			r[in.dst&15] = uint64(binary.LittleEndian.Uint32(b))
		case opLdxDW:
			addr, size, write = r[in.src&15]+uint64(in.off), 8, false
			var b []byte
			if off := addr - m.cBase; off < m.cLen && 8 <= m.cLen-off {
				b = m.cData[off : off+8]
			} else if b = m.mem(addr, 8, false); b == nil {
				goto fault
			}
			r[in.dst&15] = binary.LittleEndian.Uint64(b)
		case opLdxSB:
			addr, size, write = r[in.src&15]+uint64(in.off), 1, false
			var b []byte
			if off := addr - m.cBase; off < m.cLen && 1 <= m.cLen-off {
				b = m.cData[off : off+1]
			} else if b = m.mem(addr, 1, false); b == nil {
				goto fault
			}
			r[in.dst&15] = uint64(int64(int8(b[0])))
		case opLdxSH:
			addr, size, write = r[in.src&15]+uint64(in.off), 2, false
			var b []byte
			if off := addr - m.cBase; off < m.cLen && 2 <= m.cLen-off {
				b = m.cData[off : off+2]
			} else if b = m.mem(addr, 2, false); b == nil {
				goto fault
			}
			r[in.dst&15] = uint64(int64(int16(binary.LittleEndian.Uint16(b))))
		case opLdxSW:
			addr, size, write = r[in.src&15]+uint64(in.off), 4, false
			var b []byte
			if off := addr - m.cBase; off < m.cLen && 4 <= m.cLen-off {
				b = m.cData[off : off+4]
			} else if b = m.mem(addr, 4, false); b == nil {
				goto fault
			}
			r[in.dst&15] = uint64(int64(int32(binary.LittleEndian.Uint32(b))))

		case opStB, opStxB:
			addr, size, write = r[in.dst&15]+uint64(in.off), 1, true
			var b []byte
			if off := addr - m.cBase; off < m.cLen && 1 <= m.cLen-off && m.cW {
				b = m.cData[off : off+1]
			} else if b = m.mem(addr, 1, true); b == nil {
				goto fault
			}
			b[0] = byte(m.storeValue(in))
		case opStH, opStxH:
			addr, size, write = r[in.dst&15]+uint64(in.off), 2, true
			var b []byte
			if off := addr - m.cBase; off < m.cLen && 2 <= m.cLen-off && m.cW {
				b = m.cData[off : off+2]
			} else if b = m.mem(addr, 2, true); b == nil {
				goto fault
			}
			binary.LittleEndian.PutUint16(b, uint16(m.storeValue(in)))
		case opStW, opStxW:
			addr, size, write = r[in.dst&15]+uint64(in.off), 4, true
			var b []byte
			if off := addr - m.cBase; off < m.cLen && 4 <= m.cLen-off && m.cW {
				b = m.cData[off : off+4]
			} else if b = m.mem(addr, 4, true); b == nil {
				goto fault
			}
			binary.LittleEndian.PutUint32(b, uint32(m.storeValue(in)))
		case opStDW, opStxDW:
			addr, size, write = r[in.dst&15]+uint64(in.off), 8, true
			var b []byte
			if off := addr - m.cBase; off < m.cLen && 8 <= m.cLen-off && m.cW {
				b = m.cData[off : off+8]
			} else if b = m.mem(addr, 8, true); b == nil {
				goto fault
			}
			binary.LittleEndian.PutUint64(b, m.storeValue(in))

		case opAtomicAdd32, opAtomicOr32, opAtomicAnd32, opAtomicXor32,
			opAtomicFetchAdd32, opAtomicFetchOr32, opAtomicFetchAnd32, opAtomicFetchXor32,
			opAtomicXchg32, opAtomicCmpxchg32:
			addr, size, write = r[in.dst&15]+uint64(in.off), 4, true
			var b []byte
			if off := addr - m.cBase; off < m.cLen && 4 <= m.cLen-off && m.cW {
				b = m.cData[off : off+4]
			} else if b = m.mem(addr, 4, true); b == nil {
				goto fault
			}
			ptr := (*uint32)(unsafe.Pointer(&b[0]))
			if uintptr(unsafe.Pointer(ptr))%4 != 0 {
				return 0, pc, fmt.Errorf("misaligned atomic access at %#x", addr)
			}
			atomic32(in, ptr, r)
		case opAtomicAdd64, opAtomicOr64, opAtomicAnd64, opAtomicXor64,
			opAtomicFetchAdd64, opAtomicFetchOr64, opAtomicFetchAnd64, opAtomicFetchXor64,
			opAtomicXchg64, opAtomicCmpxchg64:
			addr, size, write = r[in.dst&15]+uint64(in.off), 8, true
			var b []byte
			if off := addr - m.cBase; off < m.cLen && 8 <= m.cLen-off && m.cW {
				b = m.cData[off : off+8]
			} else if b = m.mem(addr, 8, true); b == nil {
				goto fault
			}
			ptr := (*uint64)(unsafe.Pointer(&b[0]))
			if uintptr(unsafe.Pointer(ptr))%8 != 0 {
				return 0, pc, fmt.Errorf("misaligned atomic access at %#x", addr)
			}
			atomic64(in, ptr, r)

		default:
			// opInvalid and opLdImm64Tail: the verifier makes both
			// unreachable; stop rather than guess.
			return 0, pc, fmt.Errorf("invalid instruction")
		}
		pc++
		continue

	jump:
		m.executed += uint64(pc - m.seg + 1)
		if m.executed > budget {
			return 0, pc, fmt.Errorf("%w (%d instructions)", ErrBudget, budget)
		}
		pc = int(in.off)
		m.seg = pc
		continue

	fault:
		return 0, pc, m.fault(addr, size, write)
	}
}

// storeValue is the value a store writes: the register for STX, the
// sign-extended immediate for ST.
func (m *machine) storeValue(in *insn) uint64 {
	if in.op >= opStxB {
		return m.regs[in.src&15]
	}
	return uint64(in.imm)
}

func atomic32(in *insn, p *uint32, r *[16]uint64) {
	s := &r[in.src&15]
	v := uint32(*s)
	switch in.op {
	case opAtomicAdd32:
		atomic.AddUint32(p, v)
	case opAtomicOr32:
		atomic.OrUint32(p, v)
	case opAtomicAnd32:
		atomic.AndUint32(p, v)
	case opAtomicXor32:
		xor32(p, v)
	case opAtomicFetchAdd32:
		*s = uint64(atomic.AddUint32(p, v) - v)
	case opAtomicFetchOr32:
		*s = uint64(atomic.OrUint32(p, v))
	case opAtomicFetchAnd32:
		*s = uint64(atomic.AndUint32(p, v))
	case opAtomicFetchXor32:
		*s = uint64(xor32(p, v))
	case opAtomicXchg32:
		*s = uint64(atomic.SwapUint32(p, v))
	case opAtomicCmpxchg32:
		old := uint32(r[0])
		for {
			cur := atomic.LoadUint32(p)
			if cur != old {
				r[0] = uint64(cur)
				return
			}
			if atomic.CompareAndSwapUint32(p, cur, v) {
				r[0] = uint64(cur)
				return
			}
		}
	}
}

func atomic64(in *insn, p *uint64, r *[16]uint64) {
	s := &r[in.src&15]
	v := *s
	switch in.op {
	case opAtomicAdd64:
		atomic.AddUint64(p, v)
	case opAtomicOr64:
		atomic.OrUint64(p, v)
	case opAtomicAnd64:
		atomic.AndUint64(p, v)
	case opAtomicXor64:
		xor64(p, v)
	case opAtomicFetchAdd64:
		*s = atomic.AddUint64(p, v) - v
	case opAtomicFetchOr64:
		*s = atomic.OrUint64(p, v)
	case opAtomicFetchAnd64:
		*s = atomic.AndUint64(p, v)
	case opAtomicFetchXor64:
		*s = xor64(p, v)
	case opAtomicXchg64:
		*s = atomic.SwapUint64(p, v)
	case opAtomicCmpxchg64:
		old := r[0]
		for {
			cur := atomic.LoadUint64(p)
			if cur != old {
				r[0] = cur
				return
			}
			if atomic.CompareAndSwapUint64(p, cur, v) {
				r[0] = cur
				return
			}
		}
	}
}

func xor32(p *uint32, v uint32) uint32 {
	for {
		old := atomic.LoadUint32(p)
		if atomic.CompareAndSwapUint32(p, old, old^v) {
			return old
		}
	}
}

func xor64(p *uint64, v uint64) uint64 {
	for {
		old := atomic.LoadUint64(p)
		if atomic.CompareAndSwapUint64(p, old, old^v) {
			return old
		}
	}
}
