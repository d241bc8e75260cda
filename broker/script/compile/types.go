package compile

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf/btf"

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
	// kBlob is a fixed-size value that only the host can print: stacks,
	// symbols, user names, addresses, times, buffers (blob says which).
	// Blobs can be stored, used as keys and printed, not computed with.
	kBlob
	// kRecord is a struct or union value reached through BTF
	// (curtask->se): not read, only its fields are (curtask->se.load).
	kRecord
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
	// csize is a string's C size as a tuple element, when a literal
	// gives it (("abc", 1): 4): sizeof() lays tuples out as bpftrace.
	csize int
	elems []ty
	ptr   bool
	user  bool // ptr into user memory
	// width is an integer's C size in bytes when its type says it (a
	// cast's, a field's): bswap() swaps that many. 0 is 8.
	width int
	// What a ptr points to, for p[i] and *p: depth 1 points to an integer
	// of esize bytes (0: unknown, e.g. a struct), deeper to pointers.
	depth   int
	esize   int
	esigned bool
	// bt is the struct or union a pointer of depth 1 points to (and a
	// kRecord is), from the kernel's BTF: -> and . reach its fields.
	bt  btf.Type
	agg program.Agg
	// from marks an integer read from a count(), sum(), min(), max() or
	// avg() map. In the kernel each CPU reads only its own share of the
	// per-CPU value, so bpftrace 0.17 types the read as the aggregation:
	// it may be stored, used as a key, printed and compared with its
	// own kind, never computed with (computable).
	from program.Agg
	// lhist parameters, when agg == Lhist
	lmin, lmax, lstep int64
	// kBlob: the runtime kind, and for stacks their map, frame count and
	// mode, for timestamps their strftime format.
	blob     program.TypeKind
	stackMap string
	frames   int
	perf     bool
	format   string
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
	case kStr, kBlob, kRecord:
		return t.size
	case kTuple:
		n := 0
		for _, e := range t.elems {
			n += tupleSlot(e)
		}
		return n
	}
	return 0
}

// runtime returns the layout the output stage decodes.
func (t ty) runtime() program.Type {
	switch t.k {
	case kInt:
		return program.Type{Kind: program.Int, Size: 8, Signed: t.signed, Pointer: t.ptr}
	case kStr:
		return program.Type{Kind: program.String, Size: t.size}
	case kTuple:
		rt := program.Type{Kind: program.Tuple, Size: t.storage()}
		off := 0
		for _, e := range t.elems {
			rt.Elems = append(rt.Elems, e.runtime())
			rt.Offs = append(rt.Offs, off)
			off += tupleSlot(e)
		}
		return rt
	case kBlob:
		return program.Type{Kind: t.blob, Size: t.size, StackMap: t.stackMap, Frames: t.frames, Perf: t.perf, Format: t.format}
	case kRecord:
		rt, _ := recordSchema(t.bt) // storable checked it
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
	case kRecord:
		return a.size == b.size && (a.bt == b.bt || recordName(a.bt) == recordName(b.bt))
	case kBlob:
		return a.blob == b.blob && a.size == b.size && a.stackMap == b.stackMap &&
			a.perf == b.perf && a.format == b.format
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
		if t.from != program.Plain {
			return aggName[t.from]
		}
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
	case kBlob:
		return blobName[t.blob]
	case kRecord:
		return recordName(t.bt)
	}
	return "unknown"
}

var blobName = map[program.TypeKind]string{
	program.KStack: "kstack", program.UStack: "ustack", program.KSym: "ksym", program.USym: "usym",
	program.Username: "username", program.Inet: "inet", program.Timestamp: "timestamp", program.Buffer: "buffer",
	program.Strerror: "strerror",
	program.MacAddr:  "macaddr", program.CgroupPath: "cgroup_path",
}

// blob makes the type of a host-printed value of kind k.
func blob(k program.TypeKind) ty {
	size := 8
	switch k {
	case program.USym:
		size = 16
	case program.Inet:
		size = 24
	}
	return ty{k: kBlob, blob: k, size: size}
}

// computable says whether t is an integer a script may compute with, or
// not known yet; an aggregation's value (ty.from) is not.
func computable(t ty) bool {
	return t.k == kNone || t.k == kInt && t.from == program.Plain
}

var aggName = map[program.Agg]string{
	program.Plain: "value", program.Count: "count", program.Sum: "sum", program.Min: "min",
	program.Max: "max", program.Avg: "avg", program.Stats: "stats", program.Hist: "hist",
	program.Lhist: "lhist",
}

// pointerType describes a C pointer type as a tracepoint format spells it,
// e.g. "const char *" or "const char *const *".
func pointerType(ctype string, user bool) ty {
	t := ty{k: kInt, ptr: true, user: user, depth: strings.Count(ctype, "*")}
	t.esize, t.esigned, _ = cInteger(strings.ReplaceAll(ctype, "*", " "))
	return t
}

// cInteger gives the size and signedness of a C integer type as kernel
// headers spell it ("const int", "pid_t", "unsigned long").
func cInteger(ctype string) (size int, signed, ok bool) {
	base := strings.Fields(strings.NewReplacer("const", " ", "volatile", " ").Replace(ctype))
	switch strings.Join(base, " ") {
	case "char", "s8", "__s8", "signed char":
		return 1, true, true
	case "unsigned char", "u8", "__u8", "bool", "_Bool":
		return 1, false, true
	case "short", "s16", "__s16", "short int":
		return 2, true, true
	case "unsigned short", "u16", "__u16", "umode_t", "unsigned short int":
		return 2, false, true
	case "int", "s32", "__s32", "pid_t", "clockid_t", "timer_t", "mqd_t", "key_t", "key_serial_t", "signed int":
		return 4, true, true
	case "unsigned int", "unsigned", "u32", "__u32", "uid_t", "gid_t", "qid_t", "dev_t", "gfp_t", "__poll_t", "rwf_t":
		return 4, false, true
	case "long", "long long", "s64", "__s64", "loff_t", "ssize_t", "long int", "long long int", "time64_t":
		return 8, true, true
	case "unsigned long", "unsigned long long", "u64", "__u64", "size_t", "aio_context_t", "unsigned long int", "off_t":
		return 8, false, true
	}
	return 0, false, false
}

// asDeclared makes an integer field's value what its C type says, as
// bpftrace's struct for the tracepoint does: syscall tracepoints store
// every argument in 8 bytes marked unsigned, but `int fd` is a signed
// 4-byte int, and -100 must read as -100.
func asDeclared(f Field) Field {
	if f.Kind != FieldInt {
		return f
	}
	if size, signed, ok := cInteger(f.Type); ok && size <= f.Size {
		f.Size, f.Signed = size, signed
	}
	return f
}

// elem is the type of *p or p[i].
func (t ty) elem() ty {
	if t.depth > 1 {
		return ty{k: kInt, ptr: true, user: t.user, depth: t.depth - 1, esize: t.esize, esigned: t.esigned, bt: t.bt}
	}
	if t.bt != nil {
		n, _ := btf.Sizeof(t.bt)
		return ty{k: kRecord, bt: t.bt, size: n, user: t.user}
	}
	return ty{k: kInt, signed: t.esigned}
}

// elemSize is how many bytes *p reads.
// step is how far p + 1 is from p for a pointer (stride), 1 for an
// integer: what +, -, += and ++ move by.
func (t ty) step() int {
	if !t.ptr {
		return 1
	}
	return max(t.stride(), 1)
}

// stride is how far p + 1 is from p: the size of what p points to, a
// struct's too, as in C.
func (t ty) stride() int {
	if t.depth == 1 && t.bt != nil {
		n, err := btf.Sizeof(t.bt)
		if err != nil {
			return 1
		}
		return n
	}
	return t.elemSize()
}

func (t ty) elemSize() int {
	if t.depth > 1 {
		return 8
	}
	return t.esize
}
