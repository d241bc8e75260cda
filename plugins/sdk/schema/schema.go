// Package schema is the layout of what a trace program emits: its printf
// formats, its maps and how their keys and values are laid out, the tags
// of its ring buffer records and the maps every program has. The broker
// decodes and prints events and maps with it (broker/program aliases
// these types); a generator plugin that returns its own eBPF
// (sdk.Output.Program) describes its output with it, as JSON in
// sdk.Program.Schema.
//
// It lives in the SDK module, not the broker, so that a plugin's author
// can use it without the broker's dependencies; the broker imports it,
// never the other way round.
package schema

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
	// EventHelperError is a helper call that failed, under bpftrace's
	// -k: u64 site id (index into Schema.HelperSites), then the
	// helper's return value, whose low 32 bits are its int.
	EventHelperError
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
	// HelperSites are the helper calls -k reports the failures of,
	// indexed by site id. Only the broker's compiler makes them.
	HelperSites []HelperSite `json:",omitempty"`
}

// HelperSite is a helper call of the script: the helper, as bpftrace
// names it, and the script's text that calls it (byte offsets, lines
// and columns from 1; End is exclusive).
type HelperSite struct {
	Helper                     string
	Offset, Line, Col          int
	EndOffset, EndLine, EndCol int
}

// Format is one printf call site.
type Format struct {
	Fmt  string // the format string as written, escapes resolved
	Args []Arg
	Size int // record size in bytes, including the 16-byte header
	// Value, when set, marks the printf that print(VALUE) of a value
	// makes: the value it prints, laid over the record (a Record's
	// members at their arguments' offsets), which JSON output prints as
	// bpftrace's "value" event rather than as text.
	Value *Arg `json:",omitempty"`
	// Action, when set, is what the host does with the formatted text
	// instead of printing it: "cat" prints the file it names, "system"
	// runs it as a shell command line and prints its output. Only the
	// broker's compiler sets it: a program handed over whole (a
	// plugin's) that sets it is refused.
	Action string `json:",omitempty"`
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

	// Record is a struct or union read through BTF, stored whole: its
	// named members (Names, Elems, Offs), in order, printed as bpftrace
	// prints a record ({ .weight = 1048576, .inv_weight = 4194304 }).
	Record
	// Array is a C array stored whole: its elements (Elems, Offs), in
	// order, printed as [3,0,0,0].
	Array
	// Strerror is a u64 errno, printed as libc's strerror() text:
	// strerror().
	Strerror
	// MacAddr is 6 bytes (stored in 8): macaddr(), printed as
	// 05:04:03:02:01:02.
	MacAddr
	// CgroupPath is a u64 cgroup id, printed as the cgroup's path in each
	// mounted hierarchy where it is found: cgroup_path().
	CgroupPath
)

// Resolved reports whether values of kind k need a Resolver to print.
func (k TypeKind) Resolved() bool {
	switch k {
	case KStack, UStack, KSym, USym, Username, Timestamp, CgroupPath:
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
	Elems  []Type // Tuple, Record, Array
	Offs   []int  // Tuple, Record, Array: offset of each element
	// Names are a Record's members' names, one per element.
	Names []string
	// Bits, when non-zero, makes an Int (a Record's member) a bitfield:
	// Bits bits at bit BitOff of its Size bytes, unsigned.
	BitOff, Bits int
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

// KeySize is the size of the subscript part of a key (without the hist
// bucket index).
func (m *Map) KeySize() int {
	n := 0
	for _, k := range m.Keys {
		n += k.Size
	}
	return n
}
