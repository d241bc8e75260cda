package interp

// The kernel's encoding (RFC 9669 §3-5). Only what decoding needs.
const (
	clsLD    = 0x00
	clsLDX   = 0x01
	clsST    = 0x02
	clsSTX   = 0x03
	clsALU   = 0x04
	clsJMP   = 0x05
	clsJMP32 = 0x06
	clsALU64 = 0x07

	srcX = 0x08

	modeIMM    = 0x00
	modeABS    = 0x20
	modeIND    = 0x40
	modeMEM    = 0x60
	modeMEMSX  = 0x80
	modeATOMIC = 0xc0

	atomicFetch   = 0x01
	atomicXchg    = 0xe0 | atomicFetch
	atomicCmpxchg = 0xf0 | atomicFetch

	// Source-register values that give the 64-bit immediate load and
	// the call instruction their pseudo meanings.
	pseudoMapFD       = 1
	pseudoMapValue    = 2
	pseudoBTFID       = 3
	pseudoFunc        = 4
	pseudoMapIdx      = 5
	pseudoMapIdxValue = 6
	pseudoCall        = 1
	pseudoKfuncCall   = 2

	// StackSize is the stack of one frame, as in the kernel (MAX_BPF_STACK).
	StackSize = 512
	// MaxFrames is the deepest call chain, the main program included,
	// as in the kernel (MAX_CALL_FRAMES).
	MaxFrames = 8
	// MaxInsns is the longest program accepted, the kernel's
	// BPF_COMPLEXITY_LIMIT_INSNS.
	MaxInsns = 1 << 20
)

// op is the decoded operation: one value per distinct behaviour, so the
// run loop dispatches once per instruction and never re-examines the
// offset or immediate to find out what it is doing (sdiv hides in off,
// byte-swap width and atomic kind in imm).
type op uint8

const (
	opInvalid op = iota

	opAdd64K
	opAdd64X
	opSub64K
	opSub64X
	opMul64K
	opMul64X
	opDiv64K
	opDiv64X
	opSdiv64K
	opSdiv64X
	opOr64K
	opOr64X
	opAnd64K
	opAnd64X
	opLsh64K
	opLsh64X
	opRsh64K
	opRsh64X
	opNeg64
	opMod64K
	opMod64X
	opSmod64K
	opSmod64X
	opXor64K
	opXor64X
	opMov64K
	opMov64X
	opArsh64K
	opArsh64X
	opMovsx8_64
	opMovsx16_64
	opMovsx32_64

	opAdd32K
	opAdd32X
	opSub32K
	opSub32X
	opMul32K
	opMul32X
	opDiv32K
	opDiv32X
	opSdiv32K
	opSdiv32X
	opOr32K
	opOr32X
	opAnd32K
	opAnd32X
	opLsh32K
	opLsh32X
	opRsh32K
	opRsh32X
	opNeg32
	opMod32K
	opMod32X
	opSmod32K
	opSmod32X
	opXor32K
	opXor32X
	opMov32K
	opMov32X
	opArsh32K
	opArsh32X
	opMovsx8_32
	opMovsx16_32

	// Byte order: the host is little-endian (cilium/ebpf and this
	// interpreter both assume it), so "to little-endian" only truncates.
	opLe16
	opLe32
	opLe64
	opBswap16
	opBswap32
	opBswap64

	opJa
	opJeqK
	opJeqX
	opJgtK
	opJgtX
	opJgeK
	opJgeX
	opJsetK
	opJsetX
	opJneK
	opJneX
	opJsgtK
	opJsgtX
	opJsgeK
	opJsgeX
	opJltK
	opJltX
	opJleK
	opJleX
	opJsltK
	opJsltX
	opJsleK
	opJsleX

	opJeq32K
	opJeq32X
	opJgt32K
	opJgt32X
	opJge32K
	opJge32X
	opJset32K
	opJset32X
	opJne32K
	opJne32X
	opJsgt32K
	opJsgt32X
	opJsge32K
	opJsge32X
	opJlt32K
	opJlt32X
	opJle32K
	opJle32X
	opJslt32K
	opJslt32X
	opJsle32K
	opJsle32X

	opCall      // helper, id in imm
	opCallLocal // bpf-to-bpf, target pc in off
	opCallx     // helper id in a register (clang's callx, as uBPF runs it)
	opExit

	opLdImm64 // imm holds the full 64-bit value, map pseudo forms resolved
	opLdImm64Tail

	opLdxB
	opLdxH
	opLdxW
	opLdxDW
	opLdxSB
	opLdxSH
	opLdxSW

	opStB
	opStH
	opStW
	opStDW
	opStxB
	opStxH
	opStxW
	opStxDW

	opAtomicAdd32
	opAtomicOr32
	opAtomicAnd32
	opAtomicXor32
	opAtomicFetchAdd32
	opAtomicFetchOr32
	opAtomicFetchAnd32
	opAtomicFetchXor32
	opAtomicXchg32
	opAtomicCmpxchg32
	opAtomicAdd64
	opAtomicOr64
	opAtomicAnd64
	opAtomicXor64
	opAtomicFetchAdd64
	opAtomicFetchOr64
	opAtomicFetchAnd64
	opAtomicFetchXor64
	opAtomicXchg64
	opAtomicCmpxchg64

	numOps
)

// insn is the decoded instruction: 16 bytes, so four fit a cache line.
// off is the memory offset for loads and stores and the absolute target
// for jumps and local calls; imm is sign-extended (64-bit immediate loads
// hold their whole value).
type insn struct {
	op  op
	dst uint8
	src uint8
	_   uint8
	off int32
	imm int64
}

// aluOps maps an ALU operation code (op&0xf0) to the decoded 64-bit
// immediate form; the register form is the next value, and the 32-bit
// forms sit at a fixed distance. sdiv, smod and movsx are chosen by off.
var aluOps = [16]op{
	0x0: opAdd64K, 0x1: opSub64K, 0x2: opMul64K, 0x3: opDiv64K,
	0x4: opOr64K, 0x5: opAnd64K, 0x6: opLsh64K, 0x7: opRsh64K,
	0x8: opNeg64, 0x9: opMod64K, 0xa: opXor64K, 0xb: opMov64K,
	0xc: opArsh64K,
}

// alu32Delta works because the 64- and 32-bit lists run in the same
// order from add to arsh; the movsx forms follow each list.
const alu32Delta = opAdd32K - opAdd64K

// jmpOps does the same for the conditional jumps.
var jmpOps = [16]op{
	0x1: opJeqK, 0x2: opJgtK, 0x3: opJgeK, 0x4: opJsetK, 0x5: opJneK,
	0x6: opJsgtK, 0x7: opJsgeK, 0xa: opJltK, 0xb: opJleK, 0xc: opJsltK,
	0xd: opJsleK,
}

const jmp32Delta = opJeq32K - opJeqK

func (o op) isCondJump() bool { return o >= opJeqK && o <= opJsle32X }

func (o op) isJump() bool { return o == opJa || o.isCondJump() }

// raw is one 8-byte slot as the kernel sees it.
type raw struct {
	code uint8
	dst  uint8
	src  uint8
	off  int16
	imm  int32
}

func rawAt(code []byte, i int) raw {
	b := code[i*8 : i*8+8]
	return raw{
		code: b[0],
		dst:  b[1] & 0x0f,
		src:  b[1] >> 4,
		off:  int16(uint16(b[2]) | uint16(b[3])<<8),
		imm:  int32(uint32(b[4]) | uint32(b[5])<<8 | uint32(b[6])<<16 | uint32(b[7])<<24),
	}
}
