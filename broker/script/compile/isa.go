package compile

import "github.com/cilium/ebpf/asm"

// The v4 ISA (Linux 6.6) added sign-extending loads and signed division;
// older kernels refuse both. With Options.NoV4 the generator spells them
// with older instructions, which compute the same values.

// loadSX loads size bytes at src+off into dst, sign-extended to 64 bits.
func (g *gen) loadSX(dst, src asm.Register, off int16, size asm.Size) {
	if !g.c.opts.NoV4 {
		g.emit(asm.LoadMemSX(dst, src, off, size))
		return
	}
	shift := int32(64 - 8*size.Sizeof())
	g.emit(asm.LoadMem(dst, src, off, size))
	g.emit(asm.LSh.Imm(dst, shift))
	g.emit(asm.ArSh.Imm(dst, shift))
}

// sdiv divides rAcc by rTmp, both signed, into rAcc; the caller has
// checked that rTmp is not 0. Without v4 it divides the magnitudes
// unsigned and negates the quotient when exactly one operand was
// negative; rTmp is clobbered. MinInt64 / -1 gives MinInt64, as the
// kernel's sdiv does (its magnitude, 1<<63, negates to itself).
func (g *gen) sdiv() {
	if !g.c.opts.NoV4 {
		g.emit(asm.SDiv.Reg(rAcc, rTmp))
		return
	}
	aPos, negPos, posPos, done := g.newLabel(), g.newLabel(), g.newLabel(), g.newLabel()
	g.emit(asm.JSGE.Imm(rAcc, 0, aPos))
	g.emit(asm.Neg.Imm(rAcc, 0))
	g.emit(asm.JSGE.Imm(rTmp, 0, negPos))
	g.emit(asm.Neg.Imm(rTmp, 0)) // both negative: the quotient is positive
	g.emit(asm.Div.Reg(rAcc, rTmp))
	g.emit(asm.Ja.Label(done))
	g.label(negPos)
	g.emit(asm.Div.Reg(rAcc, rTmp))
	g.emit(asm.Neg.Imm(rAcc, 0))
	g.emit(asm.Ja.Label(done))
	g.label(aPos)
	g.emit(asm.JSGE.Imm(rTmp, 0, posPos))
	g.emit(asm.Neg.Imm(rTmp, 0))
	g.emit(asm.Div.Reg(rAcc, rTmp))
	g.emit(asm.Neg.Imm(rAcc, 0))
	g.emit(asm.Ja.Label(done))
	g.label(posPos)
	g.emit(asm.Div.Reg(rAcc, rTmp))
	g.label(done)
}
