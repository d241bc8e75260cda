package compile

import (
	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/output"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// debugf(FMT, ...) writes to the kernel's trace buffer with
// bpf_trace_printk, as bpftrace's debugf does: the text appears in
// /sys/kernel/tracing/trace as "bpf_trace_printk: ...", not in the
// trace's output. The buffer is the host's, shared by every tracer, so
// the call is an effect (program.Effects): no token scope grants it, and
// interpreter mode, which has no kernel at the event, refuses it.

// debugfArgs is the most conversions bpf_trace_printk takes.
const debugfArgs = 3

// debugf checks a debugf() call: printf's rules, at most three
// conversions, integers and strings only.
func (c *compiler) debugf(in *instance, e *syntax.Call) {
	c.warnf(e.From, e.To, "The debugf() builtin is not recommended for production use. For more information see bpf_trace_printk in bpf-helpers(7).")
	c.printf(in, e)
	if len(e.Args) == 0 {
		return
	}
	lit, ok := e.Args[0].(*syntax.StrLit)
	if !ok {
		return
	}
	if n := len(output.ParseFormat(lit.Value)); n > debugfArgs {
		c.errorf(e.From, e.To, "debugf: Cannot use more than %d conversion specifiers", debugfArgs)
		return
	}
	for _, a := range e.Args[1:] {
		if t := c.expr(in, a); t.k != kNone && t.k != kStr && !(t.k == kInt && computable(t)) {
			c.errorf(a.Pos(), a.End(), "debugf: only integers and strings can be printed (%s supplied)", typeClass(t))
		}
	}
}

// debugf calls bpf_trace_printk(fmt, size, a, b, c): the format, NUL
// ended, and each string argument on the stack; integers by value.
func (g *gen) debugf(e *syntax.Call) {
	f := e.Args[0].(*syntax.StrLit).Value
	fmtSize := align8(len(f) + 1)
	fmtOff := g.alloc(fmtSize)
	g.literal(f, fmtOff, fmtSize)
	args := e.Args[1:]
	slots := g.alloc(8 * debugfArgs)
	for i, a := range args {
		if g.typeOf(a).k == kStr {
			// Its bytes stay on the stack until the call.
			g.stackPtr(rTmp, g.memExpr(a))
			g.emit(asm.StoreMem(asm.R10, slots+int16(8*i), rTmp, asm.DWord))
			continue
		}
		g.intExpr(a)
		g.emit(asm.StoreMem(asm.R10, slots+int16(8*i), rAcc, asm.DWord))
	}
	g.stackPtr(asm.R1, fmtOff)
	g.emit(asm.Mov.Imm(asm.R2, int32(len(f)+1)))
	for i := range args {
		g.emit(asm.LoadMem(asm.R3+asm.Register(i), asm.R10, slots+int16(8*i), asm.DWord))
	}
	g.call(asm.FnTracePrintk)
}
