// Package program defines Program, the value that crosses every stage of the
// pipeline: a generator (the script compiler, a plugin) produces it, attest
// and the gatekeeper judge it, an executor runs it, and the output stage
// formats what it emits using its Schema.
package program

import (
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Program is everything needed to run one trace.
type Program struct {
	// Source is what the program was generated from (script text), for
	// attestation and for error messages.
	Source string
	// Generator names what produced the program, e.g. "script".
	Generator string

	Probes []*Probe
	// Maps are the BPF maps the probes reference by name (asm references).
	// The executor creates them; the output stage learns their meaning
	// from Schema.
	Maps []*ebpf.MapSpec
	// Schema describes every event and user map for decoding and printing.
	Schema Schema
}

// ProbeKind says how a probe is attached.
type ProbeKind uint8

const (
	// Begin runs once before any other probe is attached.
	Begin ProbeKind = iota + 1
	// End runs once after every other probe is detached.
	End
	// Tracepoint attaches to a kernel tracepoint (Category, Name).
	Tracepoint
	// Interval fires on one CPU every Period nanoseconds.
	Interval
	// Profile samples every CPU every PeriodNs nanoseconds, or Freq
	// times a second.
	Profile
	// RawTracepoint attaches to a kernel tracepoint by Event name, with
	// the tracepoint's raw arguments (u64 each) as context.
	RawTracepoint
	// Uprobe fires when a user function is entered (Path, Offset).
	Uprobe
	// Uretprobe fires when a user function returns (Path, Offset).
	Uretprobe
	// TpBTF attaches to a kernel tracepoint by Event name through BTF
	// (tp_btf): the context is the tracepoint's typed arguments, one u64
	// each, as for RawTracepoint, but the verifier knows their types.
	TpBTF
	// Gatekeeper is an admission policy: it runs in the interpreter over
	// the gatekeeper's Request (gatekeeper/abi) and returns a verdict.
	Gatekeeper
)

// String is the kind's probe type as bpftrace spells it ("BEGIN",
// "tracepoint", "tp_btf", ...).
func (k ProbeKind) String() string {
	if int(k) < len(probeKindNames) && probeKindNames[k] != "" {
		return probeKindNames[k]
	}
	return "unknown"
}

var probeKindNames = [...]string{
	Begin: "BEGIN", End: "END", Tracepoint: "tracepoint", Interval: "interval", Profile: "profile",
	RawTracepoint: "rawtracepoint", Uprobe: "uprobe", Uretprobe: "uretprobe", TpBTF: "tp_btf",
	Gatekeeper: "gatekeeper",
}

// Probe is one attach point with its own code. A script probe with a
// wildcard or a list of specs becomes one Probe per matched attach point.
type Probe struct {
	Kind ProbeKind
	// Name is the expanded probe name as bpftrace prints it with the
	// `probe` builtin, e.g. "tracepoint:syscalls:sys_enter_openat".
	Name     string
	Category string // Tracepoint
	Event    string // Tracepoint
	PeriodNs uint64 // Interval, Profile
	Freq     uint64 // Profile: samples per second per CPU (profile:hz:N)
	Path     string // Uprobe, Uretprobe: the ELF file
	Offset   uint64 // Uprobe, Uretprobe: file offset of the function
	// Binary, when set, is Path opened once: the file the compiler read
	// and the scope check judged, which the executor attaches to
	// whatever has the name by then.
	Binary Binary `json:"-"`
	// Loops is set when the code has a while loop, which the kernel's
	// verifier must prove ends.
	Loops bool
	Insns asm.Instructions

	// CtxLen and CtxStrings are what interpreter mode's static collector
	// copies for this probe: CtxLen bytes of its context (at most
	// MaxContext), and the strings behind the pointers stored in the
	// context at CtxStrings' offsets, so that str() of a tracepoint field
	// or a uprobe argument reads, in the interpreter, what it would have
	// read in the kernel.
	CtxLen     int
	CtxStrings []CtxString
	// KStack and UStack: interpreter mode's collector copies the kernel
	// / user stack of each event (the program takes kstack / ustack).
	KStack, UStack bool

	// Reads is what memory the code reads (see Reads); ReadSites, for a
	// script's program, the first expression of each class in Reads.
	Reads     Reads
	ReadSites []ReadSite
}

// Func is a uprobe's function as its name spells it (KIND:PATH:FUNC):
// the symbol, or the address as written.
func (p *Probe) Func() string {
	return strings.TrimPrefix(p.Name, p.Kind.String()+":"+p.Path+":")
}

// Binary is a uprobe's file, opened once (bpf/uprobe.Target).
type Binary interface {
	// AttachPath names the open file for the kernel: /proc/self/fd/N.
	AttachPath() string
	Close() error
}

// Close releases what the program holds open: its probes' Binaries. The
// probes attached through them stay attached.
func (p *Program) Close() error {
	var first error
	closed := map[Binary]bool{}
	for _, pr := range p.Probes {
		if b := pr.Binary; b != nil && !closed[b] {
			closed[b] = true
			if err := b.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// CtxString is a pointer in a probe's context whose string interpreter
// mode captures.
type CtxString struct {
	Off  int  // the pointer's offset in the context
	User bool // it points into the traced process, not the kernel
	// Array: the pointer is to an array of string pointers (argv), whose
	// pointers and strings are copied, up to the collector's limits.
	Array bool `json:",omitempty"`
}

// MaxContext bounds the context interpreter mode copies per event
// (bpf/collector.MaxContext); a tracepoint with a __data_loc string
// copies this much, so that the string in the record's tail comes along.
const MaxContext = 512

// Context sizes of the probe kinds whose context is fixed (x86-64).
const (
	PtRegsSize        = 168 // struct pt_regs: uprobes
	PerfEventDataSize = 184 // struct bpf_perf_event_data: profile, interval
)

// Event type tags: the first 8 bytes of every ring buffer record.
const (
	EventPrintf uint64 = iota + 1 // u64 format id, then the arguments at Format.Args offsets
	EventExit                     // no payload
	EventPrint                    // u64 map id (index into Schema.Maps), u64 top, u64 div
	EventClear                    // u64 map id
	EventZero                     // u64 map id: every value set to zero, keys kept
	// EventTime is time(): u64 format id, whose Fmt is the strftime
	// format of the moment the event is printed.
	EventTime
	// EventJoin is join(): u64 format id, whose Fmt is the delimiter and
	// whose Args are the string slots; u64 count of slots filled.
	EventJoin
)

// EventsMap is the name of the ring buffer every probe writes to.
const EventsMap = "events"

// ErrorsMap is the name of the per-CPU array counting what did not fit:
// entry i < len(Schema.Maps) counts failed updates of map i (a full map),
// entry len(Schema.Maps) counts events the ring buffer had no room for.
// Neither is ever silent.
const ErrorsMap = "map_errors"

// Schema describes what a program emits.
type Schema struct {
	Formats []*Format // indexed by format id
	Maps    []*Map    // indexed by map id
}

// Format is one printf call site.
type Format struct {
	Fmt  string // the format string as written, escapes resolved
	Args []Arg
	Size int // record size in bytes, including the 16-byte header
}

// Arg is one printf argument inside the event record.
type Arg struct {
	Type   Type
	Offset int // from the start of the record
}

// TypeKind classifies runtime values.
type TypeKind uint8

const (
	Int TypeKind = iota + 1
	String
	Tuple

	// The kinds below are bytes the host turns into text when it prints
	// them: symbols, stacks, user names, addresses, times. A Resolver
	// fills in the text (Value.Str, or Value.Lines for stacks).

	// KStack is a u64 stack id in the StackMap (negative: the kernel
	// could not take the stack, printed as no frames).
	KStack
	// UStack is a u64 holding the stack id in its low 32 bits and the
	// pid whose address space the frames belong to in its high 32 bits,
	// as bpftrace packs it.
	UStack
	// KSym is a u64 kernel address, printed as its symbol's name.
	KSym
	// USym is a u64 user address and the u64 pid of its address space.
	USym
	// Username is a u64 uid, printed as the user's name.
	Username
	// Inet is a u64 address family (AF_INET or AF_INET6) and 16 address
	// bytes: ntop().
	Inet
	// Timestamp is u64 nanoseconds of the monotonic clock (nsecs),
	// printed as wall-clock time with strftime(Format).
	Timestamp
	// Buffer is a u64 length and then up to Size-8 bytes: buf().
	Buffer
)

// Resolved reports whether values of kind k need a Resolver to print.
func (k TypeKind) Resolved() bool {
	switch k {
	case KStack, UStack, KSym, USym, Username, Timestamp:
		return true
	}
	return false
}

// Type is the type of a value as it is laid out in a map key, a map value
// or an event record. Ints are little-endian and Size bytes wide (1, 2, 4
// or 8); strings are Size bytes, NUL-padded; tuples are their elements in
// order, each at its own offset.
type Type struct {
	Kind   TypeKind
	Size   int
	Signed bool
	Elems  []Type // Tuple
	Offs   []int  // Tuple: offset of each element
	// Pointer marks an Int that holds an address: bpftrace prints it in
	// hex as a map key (values stay decimal).
	Pointer bool

	// KStack, UStack: the stack trace map the id refers to, how many
	// frames to print, and whether to print them in bpftrace's perf mode
	// ("\tADDR sym+off (module)") rather than its default one.
	StackMap string
	Frames   int
	Perf     bool
	// Timestamp: the strftime format.
	Format string
}

// Agg is how a map's values are produced and printed.
type Agg uint8

const (
	Plain Agg = iota // plain assignment: @m = expr
	Count
	Sum
	Min
	Max
	Avg
	Stats
	Hist
	Lhist
)

// Map is the schema of one user map.
//
// Kernel layout, which the executor decodes:
//   - Plain: hash, key = keys (or a u64 0), value = Value.
//   - Count, Sum: per-CPU hash, value = s64 (summed over CPUs).
//   - Min, Max: per-CPU hash, value = {s64 value; u64 set} (set != 0 when written).
//   - Avg, Stats: per-CPU hash, value = {s64 total; u64 count}.
//   - Hist, Lhist: per-CPU hash, key = keys + u64 bucket index, value = u64 count.
//     Hist bucket 0 counts values < 0, bucket 1 the value 0, bucket i >= 2
//     values in [2^(i-2), 2^(i-1)). Lhist bucket 0 counts values < Min,
//     bucket i in 1..n values in [Min+(i-1)*Step, Min+i*Step), bucket n+1
//     values >= Max, where n = (Max-Min)/Step.
type Map struct {
	Name  string // "@" or "@name"
	BPF   string // name of the BPF map in Program.Maps
	Keys  []Type // nil: a map without subscript
	Value Type   // Plain: the value type; aggregates: an s64/u64 Int
	Agg   Agg
	// Lhist parameters.
	Min, Max, Step int64
}

// HistBuckets is the number of log2 buckets a hist() map key can hold.
const HistBuckets = 66

// ConfigMap is a one-element array the executor fills before attaching:
// values known only at run time (start time for `elapsed`, the child's pid).
const ConfigMap = "config"

// Offsets in the ConfigMap value.
const (
	ConfigStartNs = 0  // u64: ktime at start, for `elapsed`
	ConfigCpid    = 8  // u64: pid of the -c child
	ConfigStopped = 16 // u64: non-zero once the trace is over; probes return at once
	ConfigSize    = 24
)
