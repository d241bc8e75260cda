package compile

import (
	"strconv"

	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// Tuples as bpftrace 0.17 has them: (a, b, ...) of integers, strings,
// host-printed values, structs and arrays, and tuples; elements read with
// $t.N (N a literal), nested as $t.3.0.
//
// A tuple is stored as its elements one after the other, each in a slot
// of whole 8-byte words: an integer takes 8 bytes whatever its width, a
// 12-byte struct 16. Stack accesses stay aligned, and an element is loaded
// with one instruction. sizeof() is what bpftrace says, though: the size
// of the C struct of the elements at their own widths ((int8, int16,
// int32) is 8), which tupleSizeof computes from the types.

// tuple types (a, b, ...).
func (c *compiler) tuple(in *instance, e *syntax.Tuple) ty {
	t := ty{k: kTuple}
	for _, el := range e.Elems {
		et := c.expr(in, el)
		switch et.k {
		case kInt, kStr, kBlob, kTuple:
		case kRecord:
			if why := storable(et); why != "" {
				c.errorf(el.Pos(), el.End(), "%s", why)
				return ty{}
			}
		case kNone:
			return ty{}
		default:
			c.errorf(el.Pos(), el.End(), "%s can not be a tuple element", et)
			return ty{}
		}
		kt := et // a tuple's elements are keys' already
		if et.k != kTuple {
			kt = keyType(et)
		}
		kt.width = et.width // sizeof() lays (int8)1 out in a byte
		if et.k == kStr {
			// Its own size, not the map slot it would widen to: comm
			// is 16 bytes, a literal its characters and the NUL.
			kt.csize = et.size
			if lit, ok := unparen(el).(*syntax.StrLit); ok {
				kt.csize = len(lit.Value) + 1
			}
		}
		if call, ok := unparen(el).(*syntax.Call); ok && et.k == kBlob && et.blob == program.Buffer {
			kt.csize = c.bufLen(in, call) + 1 // bpftrace's: a length and the bytes
		}
		t.elems = append(t.elems, kt)
	}
	return t
}

// tupleSlot is the bytes an element of type t takes in a tuple: whole
// words, so that the next element's stack accesses are aligned.
func tupleSlot(t ty) int { return align8(t.storage()) }

// tupleOffset is where element i of tuple t starts.
func tupleOffset(t ty, i int) int {
	off := 0
	for _, e := range t.elems[:i] {
		off += tupleSlot(e)
	}
	return off
}

// tupleIndex is N of x.N, a tuple's element.
func tupleIndex(e *syntax.FieldAccess) (int, bool) {
	if e.Arrow || e.Field == "" || e.Field[0] < '0' || e.Field[0] > '9' {
		return 0, false
	}
	n, err := strconv.Atoi(e.Field)
	if err != nil {
		return -1, true // too large for any tuple
	}
	return n, true
}

// tupleAccess types $t.N.
func (c *compiler) tupleAccess(in *instance, e *syntax.FieldAccess) ty {
	xt := c.expr(in, e.X)
	n, _ := tupleIndex(e)
	switch {
	case xt.k == kNone:
		return ty{}
	case xt.k != kTuple:
		c.errorf(e.Pos(), e.End(), "Can not access index %s on expression of type '%s'", e.Field, bpfTypeName(xt))
		return ty{}
	case n < 0 || n >= len(xt.elems):
		c.errorf(e.Pos(), e.End(), "Invalid tuple index: %s. Found %d elements in tuple.", e.Field, len(xt.elems))
		return ty{}
	}
	return xt.elems[n]
}

// isTupleAccess reports whether e is $t.N on a tuple (the checker typed
// it so).
func (g *gen) isTupleAccess(e syntax.Expr) bool {
	fa, ok := unparen(e).(*syntax.FieldAccess)
	if !ok {
		return false
	}
	_, ok = tupleIndex(fa)
	return ok && g.typeOf(fa.X).k == kTuple
}

// tupleElemAt evaluates the tuple of $t.N into stack memory and returns
// the offset of element N there.
func (g *gen) tupleElemAt(e *syntax.FieldAccess) int16 {
	n, _ := tupleIndex(e)
	return g.memExpr(e.X) + int16(tupleOffset(g.typeOf(e.X), n))
}

// tupleIntExpr loads the integer element $t.N into rAcc.
func (g *gen) tupleIntExpr(e *syntax.FieldAccess) {
	mark := g.sp
	at := g.tupleElemAt(e)
	g.emit(asm.LoadMem(rAcc, asm.R10, at, asm.DWord))
	g.sp = mark
}

// tupleInto writes the element $t.N (a string, tuple, struct, ...) into
// the n bytes at off, zero-padded or truncated.
func (g *gen) tupleInto(e *syntax.FieldAccess, off int16, n int) {
	mark := g.sp
	at := g.tupleElemAt(e)
	size := tupleSlot(g.typeOf(e))
	g.copyStack(off, at, min(n, size))
	if n > size {
		g.zero(off+int16(size), n-size)
	}
	g.sp = mark
}

// tupleElemsInto writes the tuple literal e of type t into the n bytes
// at off: each element in its slot, padding zeroed (a key is compared
// bytewise), the rest of n zeroed.
func (g *gen) tupleElemsInto(e *syntax.Tuple, t ty, off int16, n int) {
	pos := off
	for i, el := range e.Elems {
		et := t.elems[i]
		slot := tupleSlot(et)
		if int(pos-off)+slot > n {
			break // truncated
		}
		if et.k == kRecord && et.storage() < slot {
			g.zero(pos, slot) // the record's read leaves its padding
		}
		mark := g.sp
		g.materialize(el, et, pos)
		g.sp = mark
		pos += int16(slot)
	}
	if used := int(pos - off); n > used {
		g.zero(pos, n-used)
	}
}

// tupleSizeof is sizeof(t) as bpftrace has it: the C struct of the
// elements at their own sizes and alignments.
func tupleSizeof(t ty) int {
	size, _ := cLayout(t)
	return size
}

// cLayout is t's size and alignment as a member of bpftrace's tuple
// struct.
func cLayout(t ty) (size, align int) {
	switch t.k {
	case kInt:
		w := t.width
		if w == 0 {
			w = 8
		}
		return w, w
	case kStr:
		if t.csize > 0 {
			return t.csize, 1
		}
		return t.size, 1
	case kTuple:
		off, align := 0, 1
		for _, e := range t.elems {
			s, a := cLayout(e)
			off = (off + a - 1) / a * a
			off += s
			align = max(align, a)
		}
		return (off + align - 1) / align * align, align
	case kRecord:
		// bpftrace lays a struct out as bytes (no alignment), an
		// array as an array of its elements.
		if _, ok := btf.UnderlyingType(t.bt).(*btf.Array); ok {
			return t.size, btfAlign(t.bt, 0)
		}
		return t.size, 1
	case kBlob:
		switch t.blob {
		case program.Timestamp:
			return 16, 4 // bpftrace's strftime(): a format id and the time
		case program.Buffer:
			if t.csize > 0 {
				return t.csize, 4
			}
		case program.USym, program.Inet:
			return t.size, 4 // bpftrace's are arrays of 32-bit words
		}
	}
	return t.storage(), 8
}

// btfAlign is the C alignment of the BTF type t.
func btfAlign(t btf.Type, depth int) int {
	if depth > 16 {
		return 8
	}
	switch u := btf.UnderlyingType(t).(type) {
	case *btf.Int:
		return max(1, min(int(u.Size), 8))
	case *btf.Enum:
		return max(1, min(int(u.Size), 8))
	case *btf.Pointer:
		return 8
	case *btf.Array:
		return btfAlign(u.Type, depth+1)
	case *btf.Struct, *btf.Union:
		a := 1
		for _, m := range membersOf(u) {
			a = max(a, btfAlign(m.Type, depth+1))
		}
		return a
	}
	return 8
}

// tupleElemSizeof is sizeof($t.N): its element's C size.
func tupleElemSizeof(in *instance, fa *syntax.FieldAccess) (int, bool) {
	if _, ok := tupleIndex(fa); !ok || in.types[fa.X].k != kTuple {
		return 0, false
	}
	size, _ := cLayout(in.types[fa])
	return size, true
}

// printsTuple reports whether the printf call is print(TUPLE)'s: its %s
// prints the tuple as print() does, "(1, 2, string)".
func (c *compiler) printsTuple(call *syntax.Call, t ty) bool {
	if t.k != kTuple {
		return false
	}
	for _, p := range c.prints {
		if p == call {
			return true
		}
	}
	return false
}
