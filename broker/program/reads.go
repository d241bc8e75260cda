package program

import (
	"slices"
	"strings"

	"github.com/cilium/ebpf/asm"
)

// Reads is the set of the kinds of memory a probe's program reads besides
// its own stack and maps, and whether it hands out kernel addresses. A
// token's probe: scopes grant the first two; the others need scopes of
// their own (read:user, read:kernel). The script compiler knows them from
// the expressions it generated code for; for raw eBPF they are derived
// from the helpers it calls (HelperReads).
type Reads uint64

const (
	// ReadsContext: the probe's own context — a tracepoint's record
	// (fields, char arrays, __data_loc strings), raw and tp_btf argument
	// slots, a uprobe's pt_regs, a perf event's data.
	ReadsContext Reads = 1 << iota
	// ReadsUserContext: user memory through a user pointer taken from
	// the context (a syscall's filename, a uprobe's argument, a tp_btf
	// __user argument), and the array it points to at a constant index
	// below ContextArrayLen (argv[1], join(args->argv)).
	ReadsUserContext
	// ReadsUser: user memory at any other address: a pointer plus an
	// offset, a variable index, an integer, a map value, uaddr(). In
	// BEGIN and END, whose context is the broker's own, every user read
	// is this.
	ReadsUser
	// ReadsKernel: kernel memory that is not the probe's context: through
	// a kernel pointer field, an integer, an address computed or loaded
	// from anywhere.
	ReadsKernel
	// ReadsKernelAddr: values that reveal kernel addresses the context
	// does not give: kaddr(), kstack(perf)'s raw frames, ksym() of a
	// value the script chose (it names any address: a KASLR oracle).
	ReadsKernelAddr
)

// ContextArrayLen bounds the constant index at which an array reached
// through a context pointer may be read as the context's (argv[0] to
// argv[15]: join()'s 16 strings).
const ContextArrayLen = 16

var readsNames = []string{"context", "user-context", "user", "kernel", "kernel-address"}

// String names the classes in r, comma-separated: context,
// user-context, user, kernel, kernel-address.
func (r Reads) String() string {
	var w []string
	for i, n := range readsNames {
		if r&(1<<i) != 0 {
			w = append(w, n)
		}
	}
	return strings.Join(w, ",")
}

// Classes lists the classes in r, lowest bit first.
func (r Reads) Classes() []Reads {
	var out []Reads
	for i := range readsNames {
		if c := Reads(1) << i; r&c != 0 {
			out = append(out, c)
		}
	}
	return out
}

// Pos is a position in a program's source (as syntax.Pos): a byte
// offset, and its 1-based line and column.
type Pos struct {
	Offset, Line, Col int
}

// ReadSite is the expression of a script that first reads one class of
// memory, so that a refusal can point at it.
type ReadSite struct {
	Class Reads
	// What says what the expression does, as an error states it: "buf()
	// of an integer reads arbitrary kernel memory".
	What     string
	From, To Pos
}

// Reads is the union of the probes' reads, and for each class the
// site of the script that comes first in the source (none for a raw
// program's classes).
func (p *Program) Reads() (Reads, []ReadSite) {
	var all Reads
	first := map[Reads]ReadSite{}
	for _, pr := range p.Probes {
		all |= pr.Reads
		for _, s := range pr.ReadSites {
			if have, ok := first[s.Class]; !ok || SiteBefore(s, have) {
				first[s.Class] = s
			}
		}
	}
	var sites []ReadSite
	for _, s := range first {
		sites = append(sites, s)
	}
	// In the order of the source; of two that start together (curtask
	// and curtask->pid), the inner first, whatever the map's order.
	slices.SortFunc(sites, func(a, b ReadSite) int {
		if a.From.Offset != b.From.Offset {
			return a.From.Offset - b.From.Offset
		}
		if a.To.Offset != b.To.Offset {
			return a.To.Offset - b.To.Offset
		}
		return int(a.Class) - int(b.Class)
	})
	return all, sites
}

// SiteBefore reports whether an error should point at a rather than b:
// the site that ends first, so that of nested reads (str(args->argv[$i]))
// the innermost is named, and of two in a row the first.
func SiteBefore(a, b ReadSite) bool {
	if a.To.Offset != b.To.Offset {
		return a.To.Offset < b.To.Offset
	}
	return a.From.Offset > b.From.Offset
}

// HelperReads is what a program that calls these helpers may read,
// judged by the helpers alone, as for raw eBPF whose expressions nobody
// knows: a helper that reads kernel memory means kernel memory, one that
// reads user memory means arbitrary user memory. A call that is not a
// known helper (a kfunc, an unknown id) may do anything, and counts as
// every class.
func HelperReads(insns asm.Instructions) Reads {
	var r Reads
	for _, ins := range insns {
		if ins.OpCode.JumpOp() == asm.Call {
			switch {
			case ins.OpCode.Source() == asm.RegSource:
				r |= everything // callx: a target nobody knows
			case ins.IsBuiltinCall():
				r |= helperReads(asm.BuiltinFunc(ins.Constant))
			case ins.IsFunctionCall():
				// bpf-to-bpf: its instructions are in insns.
			default:
				r |= everything
			}
		}
	}
	return r
}

const everything = ReadsUser | ReadsKernel | ReadsKernelAddr

// helperReads is what one helper may read. A helper missing from both
// lists is unknown here, and counts as every class.
func helperReads(fn asm.BuiltinFunc) Reads {
	if r, ok := readingHelpers[fn]; ok {
		return r
	}
	if quietHelpers[fn] {
		return 0
	}
	return everything
}

// readingHelpers read memory at an address the program gives, or hand
// out kernel addresses.
var readingHelpers = map[asm.BuiltinFunc]Reads{
	asm.FnProbeRead:          ReadsUser | ReadsKernel, // either, by the address
	asm.FnProbeReadStr:       ReadsUser | ReadsKernel,
	asm.FnProbeReadUser:      ReadsUser,
	asm.FnProbeReadUserStr:   ReadsUser,
	asm.FnCopyFromUser:       ReadsUser,
	asm.FnCopyFromUserTask:   ReadsUser,
	asm.FnProbeReadKernel:    ReadsKernel,
	asm.FnProbeReadKernelStr: ReadsKernel,
	asm.FnDPath:              ReadsKernel,
	asm.FnSnprintfBtf:        ReadsKernel,
	asm.FnSeqPrintfBtf:       ReadsKernel,
	asm.FnPerCpuPtr:          ReadsKernel | ReadsKernelAddr,
	asm.FnThisCpuPtr:         ReadsKernel | ReadsKernelAddr,
	asm.FnGetCurrentTask:     ReadsKernel | ReadsKernelAddr,
	asm.FnGetCurrentTaskBtf:  ReadsKernel | ReadsKernelAddr,
	asm.FnTaskPtRegs:         ReadsKernel | ReadsKernelAddr,
	asm.FnKallsymsLookupName: ReadsKernelAddr,
	asm.FnGetFuncIp:          ReadsKernelAddr,
	asm.FnGetStack:           ReadsKernelAddr, // raw frame addresses into the program's memory
	asm.FnGetTaskStack:       ReadsKernel | ReadsKernelAddr,
	// %s, %pks and %pus read strings at addresses the program gives.
	asm.FnTracePrintk:  ReadsUser | ReadsKernel,
	asm.FnTraceVprintk: ReadsUser | ReadsKernel,
	asm.FnSnprintf:     ReadsUser | ReadsKernel,
	asm.FnSeqPrintf:    ReadsUser | ReadsKernel,
}

// quietHelpers read nothing but the program's own memory and maps, and
// facts about the current task: what the script compiler calls, and the
// like.
var quietHelpers = map[asm.BuiltinFunc]bool{
	asm.FnMapLookupElem: true, asm.FnMapUpdateElem: true, asm.FnMapDeleteElem: true,
	asm.FnMapPushElem: true, asm.FnMapPopElem: true, asm.FnMapPeekElem: true,
	asm.FnMapLookupPercpuElem: true, asm.FnForEachMapElem: true, asm.FnLoop: true,
	asm.FnKtimeGetNs: true, asm.FnKtimeGetBootNs: true, asm.FnKtimeGetCoarseNs: true, asm.FnKtimeGetTaiNs: true,
	asm.FnJiffies64: true, asm.FnGetPrandomU32: true, asm.FnGetSmpProcessorId: true, asm.FnGetNumaNodeId: true,
	asm.FnGetCurrentPidTgid: true, asm.FnGetCurrentUidGid: true, asm.FnGetCurrentComm: true,
	asm.FnGetCurrentCgroupId: true, asm.FnGetCurrentAncestorCgroupId: true, asm.FnGetNsCurrentPidTgid: true,
	asm.FnGetAttachCookie: true, asm.FnStrncmp: true,
	// Stack ids: the frames stay in the stack map, printed as the
	// schema says (kstack(perf) is judged by the schema).
	asm.FnGetStackid:    true,
	asm.FnRingbufOutput: true, asm.FnRingbufReserve: true, asm.FnRingbufSubmit: true,
	asm.FnRingbufDiscard: true, asm.FnRingbufQuery: true, asm.FnPerfEventOutput: true,
	// Side effects, not reads: judged on their own (Effects; the
	// compiler refuses signal() without --unsafe).
	asm.FnSendSignal: true, asm.FnSendSignalThread: true,
}

// SchemaReads is what a program's output reveals by how it is printed:
// a kernel stack in perf mode prints raw kernel addresses, and a ksym
// value names whatever address it holds.
func SchemaReads(s Schema) Reads {
	var r Reads
	var walk func(t Type)
	walk = func(t Type) {
		switch {
		case t.Kind == KSym, t.Kind == KStack && t.Perf:
			r |= ReadsKernelAddr
		}
		for _, e := range t.Elems {
			walk(e)
		}
	}
	for _, f := range s.Formats {
		if f == nil {
			continue
		}
		for _, a := range f.Args {
			walk(a.Type)
		}
	}
	for _, m := range s.Maps {
		if m == nil {
			continue
		}
		for _, k := range m.Keys {
			walk(k)
		}
		walk(m.Value)
	}
	return r
}
