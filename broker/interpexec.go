package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/interp"
)

// eventSource is where interpreter mode's events come from: the static
// collectors in the kernel, or a recording.
type eventSource interface {
	Attach(ctx context.Context) error
	Attached() int
	// Next returns the next record (bpf/collector's layout), waiting
	// until deadline: bpf.ErrTimeout when none came, io.EOF when there
	// will be no more (the end of a recording). The bytes are valid
	// until the next call.
	Next(deadline time.Time) ([]byte, error)
	Pending() int
	Stop() error
	// Lost is how many events the source dropped.
	Lost() uint64
	Detach()
	Close()
}

// interpSession runs a program in the interpreter, each probe over the
// records of its events, with user-space maps: the executor of
// interpreter mode and of replay. Its output events are the JIT's, read
// from the program's own ring buffer, so the run loop prints the same.
type interpSession struct {
	prog   *program.Program
	src    eventSource
	maps   map[string]*interp.Map
	user   []*interp.Map // Schema.Maps' order
	events *interp.Map
	errs   *interp.Map
	config *interp.Map
	progs  []*interp.Program

	env  interp.Env // an event's task, from its record
	self interp.Env // tracebroker's, for BEGIN and END
	rec  collector.Record
	done bool // nothing more is run: the source said io.EOF, or the session halted
	// halted says no probe runs again: a run put an exit event in the
	// events buffer, or END has run. Records queued behind it are
	// dropped unrun, as the kernel drops the events of a stopped trace.
	halted bool
	// routes maps a record's probe number to the probes that run over
	// it; nil: the record's number is the probe's. A recording's probes
	// are numbered its own way, and a script replayed over it may use
	// some of them, or one of them twice; each function of a
	// uprobe.multi probe is a probe of the collectors' (and of a
	// recording's), which runs that probe with the function's cookie.
	routes [][]route

	// stacks are the stack maps: the stacks the events' records brought,
	// each stored once under the id get_stackid gave it.
	stacks map[string]*stackTable

	// faults counts reads of memory the collector did not copy;
	// failures counts runs that ended in an error (the first is kept).
	faults, failures uint64
	firstFailure     error

	// saved are the strings copied at one probe for a read at another
	// (savedstrings.go); savedOffs, per probe, the pointers it saves.
	saved     *savedStore
	savedOffs [][]int
	// savedFailed counts reads of saved pointers whose copy had failed.
	savedFailed uint64
	// attachRead counts the records read (and run, until an exit())
	// while the probes attached (Attach): -v says how many.
	attachRead uint64
}

// interpUnsupported are the helpers interpreter mode cannot offer: what
// they read or do exists only in the kernel at the event.
var interpUnsupported = map[asm.BuiltinFunc]string{
	asm.FnSendSignal: "signal()",
	// The kernel's trace buffer, written at the event.
	asm.FnTracePrintk: "debugf()",
}

// interpCapable refuses, before anything is loaded, a program that
// calls what only the kernel can do at the event.
func interpCapable(prog *program.Program) error {
	for _, p := range prog.Probes {
		if p.KernelOnly != "" {
			return fmt.Errorf("%s: %s cannot run in interpreter mode: it reads memory the collector does not copy (use --mode jit)", p.Name, p.KernelOnly)
		}
		for _, ins := range p.Insns {
			if !ins.IsBuiltinCall() {
				continue
			}
			if what, ok := interpUnsupported[asm.BuiltinFunc(ins.Constant)]; ok {
				return fmt.Errorf("%s: %s cannot run in interpreter mode: it needs the kernel at the event (use --mode jit)", p.Name, what)
			}
		}
	}
	return nil
}

// newInterpSession prepares prog for the interpreter over src; cpus is
// how many CPUs per-CPU maps keep (the records' CPU numbers are below
// it).
func newInterpSession(prog *program.Program, src eventSource, cpus int) (s *interpSession, err error) {
	if err := interpCapable(prog); err != nil {
		return nil, err
	}
	if err := checkInterpMaps(prog, cpus); err != nil {
		return nil, err
	}
	s = newInterpState(prog, src)
	for _, ms := range prog.Maps {
		if _, err := s.addMap(ms, cpus); err != nil {
			return nil, err
		}
	}
	s.events, s.errs, s.config = s.maps[program.EventsMap], s.maps[program.ErrorsMap], s.maps[program.ConfigMap]
	if s.events == nil || s.config == nil {
		return nil, errors.New("interpreter mode: the program has no events or config map")
	}
	for _, m := range prog.Schema.Maps {
		s.user = append(s.user, s.maps[m.BPF])
	}
	if err := s.load(s.helpers()); err != nil {
		return nil, err
	}
	s.self = interp.Env{PID: uint32(os.Getpid()), TGID: uint32(os.Getpid()), UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	if comm, err := os.ReadFile("/proc/self/comm"); err == nil {
		copy(s.self.Comm[:], bytes.TrimSpace(comm))
	}
	s.self.Cgroup = selfCgroup()
	return s, nil
}

// newInterpState is a session of prog's, its maps and programs still to
// make, reading src.
func newInterpState(prog *program.Program, src eventSource) *interpSession {
	return &interpSession{prog: prog, src: src, maps: map[string]*interp.Map{}, stacks: map[string]*stackTable{},
		saved: newSavedStore(defaultSavedEntries, defaultSavedBytes), savedOffs: savedOffsets(prog)}
}

// load loads every probe's program over the session's maps, with
// helpers, and gives the runs the time of the event they run for.
func (s *interpSession) load(helpers []interp.Helper) error {
	for _, p := range s.prog.Probes {
		ip, err := interp.LoadInstructions(p.Insns, s.maps, interp.Options{Helpers: helpers})
		if err != nil {
			return fmt.Errorf("interpreter mode: %s: %w", p.Name, err)
		}
		s.progs = append(s.progs, ip)
	}
	s.env.Ktime = func() uint64 { return s.rec.Ktime }
	return nil
}

// addMap creates the interpreter's map for ms, by its name.
func (s *interpSession) addMap(ms *ebpf.MapSpec, cpus int) (*interp.Map, error) {
	spec := ms.Copy()
	if spec.Type == ebpf.StackTrace {
		// The program names the map; the stacks live in a table of
		// this session's, filled from the records.
		s.stacks[spec.Name] = &stackTable{frames: int(spec.ValueSize / 8), max: int(spec.MaxEntries), ids: map[string]uint32{}}
		spec = &ebpf.MapSpec{Name: spec.Name, Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1}
	}
	m, err := interp.NewMap(spec, interp.MapOptions{CPUs: cpus})
	if err != nil {
		return nil, fmt.Errorf("interpreter mode: map %s: %w", ms.Name, err)
	}
	// What the kernel's map is created with (program.NamesMap).
	if err := m.Fill(spec.Contents, nil); err != nil {
		return nil, fmt.Errorf("interpreter mode: map %s: %w", ms.Name, err)
	}
	s.maps[ms.Name] = m
	return m, nil
}

// helpers is the default table less what only the kernel can do, with
// memory reads that fall back to what the collector copied: a read of
// an address outside the interpreter's own memory is answered from the
// record's strings, as the kernel would have answered it at the event.
func (s *interpSession) helpers() []interp.Helper {
	var out []interp.Helper
	for _, h := range interp.DefaultHelpers() {
		if _, ok := interpUnsupported[h.ID]; ok {
			continue
		}
		switch h.ID {
		case asm.FnProbeRead, asm.FnProbeReadKernel, asm.FnProbeReadUser:
			h.Fn = s.probeRead(h.Fn)
		case asm.FnProbeReadStr, asm.FnProbeReadKernelStr, asm.FnProbeReadUserStr:
			h.Fn = s.probeReadStr(h.Fn)
		case asm.FnRingbufOutput:
			h.Fn = s.noticeExit(h.Fn)
		}
		out = append(out, h)
	}
	return append(out, interp.Helper{ID: asm.FnGetStackid, Name: "get_stackid", Args: 3, Fn: s.getStackid})
}

// stackTable is one stack map of interpreter mode.
type stackTable struct {
	frames, max int
	ids         map[string]uint32 // the frames' bytes -> id
	byID        [][]uint64
}

// bpfFUserStack is BPF_F_USER_STACK.
const bpfFUserStack = 0x100

// getStackid answers bpf_get_stackid from the stack the collector copied
// with the event: the same stack gets the same id, as the kernel's hash
// of it does.
func (s *interpSession) getStackid(c interp.Call, _, r2, r3, _, _ uint64) (uint64, error) {
	m, _, err := c.Map(r2)
	if err != nil {
		return 0, err
	}
	t := s.stacks[m.Name()]
	if t == nil {
		return 0, fmt.Errorf("get_stackid on %s, not a stack map", m.Name())
	}
	marker := uint64(collector.KStackAddr)
	if r3&bpfFUserStack != 0 {
		marker = collector.UStackAddr
	}
	var raw []byte
	for _, e := range s.rec.Strings {
		if e.Addr == marker {
			raw = e.Data
		}
	}
	if len(raw) < 8 {
		// A stack the kernel could not take came as an empty entry; no
		// entry means the collector was not asked for it (a replay of
		// a recording made for another script).
		found := false
		for _, e := range s.rec.Strings {
			found = found || e.Addr == marker
		}
		if !found {
			s.faults++
		}
		return negErrno(efault), nil
	}
	raw = raw[:min(len(raw)&^7, 8*t.frames)]
	if id, ok := t.ids[string(raw)]; ok {
		return uint64(id), nil
	}
	if len(t.byID) >= t.max {
		return negErrno(enomem), nil
	}
	ips := make([]uint64, len(raw)/8)
	for i := range ips {
		ips[i] = binary.LittleEndian.Uint64(raw[8*i:])
	}
	id := uint32(len(t.byID))
	t.byID = append(t.byID, ips)
	t.ids[string(raw)] = id
	return uint64(id), nil
}

// noticeExit wraps ringbuf_output: once a run has put an exit event in
// the program's events buffer, the session halts. The compiler writes
// every event with ringbuf_output, exit's included.
func (s *interpSession) noticeExit(def interp.HelperFunc) interp.HelperFunc {
	return func(c interp.Call, r1, r2, r3, r4, r5 uint64) (uint64, error) {
		ret, err := def(c, r1, r2, r3, r4, r5)
		if err != nil || ret != 0 || r3 < 8 {
			return ret, err // not written: nothing will see an exit
		}
		if m, _, merr := c.Map(r1); merr == nil && m == s.events {
			if b, merr := c.Mem(r2, 8, false); merr == nil && binary.LittleEndian.Uint64(b) == program.EventExit {
				s.halted = true
			}
		}
		return ret, err
	}
}

const enomem = 12

const efault = 14

func negErrno(e int) uint64 { return uint64(-int64(e)) }

// region finds the copied memory holding [addr, addr+n): its bytes
// from addr on. With str, the region must also hold the string's NUL: an
// array's raw copy may hold the start of a string whose own entry holds
// all of it. failed says the collector tried that address and the
// kernel's read failed, as the program's own would have.
func (s *interpSession) region(addr, n uint64, str bool) (b []byte, failed bool) {
	if addr < nullPage {
		// A NULL pointer's field: the kernel's read fails as well.
		return nil, true
	}
	for _, r := range s.rec.Strings {
		if r.Data == nil {
			failed = failed || r.Addr == addr
			continue
		}
		if addr < r.Addr || addr-r.Addr >= uint64(len(r.Data)) || n > uint64(len(r.Data))-(addr-r.Addr) {
			continue
		}
		b := r.Data[addr-r.Addr:]
		if str && bytes.IndexByte(b, 0) < 0 {
			continue
		}
		return b, false
	}
	return nil, failed
}

// nullPage is the page no read succeeds in, user or kernel.
const nullPage = 4096

func (s *interpSession) probeRead(def interp.HelperFunc) interp.HelperFunc {
	return func(c interp.Call, r1, r2, r3, r4, r5 uint64) (uint64, error) {
		if _, err := c.Mem(r3, r2, false); err == nil || r2 == 0 {
			return def(c, r1, r2, r3, r4, r5)
		}
		dst, err := c.Mem(r1, r2, true)
		if err != nil {
			return 0, err
		}
		src, failed := s.region(r3, r2, false)
		if src != nil {
			copy(dst, src[:r2])
			return 0, nil
		}
		clear(dst)
		if !failed {
			s.faults++
		}
		return negErrno(efault), nil
	}
}

func (s *interpSession) probeReadStr(def interp.HelperFunc) interp.HelperFunc {
	return func(c interp.Call, r1, r2, r3, r4, r5 uint64) (uint64, error) {
		if _, err := c.Mem(r3, 1, false); err == nil || r2 == 0 {
			return def(c, r1, r2, r3, r4, r5)
		}
		dst, err := c.Mem(r1, r2, true)
		if err != nil {
			return 0, err
		}
		clear(dst)
		src, failed := s.region(r3, 1, true)
		if src == nil && !failed {
			if saved, ok := s.saved.get(s.env.TGID, r3); ok && len(saved) == 0 {
				// Copied where the pointer was taken, but the
				// memory was not there to read then.
				s.savedFailed++
				return negErrno(efault), nil
			} else if ok {
				src = saved
			}
		}
		if i := bytes.IndexByte(src, 0); i >= 0 {
			// As the kernel's: the string and its NUL, cut to fit.
			n := min(uint64(i), r2-1)
			copy(dst, src[:n])
			return n + 1, nil
		}
		if !failed {
			s.faults++
		}
		return negErrno(efault), nil
	}
}

func (s *interpSession) Configure(startNs uint64, cpid int) error {
	v := make([]byte, program.ConfigSize)
	binary.LittleEndian.PutUint64(v[program.ConfigStartNs:], startNs)
	binary.LittleEndian.PutUint64(v[program.ConfigCpid:], uint64(cpid))
	return s.config.Update(make([]byte, 4), v, interp.UpdateAny)
}

// Stop stops the collectors. The program itself goes on: the events
// already copied happened before the stop, and the kernel would have run
// the program over each of them then.
func (s *interpSession) Stop() error { return s.src.Stop() }

// Run runs BEGIN or END in tracebroker's own context, as the kernel's
// test run does in JIT mode. After END no probe runs.
func (s *interpSession) Run(kind program.ProbeKind) error {
	if kind == program.End {
		defer func() { s.halted = true }()
	}
	for i, pr := range s.prog.Probes {
		if pr.Kind != kind {
			continue
		}
		if _, err := s.progs[i].Run(&s.self, make([]byte, 64)); err != nil {
			return fmt.Errorf("run %s probe: %w", pr.Name, err)
		}
	}
	return nil
}

// Attach attaches the source's probes and runs the program over the
// events they deliver while the rest attach (attachReader), as the
// kernel runs a JIT program from the moment its probe is attached: what
// the runs print waits in the program's events buffer for the run loop,
// as JIT mode's does in the kernel's. After an exit() the records are
// read and dropped unrun, as Read drops them.
func (s *interpSession) Attach(ctx context.Context) error {
	ar, ok := s.src.(attachReader)
	if !ok {
		return s.src.Attach(ctx)
	}
	return ar.AttachReading(ctx, func(raw []byte) {
		s.attachRead++
		if !s.halted {
			s.handle(raw)
		}
	})
}

// attachReader is a source that can be read while it attaches
// (collectorSource.AttachReading).
type attachReader interface {
	AttachReading(ctx context.Context, handle func([]byte)) error
}

func (s *interpSession) Attached() int { return s.src.Attached() }

// deadlineEvery is how many records Read runs between looks at the
// clock: a look costs about a sixth of a record's run.
const deadlineEvery = 64

// Read runs probes over records until one prints something, and returns
// bpf.ErrTimeout at deadline however fast records come: a script that
// only updates maps prints nothing, and the run loop must still see a
// signal, -d or the child's exit in time (the zero deadline waits for
// ever). Once halted it returns the events already printed, then io.EOF.
func (s *interpSession) Read(deadline time.Time, rec *ringbuf.Record) error {
	for n := 1; ; n++ {
		if b, ok := s.events.ReadRecord(); ok {
			rec.RawSample = append(rec.RawSample[:0], b...)
			return nil
		}
		if s.halted && !s.done {
			if p, ok := s.src.(passer); ok {
				p.passRest()
			}
			s.done = true
		}
		if s.done {
			return io.EOF
		}
		if n%deadlineEvery == 0 && !deadline.IsZero() && time.Now().After(deadline) {
			return bpf.ErrTimeout
		}
		raw, err := s.src.Next(deadline)
		if errors.Is(err, io.EOF) {
			s.done = true
			continue
		}
		if err != nil {
			return err
		}
		s.handle(raw)
	}
}

// passer is a source whose records left unrun are still to be read
// past once the session halts: a recording, whose trailer says how many
// events were lost and that it is whole.
type passer interface{ passRest() }

// handle runs the record's probe over it.
func (s *interpSession) handle(raw []byte) {
	if err := collector.Decode(raw, &s.rec); err != nil {
		s.fail(fmt.Errorf("bad record: %w", err))
		return
	}
	e := &s.env
	e.CPU, e.PID, e.TGID, e.UID, e.GID, e.Cgroup, e.Comm = s.rec.CPU, s.rec.PID, s.rec.TGID, s.rec.UID, s.rec.GID, s.rec.Cgroup, s.rec.Comm
	e.Task = recordTask(&s.rec)
	if s.routes == nil {
		s.run(s.rec.Probe)
		return
	}
	if s.rec.Probe < len(s.routes) {
		// One record may feed several probes (a replay's): none runs
		// after one called exit().
		for _, r := range s.routes[s.rec.Probe] {
			if s.halted {
				return
			}
			e.Cookie = r.cookie
			s.run(r.probe)
		}
	}
}

// route is a probe that runs over a record, with the attach cookie
// bpf_get_attach_cookie gives it (a uprobe.multi probe's function's).
type route struct {
	probe  int
	cookie uint64
}

// recordTask is the task's address the collector copied with the event
// (the compiler asks for it wherever curtask is taken); 0 if none.
func recordTask(r *collector.Record) uint64 {
	for _, e := range r.Strings {
		if e.Addr == collector.TaskAddr && len(e.Data) == 8 {
			return binary.LittleEndian.Uint64(e.Data)
		}
	}
	return 0
}

func (s *interpSession) run(i int) {
	if i >= len(s.progs) {
		s.fail(fmt.Errorf("record of probe %d, the program has %d", i, len(s.progs)))
		return
	}
	s.keepSaved(i)
	if s.prog.Probes[i].Task && s.env.Task == 0 {
		s.faults++ // a recording's record without the task
	}
	if _, err := s.progs[i].Run(&s.env, s.rec.Context); err != nil {
		s.fail(fmt.Errorf("%s: %w", s.prog.Probes[i].Name, err))
	}
}

func (s *interpSession) fail(err error) {
	if s.failures == 0 {
		s.firstFailure = err
	}
	s.failures++
}

// warnings are what interpreter mode did not do as the kernel would
// have: said at the end, never silent.
func (s *interpSession) warnings() []string {
	var out []string
	if s.faults > 0 {
		out = append(out, fmt.Sprintf("WARNING: %d reads of memory or stacks the collector did not copy returned nothing (interpreter mode copies what the script reads through tracepoint fields, probe arguments and chains of struct fields from them or from curtask, and the stacks it takes)", s.faults))
	}
	if s.savedFailed > 0 {
		out = append(out, fmt.Sprintf("WARNING: %d reads of strings behind pointers saved at another probe returned nothing: the collector could not copy them where the pointers were taken (their memory was not paged in yet; JIT mode reads them later)", s.savedFailed))
	}
	if s.saved.evicted > 0 {
		out = append(out, fmt.Sprintf("WARNING: %d strings copied at one probe for a read at another were dropped, the oldest first, to keep within %d strings and %d bytes; reads of them returned nothing", s.saved.evicted, s.saved.maxEntries, s.saved.maxBytes))
	}
	if s.failures > 0 {
		out = append(out, fmt.Sprintf("WARNING: %d events were not processed; the first: %v", s.failures, s.firstFailure))
	}
	return out
}

func (s *interpSession) Pending() int { return s.src.Pending() }

func (s *interpSession) Snapshot(id int) (*program.MapSnapshot, error) {
	m := s.user[id]
	b := program.NewSnapshotBuilder(s.prog.Schema.Maps[id], m.Len())
	perCPU := bpf.PerCPU(m.Type())
	vsize := int(m.ValueSize())
	stride := (vsize + 7) &^ 7
	var vals [][]byte
	m.Iterate(func(k, v []byte) bool {
		vals = vals[:0]
		if perCPU {
			for off := 0; off+vsize <= len(v); off += stride {
				vals = append(vals, v[off:off+vsize])
			}
		} else {
			vals = append(vals, v)
		}
		b.Add(k, vals)
		return true
	})
	return b.Snapshot(), nil
}

func (s *interpSession) Clear(id int) error {
	m := s.user[id]
	var keys [][]byte
	m.Iterate(func(k, _ []byte) bool { keys = append(keys, k); return true })
	for _, k := range keys {
		m.Delete(k)
	}
	return nil
}

func (s *interpSession) Zero(id int) error {
	m := s.user[id]
	type kv struct{ k, v []byte }
	var all []kv
	m.Iterate(func(k, v []byte) bool { all = append(all, kv{k, make([]byte, len(v))}); return true })
	for _, e := range all {
		if err := m.Update(e.k, e.v, interp.UpdateExist); err != nil {
			return err
		}
	}
	return nil
}

func (s *interpSession) Stack(name string, id int64) ([]uint64, error) {
	t := s.stacks[name]
	if t == nil {
		return nil, fmt.Errorf("no stack map %s", name)
	}
	if id < 0 || id >= int64(len(t.byID)) {
		return nil, nil
	}
	return t.byID[id], nil
}

func (s *interpSession) errorCount(i int) uint64 {
	if s.errs == nil {
		return 0
	}
	v, ok, err := s.errs.Lookup(binary.LittleEndian.AppendUint32(nil, uint32(i)))
	if err != nil || !ok {
		return 0
	}
	var n uint64
	stride := (int(s.errs.ValueSize()) + 7) &^ 7
	for off := 0; off+8 <= len(v); off += stride {
		n += binary.LittleEndian.Uint64(v[off:])
	}
	return n
}

func (s *interpSession) MapErrors() []uint64 {
	out := make([]uint64, len(s.user))
	for i := range s.user {
		out[i] = s.errorCount(i)
	}
	return out
}

// Lost counts both the collectors' drops and the program's own (its
// output buffer full).
func (s *interpSession) Lost() uint64 { return s.src.Lost() + s.errorCount(len(s.user)) }

func (s *interpSession) Detach() { s.src.Detach() }
func (s *interpSession) Close()  { s.src.Close() }

// DetachInBackground hands the collectors' attachments to a helper
// process, as JIT mode hands its own (bpf.Session.DetachInBackground);
// a source that attaches nothing detaches in place.
func (s *interpSession) DetachInBackground() error {
	if b, ok := s.src.(backgroundDetacher); ok {
		b.DetachInBackground()
		return nil
	}
	s.src.Detach()
	return nil
}

// backgroundDetacher is a source whose attachments a helper process can
// close (collector.Session.DetachInBackground).
type backgroundDetacher interface{ DetachInBackground() }

// selfCgroup is this process's cgroup v2 id, as bpf_get_current_cgroup_id
// reports it: the inode number of its cgroup's directory (0 if unknown).
func selfCgroup() uint64 {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			var st unix.Stat_t
			if unix.Stat("/sys/fs/cgroup"+path, &st) == nil {
				return st.Ino
			}
		}
	}
	return 0
}
