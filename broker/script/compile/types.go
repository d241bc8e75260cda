package compile

import (
	"fmt"

	"github.com/tracebroker/tracebroker/broker/program"
)

// kind classifies the compiler's view of a value. It is richer than
// program.TypeKind: aggregations and void exist only at compile time.
type kind uint8

const (
	kNone kind = iota
	kInt
	kStr
	kTuple
	kVoid // statements-only calls: printf(), exit(), ...
	kAgg  // count(), hist(), ...: only the right-hand side of a map assignment
)

// strLen is bpftrace's default string size (BPFTRACE_STRLEN).
const strLen = 64

// ty is a compile-time type. Every integer is 64 bits wide once loaded; ptr
// marks integers that came from pointer fields so str() knows which address
// space to read from.
type ty struct {
	k      kind
	signed bool
	size   int // kStr: bytes, a multiple of 8; kTuple: sum of elems
	elems  []ty
	ptr    bool
	user   bool // ptr into user memory
	agg    program.Agg
	// lhist parameters, when agg == Lhist
	lmin, lmax, lstep int64
}

var (
	tInt  = ty{k: kInt, signed: true}
	tUint = ty{k: kInt}
	tVoid = ty{k: kVoid}
)

func tStr(n int) ty { return ty{k: kStr, size: align8(n)} }

func align8(n int) int { return (n + 7) &^ 7 }

// storage is how many bytes a value of t takes in a key, a value or a record.
func (t ty) storage() int {
	switch t.k {
	case kInt:
		return 8
	case kStr:
		return t.size
	case kTuple:
		n := 0
		for _, e := range t.elems {
			n += e.storage()
		}
		return n
	}
	return 0
}

// runtime returns the layout the output stage decodes.
func (t ty) runtime() program.Type {
	switch t.k {
	case kInt:
		return program.Type{Kind: program.Int, Size: 8, Signed: t.signed}
	case kStr:
		return program.Type{Kind: program.String, Size: t.size}
	case kTuple:
		rt := program.Type{Kind: program.Tuple, Size: t.storage()}
		off := 0
		for _, e := range t.elems {
			rt.Elems = append(rt.Elems, e.runtime())
			rt.Offs = append(rt.Offs, off)
			off += e.storage()
		}
		return rt
	}
	return program.Type{}
}

// sameLayout reports whether values of a and b can share a map slot.
// Strings of different sizes cannot: keys are compared bytewise.
func sameLayout(a, b ty) bool {
	if a.k != b.k {
		return false
	}
	switch a.k {
	case kStr:
		return a.size == b.size
	case kTuple:
		if len(a.elems) != len(b.elems) {
			return false
		}
		for i := range a.elems {
			if !sameLayout(a.elems[i], b.elems[i]) {
				return false
			}
		}
	}
	return true
}

func (t ty) String() string {
	switch t.k {
	case kInt:
		if t.signed {
			return "int64"
		}
		return "uint64"
	case kStr:
		return fmt.Sprintf("string[%d]", t.size)
	case kTuple:
		s := "("
		for i, e := range t.elems {
			if i > 0 {
				s += ", "
			}
			s += e.String()
		}
		return s + ")"
	case kVoid:
		return "none"
	case kAgg:
		return aggName[t.agg]
	}
	return "unknown"
}

var aggName = map[program.Agg]string{
	program.Plain: "value", program.Count: "count", program.Sum: "sum", program.Min: "min",
	program.Max: "max", program.Avg: "avg", program.Stats: "stats", program.Hist: "hist",
	program.Lhist: "lhist",
}
