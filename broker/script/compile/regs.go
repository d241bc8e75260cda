package compile

import (
	"fmt"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// ctx and reg("NAME"), as bpftrace 0.17 has them: ctx is the probe's
// context pointer, typed as bpftrace types it (struct pt_regs * in
// kprobes and uprobes, struct bpf_perf_event_data * in interval and
// profile probes), and reg() reads one register from a kprobe's,
// uprobe's or perf event's pt_regs, at the offset bpftrace's x86-64
// register table gives.
//
// Reading through ctx reads kernel memory the collector does not copy,
// and its value is a kernel address: read:kernel through the daemon, and
// refused in interpreter mode. reg() reads the context itself, which the
// kprobe and uprobe collectors copy whole.

// x86Regs are bpftrace's x86-64 register names in struct pt_regs's order:
// reg(NAME) is at 8 times its index.
var x86Regs = []string{
	"r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8",
	"ax", "cx", "dx", "si", "di", "orig_ax", "ip", "cs", "flags", "sp", "ss",
}

// regOffset is NAME's offset in struct pt_regs, -1 for no register.
func regOffset(name string) int {
	for i, r := range x86Regs {
		if r == name {
			return 8 * i
		}
	}
	return -1
}

// regContext reports whether a probe's context starts with struct
// pt_regs: kprobes, uprobes (and USDT), and perf events, whose
// bpf_perf_event_data begins with the registers.
func regContext(k program.ProbeKind) bool {
	switch k {
	case program.Uprobe, program.Uretprobe, program.Interval, program.Profile:
		return true
	}
	return isKprobe(k)
}

// regCall types reg("NAME").
func (c *compiler) regCall(in *instance, e *syntax.Call) ty {
	if !regContext(in.kind) {
		c.errorf(e.From, e.To, "reg can not be used with \"%s\" probes", in.kind)
	}
	if len(e.Args) != 1 {
		c.errorf(e.From, e.To, "reg() requires one argument (%d provided)", len(e.Args))
		return tUint
	}
	lit, ok := unparen(e.Args[0]).(*syntax.StrLit)
	if !ok {
		c.errorf(e.From, e.To, "reg() expects a string literal (%s provided)", typeClass(c.expr(in, e.Args[0])))
		return tUint
	}
	in.types[e.Args[0]] = tStr(len(lit.Value) + 1)
	off := regOffset(lit.Value)
	if off < 0 {
		c.errorf(e.From, e.To, "'%s' is not a valid register on this architecture (x86_64)", lit.Value)
		return tUint
	}
	c.setConst(e, uint64(off))
	t := tUint
	if in.kind == program.Uprobe || in.kind == program.Uretprobe {
		// A uprobe's registers are the traced process's: used as an
		// address (reg("sp") + 8), they point into it.
		t.user = true
	}
	return t
}

// regValue loads the register from the context.
func (g *gen) regValue(e *syntax.Call) {
	g.noteKernelRegs(e, "reg()")
	g.emit(asm.LoadMem(rAcc, rCtx, int16(g.c.consts[e]), asm.DWord))
}

// ctxIdent types ctx.
func (c *compiler) ctxIdent(in *instance, e *syntax.Ident) ty {
	var name string
	switch {
	case in.kind == program.Tracepoint:
		c.errorf(e.From, e.To, "ctx cannot be used in tracepoint probes: use args instead")
		return ty{}
	case in.kind == program.Interval || in.kind == program.Profile:
		name = "struct bpf_perf_event_data"
	case regContext(in.kind):
		name = "struct pt_regs"
	default:
		c.errorf(e.From, e.To, "invalid program type")
		return ty{}
	}
	t, err := c.lookupRecord(name)
	if err != nil {
		// Without the kernel's types, ctx is still a pointer that a
		// cast to a script's struct reads through.
		return ty{k: kInt, ptr: true, depth: 1}
	}
	return structPtr(t, 1)
}

// ctxValue loads the context pointer: a kernel address.
func (g *gen) ctxValue(e *syntax.Ident) {
	g.noteKernelAddr(e, "ctx is the probe's context's kernel address")
	if g.kernelOnly == "" {
		g.kernelOnly = fmt.Sprintf("%s (the kernel's context pointer: interpreter mode has only the collector's copy)", g.text(e, "ctx"))
	}
	g.emit(asm.Mov.Reg(rAcc, rCtx))
}

// ctxMember is the context offset of a field reached from ctx by -> and .
// alone (ctx->regs.sp): such a field is loaded from the context directly,
// as bpftrace loads it, which the verifier rewrites into the kernel's own
// context layout (a perf event's registers are behind a pointer), where
// probe_read_kernel would read the kernel's struct as it lies.
func (g *gen) ctxMember(e syntax.Expr) (int, bool) {
	off := 0
	for {
		switch x := unparen(e).(type) {
		case *syntax.FieldAccess:
			mi, ok := g.in.members[x]
			if !ok {
				return 0, false
			}
			off += mi.off
			e = x.X
			if id, ok := unparen(e).(*syntax.Ident); ok {
				return off, id.Name == "ctx"
			}
			if g.typeOf(e).k != kRecord {
				return 0, false // through a pointer
			}
		default:
			return 0, false
		}
	}
}

// ctxMemberRead loads ctx->FIELD: an integer of 1, 2, 4 or 8 bytes at
// its offset in the context, sign-extended as its type says.
func (g *gen) ctxMemberRead(e syntax.Expr, off int) {
	g.noteKernelRegs(e, g.text(e, "ctx's field"))
	mi := g.in.members[e]
	size := map[int]asm.Size{1: asm.Byte, 2: asm.Half, 4: asm.Word, 8: asm.DWord}[mi.size]
	if mi.signed && mi.size < 8 && !g.typeOf(e).ptr {
		g.loadSX(rAcc, rCtx, int16(off), size)
		return
	}
	g.emit(asm.LoadMem(rAcc, rCtx, int16(off), size))
}

// noteKernelRegs classes a read of the registers a kprobe or a perf event
// interrupted: the kernel's own when it ran (its stack pointer, its
// instruction pointer), which reveal where the kernel lies. A uprobe's
// are the traced process's.
func (g *gen) noteKernelRegs(site syntax.Expr, what string) {
	if g.in.kind == program.Uprobe || g.in.kind == program.Uretprobe {
		return
	}
	g.noteKernelAddr(site, what+" reads the registers the probe interrupted, which hold kernel addresses")
}
