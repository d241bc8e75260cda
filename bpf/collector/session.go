package collector

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/kprobe"
	"github.com/tracebroker/tracebroker/bpf/ring"
	"github.com/tracebroker/tracebroker/bpf/tracefs"
	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/internal/cpus"
	"github.com/tracebroker/tracebroker/internal/detach"
)

// Probe is one attach point of a session. Its index in Options.Probes is
// its attach cookie and the Probe field of its records.
type Probe struct {
	Kind program.ProbeKind
	// Category and Event name a tracepoint.
	Category, Event string
	// Name names a raw tracepoint (RawTracepoint, and TpBTF, whose
	// context, the tracepoint's arguments as u64s, a raw tracepoint
	// gives as well).
	Name string
	// Path and Offset (in the file) place a uprobe; Ret, or Kind
	// Uretprobe, makes it a uretprobe. PID > 0 limits it to that
	// process (-p).
	Path   string
	Offset uint64
	Ret    bool
	PID    int
	// AttachPath, when set, is the file attached to in place of Path:
	// the /proc/self/fd/N of Path opened once (bpf/uprobe.Target).
	AttachPath string
	// RefCtrOffset is a USDT probe's semaphore in Path (0: none).
	RefCtrOffset uint64
	// Multi, when not 0, attaches the uprobe with every other probe of
	// the same Multi (uprobes, or uretprobes, of one file, process and
	// block) through one uprobe.multi link (Linux 6.6), each with its
	// own index as its cookie (uprobemulti.go).
	Multi int
	// Func, when set, is the uprobe's function at Offset, for errors.
	Func string
	// Block is the script's probe block (program.Probe.Block): the
	// order probes are attached in (program.AttachOrder).
	Block int
	// Event (at Offset) places a kprobe (Kind Kprobe, or Kretprobe),
	// Funcs a kprobe.multi probe on many functions (kprobe.go).
	Funcs []string
	// PeriodNs is an interval's or a profile's period; Freq, when set, a
	// profile's samples per second per CPU instead.
	PeriodNs, Freq uint64
	// Sample is a Software probe's period: its Event (a perf software
	// event's name) fires it every Sample events.
	Sample uint64
	// CtxLen is how many bytes of context each record holds: a
	// tracepoint's record size (cut to MaxContext), 8 per raw
	// tracepoint argument. Uprobes and perf events always have their
	// whole context (PtRegsSize, PerfEventDataSize); 0 says the same.
	CtxLen int
	// Strings are read behind pointers in the context, MaxString bytes
	// at most each; at most MaxStrings specs, and a record holds at most
	// MaxStrings entries whatever its arrays hold.
	Strings []StringSpec
	// KStack and UStack copy the kernel and the user stack of each event
	// (bpf_get_stack) into its record, as its last entries (see the
	// record layout).
	KStack, UStack bool
	// Reads are chains of kernel reads (struct fields through BTF),
	// made at each event after the strings, one entry per step, at
	// most MaxSteps steps in all; Task copies the current task's
	// address (see the record layout).
	Reads []program.KRead
	Task  bool
	// Omit are header fields the records leave zero: those no reader
	// of the records needs (the interpreter's program of the probe
	// calls no helper that reads them). Their helpers are most of what
	// a record costs at the event. The zero value fills every field, as
	// a recording needs.
	Omit Fields
}

// Fields are the record header's fields that a helper call each fills
// (Probe.Omit).
type Fields uint32

const (
	OmitKtime  Fields = configOmitKtime >> configOmitShift  // ktime (bpf_ktime_get_ns)
	OmitIDs    Fields = configOmitIDs >> configOmitShift    // uid and gid (bpf_get_current_uid_gid)
	OmitCgroup Fields = configOmitCgroup >> configOmitShift // cgroup (bpf_get_current_cgroup_id)
	OmitComm   Fields = configOmitComm >> configOmitShift   // comm (bpf_get_current_comm)
	omitAll           = OmitKtime | OmitIDs | OmitCgroup | OmitComm
)

// StringSpec is a string to capture: the pointer to it is the u64 at
// CtxOff in the context; User says it points to user memory.
type StringSpec struct {
	CtxOff int
	User   bool
	// Array says the u64 at CtxOff points to an array of pointers to
	// strings (argv): the record gets the array's first ArrayLen
	// pointers, raw, as one entry, then the strings they point to up to
	// the first NULL, one entry each, while entries are left (see the
	// record layout). User applies to the array and to its strings.
	Array bool
}

// String names the probe as bpftrace would, for errors.
func (p Probe) String() string {
	switch p.Kind {
	case program.Tracepoint:
		return fmt.Sprintf("tracepoint:%s:%s", p.Category, p.Event)
	case program.RawTracepoint, program.TpBTF:
		return fmt.Sprintf("%s:%s", p.Kind, p.Name)
	case program.Uprobe, program.Uretprobe:
		k := program.Uprobe
		if p.uret() {
			k = program.Uretprobe
		}
		if p.Func != "" {
			return fmt.Sprintf("%s:%s:%s", k, p.Path, p.Func)
		}
		return fmt.Sprintf("%s:%s:%#x", k, p.Path, p.Offset)
	case program.Kprobe, program.Kretprobe:
		return kprobeString(p)
	case program.Fentry, program.Fexit:
		return funcString(p)
	case program.Interval:
		return fmt.Sprintf("interval:ns:%d", p.PeriodNs)
	case program.Profile:
		if p.Freq != 0 {
			return fmt.Sprintf("profile:hz:%d", p.Freq)
		}
		return fmt.Sprintf("profile:ns:%d", p.PeriodNs)
	case program.Software:
		return fmt.Sprintf("software:%s:%d", p.Event, p.Sample)
	}
	return p.Kind.String()
}

func (p Probe) uret() bool { return p.Ret || p.Kind == program.Uretprobe }

// Options are what Open needs.
type Options struct {
	Probes []Probe
	// BufferSize is the ring buffer's size in bytes: a power of two, at
	// least a page; 0 is DefaultBufferSize.
	BufferSize int
	Trust      Trust
	// IgnoreTGID is a process whose events are not collected: the
	// broker's own (os.Getpid()), so that reading the events does not
	// make more of them. 0 ignores none.
	IgnoreTGID uint32
}

// WakeFraction: records are written without waking the reader until a
// 1/WakeFraction of the ring buffer waits unread; the reader polls
// (Session.Read) every ReadPoll meanwhile. A reader woken for each
// record, as the kernel would have it, is one context switch per event,
// which tracing sched_switch turns into events of its own.
const (
	WakeFraction = 8
	ReadPoll     = 50 * time.Millisecond
)

// DefaultBufferSize is the ring buffer's size unless Options say.
const DefaultBufferSize = 4 << 20

// Session is a set of probes served by the collectors: the collectors
// loaded, the session's maps, and once attached, the attachments.
type Session struct {
	probes []Probe
	coll   *ebpf.Collection
	progs  [numKinds]*ebpf.Program
	// multi is the kprobe collector loaded for kprobe.multi links.
	multi *ebpf.Program
	// umulti is the uprobe collector loaded for uprobe.multi links,
	// with umScratch its scratch map (uprobemulti.go).
	umulti    *ebpf.Program
	umScratch *ebpf.Map
	// instances are the indexed raw tracepoint collector's, by probe
	// index, where the kernel has no raw tracepoint cookies.
	instances map[int]*ebpf.Program
	rd        *ring.Reader
	ids       []attest.Identity
	// links are the attachments; closing one detaches it.
	links    []io.Closer
	attached bool
	// modules checks module-named kprobes (kprobe.Modules).
	modules kprobe.Modules
	// control is the control map's value as the session set it.
	control [controlSize]byte
}

// Open verifies the collectors the probes need (see Trust), loads them,
// creates the session's maps and writes each probe's config. Nothing is
// attached yet. BEGIN and END probes are skipped (the broker runs them
// in the interpreter), so that Probes may be parallel to a Program's.
// On error nothing is left loaded.
func Open(o Options) (s *Session, err error) {
	if len(o.Probes) == 0 {
		return nil, errors.New("collector: no probes")
	}
	if len(o.Probes) > 1<<16 {
		return nil, fmt.Errorf("collector: %d probes, at most %d (a record's probe index is 16 bits)", len(o.Probes), 1<<16)
	}
	size := o.BufferSize
	if size == 0 {
		size = DefaultBufferSize
	}
	if size < os.Getpagesize() || size&(size-1) != 0 || size > 1<<30 {
		return nil, fmt.Errorf("collector: ring buffer size %d is not a power of two between %d and 1 GiB", size, os.Getpagesize())
	}
	configs := make([][]byte, len(o.Probes))
	var need [numKinds]bool
	for i, p := range o.Probes {
		k, cfg, err := configure(p)
		if err != nil {
			return nil, fmt.Errorf("collector: probe %d (%s): %w", i, p, err)
		}
		configs[i] = cfg
		if k == kindRawTracepoint && !RawTracepointCookies() {
			k = kindRawTracepointIndex
		}
		if k >= 0 {
			need[k] = true
		}
	}
	if err := checkFuncs(o.Probes, need); err != nil {
		return nil, err
	}
	if err := checkMulti(o.Probes); err != nil {
		return nil, err
	}
	if need[kindRawTracepointIndex] {
		n := 0
		for _, p := range o.Probes {
			if p.Kind == program.RawTracepoint || p.Kind == program.TpBTF {
				n++
			}
		}
		if n > MaxRawTracepointInstances {
			return nil, fmt.Errorf("collector: %d raw tracepoints, at most %d on a kernel without raw tracepoint cookies (before Linux 6.10), where each is a program of its own", n, MaxRawTracepointInstances)
		}
	}
	var specs []Spec
	for k := kind(0); k < numKinds; k++ {
		if need[k] {
			specs = append(specs, build(k))
		}
	}
	if len(specs) == 0 {
		return nil, errors.New("collector: no probe needs a collector (only BEGIN and END)")
	}
	ids, err := o.Trust.Verify(specs...)
	if err != nil {
		return nil, err
	}

	cs := &ebpf.CollectionSpec{Maps: map[string]*ebpf.MapSpec{}, Programs: map[string]*ebpf.ProgramSpec{}}
	for _, m := range mapLayouts {
		ms := &ebpf.MapSpec{Name: m.kernelName, Type: m.typ, KeySize: m.key, ValueSize: m.value, MaxEntries: m.entries}
		switch m.name {
		case eventsMap:
			ms.MaxEntries = uint32(size)
		case configMap:
			ms.MaxEntries = uint32(len(o.Probes))
		}
		cs.Maps[m.name] = ms
	}
	for _, sp := range specs {
		if sp.kind.perInstance() {
			continue // loaded once per probe, below
		}
		cs.Programs[sp.Name] = &ebpf.ProgramSpec{Name: sp.Name, Type: sp.Type, Instructions: sp.Instructions, License: "GPL"}
		if sp.kind == kindKprobe && needMulti(o.Probes) {
			// The same verified code, loaded once more for the
			// kind of attachment kprobe.multi links take.
			cs.Programs[multiProgram] = &ebpf.ProgramSpec{Name: sp.Name, Type: sp.Type, Instructions: sp.Instructions, License: "GPL", AttachType: ebpf.AttachTraceKprobeMulti}
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(cs, ebpf.CollectionOptions{})
	if err != nil {
		return nil, loadError(err)
	}
	sess := &Session{probes: append([]Probe(nil), o.Probes...), coll: coll, ids: ids}
	// sess, not s: a return of nil, err has set s to nil by now.
	defer func() {
		if err != nil {
			sess.Close()
		}
	}()
	for _, sp := range specs {
		if !sp.kind.perInstance() {
			sess.progs[sp.kind] = coll.Programs[sp.Name]
			continue
		}
		if sess.instances == nil {
			sess.instances = map[int]*ebpf.Program{}
		}
		for i, p := range o.Probes {
			if !servedBy(p, sp.kind) {
				continue
			}
			if sess.instances[i], err = sess.loadInstance(sp, i, p); err != nil {
				return nil, fmt.Errorf("collector: probe %d (%s): %w", i, p, err)
			}
		}
	}
	if err := sess.loadTracepointCopies(specs); err != nil {
		return nil, err
	}
	sess.multi = coll.Programs[multiProgram]
	if needUprobeMulti(o.Probes) {
		for _, sp := range specs {
			if sp.kind == kindUprobe {
				if err := sess.loadUprobeMulti(cs, sp); err != nil {
					return nil, err
				}
			}
		}
	}
	le := binary.LittleEndian
	le.PutUint32(sess.control[controlIgnore:], o.IgnoreTGID)
	le.PutUint32(sess.control[controlWake:], uint32(size/WakeFraction))
	// Each CPU looks at what waits unread once it has written this
	// much: all of them together, at most wake more.
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	le.PutUint32(sess.control[controlCheck:], uint32(size/WakeFraction/max(ncpu, 1)))
	if err := coll.Maps[controlMap].Put(uint32(0), sess.control[:]); err != nil {
		return nil, fmt.Errorf("collector: writing the control: %w", err)
	}
	for i, cfg := range configs {
		if err := coll.Maps[configMap].Put(uint32(i), cfg); err != nil {
			return nil, fmt.Errorf("collector: writing the config of probe %d: %w", i, err)
		}
	}
	if sess.rd, err = ring.NewReader(coll.Maps[eventsMap], ring.Options{Poll: ReadPoll}); err != nil {
		return nil, fmt.Errorf("collector: opening the ring buffer: %w", err)
	}
	return sess, nil
}

// loadTracepointCopies gives each probe on a tracepoint that an earlier
// probe already takes a copy of the tracepoint collector of its own: the
// kernel keeps one list of programs per tracepoint and refuses a program
// already in it (EEXIST), so a script's two probes on one tracepoint
// could not both attach. The copy is the same verified code, its probe
// told apart by its cookie as the first's is.
func (s *Session) loadTracepointCopies(specs []Spec) error {
	var sp *Spec
	for i := range specs {
		if specs[i].kind == kindTracepoint {
			sp = &specs[i]
		}
	}
	if sp == nil {
		return nil
	}
	taken := map[[2]string]bool{}
	for i, p := range s.probes {
		if p.Kind != program.Tracepoint {
			continue
		}
		if tp := [2]string{p.Category, p.Event}; !taken[tp] {
			taken[tp] = true
			continue
		}
		prog, err := s.loadCopy(*sp, nil, 0, "")
		if err != nil {
			return fmt.Errorf("collector: probe %d (%s): %w", i, p, err)
		}
		if s.instances == nil {
			s.instances = map[int]*ebpf.Program{}
		}
		s.instances[i] = prog
	}
	return nil
}

// loadCopy loads sp's code once more: its map loads refer to own's
// maps, else to the session's; attach and to are the program's attach
// type and target, outside the signed bytes (zero for none).
func (s *Session) loadCopy(sp Spec, own map[string]*ebpf.Map, attach ebpf.AttachType, to string) (*ebpf.Program, error) {
	insns := make(asm.Instructions, len(sp.Instructions))
	copy(insns, sp.Instructions)
	for j := range insns {
		if !insns[j].IsLoadFromMap() {
			continue
		}
		name := insns[j].Reference()
		m := own[name]
		if m == nil {
			m = s.coll.Maps[name]
		}
		if m == nil {
			return nil, fmt.Errorf("collector %s: instruction %d loads map %q, which the session has not", sp.Name, j, name)
		}
		if err := insns[j].AssociateMap(m); err != nil {
			return nil, err
		}
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: sp.Name, Type: sp.Type, Instructions: insns, License: "GPL", AttachType: attach, AttachTo: to})
	if err != nil {
		return nil, loadError(err)
	}
	return prog, nil
}

// configure checks a probe and encodes its config value (see the config
// layout); kind is -1 for a probe no collector serves (BEGIN, END).
func configure(p Probe) (kind, []byte, error) {
	cfg := make([]byte, configSize)
	k, ctxLen := kind(-1), p.CtxLen
	if ctxLen < 0 {
		return 0, nil, fmt.Errorf("negative context length %d", ctxLen)
	}
	fixed := func(size int, what string) error {
		if ctxLen != 0 && ctxLen != size {
			return fmt.Errorf("context length %d: the context is %s, %d bytes, always copied whole", ctxLen, what, size)
		}
		ctxLen = size
		return nil
	}
	switch p.Kind {
	case program.Begin, program.End:
		if len(p.Strings) > 0 {
			return 0, nil, errors.New("BEGIN and END have no context to read strings from")
		}
		if p.KStack || p.UStack || p.Task || len(p.Reads) > 0 {
			return 0, nil, errors.New("BEGIN and END have no event to take a stack of or read at")
		}
		return -1, cfg, nil
	case program.Tracepoint:
		k = kindTracepoint
		if p.Category == "" || p.Event == "" {
			return 0, nil, errors.New("a tracepoint needs a category and an event")
		}
		// A longer record is cut: the fields past MaxContext read as
		// zero, as record.go documents.
		ctxLen = min(ctxLen, MaxContext)
	case program.RawTracepoint, program.TpBTF:
		k = kindRawTracepoint
		if p.Name == "" {
			return 0, nil, errors.New("a raw tracepoint needs a name")
		}
		if ctxLen%8 != 0 || ctxLen > 8*MaxRawArgs {
			return 0, nil, fmt.Errorf("context length %d: a raw tracepoint's context is its arguments, 8 bytes each, at most %d", ctxLen, MaxRawArgs)
		}
	case program.Uprobe, program.Uretprobe:
		k = kindUprobe
		if p.Path == "" || p.Offset == 0 {
			return 0, nil, errors.New("a uprobe needs a file and a non-zero offset in it")
		}
		if err := fixed(PtRegsSize, "struct pt_regs"); err != nil {
			return 0, nil, err
		}
	case program.Kprobe, program.Kretprobe:
		k = kindKprobe
		if err := checkKprobe(p); err != nil {
			return 0, nil, err
		}
		if err := fixed(PtRegsSize, "struct pt_regs"); err != nil {
			return 0, nil, err
		}
	case program.Fentry, program.Fexit:
		k, _ = funcKind(p.Kind)
		if err := checkFunc(p); err != nil {
			return 0, nil, err
		}
		if ctxLen%8 != 0 || ctxLen > 8*(MaxRawArgs+1) {
			return 0, nil, fmt.Errorf("context length %d: a kernel function's context is its arguments and return value, 8 bytes each, at most %d", ctxLen, MaxRawArgs+1)
		}
	case program.Interval, program.Profile, program.Software:
		k = kindPerf
		if p.Kind == program.Software {
			if _, ok := program.LookupSoftware(p.Event); !ok || p.Sample == 0 {
				return 0, nil, fmt.Errorf("software event %q every %d events", p.Event, p.Sample)
			}
		} else if p.PeriodNs == 0 && (p.Freq == 0 || p.Kind == program.Interval) {
			return 0, nil, errors.New("no period")
		}
		if err := fixed(PerfEventDataSize, "struct bpf_perf_event_data"); err != nil {
			return 0, nil, err
		}
	default:
		return 0, nil, fmt.Errorf("no collector serves %s probes", p.Kind)
	}
	if len(p.Strings) > MaxStrings {
		return 0, nil, fmt.Errorf("%d strings, at most %d", len(p.Strings), MaxStrings)
	}
	le := binary.LittleEndian
	le.PutUint32(cfg[0:], uint32(ctxLen))
	le.PutUint32(cfg[4:], uint32(len(p.Strings)))
	for i, str := range p.Strings {
		if str.CtxOff < 0 || str.CtxOff+8 > ctxLen {
			return 0, nil, fmt.Errorf("string %d: its pointer at offset %d is not within the %d bytes of context", i, str.CtxOff, ctxLen)
		}
		le.PutUint32(cfg[8+8*i:], uint32(str.CtxOff))
		var flags uint32
		if str.User {
			flags |= configUser
		}
		if str.Array {
			flags |= configArray
		}
		le.PutUint32(cfg[12+8*i:], flags)
	}
	var stacks uint32
	if p.KStack {
		stacks |= configKStack
	}
	if p.UStack {
		stacks |= configUStack
	}
	if p.Task {
		stacks |= configTask
	}
	if p.Omit&^omitAll != 0 {
		return 0, nil, fmt.Errorf("omitted header fields %#x: only %#x can be", p.Omit, omitAll)
	}
	stacks |= uint32(p.Omit) << configOmitShift
	le.PutUint32(cfg[configStacks:], stacks)
	if err := configureReads(cfg, p.Reads, ctxLen); err != nil {
		return 0, nil, err
	}
	return k, cfg, nil
}

// CheckReads checks chains of kernel reads as a probe's config would:
// at most MaxSteps steps, each read 1 to MaxString bytes at an offset
// below 1<<20, each chain's pointer within ctxLen bytes of context.
func CheckReads(reads []program.KRead, ctxLen int) error {
	return configureReads(make([]byte, configSize), reads, ctxLen)
}

// configureReads encodes the probe's chains of kernel reads as the
// config's read steps.
func configureReads(cfg []byte, reads []program.KRead, ctxLen int) error {
	le := binary.LittleEndian
	n := 0
	for i, r := range reads {
		if len(r.Offs) == 0 {
			return fmt.Errorf("kernel read %d: no reads", i)
		}
		if n+len(r.Offs) > MaxSteps {
			return fmt.Errorf("kernel reads: more than %d steps", MaxSteps)
		}
		if r.Size < 1 || r.Size > MaxString {
			return fmt.Errorf("kernel read %d: %d bytes, 1 to %d", i, r.Size, MaxString)
		}
		if !r.Task && (r.Ctx < 0 || r.Ctx+8 > ctxLen) {
			return fmt.Errorf("kernel read %d: its pointer at offset %d is not within the %d bytes of context", i, r.Ctx, ctxLen)
		}
		for j, off := range r.Offs {
			if off < 0 || off >= maxStepOff {
				return fmt.Errorf("kernel read %d: offset %d, 0 to %d", i, off, maxStepOff-1)
			}
			step := cfg[configSteps+16*n:]
			le.PutUint32(step[0:], uint32(off))
			size, flags := 8, byte(0)
			if j == len(r.Offs)-1 {
				size = r.Size
				if r.Str {
					flags = stepString
				}
			}
			le.PutUint16(step[4:], uint16(size))
			switch {
			case j > 0:
				step[8] = stepFromLast
			case r.Task:
				step[8] = stepFromTask
			default:
				step[8] = stepFromCtx
				le.PutUint16(step[6:], uint16(r.Ctx))
			}
			step[9] = flags
			n++
		}
	}
	le.PutUint32(cfg[configNSteps:], uint32(n))
	return nil
}

// loadError shows why the verifier refused a collector: a collector
// the kernel refuses is this package's bug or the kernel's limit, and
// the end of the log says which.
func loadError(err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		log := ve.Log
		if len(log) > 12 {
			log = log[len(log)-12:]
		}
		return fmt.Errorf("collector: the kernel verifier rejected a collector: %v\n%s", ve.Cause, strings.Join(log, "\n"))
	}
	if errors.Is(err, unix.EPERM) {
		return bpf.NotPermitted("collector: ")
	}
	return fmt.Errorf("collector: loading: %w", err)
}

// Collectors are the identities of the loaded collectors, as verified
// (or, unsigned, not): for the audit record.
func (s *Session) Collectors() []attest.Identity { return append([]attest.Identity(nil), s.ids...) }

// Programs are the loaded collectors.
func (s *Session) Programs() []*ebpf.Program {
	var out []*ebpf.Program
	for _, p := range s.progs {
		if p != nil {
			out = append(out, p)
		}
	}
	for i := range len(s.probes) {
		if p := s.instances[i]; p != nil {
			out = append(out, p)
		}
	}
	if s.umulti != nil {
		out = append(out, s.umulti)
	}
	return out
}

// Attach attaches every probe, each with its index as the attach
// cookie. If one fails, or ctx ends, those attached already are detached
// again.
func (s *Session) Attach(ctx context.Context) (err error) {
	if s.attached {
		return errors.New("collector: already attached")
	}
	defer func() {
		if err != nil {
			s.Detach()
		}
	}()
	multi := map[int]bool{} // the uprobe.multi links attached
	for _, i := range program.AttachOrderOf(len(s.probes), func(i int) (program.ProbeKind, int) { return s.probes[i].Kind, s.probes[i].Block }) {
		p := s.probes[i]
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("collector: attach: %w", err)
		}
		if p.Multi != 0 {
			if multi[p.Multi] {
				continue // attached with the first of its link
			}
			multi[p.Multi] = true
			if err := s.attachUprobeMulti(p); err != nil {
				return fmt.Errorf("collector: attach the uprobe.multi link of probe %d (%s) and the others of it: %w", i, p, err)
			}
			continue
		}
		if err := s.attach(i, p); err != nil {
			return fmt.Errorf("collector: attach probe %d (%s): %w", i, p, err)
		}
	}
	s.attached = true
	return nil
}

func (s *Session) attach(i int, p Probe) error {
	cookie := uint64(i)
	switch p.Kind {
	case program.Tracepoint:
		// cilium/ebpf finds tracefs but does not mount it.
		if _, err := tracefs.Root(); err != nil {
			return err
		}
		prog := s.progs[kindTracepoint]
		if inst := s.instances[i]; inst != nil {
			prog = inst
		}
		l, err := link.Tracepoint(p.Category, p.Event, prog, &link.TracepointOptions{Cookie: cookie})
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("no tracepoint %s:%s", p.Category, p.Event)
		}
		if err != nil {
			return err
		}
		s.links = append(s.links, l)
	case program.RawTracepoint, program.TpBTF:
		prog := s.progs[kindRawTracepoint]
		if inst := s.instances[i]; inst != nil {
			prog, cookie = inst, 0
		}
		fd, err := rawTracepointOpen(p.Name, prog, cookie)
		if err != nil {
			return err
		}
		s.links = append(s.links, fd)
	case program.Uprobe, program.Uretprobe:
		file := p.Path
		if p.AttachPath != "" {
			file = p.AttachPath
		}
		ex, err := link.OpenExecutable(file)
		if err != nil {
			return err
		}
		attachFn := ex.Uprobe
		if p.uret() {
			attachFn = ex.Uretprobe
		}
		// Address is the file offset; with it, no symbol is looked up.
		l, err := attachFn("", s.progs[kindUprobe], &link.UprobeOptions{Address: p.Offset, PID: p.PID, Cookie: cookie, RefCtrOffset: p.RefCtrOffset})
		switch {
		case errors.Is(err, unix.ESRCH):
			return fmt.Errorf("no process %d", p.PID)
		case errors.Is(err, unix.Errno(524)): // ENOTSUPP: the instruction there
			return fmt.Errorf("%s: %w", uprobe.WhyNot(err), err)
		case errors.Is(err, unix.EINVAL):
			return fmt.Errorf("offset %#x is beyond the end of %s, or it is not a regular file (%w)", p.Offset, p.Path, err)
		case err != nil:
			return err
		}
		s.links = append(s.links, l)
	case program.Kprobe, program.Kretprobe:
		l, err := s.attachKprobe(p, cookie)
		if err != nil {
			return err
		}
		s.links = append(s.links, l)
	case program.Fentry, program.Fexit:
		l, err := attachFunc(s.instances[i])
		if err != nil {
			return err
		}
		s.links = append(s.links, l)
	case program.Interval:
		// One CPU, as bpftrace's interval: a cpu-clock event firing
		// every period whether the CPU is busy or idle.
		attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_CPU_CLOCK, Sample: p.PeriodNs}
		return s.attachPerf(&attr, 0, cookie)
	case program.Profile, program.Software:
		online, err := cpus.Online()
		if err != nil {
			return err
		}
		for _, cpu := range online {
			attr := program.PerfAttr(p.Kind, p.Event, p.PeriodNs, p.Freq, p.Sample)
			if err := s.attachPerf(&attr, cpu, cookie); err != nil {
				return err
			}
		}
	}
	return nil
}

// linkFD is an attachment held by its file descriptor alone.
type linkFD int

func (fd linkFD) Close() error { return unix.Close(int(fd)) }
func (fd linkFD) FD() int      { return int(fd) }

// BPF commands cilium/ebpf has no cookie-taking API for.
const (
	bpfRawTracepointOpen = 17
	bpfLinkCreate        = 28
	bpfPerfEvent         = 41 // attach type BPF_PERF_EVENT
)

// rawTracepointOpen attaches the raw tracepoint collector with a cookie
// (Linux 6.10): cilium/ebpf's AttachRawTracepoint takes none.
func rawTracepointOpen(name string, prog *ebpf.Program, cookie uint64) (linkFD, error) {
	bname, err := unix.BytePtrFromString(name)
	if err != nil {
		return -1, err
	}
	attr := struct {
		name   uint64
		progFD uint32
		_      uint32
		cookie uint64
	}{uint64(uintptr(unsafe.Pointer(bname))), uint32(prog.FD()), 0, cookie}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, bpfRawTracepointOpen, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(bname)
	runtime.KeepAlive(prog)
	switch {
	case errno == unix.ENOENT:
		return -1, fmt.Errorf("no raw tracepoint %s", name)
	case (errno == unix.EINVAL || errno == unix.E2BIG) && cookie != 0:
		return -1, fmt.Errorf("BPF_RAW_TRACEPOINT_OPEN %s with a cookie: %w (raw tracepoint cookies need Linux 6.10)", name, errno)
	case errno != 0:
		return -1, fmt.Errorf("BPF_RAW_TRACEPOINT_OPEN %s: %w", name, errno)
	}
	return linkFD(fd), nil
}

// attachPerf opens a perf event on cpu for every process and links the
// perf collector to it with a cookie (BPF_LINK_CREATE, Linux 5.15):
// cilium/ebpf links only perf events it opens itself, none of which is
// a cpu-clock. The link holds the perf event, so the event's own
// descriptor is closed at once and closing the link is the whole detach.
func (s *Session) attachPerf(attr *unix.PerfEventAttr, cpu int, cookie uint64) error {
	attr.Size = uint32(unsafe.Sizeof(*attr))
	pfd, err := unix.PerfEventOpen(attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("perf_event_open on cpu %d: %w", cpu, err)
	}
	defer unix.Close(pfd)
	l, err := linkPerfEvent(pfd, s.progs[kindPerf], cookie)
	if err != nil {
		return fmt.Errorf("the perf event on cpu %d: %w", cpu, err)
	}
	s.links = append(s.links, l)
	return nil
}

// linkPerfEvent links prog to the perf event pfd with cookie
// (BPF_LINK_CREATE, Linux 5.15). The link holds the event: the caller
// closes pfd, and closing the link is the whole detach.
func linkPerfEvent(pfd int, prog *ebpf.Program, cookie uint64) (linkFD, error) {
	la := struct {
		progFD, targetFD, attachType, flags uint32
		cookie                              uint64
	}{uint32(prog.FD()), uint32(pfd), bpfPerfEvent, 0, cookie}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, bpfLinkCreate, uintptr(unsafe.Pointer(&la)), unsafe.Sizeof(la))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return -1, fmt.Errorf("BPF_LINK_CREATE: %w (perf event links need Linux 5.15)", errno)
	}
	return linkFD(fd), nil
}

// Detach removes every attachment. Each close waits for an RCU grace
// period, tens of milliseconds, so they are closed a few at a time
// (package detach). It is safe to call more than once.
func (s *Session) Detach() {
	links := s.links
	detach.All(len(links), func(i int) { links[i].Close() })
	s.links = nil
	s.attached = false
}

// DetachInBackground hands the attachments to a helper process that
// closes them (detach.InBackground), and closes this process's copies,
// which is quick while the helper holds them: the kernel's grace periods
// are waited out in the helper, after the caller has moved on. Stop the
// probes first: they stay attached until the helper is done. If the
// helper cannot start, it detaches in place.
//
// Every attachment is a BPF link (a perf link, which holds its perf
// event, a raw tracepoint's, a tracing or a kprobe.multi link) behind
// one descriptor, so the helper's close is the whole detach; an
// attachment without one is closed in place.
func (s *Session) DetachInBackground() {
	fds := make([]int, 0, len(s.links))
	for _, l := range s.links {
		if fd, ok := l.(interface{ FD() int }); ok {
			fds = append(fds, fd.FD())
		}
	}
	err := detach.InBackground(fds, func() {
		for _, l := range s.links {
			l.Close()
		}
	})
	if err != nil {
		s.Detach()
		return
	}
	s.links = nil
	s.attached = false
}

// Attached is the number of attachments: one per probe, a profile's one
// per CPU.
func (s *Session) Attached() int { return len(s.links) }

// Read waits until deadline (the zero time: for ever) for the next
// record and returns it in rec, whose sample is valid until the next
// Read; Decode it. A deadline passed is os.ErrDeadlineExceeded; after a
// Wake, the first time the buffer is found empty, ErrWoken.
func (s *Session) Read(deadline time.Time, rec *ringbuf.Record) error {
	if s.rd == nil {
		return os.ErrClosed
	}
	// Records come without a wake-up until WakeFraction of the buffer
	// waits: the reader looks every ReadPoll.
	err := s.rd.Read(deadline, rec)
	if errors.Is(err, ring.ErrWoken) {
		return ErrWoken
	}
	return err
}

// ErrWoken is what Read returns for a Wake.
var ErrWoken = errors.New("collector: the reader was woken")

// Wake makes the Read under way, or else the next, return ErrWoken
// instead of waiting once the buffer is empty: another goroutine's way
// to stop a reader that waits for ever. Under a storm the buffer may
// not empty for a long while; a reader that must stop at once checks a
// flag of its own between records as well. Safe to call while Read
// runs, not after Close.
func (s *Session) Wake() {
	if s.rd != nil {
		s.rd.Wake()
	}
}

// Pending is how many bytes of records wait in the ring buffer.
func (s *Session) Pending() int {
	if s.rd == nil {
		return 0
	}
	return s.rd.Pending()
}

// Stop makes every probe return at once, so that what has been read
// when the broker stops is final however long detaching takes.
func (s *Session) Stop() error {
	if s.coll == nil {
		return errors.New("collector: stop: the session is closed")
	}
	c := s.control
	binary.LittleEndian.PutUint64(c[controlStop:], 1)
	if err := s.coll.Maps[controlMap].Put(uint32(0), c[:]); err != nil {
		return fmt.Errorf("collector: stop: %w", err)
	}
	return nil
}

// Lost is how many records the ring buffer had no room for.
func (s *Session) Lost() uint64 {
	if s.coll == nil {
		return 0
	}
	var vals []uint64
	if err := s.coll.Maps[lostMap].Lookup(uint32(0), &vals); err != nil {
		return 0
	}
	var n uint64
	for _, v := range vals {
		n += v
	}
	return n
}

// Close detaches and releases everything; safe to call more than once.
func (s *Session) Close() {
	s.Detach()
	if s.rd != nil {
		s.rd.Close()
		s.rd = nil
	}
	for _, p := range s.instances {
		p.Close()
	}
	s.instances = nil
	if s.umulti != nil {
		s.umulti.Close()
		s.umScratch.Close()
		s.umulti, s.umScratch = nil, nil
	}
	if s.coll != nil {
		s.coll.Close()
		s.coll = nil
	}
}
