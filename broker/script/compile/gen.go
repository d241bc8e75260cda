package compile

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/bpf/btftp"
	"github.com/tracebroker/tracebroker/bpf/usdt"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/gatekeeper/abi"
)

// Register roles. R6-R9 survive helper calls, so expression values live
// there; R1-R5 are only loaded right before a call.
const (
	rCtx = asm.R9 // the probe's context, saved at entry
	rAcc = asm.R6 // the value of the integer expression just evaluated
	rTmp = asm.R7 // second operand, scratch
	rAux = asm.R8 // scratch
)

// maxStack is the BPF stack limit per program.
const maxStack = 512

type gen struct {
	c  *compiler
	in *instance
	// ctxStrings are the context's pointers whose strings the program
	// reads (captureString).
	ctxStrings []program.CtxString
	// kstack and ustack: the program takes the event's stacks.
	kstack, ustack bool
	insns          asm.Instructions
	// pending labels the next emitted instruction; a second label placed
	// before it becomes an alias resolved at the end.
	pending string
	alias   map[string]string
	nlabel  int
	sp      int
	vars    map[string]int16
	stackOK bool
	loops   bool // a while loop was generated
	// end is the epilogue's label; exit() jumps there.
	end string
	// ret labels the final exit, after the default verdict: a policy's
	// return jumps there with its verdict in r0.
	ret string
	// done is set after exit(): what follows in the block is dead code,
	// which the verifier rejects, so it is not generated.
	done bool
	// rd are the reads generated, classified at the end (reads.go).
	rd readNotes
	// kernelOnly names the first construct only the kernel can run.
	kernelOnly string
	// kreads are the reads through kernel pointers interpreter mode's
	// collector must make too; task: the probe takes curtask
	// (kreads.go).
	kreads []pendingKRead
	task   bool
	kenv   *kenv
	// site is the expression being generated: where a failed helper
	// call is reported (helpererr.go).
	site syntax.Node
}

func (c *compiler) generate(in *instance) *program.Probe {
	g := &gen{c: c, in: in, alias: map[string]string{}, vars: map[string]int16{}, stackOK: true}
	g.emit(asm.Mov.Reg(rCtx, asm.R1))
	// Scratch variables get a slot for the whole probe, zeroed so that a
	// variable set on only one branch still reads as initialised memory.
	names := make([]string, 0, len(in.vars))
	for n := range in.vars {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := in.vars[n]
		off := g.alloc(t.storage())
		g.zero(off, t.storage())
		g.vars[n] = off
	}
	g.end = g.newLabel()
	if in.kind != program.Begin && in.kind != program.End && in.kind != program.Gatekeeper {
		// Once the trace is over the probes do nothing, so that the final
		// map dump is exact while the kernel takes its time to detach, and
		// a storm of events ends with the trace. END runs after the stop.
		g.emit(asm.LoadMapValue(rAcc, 0, program.ConfigStopped).WithReference(program.ConfigMap))
		g.emit(asm.LoadMem(rAcc, rAcc, 0, asm.DWord))
		g.emit(asm.JNE.Imm(rAcc, 0, g.end))
	}
	g.hidePID()
	if in.probe.Pred != nil {
		g.intExpr(in.probe.Pred)
		g.emit(asm.JEq.Imm(rAcc, 0, g.end))
	}
	if in.kind == program.Gatekeeper {
		g.ret = g.newLabel()
	}
	g.block(in.probe.Body)
	g.label(g.end)
	g.emit(asm.Mov.Imm(asm.R0, 0))
	if g.ret != "" {
		g.label(g.ret)
	}
	g.emit(asm.Return())
	if !g.stackOK {
		s := in.spec
		c.errorf(s.From, s.To, "the program for %s needs more than the %d bytes of BPF stack; use fewer or shorter strings per statement", in.name, maxStack)
	}
	for i, ins := range g.insns {
		if ref := ins.Reference(); ref != "" {
			if to, ok := g.resolve(ref); ok {
				g.insns[i] = ins.WithReference(to)
			}
		}
	}
	p := &program.Probe{Kind: in.kind, Name: in.name, Category: in.cat, Event: in.event, PeriodNs: in.period, Freq: in.freq, Sample: in.sample, Path: in.path, Offset: in.offset, Funcs: in.funcs, Offsets: in.offsets, Binary: in.binary, Loops: g.loops, Insns: g.insns,
		CtxLen: ctxLen(in), CtxStrings: g.ctxStrings, KStack: g.kstack, UStack: g.ustack, KernelOnly: g.kernelOnly}
	p.Block = in.block
	if in.usdt != nil {
		p.RefCtrOffset = in.usdt.RefCtr
	}
	g.finishKReads(p)
	g.finishReads(p)
	return p
}

func (g *gen) resolve(l string) (string, bool) {
	to, ok := g.alias[l]
	if !ok {
		return "", false
	}
	for {
		next, ok := g.alias[to]
		if !ok {
			return to, true
		}
		to = next
	}
}

func (g *gen) emit(ins asm.Instruction) {
	g.budget()
	if g.pending != "" {
		ins = ins.WithSymbol(g.pending)
		g.pending = ""
	}
	g.insns = append(g.insns, ins)
}

func (g *gen) newLabel() string {
	g.nlabel++
	return fmt.Sprintf("L%d", g.nlabel)
}

func (g *gen) label(l string) {
	if g.pending != "" {
		g.alias[l] = g.pending
		return
	}
	g.pending = l
}

// alloc reserves n bytes (rounded up to 8) of stack and returns their offset
// from R10.
func (g *gen) alloc(n int) int16 {
	g.sp += align8(n)
	if g.sp > maxStack {
		g.stackOK = false
		g.sp = maxStack // keep offsets valid; the program is rejected anyway
	}
	return int16(-g.sp)
}

func (g *gen) zero(off int16, n int) {
	for i := 0; i < n; i += 8 {
		g.emit(storeImm64(asm.R10, off+int16(i), 0))
	}
}

func (g *gen) copyStack(dst, src int16, n int) {
	if dst == src {
		return
	}
	for i := 0; i < n; i += 8 {
		g.emit(asm.LoadMem(rTmp, asm.R10, src+int16(i), asm.DWord))
		g.emit(asm.StoreMem(asm.R10, dst+int16(i), rTmp, asm.DWord))
	}
}

// copyFrom copies n bytes from the memory at reg to the stack. A tail
// of fewer than 8 bytes (a 4-byte struct's map value) is copied in
// smaller loads: the verifier refuses a read past the value.
func (g *gen) copyFrom(dst int16, reg asm.Register, n int) {
	i := 0
	for ; i+8 <= n; i += 8 {
		g.emit(asm.LoadMem(rTmp, reg, int16(i), asm.DWord))
		g.emit(asm.StoreMem(asm.R10, dst+int16(i), rTmp, asm.DWord))
	}
	for _, w := range []struct {
		n    int
		size asm.Size
	}{{4, asm.Word}, {2, asm.Half}, {1, asm.Byte}} {
		if n-i >= w.n {
			g.emit(asm.LoadMem(rTmp, reg, int16(i), w.size))
			g.emit(asm.StoreMem(asm.R10, dst+int16(i), rTmp, w.size))
			i += w.n
		}
	}
}

func (g *gen) loadConst(r asm.Register, v int64) {
	if v >= -1<<31 && v < 1<<31 {
		g.emit(asm.Mov.Imm(r, int32(v)))
	} else {
		g.emit(asm.LoadImm(r, v, asm.DWord))
	}
}

func (g *gen) stackPtr(r asm.Register, off int16) {
	g.emit(asm.Mov.Reg(r, asm.R10))
	g.emit(asm.Add.Imm(r, int32(off)))
}

func (g *gen) call(fn asm.BuiltinFunc) {
	g.emit(fn.Call())
	g.checkHelper(fn)
}

func (g *gen) typeOf(e syntax.Expr) ty { return g.in.types[e] }

func (g *gen) block(b *syntax.Block) {
	for _, s := range b.Stmts {
		if g.done {
			return
		}
		g.stmt(s)
	}
}

func (g *gen) stmt(s syntax.Stmt) {
	defer g.at(s)()
	mark := g.sp
	defer func() { g.sp = mark }()
	switch s := s.(type) {
	case *syntax.Block:
		g.block(s)
	case *syntax.ExprStmt:
		if call, ok := s.X.(*syntax.Call); ok && g.typeOf(call).k == kVoid {
			g.voidCall(call)
			return
		}
		if t, ok := unparen(s.X).(*syntax.Ternary); ok && g.typeOf(t).k == kVoid {
			elseL, endL := g.newLabel(), g.newLabel()
			g.intExpr(t.Cond)
			g.emit(asm.JEq.Imm(rAcc, 0, elseL))
			g.stmt(&syntax.ExprStmt{X: t.Then})
			g.emit(asm.Ja.Label(endL))
			g.label(elseL)
			g.stmt(&syntax.ExprStmt{X: t.Else})
			g.label(endL)
			return
		}
		g.value(s.X)
	case *syntax.AssignStmt:
		g.assign(s)
	case *syntax.IfStmt:
		elseL, endL := g.newLabel(), g.newLabel()
		g.intExpr(s.Cond)
		g.emit(asm.JEq.Imm(rAcc, 0, elseL))
		before := g.kfork()
		g.block(s.Then)
		thenDone := g.done
		g.done = false
		then := g.kenv
		g.kenv = before
		if s.Else != nil {
			if !thenDone {
				g.emit(asm.Ja.Label(endL))
			}
			g.label(elseL)
			g.stmt(s.Else)
			g.done = g.done && thenDone
			g.label(endL)
		} else {
			g.label(elseL)
		}
		g.kjoin(then)
	case *syntax.WhileStmt:
		// The kernel's verifier must prove the loop ends (bounded
		// loops); bpf reports a loop it cannot as such.
		top, end := g.newLabel(), g.newLabel()
		g.loops = true
		g.kloop(s)
		g.label(top)
		g.intExpr(s.Cond)
		g.emit(asm.JEq.Imm(rAcc, 0, end))
		g.block(s.Body)
		if !g.done {
			g.emit(asm.Ja.Label(top))
		}
		g.done = false // the body may never run
		g.label(end)
	case *syntax.ReturnStmt:
		g.genReturn(s)
	case *syntax.UnrollStmt:
		n, _ := unrollCount(s) // checked
		for i := 0; i < n && !g.done; i++ {
			g.block(s.Body)
		}
	}
}

// value evaluates an expression statement for its effect; the result is
// dropped.
func (g *gen) value(e syntax.Expr) {
	if t := g.typeOf(e); t.k == kRecord {
		return // a struct is not read, only its fields are
	} else if t.k == kStr || t.k == kTuple || t.k == kBlob {
		g.memExpr(e)
		return
	}
	g.intExpr(e)
}

// materialize writes e, widened to dst's type, into the stack at off.
func (g *gen) materialize(e syntax.Expr, want ty, off int16) {
	if g.typeOf(e).k == kInt {
		g.intExpr(e)
		g.emit(asm.StoreMem(asm.R10, off, rAcc, asm.DWord))
		return
	}
	g.memInto(e, off, want.storage())
}

func unparen(e syntax.Expr) syntax.Expr {
	for {
		p, ok := e.(*syntax.Paren)
		if !ok {
			return e
		}
		e = p.X
	}
}

func (g *gen) assign(s *syntax.AssignStmt) {
	switch lhs := s.Lhs.(type) {
	case *syntax.VarExpr:
		g.noteAssign(lhs.Name, s)
		defer g.kassign(lhs.Name, s)
		slot := g.vars[lhs.Name]
		t := g.in.vars[lhs.Name]
		if s.Op != syntax.ASSIGN {
			g.compound(s)
			g.emit(asm.StoreMem(asm.R10, slot, rAcc, asm.DWord))
			return
		}
		g.materialize(s.Rhs, t, slot)
	case *syntax.MapExpr:
		m := g.c.maps[lhs.Name]
		if call, ok := s.Rhs.(*syntax.Call); ok && s.Op == syntax.ASSIGN && isAgg(call.Name) {
			g.aggregate(m, lhs, call)
			return
		}
		var val int16
		if s.Op != syntax.ASSIGN {
			g.compound(s)
			val = g.alloc(8)
			g.emit(asm.StoreMem(asm.R10, val, rAcc, asm.DWord))
		} else {
			val = g.alloc(m.val.storage())
			g.materialize(s.Rhs, m.val, val)
		}
		key := g.key(m, lhs.Keys, false)
		g.mapUpdate(m, key, val)
	}
}

// compound computes LHS op RHS into rAcc for `x op= y`.
func (g *gen) compound(s *syntax.AssignStmt) {
	lt, rt := g.typeOf(s.Lhs), g.typeOf(s.Rhs)
	g.intExpr(s.Lhs)
	tmp := g.alloc(8)
	g.emit(asm.StoreMem(asm.R10, tmp, rAcc, asm.DWord))
	g.intExpr(s.Rhs)
	g.emit(asm.Mov.Reg(rTmp, rAcc))
	g.emit(asm.LoadMem(rAcc, asm.R10, tmp, asm.DWord))
	// p += n and p -= n step by the pointer's target size, as p + n.
	if step := lt.step(); !rt.ptr && (s.Op == syntax.ADD || s.Op == syntax.SUB) && step > 1 {
		g.emit(asm.Mul.Imm(rTmp, int32(step)))
	}
	g.arithOp(s.Op, lt.signed && rt.signed)
}

func (g *gen) mapPtr(r asm.Register, name string) {
	g.emit(asm.LoadMapPtr(r, 0).WithReference(name))
}

// mapUpdate stores the value at val under the key at key, counting a
// failure (a full map) in the error map instead of dropping it silently.
func (g *gen) mapUpdate(m *mapInfo, key, val int16) {
	g.mapPtr(asm.R1, bpfMapName(m.id))
	g.stackPtr(asm.R2, key)
	g.stackPtr(asm.R3, val)
	g.emit(asm.Mov.Imm(asm.R4, 0))
	g.call(asm.FnMapUpdateElem)
	g.countError(m.id)
}

// countError adds one to entry i of the error map when the helper call
// just made (r0) failed. The test is on r0's low 32 bits: before 6.4 the
// map operations a JIT calls directly (bpf_map_update_elem inlined to
// htab_map_update_elem) return int, and 6.1 hands -E2BIG to the program
// as 0xfffffff9, zero-extended; every helper's error fits in 32 bits.
func (g *gen) countError(i int) {
	ok := g.newLabel()
	g.emit(asm.JSGE.Imm32(asm.R0, 0, ok))
	slot := g.alloc(8)
	g.emit(asm.StoreImm(asm.R10, slot, int64(i), asm.Word))
	g.mapPtr(asm.R1, program.ErrorsMap)
	g.stackPtr(asm.R2, slot)
	g.call(asm.FnMapLookupElem)
	g.emit(asm.JEq.Imm(asm.R0, 0, ok))
	g.emit(asm.LoadMem(rTmp, asm.R0, 0, asm.DWord))
	g.emit(asm.Add.Imm(rTmp, 1))
	g.emit(asm.StoreMem(asm.R0, 0, rTmp, asm.DWord))
	g.label(ok)
}

// key lays out a map key on the stack. With bucket set, 8 more bytes follow
// for the hist/lhist bucket index, which the caller fills.
func (g *gen) key(m *mapInfo, keys []syntax.Expr, bucket bool) int16 {
	off := g.alloc(m.keySize())
	if len(m.keys) == 0 {
		g.emit(storeImm64(asm.R10, off, 0))
		return off
	}
	pos := off
	for i, k := range keys {
		g.materialize(k, m.keys[i], pos)
		pos += int16(m.keys[i].storage())
	}
	return off
}

func (g *gen) bucketOffset(m *mapInfo, key int16) int16 {
	return key + int16(m.keySize()-8)
}

// aggregate updates a per-CPU aggregation slot: lookup, then either modify
// in place or insert the initial value.
func (g *gen) aggregate(m *mapInfo, lhs *syntax.MapExpr, call *syntax.Call) {
	agg := m.val.agg
	// The argument first: evaluating it may call helpers.
	v := g.alloc(8)
	if agg != program.Count {
		g.intExpr(call.Args[0])
		g.emit(asm.StoreMem(asm.R10, v, rAcc, asm.DWord))
	}
	key := g.key(m, lhs.Keys, agg == program.Hist || agg == program.Lhist)
	switch agg {
	case program.Hist:
		g.emit(asm.LoadMem(rAcc, asm.R10, v, asm.DWord))
		g.log2Bucket()
		g.emit(asm.StoreMem(asm.R10, g.bucketOffset(m, key), rAcc, asm.DWord))
	case program.Lhist:
		g.emit(asm.LoadMem(rAcc, asm.R10, v, asm.DWord))
		g.linearBucket(m.val.lmin, m.val.lmax, m.val.lstep)
		g.emit(asm.StoreMem(asm.R10, g.bucketOffset(m, key), rAcc, asm.DWord))
	}
	insert, done := g.newLabel(), g.newLabel()
	g.mapPtr(asm.R1, bpfMapName(m.id))
	g.stackPtr(asm.R2, key)
	g.call(asm.FnMapLookupElem)
	g.emit(asm.JEq.Imm(asm.R0, 0, insert))
	if agg != program.Count {
		g.emit(asm.LoadMem(rAcc, asm.R10, v, asm.DWord))
	}
	switch agg {
	case program.Count, program.Hist, program.Lhist:
		g.emit(asm.LoadMem(rTmp, asm.R0, 0, asm.DWord))
		g.emit(asm.Add.Imm(rTmp, 1))
		g.emit(asm.StoreMem(asm.R0, 0, rTmp, asm.DWord))
	case program.Sum:
		g.emit(asm.LoadMem(rTmp, asm.R0, 0, asm.DWord))
		g.emit(asm.Add.Reg(rTmp, rAcc))
		g.emit(asm.StoreMem(asm.R0, 0, rTmp, asm.DWord))
	case program.Avg, program.Stats:
		g.emit(asm.LoadMem(rTmp, asm.R0, 0, asm.DWord))
		g.emit(asm.Add.Reg(rTmp, rAcc))
		g.emit(asm.StoreMem(asm.R0, 0, rTmp, asm.DWord))
		g.emit(asm.LoadMem(rTmp, asm.R0, 8, asm.DWord))
		g.emit(asm.Add.Imm(rTmp, 1))
		g.emit(asm.StoreMem(asm.R0, 8, rTmp, asm.DWord))
	case program.Min, program.Max:
		set := g.newLabel()
		g.emit(asm.LoadMem(rTmp, asm.R0, 8, asm.DWord))
		g.emit(asm.JEq.Imm(rTmp, 0, set))
		g.emit(asm.LoadMem(rTmp, asm.R0, 0, asm.DWord))
		op := map[bool]map[program.Agg]asm.JumpOp{
			true:  {program.Min: asm.JSGE, program.Max: asm.JSLE},
			false: {program.Min: asm.JGE, program.Max: asm.JLE},
		}[m.val.signed][agg]
		g.emit(op.Reg(rAcc, rTmp, done))
		g.label(set)
		g.emit(asm.StoreMem(asm.R0, 0, rAcc, asm.DWord))
		g.emit(storeImm64(asm.R0, 8, 1))
	}
	g.emit(asm.Ja.Label(done))
	g.label(insert)
	if agg == program.Max {
		// bpftrace 0.17 compares a new key's value with 0: max() of
		// negative values never creates the key.
		if m.val.signed {
			g.emit(asm.LoadMem(rAcc, asm.R10, v, asm.DWord))
			g.emit(asm.JSLT.Imm(rAcc, 0, done))
		}
	}
	val := g.alloc(16)
	switch agg {
	case program.Count, program.Hist, program.Lhist:
		g.emit(storeImm64(asm.R10, val, 1))
	case program.Sum:
		g.emit(asm.LoadMem(rAcc, asm.R10, v, asm.DWord))
		g.emit(asm.StoreMem(asm.R10, val, rAcc, asm.DWord))
	default: // {value or total, set or count = 1}
		g.emit(asm.LoadMem(rAcc, asm.R10, v, asm.DWord))
		g.emit(asm.StoreMem(asm.R10, val, rAcc, asm.DWord))
		g.emit(storeImm64(asm.R10, val+8, 1))
	}
	g.mapUpdate(m, key, val)
	g.label(done)
}

// log2Bucket turns the value in rAcc into its hist() bucket index.
// bpftrace 0.17 shifts by at most 31 bits in total, so every value from
// 2^31 up lands in the [2G, 4G) bucket; tracebroker does the same so that
// its histograms are bpftrace's.
func (g *gen) log2Bucket() {
	neg, zero, done := g.newLabel(), g.newLabel(), g.newLabel()
	g.emit(asm.JSLT.Imm(rAcc, 0, neg))
	g.emit(asm.JEq.Imm(rAcc, 0, zero))
	g.emit(asm.Mov.Imm(rTmp, 2))
	for _, s := range []int32{16, 8, 4, 2, 1} {
		skip := g.newLabel()
		g.emit(asm.Mov.Reg(rAux, rAcc))
		g.emit(asm.RSh.Imm(rAux, s))
		g.emit(asm.JEq.Imm(rAux, 0, skip))
		g.emit(asm.Mov.Reg(rAcc, rAux))
		g.emit(asm.Add.Imm(rTmp, s))
		g.label(skip)
	}
	g.emit(asm.Mov.Reg(rAcc, rTmp))
	g.emit(asm.Ja.Label(done))
	g.label(neg)
	g.emit(asm.Mov.Imm(rAcc, 0))
	g.emit(asm.Ja.Label(done))
	g.label(zero)
	g.emit(asm.Mov.Imm(rAcc, 1))
	g.label(done)
}

// linearBucket turns the value in rAcc into its lhist() bucket index.
func (g *gen) linearBucket(lo, hi, step int64) {
	below, above, done := g.newLabel(), g.newLabel(), g.newLabel()
	g.loadConst(rTmp, lo)
	g.emit(asm.JSLT.Reg(rAcc, rTmp, below))
	g.loadConst(rTmp, hi)
	g.emit(asm.JSGE.Reg(rAcc, rTmp, above))
	g.loadConst(rTmp, lo)
	g.emit(asm.Sub.Reg(rAcc, rTmp))
	g.loadConst(rTmp, step)
	g.emit(asm.Div.Reg(rAcc, rTmp))
	g.emit(asm.Add.Imm(rAcc, 1))
	g.emit(asm.Ja.Label(done))
	g.label(below)
	g.emit(asm.Mov.Imm(rAcc, 0))
	g.emit(asm.Ja.Label(done))
	g.label(above)
	g.loadConst(rAcc, (hi-lo)/step+1)
	g.label(done)
}

// event writes a fixed-size record of u64 words to the ring buffer.
func (g *gen) event(words ...uint64) {
	off := g.alloc(8 * len(words))
	for i, w := range words {
		g.loadConst(rTmp, int64(w))
		g.emit(asm.StoreMem(asm.R10, off+int16(8*i), rTmp, asm.DWord))
	}
	g.output(off, 8*len(words))
}

func (g *gen) output(off int16, size int) {
	g.c.emits = true
	g.mapPtr(asm.R1, program.EventsMap)
	g.stackPtr(asm.R2, off)
	g.emit(asm.Mov.Imm(asm.R3, int32(size)))
	g.emit(asm.Mov.Imm(asm.R4, 0))
	g.call(asm.FnRingbufOutput)
	g.countError(len(g.c.mapOrder))
}

func (g *gen) voidCall(e *syntax.Call) {
	switch e.Name {
	case "printf":
		g.printf(e)
	case "debugf":
		g.debugf(e)
	case "cat", "system":
		f := g.printf(e)
		f.Action = e.Name
		if e.Name == "cat" {
			// The broker reads the file, with its privileges: any
			// file of the host, as root reads it.
			g.rd.sites = append(g.rd.sites, pendingRead{site: e, class: program.ReadsKernel,
				what: "cat() reads any file of the host, with the broker's privileges"})
		}
	case "exit":
		// The trace is stopped at once, in the kernel: no probe body
		// starts after exit(), however late the exit event is read.
		g.emit(asm.LoadMapValue(rTmp, 0, program.ConfigStopped).WithReference(program.ConfigMap))
		g.emit(asm.StoreImm(rTmp, 0, 1, asm.Word)) // the u64's low half: it reads as non-zero
		// Its record is written once the probes are stopped: it needs
		// no room of its own in the ring buffer (sizeEvents).
		emits := g.c.emits
		g.event(program.EventExit)
		g.c.emits = emits
		g.emit(asm.Ja.Label(g.end))
		g.done = true
	case "print":
		if call := g.c.prints[printKey{g.in, e}]; call != nil {
			f := g.printf(call)
			f.Value = printedValue(g.typeOf(e.Args[0]), f)
			return
		}
		m := g.c.maps[e.Args[0].(*syntax.MapExpr).Name]
		top, div := int64(0), int64(1)
		if len(e.Args) > 1 {
			top, _ = constInt(e.Args[1])
		}
		if len(e.Args) > 2 {
			div, _ = constInt(e.Args[2])
		}
		g.event(program.EventPrint, uint64(m.id), uint64(top), uint64(div))
	case "clear":
		m := g.c.maps[e.Args[0].(*syntax.MapExpr).Name]
		g.event(program.EventClear, uint64(m.id))
	case "delete":
		me := e.Args[0].(*syntax.MapExpr)
		keys := me.Keys
		if len(e.Args) == 2 {
			keys = []syntax.Expr{e.Args[1]}
		}
		m := g.c.maps[me.Name]
		key := g.key(m, keys, false)
		defer g.at(e)()
		g.mapPtr(asm.R1, bpfMapName(m.id))
		g.stackPtr(asm.R2, key)
		g.call(asm.FnMapDeleteElem)
	default:
		g.voidBuiltin(e)
	}
}

func (g *gen) printf(e *syntax.Call) *program.Format {
	f := &program.Format{Fmt: e.Args[0].(*syntax.StrLit).Value}
	size := 16
	for _, a := range e.Args[1:] {
		t := g.typeOf(a)
		f.Args = append(f.Args, program.Arg{Type: t.runtime(), Offset: size})
		size += t.storage()
	}
	f.Size = size
	id := len(g.c.formats)
	g.c.formats = append(g.c.formats, f)
	// Each argument is written straight into the record; its temporaries
	// are released before the next one is evaluated.
	rec := g.alloc(size)
	g.loadConst(rTmp, int64(program.EventPrintf))
	g.emit(asm.StoreMem(asm.R10, rec, rTmp, asm.DWord))
	g.loadConst(rTmp, int64(id))
	g.emit(asm.StoreMem(asm.R10, rec+8, rTmp, asm.DWord))
	for i, a := range e.Args[1:] {
		mark := g.sp
		g.materialize(a, g.typeOf(a), rec+int16(f.Args[i].Offset))
		g.sp = mark
	}
	g.output(rec, size)
	return f
}

// intExpr evaluates an integer expression into rAcc.
func (g *gen) intExpr(e syntax.Expr) {
	defer g.at(e)()
	switch e := e.(type) {
	case *syntax.IntLit:
		g.loadConst(rAcc, int64(e.Value))
	case *syntax.Paren:
		g.intExpr(e.X)
	case *syntax.Ident:
		if e.Name == "curtask" {
			g.curtaskValue(e)
			return
		}
		if e.Name == "ctx" {
			g.ctxValue(e)
			return
		}
		if g.enumValue(e) {
			return
		}
		if n := usdtArgIndex(g.in, e.Name); n >= 0 {
			g.usdtArg(e, n)
			return
		}
		if n := sargIndex(e.Name); n >= 0 {
			g.sarg(e, n)
			return
		}
		g.builtin(e.Name)
	case *syntax.Cast:
		g.intExpr(e.X)
		if _, _, ok := castType(e.Type); !ok {
			return // (struct S *)x: the same address, typed
		}
		// Integers are 64 bits in a register: a narrower cast keeps the
		// low bits and extends them by the cast type's sign.
		bits, signed, _ := castType(e.Type)
		g.extend(bits/8, signed)
	case *syntax.VarExpr:
		g.emit(asm.LoadMem(rAcc, asm.R10, g.vars[e.Name], asm.DWord))
	case *syntax.MapExpr:
		g.mapRead(e)
	case *syntax.FieldAccess:
		if g.isTupleAccess(e) {
			g.tupleIntExpr(e)
			return
		}
		if g.isMember(e) {
			g.memberRead(e)
			return
		}
		f := findField(g.in.fields, e.Field)
		if btfContext(g.in.kind) {
			g.btfArg(f, false)
			return
		}
		size := map[int]asm.Size{1: asm.Byte, 2: asm.Half, 4: asm.Word, 8: asm.DWord}[f.Size]
		if f.Kind == FieldPtr {
			size = asm.DWord
		}
		if f.Signed && size != asm.DWord {
			g.loadSX(rAcc, rCtx, int16(f.Offset), size)
		} else {
			g.emit(asm.LoadMem(rAcc, rCtx, int16(f.Offset), size))
		}
	case *syntax.Unary:
		g.intExpr(e.X)
		switch e.Op {
		case syntax.SUB:
			g.emit(asm.Neg.Imm(rAcc, 0))
		case syntax.BITNOT:
			g.emit(asm.Xor.Imm(rAcc, -1))
		case syntax.NOT:
			g.boolOf(asm.JEq.Imm(rAcc, 0, ""))
		case syntax.MUL:
			p := g.typeOf(e.X)
			if p.user {
				g.captureString(e)
			} else {
				g.noteKRead(e, e.X, 0, p.elemSize(), false, g.kfunc())
			}
			g.noteRead("*", e, e.X, nil, p.user)
			g.load(p)
		}
	case *syntax.Index:
		if g.isMember(e) {
			g.memberRead(e)
			return
		}
		p := g.typeOf(e.X)
		switch n, ok := constInt(e.I); {
		case p.user:
			g.captureString(e)
		case ok && n >= 0 && n < program.MaxKReadOffset/8:
			g.noteKRead(e, e.X, int(n)*p.elemSize(), p.elemSize(), false, g.kfunc())
		case g.kfunc() && g.kernelOnly == "":
			g.kernelOnly = g.text(e, "[]") + " (with an index that is not a constant)"
		}
		g.noteRead("[]", e, e.X, e.I, p.user)
		g.intExpr(e.X)
		tmp := g.alloc(8)
		g.emit(asm.StoreMem(asm.R10, tmp, rAcc, asm.DWord))
		g.intExpr(e.I)
		g.emit(asm.Mul.Imm(rAcc, int32(p.elemSize())))
		g.emit(asm.LoadMem(rTmp, asm.R10, tmp, asm.DWord))
		g.emit(asm.Add.Reg(rAcc, rTmp))
		g.load(p)
	case *syntax.Binary:
		g.binary(e)
	case *syntax.Ternary:
		elseL, endL := g.newLabel(), g.newLabel()
		g.intExpr(e.Cond)
		g.emit(asm.JEq.Imm(rAcc, 0, elseL))
		g.intExpr(e.Then)
		g.emit(asm.Ja.Label(endL))
		g.label(elseL)
		g.intExpr(e.Else)
		g.label(endL)
	case *syntax.Call:
		if !g.policyIntCall(e) {
			g.intCall(e)
		}
	case *syntax.IncDec:
		// x++ inside an expression: store x+1, then yield the new value,
		// or the old one (new-1) for the postfix form.
		g.assign(g.c.incdecs[e])
		g.intExpr(e.X)
		if e.Post {
			// A pointer stepped by its target's size (compound).
			step := int32(g.typeOf(e.X).step())
			if e.Op == syntax.INC {
				g.emit(asm.Sub.Imm(rAcc, step))
			} else {
				g.emit(asm.Add.Imm(rAcc, step))
			}
		}
	default:
		panic(fmt.Sprintf("compile: intExpr of %T", e))
	}
}

// load replaces the pointer p in rAcc by what it points to, read with
// probe_read from user or kernel memory (0 if the read faults).
func (g *gen) load(p ty) {
	n := p.elemSize()
	slot := g.alloc(8)
	g.emit(storeImm64(asm.R10, slot, 0))
	g.stackPtr(asm.R1, slot)
	g.emit(asm.Mov.Imm(asm.R2, int32(n)))
	g.emit(asm.Mov.Reg(asm.R3, rAcc))
	if p.user {
		g.call(asm.FnProbeReadUser)
	} else {
		g.call(asm.FnProbeReadKernel)
	}
	size := map[int]asm.Size{1: asm.Byte, 2: asm.Half, 4: asm.Word, 8: asm.DWord}[n]
	if p.elem().signed && n < 8 {
		g.loadSX(rAcc, asm.R10, slot, size)
	} else {
		g.emit(asm.LoadMem(rAcc, asm.R10, slot, size))
	}
}

// boolOf sets rAcc to 1 when the conditional jump j (with an empty label)
// would be taken, else 0.
func (g *gen) boolOf(j asm.Instruction) {
	yes, done := g.newLabel(), g.newLabel()
	g.emit(j.WithReference(yes))
	g.emit(asm.Mov.Imm(rAcc, 0))
	g.emit(asm.Ja.Label(done))
	g.label(yes)
	g.emit(asm.Mov.Imm(rAcc, 1))
	g.label(done)
}

func (g *gen) builtin(name string) {
	if v, ok := abi.VerdictNames[name]; ok && g.in.kind == program.Gatekeeper {
		g.loadConst(rAcc, int64(v))
		return
	}
	switch name {
	case "pid", "tid":
		g.call(asm.FnGetCurrentPidTgid)
		if name == "pid" {
			g.emit(asm.RSh.Imm(asm.R0, 32))
			g.emit(asm.Mov.Reg(rAcc, asm.R0))
		} else {
			g.emit(asm.Mov.Reg32(rAcc, asm.R0))
		}
	case "uid", "gid":
		g.call(asm.FnGetCurrentUidGid)
		if name == "gid" {
			g.emit(asm.RSh.Imm(asm.R0, 32))
			g.emit(asm.Mov.Reg(rAcc, asm.R0))
		} else {
			g.emit(asm.Mov.Reg32(rAcc, asm.R0))
		}
	case "cpu":
		g.call(asm.FnGetSmpProcessorId)
		g.emit(asm.Mov.Reg(rAcc, asm.R0))
	case "rand":
		g.call(asm.FnGetPrandomU32)
		g.emit(asm.Mov.Reg32(rAcc, asm.R0))
	case "numaid":
		g.call(asm.FnGetNumaNodeId)
		g.emit(asm.Mov.Reg32(rAcc, asm.R0))
	case "nsecs":
		g.call(asm.FnKtimeGetNs)
		g.emit(asm.Mov.Reg(rAcc, asm.R0))
	case "elapsed":
		g.call(asm.FnKtimeGetNs)
		g.emit(asm.Mov.Reg(rAux, asm.R0))
		g.config(program.ConfigStartNs)
		g.emit(asm.Sub.Reg(rAux, rAcc))
		g.emit(asm.Mov.Reg(rAcc, rAux))
	case "cpid":
		g.config(program.ConfigCpid)
	case "cgroup":
		g.call(asm.FnGetCurrentCgroupId)
		g.emit(asm.Mov.Reg(rAcc, asm.R0))
	default:
		if g.in.kind == program.TpBTF {
			g.btfSlot(name)
			return
		}
		if g.in.kind == program.Fexit && name == "retval" {
			g.btfArg(findField(g.in.fields, retvalField), false)
			return
		}
		if g.in.kind == program.RawTracepoint {
			// A raw tracepoint's context is its arguments, u64 each.
			n, _ := strconv.Atoi(name[3:])
			g.emit(asm.LoadMem(rAcc, rCtx, int16(8*n), asm.DWord))
			return
		}
		// arg0-arg5 and retval: the registers of the probed function's
		// entry or return, from the pt_regs a uprobe gets as context.
		if off, ok := ptRegs[name]; ok {
			g.emit(asm.LoadMem(rAcc, rCtx, off, asm.DWord))
		}
	}
}

// ptRegs gives where x86-64's struct pt_regs keeps the System V calling
// convention's argument registers and the return value.
var ptRegs = map[string]int16{
	"arg0":   112, // rdi
	"arg1":   104, // rsi
	"arg2":   96,  // rdx
	"arg3":   88,  // rcx
	"arg4":   72,  // r8
	"arg5":   64,  // r9
	"retval": 80,  // rax
}

// config loads a u64 from the config map into rAcc.
func (g *gen) config(off int16) {
	g.emit(asm.LoadMapValue(rAcc, 0, uint32(off)).WithReference(program.ConfigMap))
	g.emit(asm.LoadMem(rAcc, rAcc, 0, asm.DWord))
}

// mapRead loads an integer map value (0 when the key is absent).
func (g *gen) mapRead(e *syntax.MapExpr) {
	m := g.c.maps[e.Name]
	key := g.key(m, e.Keys, false)
	g.mapPtr(asm.R1, bpfMapName(m.id))
	g.stackPtr(asm.R2, key)
	g.call(asm.FnMapLookupElem)
	g.lookupError()
	g.emit(asm.Mov.Imm(rAcc, 0))
	done := g.newLabel()
	g.emit(asm.JEq.Imm(asm.R0, 0, done))
	g.emit(asm.LoadMem(rAcc, asm.R0, 0, asm.DWord))
	if m.val.agg == program.Avg {
		g.emit(asm.LoadMem(rTmp, asm.R0, 8, asm.DWord))
		g.emit(asm.JEq.Imm(rTmp, 0, done))
		if m.val.signed {
			g.sdiv()
		} else {
			g.emit(asm.Div.Reg(rAcc, rTmp))
		}
	}
	g.label(done)
}

// binaryOf finishes e once its left operand is in rAcc (chains.go walks
// them); short and done are the labels of && and ||.
func (g *gen) binaryOf(e *syntax.Binary, short, done string) {
	a, b := g.typeOf(e.X), g.typeOf(e.Y)
	switch e.Op {
	case syntax.LAND, syntax.LOR:
		if e.Op == syntax.LAND {
			g.emit(asm.JEq.Imm(rAcc, 0, short))
		} else {
			g.emit(asm.JNE.Imm(rAcc, 0, short))
		}
		g.intExpr(e.Y)
		g.boolOf(asm.JNE.Imm(rAcc, 0, ""))
		g.emit(asm.Ja.Label(done))
		g.label(short)
		if e.Op == syntax.LAND {
			g.emit(asm.Mov.Imm(rAcc, 0))
		} else {
			g.emit(asm.Mov.Imm(rAcc, 1))
		}
		g.label(done)
		return
	}
	tmp := g.alloc(8)
	g.emit(asm.StoreMem(asm.R10, tmp, rAcc, asm.DWord))
	g.intExpr(e.Y)
	g.emit(asm.Mov.Reg(rTmp, rAcc))
	g.emit(asm.LoadMem(rAcc, asm.R10, tmp, asm.DWord))
	signed := a.signed && b.signed
	if j, ok := compareOp(e.Op, signed); ok {
		g.boolOf(j.Reg(rAcc, rTmp, ""))
		return
	}
	// p + n and p - n step by the pointer's target size.
	if step := g.typeOf(e).step(); step > 1 {
		if a.ptr && !b.ptr {
			g.emit(asm.Mul.Imm(rTmp, int32(step)))
		} else if b.ptr && !a.ptr {
			g.emit(asm.Mul.Imm(rAcc, int32(step)))
		}
	}
	g.arithOp(e.Op, signed)
}

func compareOp(op syntax.Token, signed bool) (asm.JumpOp, bool) {
	switch op {
	case syntax.EQL:
		return asm.JEq, true
	case syntax.NEQ:
		return asm.JNE, true
	case syntax.LSS:
		return map[bool]asm.JumpOp{true: asm.JSLT, false: asm.JLT}[signed], true
	case syntax.LEQ:
		return map[bool]asm.JumpOp{true: asm.JSLE, false: asm.JLE}[signed], true
	case syntax.GTR:
		return map[bool]asm.JumpOp{true: asm.JSGT, false: asm.JGT}[signed], true
	case syntax.GEQ:
		return map[bool]asm.JumpOp{true: asm.JSGE, false: asm.JGE}[signed], true
	}
	return 0, false
}

// arithOp computes rAcc op rTmp into rAcc. Division, modulo and right
// shift are unsigned, as in bpftrace 0.17.
func (g *gen) arithOp(op syntax.Token, signed bool) {
	alu := map[syntax.Token]asm.ALUOp{
		syntax.ADD: asm.Add, syntax.SUB: asm.Sub, syntax.MUL: asm.Mul, syntax.QUO: asm.Div,
		syntax.REM: asm.Mod, syntax.AND: asm.And, syntax.OR: asm.Or, syntax.XOR: asm.Xor,
		syntax.SHL: asm.LSh, syntax.SHR: asm.RSh,
	}[op]
	g.emit(alu.Reg(rAcc, rTmp))
}

// strEqual compares two strings up to the first NUL, bytewise and
// unrolled: the verifier sees straight-line code.
func (g *gen) strEqual(e *syntax.Binary) {
	a := g.memExpr(e.X)
	na := g.typeOf(e.X).storage()
	ne, done := g.newLabel(), g.newLabel()
	if lit, ok := unparen(e.Y).(*syntax.StrLit); ok {
		s := append([]byte(lit.Value), 0)
		if len(s) > na {
			// a NUL-terminated string of na bytes cannot hold lit: the
			// answer is known, and code comparing further would be dead.
			g.emit(asm.Mov.Imm(rAcc, map[bool]int32{true: 1, false: 0}[e.Op == syntax.NEQ]))
			return
		}
		for i := 0; i < len(s); i++ {
			g.emit(asm.LoadMem(rTmp, asm.R10, a+int16(i), asm.Byte))
			g.emit(asm.JNE.Imm(rTmp, int32(s[i]), ne))
		}
	} else {
		b := g.memExpr(e.Y)
		g.compareStrings(a, b, min(na, g.typeOf(e.Y).storage()), ne)
	}
	g.equalityResult(e.Op, ne, done)
}

// equalityResult ends a comparison whose code jumps to ne at a
// difference and falls through when equal: rAcc is == or !='s answer.
func (g *gen) equalityResult(op syntax.Token, ne, done string) {
	eqVal, neVal := int32(1), int32(0)
	if op == syntax.NEQ {
		eqVal, neVal = 0, 1
	}
	g.emit(asm.Mov.Imm(rAcc, eqVal))
	g.emit(asm.Ja.Label(done))
	g.label(ne)
	g.emit(asm.Mov.Imm(rAcc, neVal))
	g.label(done)
}

// isBuffer: t is buf()'s value.
func isBuffer(t ty) bool { return t.k == kBlob && t.blob == program.Buffer }

// sameArrays: a and b are arrays (read through BTF or a script's
// definitions) of one C type.
func sameArrays(a, b ty) bool {
	x, ok1 := a.bt.(*btf.Array)
	y, ok2 := b.bt.(*btf.Array)
	return a.k == kRecord && b.k == kRecord && ok1 && ok2 && a.size == b.size && x.Nelems == y.Nelems &&
		btftp.CType(x.Type) == btftp.CType(y.Type)
}

// bufEqual compares two buffers as bpftrace does: their lengths, then
// their bytes. Past its length a buffer is zeros, so comparing the
// words both hold decides it. Two arrays of one type are compared the
// same way, their copies zero-padded to whole words.
func (g *gen) bufEqual(e *syntax.Binary) {
	a, b := g.memExpr(e.X), g.memExpr(e.Y)
	n := min(g.typeOf(e.X).storage(), g.typeOf(e.Y).storage())
	ne, done := g.newLabel(), g.newLabel()
	for i := 0; i+8 <= n; i += 8 {
		g.emit(asm.LoadMem(rTmp, asm.R10, a+int16(i), asm.DWord))
		g.emit(asm.LoadMem(rAux, asm.R10, b+int16(i), asm.DWord))
		g.emit(asm.JNE.Reg(rTmp, rAux, ne))
	}
	g.equalityResult(e.Op, ne, done)
}

// compareStrings compares the strings on the stack at pa and pb over at
// most n bytes: it jumps to ne at the first difference, and falls
// through (equal) at their common NUL or after n bytes.
func (g *gen) compareStrings(pa, pb int16, n int, ne string) {
	eq := g.newLabel()
	for i := 0; i < n; i++ {
		g.emit(asm.LoadMem(rTmp, asm.R10, pa+int16(i), asm.Byte))
		g.emit(asm.LoadMem(rAux, asm.R10, pb+int16(i), asm.Byte))
		g.emit(asm.JNE.Reg(rTmp, rAux, ne))
		g.emit(asm.JEq.Imm(rTmp, 0, eq))
	}
	g.label(eq)
}

// memExpr evaluates a string or tuple into stack memory and returns its
// offset. The memory holds exactly typeOf(e).storage() bytes, NUL-padded.
// A variable is returned where it lives, without a copy.
func (g *gen) memExpr(e syntax.Expr) int16 {
	switch e := unparen(e).(type) {
	case *syntax.VarExpr:
		return g.vars[e.Name]
	case *syntax.Call:
		if e.Name == "str" && g.typeOf(e.Args[0]).k == kStr {
			return g.memExpr(e.Args[0]) // str() of a string
		}
	}
	n := g.typeOf(e).storage()
	off := g.alloc(n)
	g.memInto(e, off, n)
	return off
}

// memInto writes the string or tuple e into the n bytes at off, NUL-padded
// (truncated if n is smaller than e). Helpers write straight into the
// destination, so a printf record or a map key needs no temporary copy of
// each string: that is what keeps several strings within the 512-byte
// stack.
func (g *gen) memInto(e syntax.Expr, off int16, n int) {
	defer g.at(e)()
	t := g.typeOf(e)
	if fa, ok := unparen(e).(*syntax.FieldAccess); ok && g.isTupleAccess(fa) {
		g.tupleInto(fa, off, n)
		return
	}
	if t.k == kBlob && g.blobInto(e, off, n) {
		return
	}
	if isPton(e) {
		g.ptonInto(e, off, n)
		return
	}
	if t.k == kRecord {
		switch unparen(e).(type) {
		case *syntax.VarExpr, *syntax.MapExpr:
			// Copied whole, as any value of theirs.
		default:
			g.recordInto(e, off, n)
			return
		}
	}
	switch e := e.(type) {
	case *syntax.Paren:
		g.memInto(e.X, off, n)
		return
	case *syntax.StrLit:
		g.literal(e.Value, off, n)
		return
	case *syntax.VarExpr:
		if n > t.storage() {
			g.zero(off+int16(t.storage()), n-t.storage())
		}
		g.copyStack(off, g.vars[e.Name], min(n, t.storage()))
		return
	case *syntax.Ident:
		switch e.Name {
		case "comm":
			g.zero(off, n)
			g.stackPtr(asm.R1, off)
			g.emit(asm.Mov.Imm(asm.R2, int32(min(16, n))))
			g.call(asm.FnGetCurrentComm)
			return
		case "probe":
			if g.in.display != "" {
				g.literal(g.in.display, off, n)
				return
			}
			if g.in.offsets != nil {
				g.attachPointInto(namesProbe, off, n)
				return
			}
			g.literal(g.in.name, off, n)
			return
		case "func":
			if g.in.offsets != nil {
				g.attachPointInto(namesFunc, off, n)
				return
			}
			g.literal(funcName(g.in), off, n)
			return
		}
	case *syntax.MapExpr:
		m := g.c.maps[e.Name]
		g.zero(off, n)
		key := g.key(m, e.Keys, false)
		g.mapPtr(asm.R1, bpfMapName(m.id))
		g.stackPtr(asm.R2, key)
		g.call(asm.FnMapLookupElem)
		g.lookupError()
		done := g.newLabel()
		g.emit(asm.JEq.Imm(asm.R0, 0, done))
		g.copyFrom(off, asm.R0, min(n, t.storage()))
		g.label(done)
		return
	case *syntax.Call: // str()
		src := e.Args[0]
		if g.typeOf(src).k == kStr {
			g.memInto(src, off, n)
			return
		}
		size := int32(min(strLen, n))
		if !g.captureString(src) && !g.typeOf(src).user {
			g.noteKRead(e, src, 0, int(size), true, false)
		}
		g.noteRead("str()", e, src, nil, g.typeOf(src).user)
		g.zero(off, n)
		g.intExpr(src)
		if len(e.Args) == 2 {
			tmp := g.alloc(8)
			g.emit(asm.StoreMem(asm.R10, tmp, rAcc, asm.DWord))
			g.intExpr(e.Args[1])
			// str(p, n) reads at most n characters plus the NUL, bounded
			// by the buffer so the verifier can prove the write safe.
			g.emit(asm.Mov.Reg(asm.R2, rAcc))
			g.emit(asm.Add.Imm(asm.R2, 1))
			within := g.newLabel()
			g.emit(asm.JLE.Imm(asm.R2, size, within))
			g.emit(asm.Mov.Imm(asm.R2, size))
			g.label(within)
			g.emit(asm.LoadMem(asm.R3, asm.R10, tmp, asm.DWord))
		} else {
			g.emit(asm.Mov.Reg(asm.R3, rAcc))
			g.emit(asm.Mov.Imm(asm.R2, size))
		}
		g.stackPtr(asm.R1, off)
		if g.typeOf(src).user {
			g.call(asm.FnProbeReadUserStr)
		} else {
			g.call(asm.FnProbeReadKernelStr)
		}
		return
	case *syntax.FieldAccess:
		if g.isMember(e) {
			g.memberString(e, off, n)
			return
		}
		f := findField(g.in.fields, e.Field)
		g.zero(off, n)
		if f.Kind == FieldCharArray {
			g.readCtx(off, f.Offset, min(f.Size, n))
			return
		}
		// __data_loc: the low 16 bits are the string's offset in the record.
		g.noteContextRead()
		g.stackPtr(asm.R1, off)
		g.emit(asm.Mov.Reg(asm.R3, rCtx))
		g.emit(asm.LoadMem(rTmp, rCtx, int16(f.Offset), asm.Word))
		g.emit(asm.And.Imm(rTmp, 0xffff))
		g.emit(asm.Add.Reg(asm.R3, rTmp))
		g.emit(asm.Mov.Imm(asm.R2, int32(min(strLen, n))))
		g.call(asm.FnProbeReadKernelStr)
		return
	case *syntax.Ternary:
		elseL, endL := g.newLabel(), g.newLabel()
		g.intExpr(e.Cond)
		g.emit(asm.JEq.Imm(rAcc, 0, elseL))
		mark := g.sp
		g.memInto(e.Then, off, n)
		g.sp = mark
		g.emit(asm.Ja.Label(endL))
		g.label(elseL)
		g.memInto(e.Else, off, n)
		g.sp = mark
		g.label(endL)
		return
	case *syntax.Tuple:
		g.tupleElemsInto(e, t, off, n)
		return
	}
	panic(fmt.Sprintf("compile: memInto of %T", e))
}

// readCtx copies n bytes of the probe's context at ctxOff to the stack
// at dst with probe_read_kernel.
func (g *gen) readCtx(dst int16, ctxOff, n int) {
	g.noteContextRead()
	g.stackPtr(asm.R1, dst)
	g.emit(asm.Mov.Reg(asm.R3, rCtx))
	g.emit(asm.Mov.Imm(asm.R2, int32(n)))
	g.emit(asm.Add.Imm(asm.R3, int32(ctxOff)))
	g.call(asm.FnProbeReadKernel)
}

// literal writes s NUL-padded (or truncated) to n bytes at off.
func (g *gen) literal(s string, off int16, n int) {
	buf := make([]byte, align8(n))
	copy(buf, s)
	for i := 0; i+4 <= n; i += 4 {
		w := binary.LittleEndian.Uint32(buf[i:])
		g.emit(asm.StoreImm(asm.R10, off+int16(i), int64(int32(w)), asm.Word))
	}
}

// storeImm64 is `*(u64 *)(dst + off) = imm` (imm sign-extended), which the
// kernel accepts but asm.StoreImm refuses to build.
func storeImm64(dst asm.Register, off int16, imm int32) asm.Instruction {
	return asm.Instruction{OpCode: asm.StoreImmOp(asm.DWord), Dst: dst, Offset: off, Constant: int64(imm)}
}

// captureString notes a read of memory through a pointer taken straight
// from the context — a tracepoint's pointer field, a uprobe's or raw
// tracepoint's argument — by str(), buf(), * or [], or of the strings of
// an array of such pointers (args->argv[i], join): interpreter mode's
// collector copies that memory with the event. Memory reached through
// pointers computed otherwise is not copied, and reading it in the
// interpreter fails as a faulting read does.
func (g *gen) captureString(src syntax.Expr) bool {
	array := false
	for {
		switch e := src.(type) {
		case *syntax.Paren:
			src = e.X
			continue
		case *syntax.Call:
			if e.Name == "uptr" {
				src = e.Args[0]
				continue
			}
		case *syntax.Unary:
			if e.Op == syntax.MUL {
				array = array || g.typeOf(e.X).depth > 1
				src = e.X
				continue
			}
		case *syntax.Index:
			array = array || g.typeOf(e.X).depth > 1
			src = e.X
			continue
		case *syntax.Binary:
			// p + i: the same memory as p[i].
			if e.Op == syntax.ADD && g.typeOf(e.X).ptr {
				array = array || g.typeOf(e.X).depth > 1
				src = e.X
				continue
			}
		}
		break
	}
	off := g.ctxPtrOff(src)
	if off < 0 {
		return false
	}
	cs := program.CtxString{Off: off, User: g.typeOf(src).user, Array: array}
	for i, have := range g.ctxStrings {
		if have.Off == off {
			// One pointer, one capture: an array capture copies the
			// pointer's memory too.
			g.ctxStrings[i].Array = have.Array || array
			return true
		}
	}
	if len(g.ctxStrings) < maxCtxStrings {
		g.ctxStrings = append(g.ctxStrings, cs)
		return true
	}
	return false
}

// ctxPtrOff is the offset in the context of the pointer src is, when
// src is one the collector can read behind (a tracepoint's pointer field,
// a uprobe's or raw tracepoint's argument); -1 if it is not.
func (g *gen) ctxPtrOff(src syntax.Expr) int {
	off := -1
	switch e := src.(type) {
	case *syntax.FieldAccess:
		// Only args->NAME is the context's: a struct's field of the
		// same name, read through BTF, is not.
		if f := findField(g.in.fields, e.Field); f != nil && f.Kind == FieldPtr && onArgs(e) && !g.isMember(e) {
			off = f.Offset
		}
	case *syntax.Ident:
		switch g.in.kind {
		case program.Uprobe, program.Uretprobe, program.Kprobe, program.Kretprobe:
			if n := usdtArgIndex(g.in, e.Name); n >= 0 {
				// A usdt argument is the collector's to copy only when
				// it is a whole register of the context.
				if a := g.in.usdt.Args[n]; a.Kind == usdt.Reg && a.Size == 8 {
					off = int(ptRegOff(a.Reg))
				}
			} else if o, ok := ptRegs[e.Name]; ok {
				off = int(o)
			}
		case program.RawTracepoint, program.TpBTF:
			if n, err := strconv.Atoi(strings.TrimPrefix(e.Name, "arg")); err == nil && strings.HasPrefix(e.Name, "arg") {
				off = 8 * n
			}
		case program.Fexit:
			if f := findField(g.in.fields, retvalField); f != nil && e.Name == "retval" && f.Kind == FieldPtr {
				off = f.Offset
			}
		}
	}
	if off < 0 || off+8 > program.MaxContext {
		return -1
	}
	return off
}

// maxCtxStrings is how many strings a collector captures per event
// (bpf/collector.MaxStrings).
const maxCtxStrings = 8

// ctxLen is how much of a probe's context interpreter mode copies.
func ctxLen(in *instance) int {
	switch in.kind {
	case program.Uprobe, program.Uretprobe, program.Kprobe, program.Kretprobe:
		return program.PtRegsSize
	case program.Interval, program.Profile, program.Software:
		return program.PerfEventDataSize
	case program.RawTracepoint:
		return 8 * 12
	case program.Tracepoint, program.TpBTF, program.Fentry, program.Fexit:
		n := 0
		for _, f := range in.fields {
			if f.Kind == FieldDataLoc {
				return program.MaxContext
			}
			n = max(n, f.Offset+f.Size)
		}
		if btfContext(in.kind) {
			// The arguments are u64s, whatever their types.
			n = align8(n)
		}
		return min(n, program.MaxContext)
	}
	return 0
}
