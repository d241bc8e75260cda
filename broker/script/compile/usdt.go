package compile

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/bpf/usdt"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// USDTTarget is one USDT probe site (bpf/usdt) a usdt probe attaches to:
// a uprobe at the site's address, its semaphore activated while it is
// attached, its argN read where the note says they are.
type USDTTarget struct {
	Path     string // the ELF file, resolved (as UprobeTarget.Path)
	Written  string // the file as the script or the process names it, for probe
	Provider string
	Name     string
	Addr     uint64 // the site's address: its uprobe is uprobe:PATH:0xADDR
	Offset   uint64 // the site's file offset
	RefCtr   uint64 // the semaphore's file offset, 0 without one
	Args     []usdt.Arg
	ArgErr   error // why Args could not be read
	Binary   program.Binary
}

// USDT resolves usdt probes: path as written (empty: every file the
// process of -p maps), provider and name patterns.
type USDT interface {
	ResolveUSDT(path, provider, name string) ([]USDTTarget, error)
}

// expandUSDT is usdt:PATH:PROVIDER:NAME, usdt:PATH:NAME (any
// provider), and with -p usdt::PROVIDER:NAME or usdt:NAME (any file
// the process maps).
func (c *compiler) expandUSDT(s *syntax.ProbeSpec, mk func(program.ProbeKind, string) *instance) []*instance {
	sp, err := usdt.ParseSpec(strings.Join(s.Parts, ":"))
	if err != nil {
		c.errorf(s.From, s.To, "%v", err)
		return nil
	}
	path, provider, name := sp.Path, sp.Provider, sp.Name
	if c.opts.USDT == nil {
		c.errorf(s.From, s.To, "usdt probes are not available")
		return nil
	}
	targets, err := c.opts.USDT.ResolveUSDT(path, provider, name)
	if !c.matched(s, len(targets), err) {
		return nil
	}
	var out []*instance
	for i := range targets {
		t := &targets[i]
		in := mk(program.Uprobe, fmt.Sprintf("uprobe:%s:%#x", t.Path, t.Addr))
		in.path, in.offset, in.binary = t.Path, t.Offset, t.Binary
		in.usdt = t
		in.display = "usdt:" + t.Written + ":" + t.Provider + ":" + t.Name
		out = append(out, in)
	}
	return out
}

// usdtArgIndex is N of argN in a usdt probe, or -1.
func usdtArgIndex(in *instance, name string) int {
	if in.usdt == nil {
		return -1
	}
	return numbered(name, "arg")
}

// checkUSDTArg types argN of a usdt probe: an integer of the site's
// argument, refused when the site has no such argument.
func (c *compiler) checkUSDTArg(in *instance, e *syntax.Ident, n int) ty {
	t := in.usdt
	switch {
	case t.ArgErr != nil:
		c.errorf(e.From, e.To, "%s of usdt:%s:%s: its arguments %v", e.Name, t.Provider, t.Name, t.ArgErr)
		return ty{}
	case n >= len(t.Args):
		c.errorf(e.From, e.To, "usdt probe %s:%s has %d arguments: %s is not one", t.Provider, t.Name, len(t.Args), e.Name)
		return ty{}
	}
	a := t.Args[n]
	// A user address str() can read, as a uprobe's argN is.
	return ty{k: kInt, signed: a.Signed, user: true, width: a.Size}
}

// usdtArg loads argN of a usdt probe into rAcc: a constant, a register
// of the probe's pt_regs (its low bits for %edi and the like), or what
// the traced process holds at a register plus a displacement (plus an
// index register times a scale), each extended from its size.
func (g *gen) usdtArg(e *syntax.Ident, n int) {
	a := g.in.usdt.Args[n]
	switch a.Kind {
	case usdt.Const:
		g.loadConst(rAcc, a.Value)
		g.extend(a.Size, a.Signed)
		return
	case usdt.Reg:
		g.noteContextRead()
		g.emit(asm.LoadMem(rAcc, rCtx, ptRegOff(a.Reg), asm.DWord))
		g.extend(a.Size, a.Signed)
		return
	}
	g.noteContextRead()
	g.emit(asm.LoadMem(rAcc, rCtx, ptRegOff(a.Reg), asm.DWord))
	if a.Index != "" {
		g.emit(asm.LoadMem(rTmp, rCtx, ptRegOff(a.Index), asm.DWord))
		if a.Scale > 1 {
			g.emit(asm.Mul.Imm(rTmp, int32(a.Scale)))
		}
		g.emit(asm.Add.Reg(rAcc, rTmp))
	}
	if a.Disp != 0 {
		g.loadConst(rTmp, a.Disp)
		g.emit(asm.Add.Reg(rAcc, rTmp))
	}
	g.rd.sites = append(g.rd.sites, pendingRead{site: e, class: program.ReadsUser,
		what: fmt.Sprintf("%s of usdt:%s:%s is in the traced process's memory", e.Name, g.in.usdt.Provider, g.in.usdt.Name)})
	if g.kernelOnly == "" {
		g.kernelOnly = fmt.Sprintf("%s (a usdt argument in the traced process's memory)", e.Name)
	}
	slot := g.alloc(8)
	g.emit(storeImm64(asm.R10, slot, 0))
	g.stackPtr(asm.R1, slot)
	g.emit(asm.Mov.Imm(asm.R2, int32(a.Size)))
	g.emit(asm.Mov.Reg(asm.R3, rAcc))
	g.call(asm.FnProbeReadUser)
	g.emit(asm.LoadMem(rAcc, asm.R10, slot, asm.DWord))
	g.extend(a.Size, a.Signed)
}

// extend keeps the low size bytes of rAcc, sign-extended when signed.
func (g *gen) extend(size int, signed bool) {
	if size >= 8 {
		return
	}
	shift := int32(64 - 8*size)
	g.emit(asm.LSh.Imm(rAcc, shift))
	if signed {
		g.emit(asm.ArSh.Imm(rAcc, shift))
	} else {
		g.emit(asm.RSh.Imm(rAcc, shift))
	}
}

// ptRegOff is where x86-64's struct pt_regs keeps a register.
func ptRegOff(reg string) int16 {
	return map[string]int16{
		"r15": 0, "r14": 8, "r13": 16, "r12": 24, "rbp": 32, "rbx": 40, "r11": 48, "r10": 56,
		"r9": 64, "r8": 72, "rax": 80, "rcx": 88, "rdx": 96, "rsi": 104, "rdi": 112,
		"rip": 128, "rsp": 152,
	}[reg]
}
