package collector

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/internal/asmgen"
)

// The collectors' names: each program's name in the kernel (bpftool
// shows it) and the stem of its object file, NAME.bpf, which is what an
// administrator signs (NAME.bpf.sig).
const (
	TracepointName    = "tb_coll_tp"
	RawTracepointName = "tb_coll_rawtp"
	UprobeName        = "tb_coll_uprobe"
	PerfName          = "tb_coll_perf"
	// KprobeName serves kprobes and kretprobes: the uprobe collector's
	// code under its own name, so that an administrator who signs the
	// collection of user functions' registers has not signed that of
	// the kernel's (kprobe.go).
	KprobeName = "tb_coll_kprobe"
	// RawTracepointIndexName serves raw tracepoints on kernels whose
	// raw tracepoints have no attach cookie (before 6.10): see rawtp.go.
	RawTracepointIndexName = "tb_coll_rawtpix"
	// FentryName and FexitName serve kfunc and kretfunc probes
	// (fentry/fexit programs), loaded once per function: see fentry.go.
	FentryName = "tb_coll_fentry"
	FexitName  = "tb_coll_fexit"
)

// The maps every collector uses, by the names its instructions reference
// them with. They belong to a Session, not to a program; their layouts
// are part of each collector's object (and so of its digest).
const (
	// eventsMap is the ring buffer the records go to.
	eventsMap = "events"
	// configMap is an array indexed by probe index (the attach cookie)
	// of configSize-byte values: see the config layout below.
	configMap = "collector_config"
	// controlMap is an array of one value, controlSize bytes: see the
	// control layout below.
	controlMap = "collector_control"
	// lostMap is a per-CPU array of one u64: records the ring buffer
	// had no room for.
	lostMap = "collector_lost"
	// scratchMap is a per-CPU array of scratchSize-byte values where a
	// record is built before it is copied to the ring buffer (the
	// capture state follows it), one value per collector (key: its
	// kind). One value for all would not do: a raw tracepoint program
	// is kept from recursing only into itself, and may interrupt
	// another collector on the same CPU halfway through a record; the
	// others exclude each other (bpf_prog_active).
	scratchMap = "collector_scratch"
)

// The config layout, one value per probe, little-endian:
//
//	off  size
//	  0   4   ctx_len: bytes of context to copy (tracepoint, raw
//	          tracepoint; the uprobe and perf collectors copy their
//	          fixed-size context whatever it says), at most MaxContext
//	  4   4   nstr: string specs, at most MaxStrings
//	  8   8*MaxStrings, per string spec (one slot each, an array's too):
//	      4   ctx_off: where in the copied context the string's pointer
//	          (a u64) is; it must lie within ctx_len
//	      4   flags: bit 0 (configUser) set reads user memory
//	          (bpf_probe_read_user_str, bpf_probe_read_user), else kernel
//	          memory (bpf_probe_read_kernel_str, bpf_probe_read_kernel);
//	          bit 1 (configArray) set says the pointer is to an array of
//	          pointers to strings: ArrayLen pointers are copied raw as one
//	          entry, then the string behind each up to the first NULL,
//	          while the record has entries left (MaxStrings in all)
//	200   4   flags (at 8+8*MaxStrings): bit 0 (configKStack) set
//	          copies the event's kernel stack, bit 1 (configUStack) its
//	          user stack (bpf_get_stack, BPF_F_USER_STACK), each as one
//	          more entry after the strings and reads, the kernel stack
//	          first; the entries do not count against MaxStrings; bit 2
//	          (configTask) copies the current task's address as an entry
//	          of its own (TaskAddr) before the reads; bits 3 to 6
//	          (configOmitKtime, configOmitIDs, configOmitCgroup,
//	          configOmitComm) leave the header's ktime, uid and gid,
//	          cgroup, comm zero, their helpers not called
//	204   4   nsteps: kernel read steps, at most MaxSteps
//	208   16*MaxSteps, per step, each one entry:
//	      4   off: added to the step's base pointer, the address read;
//	          below 1<<20
//	      2   size: bytes read, 1 to MaxString
//	      2   ctx_off: for from 1, where in the copied context the base
//	          pointer is; it must lie within ctx_len
//	      1   from: the base pointer: 0 the last pointer read (the
//	          previous step's 8 bytes; 0 if that read failed or was not
//	          of 8 bytes), 1 the pointer at ctx_off, 2 the current task
//	      1   flags: bit 0 (stepString) reads a string
//	          (bpf_probe_read_kernel_str), else bytes
//	          (bpf_probe_read_kernel); kernel memory only
//	      6   pad (0)
//
// The specs are taken in order, each filling the record's next entries,
// so a record's entries need not line up with the specs: an array's
// strings shift those of the specs after it.
const (
	configStacks = 8 + 8*MaxStrings
	configNSteps = configStacks + 4
	configSteps  = configStacks + 8
	configSize   = configSteps + 16*MaxSteps
	configUser   = 1
	configArray  = 2
	configKStack = 1
	configUStack = 2
	configTask   = 4
	// configOmitKtime and the next three are Probe.Omit's fields
	// (OmitKtime, ...), shifted by configOmitShift.
	configOmitShift  = 3
	configOmitKtime  = 8
	configOmitIDs    = 16
	configOmitCgroup = 32
	configOmitComm   = 64

	stepFromLast = 0
	stepFromCtx  = 1
	stepFromTask = 2
	stepString   = 1
	// maxStepOff bounds a step's offset (program.MaxKReadOffset).
	maxStepOff = 1 << 20
)

// The control layout, the session's settings, little-endian:
//
//	off  size
//	  0   8   stop: non-zero makes every probe return at once
//	          (Session.Stop)
//	  8   4   ignore: a process id (tgid) whose events are not
//	          collected: the broker's own, so that the reader's
//	          wake-ups and system calls do not become events of the
//	          trace that reads them; 0 ignores none
//	 12   4   wake: records are written without waking the reader
//	          (BPF_RB_NO_WAKEUP), which polls, until this many bytes
//	          wait unread, when the write wakes it (BPF_RB_FORCE_WAKEUP);
//	          0 leaves the kernel's own policy (a wake-up for each
//	          record written when the reader has caught up)
//	 16   4   check: how many bytes of records a CPU writes between
//	          two looks at how many wait unread (bpf_ringbuf_query,
//	          which reads what the reader on another CPU writes: a
//	          quarter of a record's cost when made for each); 0 looks
//	          at every record. The session sets wake divided by the
//	          CPUs, so at most twice wake waits unread when one looks.
//	 20   4   pad (0)
const (
	controlStop   = 0
	controlIgnore = 8
	controlWake   = 12
	controlCheck  = 16
	controlSize   = 24
)

// The flags of bpf_ringbuf_output, and bpf_ringbuf_query's question.
const (
	bpfRBNoWakeup    = 1
	bpfRBForceWakeup = 2
	bpfRBAvailData   = 0
)

// bpfFUserStack is BPF_F_USER_STACK, bpf_get_stack's flag for the user
// stack.
const bpfFUserStack = 0x100

// stringsEnd is where the task entry and the reads start at the latest:
// the header, the context and the strings at their longest; stepsEnd is
// where the stack entries do: the task's entry and the reads too.
const (
	stringsEnd = HeaderSize + MaxContext + MaxStrings*(16+MaxString)
	stepsEnd   = stringsEnd + 24 + MaxSteps*(16+MaxString)
)

// stackSize is the longest stack entry's data.
const stackSize = 8 * MaxStackFrames

// The fixed context sizes of the uprobe and perf collectors.
const (
	// PtRegsSize is x86-64's struct pt_regs.
	PtRegsSize = 168
	// PerfEventDataSize is struct bpf_perf_event_data: pt_regs, then
	// u64 sample_period and u64 addr.
	PerfEventDataSize = PtRegsSize + 16
	// MaxRawArgs is the most arguments a raw tracepoint has
	// (MAX_BPF_FUNC_ARGS).
	MaxRawArgs = 12
)

// kind is which collector serves a probe; its value is also the key of
// that collector's scratch value.
type kind int

const (
	kindTracepoint kind = iota
	kindRawTracepoint
	kindUprobe
	kindPerf
	kindKprobe
	kindRawTracepointIndex
	kindFentry
	kindFexit
	numKinds
)

// Spec is one static collector: what is loaded, and what is signed.
type Spec struct {
	// Name is the program's name in the kernel and its object's stem.
	Name string
	Type ebpf.ProgramType
	// Instructions reference the maps by name (Maps).
	Instructions asm.Instructions
	// Maps are the names of the maps the program uses, in the order of
	// the object's map table.
	Maps []string

	kind kind
}

// progTypes are the program types as the object names them: the
// kernel's numbers and names, fixed here rather than taken from
// cilium/ebpf's String methods so that a library upgrade cannot change
// a digest.
var progTypes = [numKinds]struct {
	typ  ebpf.ProgramType
	num  int
	name string
}{
	kindTracepoint:    {ebpf.TracePoint, 5, "BPF_PROG_TYPE_TRACEPOINT"},
	kindRawTracepoint: {ebpf.RawTracepoint, 17, "BPF_PROG_TYPE_RAW_TRACEPOINT"},
	kindUprobe:        {ebpf.Kprobe, 2, "BPF_PROG_TYPE_KPROBE"},
	kindPerf:          {ebpf.PerfEvent, 7, "BPF_PROG_TYPE_PERF_EVENT"},
	kindKprobe:        {ebpf.Kprobe, 2, "BPF_PROG_TYPE_KPROBE"},

	kindRawTracepointIndex: {ebpf.RawTracepoint, 17, "BPF_PROG_TYPE_RAW_TRACEPOINT"},
	kindFentry:             {ebpf.Tracing, 26, "BPF_PROG_TYPE_TRACING"},
	kindFexit:              {ebpf.Tracing, 26, "BPF_PROG_TYPE_TRACING"},
}

var kindNames = [numKinds]string{
	kindTracepoint:    TracepointName,
	kindRawTracepoint: RawTracepointName,
	kindUprobe:        UprobeName,
	kindPerf:          PerfName,
	kindKprobe:        KprobeName,

	kindRawTracepointIndex: RawTracepointIndexName,
	kindFentry:             FentryName,
	kindFexit:              FexitName,
}

// mapLayout is a map as the collectors see it. Entries 0 means the
// session decides (the number of probes, the ring buffer's size).
type mapLayout struct {
	name                string
	kernelName          string
	typ                 ebpf.MapType
	typNum              int
	typName             string
	key, value, entries uint32
}

// mapLayouts is the object's map table, in order.
var mapLayouts = []mapLayout{
	{eventsMap, "tb_coll_events", ebpf.RingBuf, 27, "BPF_MAP_TYPE_RINGBUF", 0, 0, 0},
	{configMap, "tb_coll_config", ebpf.Array, 2, "BPF_MAP_TYPE_ARRAY", 4, configSize, 0},
	{controlMap, "tb_coll_control", ebpf.Array, 2, "BPF_MAP_TYPE_ARRAY", 4, controlSize, 1},
	{lostMap, "tb_coll_lost", ebpf.PerCPUArray, 6, "BPF_MAP_TYPE_PERCPU_ARRAY", 4, 8, 1},
	{scratchMap, "tb_coll_scratch", ebpf.PerCPUArray, 6, "BPF_MAP_TYPE_PERCPU_ARRAY", 4, scratchSize, uint32(numScratch)},
}

// scratchSize holds the largest record, then the capture state; MaxRecord
// is a multiple of 8 already, which the verifier needs of nothing but
// the tidy offsets.
const scratchSize = MaxRecord + stateSize

// The capture state, u32s in the scratch value after the record: where
// the collector is in the probe's string specs and in an array being
// read. It is kept in map memory rather than on the stack so that the
// verifier, which knows nothing of a map value's contents, sees every
// path into an entry slot alike and prunes them, where constants on the
// stack would multiply the states it walks by each spec and array index.
// For the same reason each slot passes rEnd through stateEnd: the range
// the verifier knows of it then is the slot's bound, whatever the
// lengths of the entries before.
const (
	stateNext   = MaxRecord      // the next spec's index
	stateAPtr   = MaxRecord + 4  // the record offset of the array's next pointer; 0: no array
	stateAEnd   = MaxRecord + 8  // the record offset past the array's pointers
	stateAFlags = MaxRecord + 12 // the array spec's flags
	stateEnd    = MaxRecord + 16 // rEnd, on its way into a slot or to the stacks
	stateWrote  = MaxRecord + 20 // bytes this CPU wrote since it last looked at the unread ones (controlCheck)
	stateLast   = MaxRecord + 24 // the last pointer a read step read, u64
	stateSize   = 32
)

// Programs returns the collectors, freshly built: the same
// instructions on every call and every run.
func Programs() []Spec {
	specs := make([]Spec, numKinds)
	for k := kind(0); k < numKinds; k++ {
		specs[k] = build(k)
	}
	return specs
}

// Lookup returns the collector named name.
func Lookup(name string) (Spec, bool) {
	for k := kind(0); k < numKinds; k++ {
		if kindNames[k] == name {
			return build(k), true
		}
	}
	return Spec{}, false
}

func build(k kind) Spec {
	maps := make([]string, len(mapLayouts))
	for i, m := range mapLayouts {
		maps[i] = m.name
	}
	if k.perInstance() {
		for _, m := range instanceLayouts {
			maps = append(maps, m.name)
		}
	}
	return Spec{Name: kindNames[k], Type: progTypes[k].typ, Instructions: code(k), Maps: maps, kind: k}
}

// Object is the collector's object file, NAME.bpf, the bytes Digest is
// over. It is a short text header, then the bytecode:
//
//	tracebroker collector object v1
//	name: tb_coll_tp
//	type: 5 BPF_PROG_TYPE_TRACEPOINT
//	license: GPL
//	record: v1 header 64 context 512 strings 24x256 stacks 2x127
//	map 0: events 27 BPF_MAP_TYPE_RINGBUF key 0 value 0 entries session
//	...
//	code: N
//	(a blank line, then N 8-byte instructions, little-endian)
//
// In the code every map load is BPF_PSEUDO_MAP_IDX (src 5) with the
// map's index in the table as imm, as the kernel takes it with an
// fd_array: the bytes alone say which map each load uses, where a file
// descriptor would differ on every run.
func (s Spec) Object() ([]byte, error) {
	index := map[string]int{}
	var b bytes.Buffer
	pt := progTypes[s.kind]
	fmt.Fprintf(&b, "tracebroker collector object v1\nname: %s\ntype: %d %s\nlicense: GPL\n", s.Name, pt.num, pt.name)
	if at, ok := attachTypes[s.kind]; ok {
		fmt.Fprintf(&b, "attach: %d %s\n", at.num, at.name)
	}
	fmt.Fprintf(&b, "record: v1 header %d context %d strings %dx%d task reads %dx%d stacks 2x%d\n", HeaderSize, MaxContext, MaxStrings, MaxString, MaxSteps, MaxString, MaxStackFrames)
	for i, name := range s.Maps {
		m, ok := layoutOf(name)
		if !ok {
			return nil, fmt.Errorf("collector %s: unknown map %q", s.Name, name)
		}
		index[name] = i
		entries := "session"
		if m.entries != 0 {
			entries = fmt.Sprint(m.entries)
		}
		fmt.Fprintf(&b, "map %d: %s %d %s key %d value %d entries %s\n", i, m.name, m.typNum, m.typName, m.key, m.value, entries)
	}
	raw, err := asmgen.Encode(s.Instructions, index)
	if err != nil {
		return nil, fmt.Errorf("collector %s: %w", s.Name, err)
	}
	fmt.Fprintf(&b, "code: %d\n\n", len(raw)/8)
	b.Write(raw)
	return b.Bytes(), nil
}

func layoutOf(name string) (mapLayout, bool) {
	for _, m := range append(mapLayouts[:len(mapLayouts):len(mapLayouts)], instanceLayouts...) {
		if m.name == name {
			return m, true
		}
	}
	return mapLayout{}, false
}

// Digest is the hex SHA-256 of the collector's Object: what its manifest
// (NAME.bpf.sig, role collector) must name. A collector's code is fixed
// at build time, so failing to encode it is a bug in this package, not a
// condition at run time: Digest panics then (and the tests encode every
// collector).
func (s Spec) Digest() string {
	obj, err := s.Object()
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(obj)
	return hex.EncodeToString(sum[:])
}

// ObjectFile is the file name of a collector's object.
func ObjectFile(name string) string { return name + ".bpf" }

// WriteObject writes the object of the collector named name (NAME.bpf),
// for an administrator to inspect and sign:
// tracebroker attest sign --role collector NAME.bpf.
func WriteObject(w io.Writer, name string) error {
	s, ok := Lookup(name)
	if !ok {
		return fmt.Errorf("no collector %q (collectors: %s)", name, strings.Join(kindNames[:], ", "))
	}
	obj, err := s.Object()
	if err != nil {
		return err
	}
	_, err = w.Write(obj)
	return err
}

// Registers the collectors keep across helper calls.
const (
	rCtx     = asm.R6 // the program's context
	rRec     = asm.R7 // the record being built: this kind's scratch value
	rConf    = asm.R8 // the probe's config value
	rEnd     = asm.R9 // the record's size so far
	stackKey = -4     // a u32 map key
	stackCk  = -16    // the attach cookie, u64
	stackWk  = -32    // the control's wake threshold, u64 (fentry.go has -24)
	stackPid = -40    // bpf_get_current_pid_tgid's value, u64
	stackChk = -48    // the control's check, u64
)

// gen is the collectors' instruction builder.
type gen struct{ asmgen.Builder }

// lookup emits r0 = bpf_map_lookup_elem(&name, &key) for a constant key,
// jumping to exit if there is no such element.
func (g *gen) lookup(name string, key int32) {
	g.Emit(
		asm.StoreImm(asm.R10, stackKey, int64(key), asm.Word),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, stackKey),
		asm.LoadMapPtr(asm.R1, 0).WithReference(name),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
	)
}

// code is the code of collector k. Every bound the verifier needs
// is spelled out as a jump it can see, even where the config was checked
// in user space already: the kernel does not trust the config, and need
// not.
func code(k kind) asm.Instructions {
	g := &gen{}
	g.Emit(asm.Mov.Reg(rCtx, asm.R1))

	// Stopped: return before doing anything, so that what the broker
	// has read when it stops is final.
	g.lookup(controlMap, 0)
	g.Emit(
		asm.LoadMem(asm.R1, asm.R0, controlStop, asm.DWord),
		asm.JNE.Imm(asm.R1, 0, "exit"),
		asm.LoadMem(asm.R1, asm.R0, controlWake, asm.Word),
		asm.StoreMem(asm.R10, stackWk, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R0, controlCheck, asm.Word),
		asm.StoreMem(asm.R10, stackChk, asm.R1, asm.DWord),
		// The broker's own events: not collected (rEnd is free until
		// the record starts). The ids are the header's too: one call.
		asm.LoadMem(rEnd, asm.R0, controlIgnore, asm.Word),
		asm.FnGetCurrentPidTgid.Call(),
		asm.StoreMem(asm.R10, stackPid, asm.R0, asm.DWord),
		asm.JEq.Imm(rEnd, 0, "not_ignored"),
		asm.RSh.Imm(asm.R0, 32),
		asm.JEq.Reg(asm.R0, rEnd, "exit"),
	)
	g.Label("not_ignored")

	// The cookie is the probe's index: it picks the config, and the
	// record carries it as the probe field (16 bits). Without cookies,
	// the instance's own map holds it.
	if k.perInstance() {
		probeIndex(g)
	} else {
		g.Emit(
			asm.Mov.Reg(asm.R1, rCtx),
			asm.FnGetAttachCookie.Call(),
		)
	}
	g.Emit(
		asm.JGT.Imm(asm.R0, 0xffff, "exit"),
		asm.StoreMem(asm.R10, stackCk, asm.R0, asm.DWord),
		asm.StoreMem(asm.R10, stackKey, asm.R0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, stackKey),
		asm.LoadMapPtr(asm.R1, 0).WithReference(configMap),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.Mov.Reg(rConf, asm.R0),
	)
	if k.perInstance() {
		g.lookup(ownScratchMap, 0)
	} else {
		g.lookup(scratchMap, int32(scratchKey(k)))
	}
	g.Emit(asm.Mov.Reg(rRec, asm.R0))

	// The header. Size (offset 0) is known only at the end, nstr
	// (offset 6) as each string is captured.
	g.Emit(
		asm.LoadMem(asm.R1, asm.R10, stackCk, asm.DWord),
		asm.StoreMem(rRec, 4, asm.R1, asm.Word), // probe u16, nstr u8 = 0, flags u8 = 0
		// The capture state: the first spec, no array.
		asm.StoreImm(rRec, stateNext, 0, asm.Word),
		asm.StoreImm(rRec, stateAPtr, 0, asm.Word),

		// tgid is the upper half, the thread id the lower; the record
		// has tgid first.
		asm.LoadMem(asm.R0, asm.R10, stackPid, asm.DWord),
		asm.StoreMem(rRec, 20, asm.R0, asm.Word),
		asm.RSh.Imm(asm.R0, 32),
		asm.StoreMem(rRec, 16, asm.R0, asm.Word),

		asm.FnGetSmpProcessorId.Call(), // inlined by the verifier
		asm.StoreMem(rRec, 40, asm.R0, asm.Word),
	)
	// The fields a helper call each fills, where the probe's config
	// does not omit them: the calls are most of a record's cost.
	headerField(g, "ktime", configOmitKtime, []int16{8},
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(rRec, 8, asm.R0, asm.DWord),
	)
	headerField(g, "ids", configOmitIDs, []int16{24},
		asm.FnGetCurrentUidGid.Call(), // gid<<32 | uid: uid at 24, gid at 28
		asm.StoreMem(rRec, 24, asm.R0, asm.DWord),
	)
	headerField(g, "cgroup", configOmitCgroup, []int16{32},
		asm.FnGetCurrentCgroupId.Call(),
		asm.StoreMem(rRec, 32, asm.R0, asm.DWord),
	)
	headerField(g, "comm", configOmitComm, []int16{48, 56},
		asm.Mov.Reg(asm.R1, rRec),
		asm.Add.Imm(asm.R1, 48),
		asm.Mov.Imm(asm.R2, 16),
		asm.FnGetCurrentComm.Call(),
	)

	switch k {
	case kindTracepoint, kindRawTracepoint, kindRawTracepointIndex:
		copyVariable(g)
	case kindUprobe, kindKprobe:
		copyFixed(g)
	case kindPerf:
		copyPerf(g)
	case kindFentry, kindFexit:
		copyFuncArgs(g, k == kindFexit)
	}

	for i := 0; i < MaxStrings; i++ {
		captureSlot(g, i)
	}

	// The task and the kernel reads, after the strings: rEnd through
	// map memory as into a slot, so that every path here is one state
	// to the verifier.
	g.Label(slotLabel(MaxStrings))
	g.Emit(
		asm.StoreMem(rRec, stateEnd, rEnd, asm.Word),
		asm.LoadMem(rEnd, rRec, stateEnd, asm.Word),
		asm.JGT.Imm(rEnd, stringsEnd, "exit"),
	)
	captureTask(g)
	for i := 0; i < MaxSteps; i++ {
		captureStep(g, i)
	}

	// The stacks, after the reads.
	g.Label("steps_done")
	g.Emit(
		asm.StoreMem(rRec, stateEnd, rEnd, asm.Word),
		asm.LoadMem(rEnd, rRec, stateEnd, asm.Word),
		asm.JGT.Imm(rEnd, stepsEnd, "exit"),
	)
	captureStack(g, "kstack", configKStack, KStackAddr, 0, stepsEnd)
	captureStack(g, "ustack", configUStack, UStackAddr, bpfFUserStack, stepsEnd+16+stackSize)

	// The wake-up: none until the control's threshold of unread bytes,
	// then a forced one; the kernel's own with no threshold. This CPU
	// looks at the unread bytes only once it has written the control's
	// check since it last looked.
	g.Emit(
		asm.JGT.Imm(rEnd, MaxRecord, "exit"),
		asm.StoreMem(rRec, 0, rEnd, asm.Word),
		asm.LoadMem(asm.R1, asm.R10, stackWk, asm.DWord),
		asm.JEq.Imm(asm.R1, 0, "wake_flags"),
		asm.Mov.Imm(asm.R4, bpfRBNoWakeup),
		asm.LoadMem(asm.R2, rRec, stateWrote, asm.Word),
		asm.Add.Reg(asm.R2, rEnd),
		asm.LoadMem(asm.R3, asm.R10, stackChk, asm.DWord),
		asm.JGE.Reg(asm.R2, asm.R3, "query"),
		asm.StoreMem(rRec, stateWrote, asm.R2, asm.Word),
		asm.Ja.Label("output"),
	)
	g.Label("query")
	g.Emit(
		asm.StoreImm(rRec, stateWrote, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(eventsMap),
		asm.Mov.Imm(asm.R2, bpfRBAvailData),
		asm.FnRingbufQuery.Call(),
		asm.LoadMem(asm.R1, asm.R10, stackWk, asm.DWord),
		asm.Mov.Imm(asm.R4, bpfRBForceWakeup),
		asm.JGE.Reg(asm.R0, asm.R1, "output"),
		asm.Mov.Imm(asm.R4, bpfRBNoWakeup),
		asm.Ja.Label("output"),
	)
	g.Label("wake_flags")
	g.Emit(asm.Mov.Imm(asm.R4, 0))
	g.Label("output")
	g.Emit(
		asm.LoadMapPtr(asm.R1, 0).WithReference(eventsMap),
		asm.Mov.Reg(asm.R2, rRec),
		asm.Mov.Reg(asm.R3, rEnd),
		asm.FnRingbufOutput.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
	)
	// The ring buffer is full: count the record, atomically since a
	// perf event's NMI may interrupt an increment on this CPU.
	g.lookup(lostMap, 0)
	g.Emit(
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
	)
	// 0 also tells a tracepoint or perf event not to do its usual
	// output, which nobody reads.
	g.Label("exit")
	g.Emit(asm.Mov.Imm(asm.R0, 0), asm.Return())
	return g.Insns
}

// headerField emits fill, which fills a header field, unless the
// config's flags word has omit; then the field's words (at the offsets
// zero) are zeroed: the scratch value holds the last record's.
func headerField(g *gen, name string, omit int32, zero []int16, fill ...asm.Instruction) {
	l := func(s string) string { return "h_" + name + "_" + s }
	g.Emit(
		asm.LoadMem(asm.R1, rConf, configStacks, asm.Word),
		asm.JSet.Imm(asm.R1, omit, l("omit")),
	)
	g.Emit(fill...)
	g.Emit(asm.Ja.Label(l("done")))
	g.Label(l("omit"))
	g.Emit(asm.Mov.Imm(asm.R1, 0))
	for _, off := range zero {
		g.Emit(asm.StoreMem(rRec, off, asm.R1, asm.DWord))
	}
	g.Label(l("done"))
}

// copyVariable copies ctx_len (from the config) bytes of context, which
// is memory (a tracepoint's record, a raw tracepoint's arguments), with
// bpf_probe_read_kernel, and leaves rEnd at the first string.
func copyVariable(g *gen) {
	g.Emit(
		asm.LoadMem(rEnd, rConf, 0, asm.Word),
		asm.JLE.Imm(rEnd, MaxContext, "ctx_ok"),
		asm.Mov.Imm(rEnd, MaxContext),
	)
	g.Label("ctx_ok")
	g.Emit(
		asm.StoreMem(rRec, 44, rEnd, asm.Word),
		// Zero the word the context ends in before the copy fills its
		// start: the padding to 8 bytes is then zeros, not the bytes
		// of an earlier record.
		asm.Mov.Reg(asm.R1, rEnd),
		asm.And.Imm(asm.R1, -8),
		asm.Add.Reg(asm.R1, rRec),
		asm.Mov.Imm(asm.R2, 0),
		asm.StoreMem(asm.R1, HeaderSize, asm.R2, asm.DWord),

		asm.Mov.Reg(asm.R1, rRec),
		asm.Add.Imm(asm.R1, HeaderSize),
		asm.Mov.Reg(asm.R2, rEnd),
		asm.Mov.Reg(asm.R3, rCtx),
		asm.FnProbeReadKernel.Call(),

		asm.Add.Imm(rEnd, HeaderSize+7),
		asm.And.Imm(rEnd, -8),
	)
}

// copyFixed copies the uprobe's or kprobe's pt_regs, memory too.
func copyFixed(g *gen) {
	g.Emit(
		asm.StoreImm(rRec, 44, PtRegsSize, asm.Word),
		asm.Mov.Reg(asm.R1, rRec),
		asm.Add.Imm(asm.R1, HeaderSize),
		asm.Mov.Imm(asm.R2, PtRegsSize),
		asm.Mov.Reg(asm.R3, rCtx),
		asm.FnProbeReadKernel.Call(),
		asm.Mov.Imm(rEnd, HeaderSize+PtRegsSize),
	)
}

// copyPerf copies struct bpf_perf_event_data a word at a time: a perf
// event program's context is the kernel's bpf_perf_event_data_kern,
// which the verifier rewrites these loads for; its bytes are not the
// struct the record promises.
func copyPerf(g *gen) {
	g.Emit(asm.StoreImm(rRec, 44, PerfEventDataSize, asm.Word))
	for off := int16(0); off < PerfEventDataSize; off += 8 {
		g.Emit(
			asm.LoadMem(asm.R1, rCtx, off, asm.DWord),
			asm.StoreMem(rRec, HeaderSize+off, asm.R1, asm.DWord),
		)
	}
	g.Emit(asm.Mov.Imm(rEnd, HeaderSize+PerfEventDataSize))
}

// slotLabel labels entry slot i's code; slot MaxStrings is the end.
func slotLabel(i int) string {
	if i == MaxStrings {
		return "strings_done"
	}
	return fmt.Sprintf("s%d_slot", i)
}

// captureSlot emits entry slot i: the record's string entry i, at rEnd,
// and rEnd moved past it. What it holds comes from the capture state:
// the string behind an array's next pointer while an array is being read
// (to its ArrayLen-th pointer or its first NULL), else the next spec's:
// the string behind the spec's pointer in the copied context, or for an
// array spec, its ArrayLen pointers copied raw. No specs left ends the
// strings. A pointer outside the copied context, or a read that fails,
// gives an entry of length 0, so that every spec has its entry.
//
// The slots are unrolled, MaxStrings of them, with no loop: slot i
// writes entry i at a bound the verifier can see, and sets nstr to i+1.
func captureSlot(g *gen, i int) {
	l := func(s string) string { return fmt.Sprintf("s%d_%s", i, s) }
	// Where entry i may start at the latest: entries before it at their
	// longest (an array copy is shorter than a string). rEnd never
	// exceeds it; the jump says so to the verifier, which knows nothing
	// of rEnd once it has passed through map memory (stateEnd).
	limit := int32(HeaderSize + MaxContext + i*(16+MaxString))
	next := slotLabel(i + 1)

	g.Label(slotLabel(i))
	g.Emit(
		asm.StoreMem(rRec, stateEnd, rEnd, asm.Word),
		asm.LoadMem(rEnd, rRec, stateEnd, asm.Word),
		asm.JGT.Imm(rEnd, limit, "strings_done"),

		// An array being read: its next pointer, from the array's
		// copy in the record.
		asm.LoadMem(asm.R1, rRec, stateAPtr, asm.Word),
		asm.JEq.Imm(asm.R1, 0, l("spec")),
		asm.LoadMem(asm.R2, rRec, stateAEnd, asm.Word),
		asm.JGE.Reg(asm.R1, asm.R2, l("array_done")),
		asm.JGT.Imm(asm.R1, MaxRecord-8, l("array_done")),
		asm.Mov.Reg(asm.R2, asm.R1),
		asm.Add.Imm(asm.R2, 8),
		asm.StoreMem(rRec, stateAPtr, asm.R2, asm.Word),
		asm.Add.Reg(asm.R1, rRec),
		asm.LoadMem(asm.R3, asm.R1, 0, asm.DWord),
		asm.JEq.Imm(asm.R3, 0, l("array_done")),
		asm.LoadMem(asm.R4, rRec, stateAFlags, asm.Word),
		asm.Ja.Label(l("string")),
	)
	g.Label(l("array_done"))
	g.Emit(asm.StoreImm(rRec, stateAPtr, 0, asm.Word))

	// The next spec: its pointer from the copied context (r3), its
	// flags (r4).
	g.Label(l("spec"))
	g.Emit(
		asm.LoadMem(asm.R1, rRec, stateNext, asm.Word),
		asm.LoadMem(asm.R2, rConf, 4, asm.Word), // nstr
		asm.JGE.Reg(asm.R1, asm.R2, "strings_done"),
		asm.JGE.Imm(asm.R1, MaxStrings, "strings_done"),
		asm.Mov.Reg(asm.R2, asm.R1),
		asm.Add.Imm(asm.R2, 1),
		asm.StoreMem(rRec, stateNext, asm.R2, asm.Word),
		asm.LSh.Imm(asm.R1, 3),
		asm.Add.Reg(asm.R1, rConf),                // the spec is at r1+8
		asm.LoadMem(asm.R4, asm.R1, 12, asm.Word), // flags

		asm.LoadMem(asm.R2, asm.R1, 8, asm.Word), // ctx_off
		asm.JGT.Imm(asm.R2, MaxContext-8, l("nopointer")),
		asm.LoadMem(asm.R3, rRec, 44, asm.Word), // ctx_len as copied
		asm.Mov.Reg(asm.R5, asm.R2),
		asm.Add.Imm(asm.R5, 8),
		asm.JGT.Reg(asm.R5, asm.R3, l("nopointer")),
		asm.Add.Reg(asm.R2, rRec),
		asm.LoadMem(asm.R3, asm.R2, HeaderSize, asm.DWord),
		asm.Ja.Label(l("pointer")),
	)
	g.Label(l("nopointer"))
	g.Emit(asm.Mov.Imm(asm.R3, 0))
	g.Label(l("pointer"))
	g.Emit(asm.JSet.Imm(asm.R4, configArray, l("array")))

	// A string: the one behind r3, read as r4's flags say.
	g.Label(l("string"))
	g.Emit(
		asm.Mov.Reg(asm.R1, rRec),
		asm.Add.Reg(asm.R1, rEnd),
		asm.StoreMem(asm.R1, 0, asm.R3, asm.DWord), // addr
		asm.Add.Imm(asm.R1, 16),
		asm.Mov.Imm(asm.R2, MaxString),
		asm.And.Imm(asm.R4, configUser),
		asm.JEq.Imm(asm.R4, 0, l("kernel")),
		asm.FnProbeReadUserStr.Call(),
		asm.Ja.Label(l("read")),
	)
	g.Label(l("kernel"))
	g.Emit(asm.FnProbeReadKernelStr.Call())
	g.Label(l("read"))
	strLen(g, l)
	entryEnd(g, l, limit)
	g.Emit(
		asm.StoreImm(rRec, 6, int64(i+1), asm.Byte), // nstr
		asm.Ja.Label(next),
	)

	// An array: its first ArrayLen pointers, raw, read as r4's flags
	// say; the slots after read the strings behind them.
	g.Label(l("array"))
	g.Emit(
		asm.StoreMem(rRec, stateAFlags, asm.R4, asm.Word),
		asm.Mov.Reg(asm.R1, rRec),
		asm.Add.Reg(asm.R1, rEnd),
		asm.StoreMem(asm.R1, 0, asm.R3, asm.DWord), // addr
		asm.Add.Imm(asm.R1, 16),
		asm.Mov.Imm(asm.R2, ArrayLen*8),
		asm.And.Imm(asm.R4, configUser),
		asm.JEq.Imm(asm.R4, 0, l("array_kernel")),
		asm.FnProbeReadUser.Call(),
		asm.Ja.Label(l("array_read")),
	)
	g.Label(l("array_kernel"))
	g.Emit(asm.FnProbeReadKernel.Call())
	g.Label(l("array_read"))
	g.Emit(
		asm.Mov.Imm(asm.R1, 0),
		asm.JNE.Imm(asm.R0, 0, l("array_len")),
		asm.Mov.Imm(asm.R1, ArrayLen*8),
		asm.Mov.Reg(asm.R2, rEnd),
		asm.Add.Imm(asm.R2, 16),
		asm.StoreMem(rRec, stateAPtr, asm.R2, asm.Word),
		asm.Add.Imm(asm.R2, ArrayLen*8),
		asm.StoreMem(rRec, stateAEnd, asm.R2, asm.Word),
	)
	g.Label(l("array_len"))
	g.Emit(
		// len u16 and its padding, as a string's; 128 bytes keep rEnd
		// aligned.
		asm.Mov.Reg(asm.R2, rRec),
		asm.Add.Reg(asm.R2, rEnd),
		asm.StoreMem(asm.R2, 8, asm.R1, asm.DWord),
		asm.Add.Imm(rEnd, 16),
		asm.Add.Reg(rEnd, asm.R1),
		asm.StoreImm(rRec, 6, int64(i+1), asm.Byte), // nstr
	)
	// On to the next slot, which follows.
}

// strLen turns what a bpf_probe_read_*_str call returned (r0) into the
// length of the entry at rEnd, with its NUL: 0 when the read failed.
// Then entryEnd (l("len_pos")) finishes the entry.
func strLen(g *gen, l func(string) string) {
	g.Emit(
		asm.JSGT.Imm(asm.R0, 0, l("len_pos")),
		asm.JNE.Imm(asm.R0, 0, l("failed")),
		// 0 is an empty string whose NUL the kernel copied but did not
		// count: bpf_probe_read_user_str on 6.1 and 6.12
		// (strncpy_from_user_nofault counts the NUL of a non-empty
		// string only). It is the string "", as later kernels say.
		asm.Mov.Reg(asm.R1, rRec),
		asm.Add.Reg(asm.R1, rEnd),
		asm.StoreImm(asm.R1, 16, 0, asm.Byte),
		asm.Mov.Imm(asm.R0, 1),
		asm.Ja.Label(l("len_pos")),
	)
	g.Label(l("failed"))
	g.Emit(asm.Mov.Imm(asm.R0, 0))
}

// entryEnd finishes the entry at rEnd, which starts at limit at the
// latest, whose data is r0 bytes (at most MaxString): its length, the
// rest of the word the data ends in zeroed (bytes an earlier, longer
// entry left there), and rEnd past it, aligned.
func entryEnd(g *gen, l func(string) string, limit int32) {
	g.Label(l("len_pos"))
	g.Emit(
		asm.JLE.Imm(asm.R0, MaxString, l("len_ok")),
		asm.Mov.Imm(asm.R0, MaxString),
	)
	g.Label(l("len_ok"))
	g.Emit(
		// len u16 and its 6 bytes of padding, zero, in one store.
		asm.Mov.Reg(asm.R1, rRec),
		asm.Add.Reg(asm.R1, rEnd),
		asm.StoreMem(asm.R1, 8, asm.R0, asm.DWord),
		asm.Add.Imm(rEnd, 16),
		asm.Add.Reg(rEnd, asm.R0),

		asm.Mov.Reg(asm.R1, rEnd),
		asm.And.Imm(asm.R1, 7),
		asm.JEq.Imm(asm.R1, 0, l("aligned")),
		asm.Mov.Reg(asm.R2, rEnd),
		asm.And.Imm(asm.R2, -8),
		asm.JGT.Imm(asm.R2, limit+16+MaxString-8, l("aligned")),
		asm.Add.Reg(asm.R2, rRec),
		asm.LoadMem(asm.R3, asm.R2, 0, asm.DWord),
		asm.LSh.Imm(asm.R1, 3),
		asm.Mov.Imm(asm.R4, 1),
		asm.LSh.Reg(asm.R4, asm.R1),
		asm.Sub.Imm(asm.R4, 1),
		asm.And.Reg(asm.R3, asm.R4),
		asm.StoreMem(asm.R2, 0, asm.R3, asm.DWord),
	)
	g.Label(l("aligned"))
	g.Emit(
		asm.Add.Imm(rEnd, 7),
		asm.And.Imm(rEnd, -8),
	)
}

// captureTask emits, when the config's stacks word has configTask, the
// entry TaskAddr: the current task's address, 8 bytes.
func captureTask(g *gen) {
	g.Emit(
		asm.LoadMem(asm.R1, rConf, configStacks, asm.Word),
		asm.And.Imm(asm.R1, configTask),
		asm.JEq.Imm(asm.R1, 0, "task_done"),
		asm.FnGetCurrentTask.Call(),
		asm.Mov.Reg(asm.R2, rRec),
		asm.Add.Reg(asm.R2, rEnd),
		asm.StoreMem(asm.R2, 16, asm.R0, asm.DWord),
		asm.Mov.Imm(asm.R1, -253), // TaskAddr: a 64-bit mov sign-extends
		asm.StoreMem(asm.R2, 0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R1, 8),
		asm.StoreMem(asm.R2, 8, asm.R1, asm.DWord), // len 8, padding 0
		asm.Add.Imm(rEnd, 24),
		asm.LoadMem(asm.R1, rRec, 6, asm.Byte),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(rRec, 6, asm.R1, asm.Byte),
	)
	g.Label("task_done")
	g.Emit(
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(rRec, stateLast, asm.R1, asm.DWord),
	)
}

// captureStep emits read step i: one entry at rEnd of what the step's
// config reads, and rEnd moved past it. Unrolled, as the string slots
// are, and for the same reasons: each step passes rEnd through map
// memory and bounds it where the verifier can see, so that every path
// into a step is one state.
func captureStep(g *gen, i int) {
	l := func(s string) string { return fmt.Sprintf("r%d_%s", i, s) }
	limit := int32(stringsEnd + 24 + i*(16+MaxString))
	conf := int16(configSteps + 16*i)
	g.Emit(
		asm.StoreMem(rRec, stateEnd, rEnd, asm.Word),
		asm.LoadMem(rEnd, rRec, stateEnd, asm.Word),
		asm.JGT.Imm(rEnd, limit, "steps_done"),
		asm.LoadMem(asm.R1, rConf, configNSteps, asm.Word),
		asm.JLE.Imm(asm.R1, int32(i), "steps_done"),

		// The base pointer, into r3.
		asm.LoadMem(asm.R1, rConf, conf+8, asm.Byte), // from
		asm.JEq.Imm(asm.R1, stepFromCtx, l("ctx")),
		asm.JEq.Imm(asm.R1, stepFromTask, l("task")),
		asm.LoadMem(asm.R3, rRec, stateLast, asm.DWord),
		asm.Ja.Label(l("base")),
	)
	g.Label(l("task"))
	g.Emit(
		asm.FnGetCurrentTask.Call(),
		asm.Mov.Reg(asm.R3, asm.R0),
		asm.Ja.Label(l("base")),
	)
	g.Label(l("ctx"))
	g.Emit(
		asm.Mov.Imm(asm.R3, 0),
		asm.LoadMem(asm.R2, rConf, conf+6, asm.Half), // ctx_off
		asm.JGT.Imm(asm.R2, MaxContext-8, l("base")),
		asm.LoadMem(asm.R4, rRec, 44, asm.Word), // ctx_len as copied
		asm.Mov.Reg(asm.R5, asm.R2),
		asm.Add.Imm(asm.R5, 8),
		asm.JGT.Reg(asm.R5, asm.R4, l("base")),
		asm.Add.Reg(asm.R2, rRec),
		asm.LoadMem(asm.R3, asm.R2, HeaderSize, asm.DWord),
	)
	g.Label(l("base"))
	g.Emit(
		asm.LoadMem(asm.R1, rConf, conf, asm.Word), // off
		asm.JGE.Imm(asm.R1, maxStepOff, "steps_done"),
		asm.Add.Reg(asm.R3, asm.R1),
		asm.Mov.Reg(asm.R1, rRec),
		asm.Add.Reg(asm.R1, rEnd),
		asm.StoreMem(asm.R1, 0, asm.R3, asm.DWord), // addr
		asm.Add.Imm(asm.R1, 16),
		asm.LoadMem(asm.R2, rConf, conf+4, asm.Half), // size
		asm.JEq.Imm(asm.R2, 0, "steps_done"),
		asm.JGT.Imm(asm.R2, MaxString, "steps_done"),
		asm.StoreMem(rRec, stateAFlags, asm.R2, asm.Word), // the size, kept
		asm.LoadMem(asm.R4, rConf, conf+9, asm.Byte),      // flags
		asm.JSet.Imm(asm.R4, stepString, l("str")),
		asm.FnProbeReadKernel.Call(),
		asm.LoadMem(asm.R2, rRec, stateAFlags, asm.Word),
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(rRec, stateLast, asm.R1, asm.DWord),
		asm.Mov.Reg(asm.R1, asm.R0),
		asm.Mov.Imm(asm.R0, 0),
		asm.JNE.Imm(asm.R1, 0, l("len_pos")),
		asm.Mov.Reg(asm.R0, asm.R2),
		asm.JNE.Imm(asm.R2, 8, l("len_pos")),
		// A pointer: the base of the next step's read.
		asm.Mov.Reg(asm.R1, rRec),
		asm.Add.Reg(asm.R1, rEnd),
		asm.LoadMem(asm.R1, asm.R1, 16, asm.DWord),
		asm.StoreMem(rRec, stateLast, asm.R1, asm.DWord),
		asm.Ja.Label(l("len_pos")),
	)
	g.Label(l("str"))
	g.Emit(
		asm.FnProbeReadKernelStr.Call(),
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(rRec, stateLast, asm.R1, asm.DWord),
	)
	strLen(g, l)
	entryEnd(g, l, limit)
	g.Emit(
		asm.LoadMem(asm.R1, rRec, 6, asm.Byte),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(rRec, 6, asm.R1, asm.Byte),
	)
}

// captureStack emits a stack entry at rEnd, at most limit, when the
// config's stacks word has bit: addr, then what bpf_get_stack(ctx, ...,
// flags) copies of the stack, at most MaxStackFrames frames, its length
// 0 if the helper fails. bpf_get_stack zeros its buffer past what it
// copies, and copies whole frames: the entry needs no padding.
func captureStack(g *gen, name string, bit int32, addr uint64, flags int32, limit int32) {
	l := func(s string) string { return name + "_" + s }
	g.Emit(
		asm.LoadMem(asm.R1, rConf, configStacks, asm.Word),
		asm.And.Imm(asm.R1, bit),
		asm.JEq.Imm(asm.R1, 0, l("done")),
		asm.JGT.Imm(rEnd, limit, "exit"),

		asm.Mov.Reg(asm.R2, rRec),
		asm.Add.Reg(asm.R2, rEnd),
		// The marker: a 64-bit mov sign-extends its immediate.
		asm.Mov.Imm(asm.R1, int32(int64(addr))),
		asm.StoreMem(asm.R2, 0, asm.R1, asm.DWord),
		asm.Add.Imm(asm.R2, 16),
		asm.Mov.Reg(asm.R1, rCtx),
		asm.Mov.Imm(asm.R3, stackSize),
		asm.Mov.Imm(asm.R4, flags),
		asm.FnGetStack.Call(),
		asm.JSGT.Imm(asm.R0, 0, l("len_pos")),
		asm.Mov.Imm(asm.R0, 0),
	)
	g.Label(l("len_pos"))
	g.Emit(
		asm.JLE.Imm(asm.R0, stackSize, l("len_ok")),
		asm.Mov.Imm(asm.R0, stackSize),
	)
	g.Label(l("len_ok"))
	g.Emit(
		asm.And.Imm(asm.R0, -8),
		// len u16 and its padding, zero, in one store.
		asm.Mov.Reg(asm.R1, rRec),
		asm.Add.Reg(asm.R1, rEnd),
		asm.StoreMem(asm.R1, 8, asm.R0, asm.DWord),
		asm.Add.Imm(rEnd, 16),
		asm.Add.Reg(rEnd, asm.R0),
		// nstr, one more.
		asm.LoadMem(asm.R1, rRec, 6, asm.Byte),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(rRec, 6, asm.R1, asm.Byte),
	)
	g.Label(l("done"))
}
