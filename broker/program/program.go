// Package program defines Program, the value that crosses every stage of the
// pipeline: a generator (the script compiler, a plugin) produces it, attest
// and the gatekeeper judge it, an executor runs it, and the output stage
// formats what it emits using its Schema.
package program

import (
	"slices"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/plugins/sdk/schema"
)

// Program is everything needed to run one trace.
type Program struct {
	// Types are the kernel's struct, union and enum types (BTF) whose
	// fields or sizes the program's code reads, for a recording to
	// carry: a replay compiles against them.
	Types []btf.Type `json:"-"`
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
	// Object, when set, says the program is a clang-built object's: Maps
	// and Schema are empty and Object says what there is instead.
	Object *Object `json:"-"`
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
	// Uprobe fires when a user function is entered (Path, Offset); or,
	// with Funcs and Offsets, when any of those functions of Path is
	// (one uprobe.multi link).
	Uprobe
	// Uretprobe fires when a user function returns (Path, Offset; or
	// Funcs and Offsets).
	Uretprobe
	// TpBTF attaches to a kernel tracepoint by Event name through BTF
	// (tp_btf): the context is the tracepoint's typed arguments, one u64
	// each, as for RawTracepoint, but the verifier knows their types.
	TpBTF
	// Gatekeeper is an admission policy: it runs in the interpreter over
	// the gatekeeper's Request (gatekeeper/abi) and returns a verdict.
	Gatekeeper
	// Fentry runs when a kernel function (Category the module, Event
	// the function) is entered, through a BPF trampoline: bpftrace's
	// kfunc. The context is the function's arguments, a u64 slot each,
	// typed by the function's BTF.
	Fentry
	// Fexit runs when a kernel function returns (kretfunc): the context
	// is Fentry's with the return value in the slot after the arguments.
	Fexit
	// Kprobe fires when a kernel function (Event, in module Category
	// when set) is entered, Offset bytes into it; or, with Funcs, when
	// any of those functions is (one kprobe.multi link).
	Kprobe
	// Kretprobe fires when a kernel function returns (Event or Funcs).
	Kretprobe
	// Software samples a perf software event (Event, its canonical
	// name: "page-faults") on every CPU, once every Sample events.
	Software
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
	Gatekeeper: "gatekeeper", Fentry: "kfunc", Fexit: "kretfunc", Kprobe: "kprobe", Kretprobe: "kretprobe",
	Software: "software",
}

// Probe is one attach point with its own code. A script probe with a
// wildcard or a list of specs becomes one Probe per matched attach point.
type Probe struct {
	Kind ProbeKind
	// Name is the expanded probe name as bpftrace prints it with the
	// `probe` builtin, e.g. "tracepoint:syscalls:sys_enter_openat".
	Name     string
	Category string // Tracepoint; Fentry, Fexit: the module ("vmlinux")
	Event    string // Tracepoint; Fentry, Fexit: the function
	PeriodNs uint64 // Interval, Profile
	// Sample is a Software probe's period: events per sample.
	Sample uint64 `json:",omitempty"`
	Freq   uint64 // Profile: samples per second per CPU (profile:hz:N)
	Path   string // Uprobe, Uretprobe: the ELF file
	Offset uint64 // Uprobe, Uretprobe: file offset of the function; Kprobe: offset into it
	// RefCtrOffset is a USDT probe's semaphore, the file offset of the
	// counter the kernel increments in each process while the uprobe is
	// attached (0: none). Only the compiler sets it, from the file's
	// notes: a plugin's program cannot (plugins/raw.go copies no such
	// field).
	RefCtrOffset uint64 `json:",omitempty"`
	// Block is the index of the script's probe block this probe comes
	// from: the probes of one wildcard share it (AttachOrder).
	Block int `json:",omitempty"`
	// Funcs, for a Kprobe or Kretprobe whose Name is a wildcard, are the
	// kernel functions it attaches to with one kprobe.multi link; each
	// is judged as the probe KIND:FUNC would be (AttachNames). For an
	// Uprobe or Uretprobe whose Name is a wildcard, they are the
	// functions of Path it attaches to with one uprobe.multi link, at
	// Offsets (parallel to Funcs), each judged as KIND:PATH:FUNC; the
	// attach cookie of function i is i (UprobeMulti).
	Funcs []string `json:",omitempty"`
	// Offsets are the file offsets of a uprobe.multi probe's Funcs.
	Offsets []uint64 `json:",omitempty"`
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
	// KReads are the reads of kernel memory through pointers (struct
	// fields through BTF, a kfunc argument's pointee) that interpreter
	// mode's collector makes at each event, so that the program's own
	// reads find, in the interpreter, what the kernel held. Task: the
	// collector copies the current task's address (curtask).
	KReads []KRead `json:",omitempty"`
	Task   bool    `json:",omitempty"`
	// KernelOnly, when set, names a construct that reads kernel memory
	// the collector cannot copy (through a pointer that is not a chain
	// KReads can spell): the interpreter refuses the probe, naming it.
	KernelOnly string `json:",omitempty"`

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
	// Saved: the program saves the pointer (in a map) and reads its
	// string at another probe's event, when the memory is no longer the
	// collector's to copy. Interpreter mode keeps the string it copied
	// here, by process and address, to answer that later read.
	Saved bool `json:",omitempty"`
}

// KRead is a chain of kernel reads interpreter mode's collector makes at
// each event: from a base pointer (the current task, or the pointer at
// context offset Ctx), one read per offset in Offs, each but the last of
// a pointer (8 bytes) at the previous pointer plus its offset, the last
// of Size bytes (a string of at most Size bytes with its NUL, when Str).
// It is what a chain such as curtask->real_parent->pid reads, step by
// step, in the program itself.
type KRead struct {
	Task bool `json:",omitempty"`
	Ctx  int  `json:",omitempty"`
	Offs []int
	Size int
	Str  bool `json:",omitempty"`
}

// Equal reports whether r and o read the same memory.
func (r KRead) Equal(o KRead) bool {
	return r.Task == o.Task && r.Ctx == o.Ctx && r.Size == o.Size && r.Str == o.Str && slices.Equal(r.Offs, o.Offs)
}

// Covers reports whether r makes every read o makes: o is r, or r's
// chain leads through o's last read, a pointer.
func (r KRead) Covers(o KRead) bool {
	if r.Equal(o) {
		return true
	}
	return r.Task == o.Task && r.Ctx == o.Ctx && !o.Str && o.Size == 8 &&
		len(o.Offs) < len(r.Offs) && slices.Equal(r.Offs[:len(o.Offs)], o.Offs)
}

// Limits of interpreter mode's kernel reads (bpf/collector.MaxSteps):
// every read of every chain is a step, and a probe has at most
// MaxKReadSteps of them; a read is at most MaxKReadSize bytes, at an
// offset below MaxKReadOffset.
const (
	MaxKReadSteps  = 32
	MaxKReadSize   = 256
	MaxKReadOffset = 1 << 20
)

// MaxContext bounds the context interpreter mode copies per event
// (bpf/collector.MaxContext); a tracepoint with a __data_loc string
// copies this much, so that the string in the record's tail comes along.
const MaxContext = 512

// Context sizes of the probe kinds whose context is fixed (x86-64).
const (
	PtRegsSize        = 168 // struct pt_regs: uprobes, kprobes
	PerfEventDataSize = 184 // struct bpf_perf_event_data: profile, interval
)

// The layout of what a program emits lives in the plugin SDK's module
// (plugins/sdk/schema), which generators that return their own eBPF share
// with the broker; these names are the broker's for it.
type (
	Schema   = schema.Schema
	Format   = schema.Format
	Arg      = schema.Arg
	TypeKind = schema.TypeKind
	Type     = schema.Type
	Agg      = schema.Agg
	Map      = schema.Map

	HelperSite = schema.HelperSite
)

// Event type tags: the first 8 bytes of every ring buffer record.
const (
	EventPrintf = schema.EventPrintf
	EventExit   = schema.EventExit
	EventPrint  = schema.EventPrint
	EventClear  = schema.EventClear
	EventZero   = schema.EventZero
	EventTime   = schema.EventTime
	EventJoin   = schema.EventJoin

	EventHelperError = schema.EventHelperError
)

// Sizes of the events ring buffer (EventsMap) the compiler gives a
// script: EventBuffer when it prints, QuietEventBuffer, one page, when it
// only updates maps (and may exit()). The kernel wants a power of two
// times the page size: a host with larger pages gets one of its pages.
const (
	EventBuffer      = 4 << 20
	QuietEventBuffer = 4 << 10
)

// The maps every program has.
const (
	EventsMap = schema.EventsMap
	ErrorsMap = schema.ErrorsMap
	ConfigMap = schema.ConfigMap
)

// NamesMap is the read-only array of a program whose uprobe.multi
// probes' code reads `probe` or `func`: at each function's attach
// cookie, plus the probe's first entry, the probe's name for that
// function and the function's, 64 bytes each (broker/script/compile).
const NamesMap = "probe_names"

// Type kinds.
const (
	Int        = schema.Int
	String     = schema.String
	Tuple      = schema.Tuple
	KStack     = schema.KStack
	UStack     = schema.UStack
	KSym       = schema.KSym
	USym       = schema.USym
	Username   = schema.Username
	Inet       = schema.Inet
	Timestamp  = schema.Timestamp
	Buffer     = schema.Buffer
	Record     = schema.Record
	Array      = schema.Array
	MacAddr    = schema.MacAddr
	CgroupPath = schema.CgroupPath
	Strerror   = schema.Strerror
)

// Aggregations.
const (
	Plain = schema.Plain
	Count = schema.Count
	Sum   = schema.Sum
	Min   = schema.Min
	Max   = schema.Max
	Avg   = schema.Avg
	Stats = schema.Stats
	Hist  = schema.Hist
	Lhist = schema.Lhist
)

// HistBuckets is the number of log2 buckets a hist() map key can hold.
const HistBuckets = schema.HistBuckets

// Offsets in the ConfigMap value.
const (
	ConfigStartNs = schema.ConfigStartNs
	ConfigCpid    = schema.ConfigCpid
	ConfigStopped = schema.ConfigStopped
	ConfigSize    = schema.ConfigSize
)

// firesLastFirst are the kinds whose probes on one function the kernel
// runs in the reverse of the order they were attached: bpftrace attaches
// them last to first, so that they fire in the script's order
// (bpftrace's attach_reverse).
var firesLastFirst = map[ProbeKind]bool{Kprobe: true, Uprobe: true, Uretprobe: true, Fentry: true, Software: true}

// AttachOrder is the order to attach probes so that probes on one event
// fire in the order the script wrote them: the other kinds first to
// last, then these by block (Probe.Block) last to first, the probes of
// one block (a wildcard's) first to last, as bpftrace attaches them.
func AttachOrder(probes []*Probe) []int {
	return AttachOrderOf(len(probes), func(i int) (ProbeKind, int) { return probes[i].Kind, probes[i].Block })
}

// AttachOrderOf is AttachOrder of n probes whose kinds and blocks at
// returns.
func AttachOrderOf(n int, at func(i int) (ProbeKind, int)) []int {
	out := make([]int, 0, n)
	var rev []int
	for i := 0; i < n; i++ {
		if k, _ := at(i); firesLastFirst[k] {
			rev = append(rev, i)
		} else {
			out = append(out, i)
		}
	}
	block := func(i int) int { _, b := at(i); return b }
	sort.SliceStable(rev, func(a, b int) bool { return block(rev[a]) > block(rev[b]) })
	return append(out, rev...)
}
