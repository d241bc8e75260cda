package compile

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// sargIndex is N of sargN, bpftrace's stack arguments, or -1.
func sargIndex(name string) int {
	if n := numbered(name, "sarg"); n <= 64 {
		return n
	}
	return -1
}

// numbered is N of a builtin spelt PREFIXN (arg3, sarg0), or -1.
func numbered(name, prefix string) int {
	digits, ok := strings.CutPrefix(name, prefix)
	if !ok || !isDigits(digits) {
		return -1
	}
	n, err := strconv.Atoi(digits)
	if err != nil {
		return -1
	}
	return n
}

// checkSarg types sargN: the N-th argument passed on the stack, in a
// kprobe or a uprobe.
func (c *compiler) checkSarg(in *instance, e *syntax.Ident) ty {
	switch in.kind {
	case program.Uprobe:
		return tUserWord
	case program.Kprobe:
		return tKernelWord
	}
	c.errorf(e.From, e.To, "The %s builtin can only be used with 'kprobes', 'uprobes' and 'usdt' probes", e.Name)
	return ty{}
}

// sarg loads sargN: at a function's entry on x86-64 the stack pointer
// points at the return address, and the stack arguments follow it, 8
// bytes each. They are read from the traced process (a uprobe) or the
// kernel (a kprobe).
func (g *gen) sarg(e *syntax.Ident, n int) {
	user := g.in.kind == program.Uprobe
	g.noteContextRead()
	g.emit(asm.LoadMem(rAcc, rCtx, ptRegOff("rsp"), asm.DWord))
	g.emit(asm.Add.Imm(rAcc, int32(8*(n+1))))
	class, where := program.ReadsKernel, "the kernel's stack"
	if user {
		class, where = program.ReadsUser, "the traced process's stack"
	}
	g.rd.sites = append(g.rd.sites, pendingRead{site: e, class: class, what: fmt.Sprintf("%s is read from %s", e.Name, where)})
	if g.kernelOnly == "" {
		g.kernelOnly = fmt.Sprintf("%s (read from %s, which no collector copies)", e.Name, where)
	}
	slot := g.alloc(8)
	g.emit(storeImm64(asm.R10, slot, 0))
	g.stackPtr(asm.R1, slot)
	g.emit(asm.Mov.Imm(asm.R2, 8))
	g.emit(asm.Mov.Reg(asm.R3, rAcc))
	if user {
		g.call(asm.FnProbeReadUser)
	} else {
		g.call(asm.FnProbeReadKernel)
	}
	g.emit(asm.LoadMem(rAcc, asm.R10, slot, asm.DWord))
}
