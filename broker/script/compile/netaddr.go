package compile

import (
	"net/netip"
	"strings"

	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// Network addresses as bpftrace 0.17 has them: pton() parses an address
// literal when the script is compiled (the program holds its bytes, no
// read), macaddr() takes six bytes of an array or behind a pointer and the
// host prints them, and ntop() takes either's arrays as well as integers.

// macSize is how many bytes macaddr() takes; the value is stored in 8.
const macSize = 6

// u8Type is the element type of pton()'s array: bpftrace's uint8[N].
var u8Type = &btf.Int{Name: "uint8", Size: 1}

// ptonBytes parses pton()'s literal as bpftrace does: a '.' makes it
// IPv4, else a ':' IPv6; why is bpftrace's error when it is neither or
// does not parse.
func ptonBytes(s string) (b []byte, why string) {
	var want int
	switch {
	case strings.Contains(s, "."):
		want = 4
	case strings.Contains(s, ":"):
		want = 16
	default:
		return nil, "pton() expects an string argument of an IPv4/IPv6 address, got " + s
	}
	// inet_pton: no zone, no IPv4-in-IPv6 where IPv4 is asked for.
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || (want == 4) != a.Is4() {
		return nil, "pton() expects a valid IPv4/IPv6 address, got " + s
	}
	return a.AsSlice(), ""
}

// ptonCall types pton("ADDR"): a uint8[4] or uint8[16] array value. A
// malformed one still has a type, so that its use reports nothing more.
func (c *compiler) ptonCall(in *instance, e *syntax.Call) ty {
	arr := func(n int) ty {
		return ty{k: kRecord, bt: &btf.Array{Type: u8Type, Index: u8Type, Nelems: uint32(n)}, size: n}
	}
	if len(e.Args) != 1 {
		c.errorf(e.From, e.To, "pton() requires one argument (%d provided)", len(e.Args))
		return arr(4)
	}
	lit, ok := unparen(e.Args[0]).(*syntax.StrLit)
	if !ok {
		c.expr(in, e.Args[0])
		c.errorf(e.From, e.To, "pton() expects an string argument of an IPv4/IPv6 address, got ")
		return arr(4)
	}
	in.types[e.Args[0]] = tStr(len(lit.Value) + 1)
	b, why := ptonBytes(lit.Value)
	if why != "" {
		c.errorf(e.From, e.To, "%s", why)
		if strings.Contains(lit.Value, ".") {
			return arr(4)
		}
		return arr(16)
	}
	return arr(len(b))
}

// isPton reports whether e is a pton() call, whose value is a constant.
func isPton(e syntax.Expr) bool {
	call, ok := unparen(e).(*syntax.Call)
	return ok && call.Name == "pton"
}

// ptonInto writes pton()'s bytes, zero-padded to n.
func (g *gen) ptonInto(e syntax.Expr, off int16, n int) {
	b, _ := ptonBytes(unparen(unparen(e).(*syntax.Call).Args[0]).(*syntax.StrLit).Value)
	g.zero(off, n)
	for i := 0; i < len(b) && i < n; i++ {
		if b[i] != 0 {
			g.emit(asm.StoreImm(asm.R10, off+int16(i), int64(b[i]), asm.Byte))
		}
	}
}

// arrayBytes is the size of an array value (pton(), a struct's array
// member, char arrays included) that ntop() and macaddr() take whole; ok
// is false for other values.
func arrayBytes(in *instance, e syntax.Expr, t ty) (int, bool) {
	arr, ok := t.bt.(*btf.Array)
	if !ok || (t.k != kRecord && t.k != kStr) {
		return 0, false
	}
	if mi, ok := in.members[e]; ok && t.k == kStr {
		return mi.size, true
	}
	n, err := btf.Sizeof(arr)
	return n, err == nil
}

// macaddrCall types macaddr(x): x is a 6-byte array, or an integer or a
// pointer whose 6 bytes are read, as bpftrace 0.17's semantic check has it.
func (c *compiler) macaddrCall(in *instance, e *syntax.Call) ty {
	t := ty{k: kBlob, blob: program.MacAddr, size: 8}
	if len(e.Args) != 1 {
		c.errorf(e.From, e.To, "macaddr() requires one argument (%d provided)", len(e.Args))
		return t
	}
	a := e.Args[0]
	at := c.expr(in, a)
	if lit, ok := unparen(a).(*syntax.StrLit); ok {
		if len(lit.Value)+1 != macSize {
			c.errorf(e.From, e.To, "macaddr() argument must be 6 bytes in size")
		}
		c.errorf(e.From, e.To, "macaddr() does not support literal string arguments")
		return t
	}
	if n, ok := arrayBytes(in, a, at); ok {
		if n != macSize {
			c.errorf(e.From, e.To, "macaddr() argument must be 6 bytes in size")
		}
		return t
	}
	if !computable(at) {
		c.errorf(e.From, e.To, "macaddr() only supports array or pointer arguments (%s provided)", typeClass(at))
	}
	return t
}

// macaddrInto writes macaddr()'s six bytes and two of padding: an array's
// own, or those a pointer points to, read from its address space.
func (g *gen) macaddrInto(e *syntax.Call, off int16) {
	a := e.Args[0]
	g.zero(off, 8)
	at := g.typeOf(a)
	if _, ok := arrayBytes(g.in, a, at); ok {
		g.memInto(a, off, macSize)
		return
	}
	// Interpreter mode: the collector copies what a context pointer
	// points to, and makes a kernel pointer's read if a chain spells it.
	if !g.captureString(a) && !at.user {
		g.noteKRead(e, a, 0, macSize, false, false)
	}
	g.noteRead("macaddr()", e, a, nil, at.user)
	g.intExpr(a)
	g.emit(asm.Mov.Reg(asm.R3, rAcc))
	g.stackPtr(asm.R1, off)
	g.emit(asm.Mov.Imm(asm.R2, macSize))
	if at.user {
		g.call(asm.FnProbeReadUser)
	} else {
		g.call(asm.FnProbeReadKernel)
	}
}

// arrayValue reports whether ntop() takes e as an array of address bytes
// rather than as an integer: pton(), an array member of a struct.
func arrayValue(in *instance, e syntax.Expr, t ty) bool {
	_, ok := arrayBytes(in, e, t)
	return ok
}

// byteString reports whether an array of bytes prints as a string, as
// bpftrace prints char[N]: pton()'s uint8[N] prints as the array it is.
func byteString(a *btf.Array) bool {
	e, ok := btf.UnderlyingType(a.Type).(*btf.Int)
	return ok && e.Size == 1 && a.Type != btf.Type(u8Type)
}
