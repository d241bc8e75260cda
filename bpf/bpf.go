// Package bpf is the kernel side of tracebroker: it loads a program.Program
// with cilium/ebpf, attaches its probes, reads its ring buffer and its maps,
// and detaches everything it attached, on every path out.
package bpf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf/kprobe"
	"github.com/tracebroker/tracebroker/bpf/ring"
	"github.com/tracebroker/tracebroker/bpf/tracefs"
	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/internal/cpus"
	"github.com/tracebroker/tracebroker/internal/detach"
)

// Session is one loaded program: its maps, its kernel programs and, once
// attached, its links.
type Session struct {
	prog  *program.Program
	coll  *ebpf.Collection
	progs []*ebpf.Program // parallel to prog.Probes
	// perfFD are the attachments: a perf event per probe with the program
	// set on it. Closing one detaches its program.
	perfFD []int
	// links are the kprobe.multi and uprobe.multi links (kprobe.go),
	// each one probe's.
	links []link.Link
	// modules checks module-named kprobes (kprobe.Modules).
	modules kprobe.Modules
	rd      *ring.Reader
	maps    []*ebpf.Map // parallel to prog.Schema.Maps
	config  []byte
	pid     int // uprobes fire for this process only, when set
}

func progType(k program.ProbeKind) ebpf.ProgramType {
	switch k {
	case program.Tracepoint:
		return ebpf.TracePoint
	case program.Interval, program.Profile, program.Software:
		return ebpf.PerfEvent
	case program.Uprobe, program.Uretprobe, program.Kprobe, program.Kretprobe:
		return ebpf.Kprobe // uprobes run kprobe programs, with pt_regs
	case program.TpBTF, program.Fentry, program.Fexit:
		return ebpf.Tracing // with AttachTraceRawTp, AttachTraceFEntry/FExit: see Load
	}
	// BEGIN and END run through BPF_PROG_TEST_RUN, which raw tracepoint
	// programs support and which gives them the tracing helpers.
	return ebpf.RawTracepoint
}

// Options tune how a program is run, not what it does.
type Options struct {
	// EventBufferSize is the ring buffer's size in bytes: a power of two,
	// at least a page. 0 keeps the program's (from the compiler, 4 MiB
	// for a script that prints). A program whose buffer is the quiet
	// one-page size (program.QuietEventBuffer) prints nothing, and keeps
	// it whatever this says.
	EventBufferSize int
	// PID, when set, restricts uprobes to that process (-p), as
	// bpftrace does.
	PID int
}

// EventsSize is the size an events ring buffer of size bytes in the
// program is created with, when Options.EventBufferSize is n: n, unless
// the program's is the quiet one-page size (it prints nothing), and at
// least one of this host's pages (the quiet size is a 4 KiB page).
func EventsSize(size uint32, n int) (uint32, error) {
	if n > 0 && size > program.QuietEventBuffer {
		if n < os.Getpagesize() || n&(n-1) != 0 || n > 1<<30 {
			return 0, fmt.Errorf("event buffer size %d is not a power of two from %d bytes to 1 GiB", n, os.Getpagesize())
		}
		size = uint32(n)
	}
	return max(size, uint32(os.Getpagesize())), nil
}

// Load creates the maps and loads every probe's program through the
// verifier. Nothing is attached. On error nothing is left behind.
func Load(p *program.Program, opts Options) (s *Session, err error) {
	spec := &ebpf.CollectionSpec{Maps: map[string]*ebpf.MapSpec{}, Programs: map[string]*ebpf.ProgramSpec{}}
	for _, m := range p.Maps {
		spec.Maps[m.Name] = m.Copy()
	}
	if events := spec.Maps[program.EventsMap]; events != nil {
		if events.MaxEntries, err = EventsSize(events.MaxEntries, opts.EventBufferSize); err != nil {
			return nil, err
		}
	}
	names := make([]string, len(p.Probes))
	for i, pr := range p.Probes {
		names[i] = fmt.Sprintf("p%d", i)
		spec.Programs[names[i]] = &ebpf.ProgramSpec{
			Name:         progName(pr),
			Type:         progType(pr.Kind),
			Instructions: pr.Insns,
			License:      "GPL",
		}
		if len(pr.Funcs) > 0 && (pr.Kind == program.Kprobe || pr.Kind == program.Kretprobe) {
			spec.Programs[names[i]].AttachType = ebpf.AttachTraceKprobeMulti
		}
		if pr.UprobeMulti() {
			spec.Programs[names[i]].AttachType = ebpf.AttachTraceUprobeMulti
		}
		if pr.Kind == program.TpBTF {
			// The verifier types the context from the BTF of
			// btf_trace_NAME, which cilium/ebpf finds by the name.
			spec.Programs[names[i]].AttachType = ebpf.AttachTraceRawTp
			spec.Programs[names[i]].AttachTo = pr.Event
		}
		if at, ok := fentryAttachType(pr.Kind); ok {
			if err := checkFentryTarget(pr); err != nil {
				return nil, err
			}
			spec.Programs[names[i]].AttachType = at
			spec.Programs[names[i]].AttachTo = pr.Event
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{})
	if err != nil {
		return nil, loadError(p, names, err)
	}
	sess := &Session{prog: p, coll: coll, pid: opts.PID}
	s = sess
	defer func() {
		// s is nil by now on an error return: close what was made.
		if err != nil {
			sess.Close()
		}
	}()
	for _, n := range names {
		s.progs = append(s.progs, coll.Programs[n])
	}
	for _, m := range p.Schema.Maps {
		s.maps = append(s.maps, coll.Maps[m.BPF])
	}
	s.rd, err = ring.NewReader(coll.Maps[program.EventsMap], ring.Options{})
	if err != nil {
		return nil, fmt.Errorf("open ring buffer: %w", err)
	}
	return s, nil
}

// progName is what bpftool shows: a hint of the probe, within the kernel's
// 15 characters of [A-Za-z0-9_].
func progName(p *program.Probe) string {
	n := p.Name
	if p.Kind == program.Tracepoint {
		n = p.Event
	}
	b := []byte(n)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) > 15 {
		b = b[:15]
	}
	return string(b)
}

// loopReason is the verifier log's line saying why it gave up, when it
// gave up the way an unbounded or too long loop makes it, else "".
func loopReason(log []string) string {
	for _, l := range log {
		for _, sign := range []string{"infinite loop detected", "BPF program is too large", "is too complex", "back-edge"} {
			if strings.Contains(l, sign) {
				return strings.TrimSpace(l)
			}
		}
	}
	return ""
}

// loadError turns a verifier rejection into a message that names the probe
// and shows the end of the verifier log, where the reason is.
func loadError(p *program.Program, names []string, err error) error {
	for i, n := range names {
		if pr := p.Probes[i]; strings.Contains(err.Error(), "program "+n+":") {
			if ferr := fentryLoadError(pr, err); ferr != nil {
				return ferr
			}
		}
		if pr := p.Probes[i]; pr.Kind == program.TpBTF && strings.Contains(err.Error(), "program "+n+":") {
			// A tp_btf program is a tracing program, which kernels may
			// refuse (as they refuse fentry) even to root.
			if errors.Is(err, unix.EPERM) {
				return fmt.Errorf("%s: the kernel refuses BTF tracepoint (tp_btf) programs (%v)", pr.Name, unix.EPERM)
			}
			if errors.Is(err, ebpf.ErrNotSupported) {
				return fmt.Errorf("%s: this kernel does not support BTF tracepoint (tp_btf) programs for %s", pr.Name, pr.Event)
			}
		}
	}
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		probe, loops := "a probe", false
		for i, n := range names {
			if strings.Contains(err.Error(), "program "+n) {
				probe, loops = p.Probes[i].Name, p.Probes[i].Loops
			}
		}
		if why := loopReason(ve.Log); loops && why != "" {
			// A loop the verifier cannot bound is the script's to fix:
			// say so in its terms, not with a page of verifier log.
			return fmt.Errorf("%s: the kernel's verifier cannot prove that a while loop ends (%s); give it a bound it can see, e.g. while ($i < 100)", probe, why)
		}
		log := ve.Log
		if len(log) > 12 {
			log = log[len(log)-12:]
		}
		return fmt.Errorf("the kernel verifier rejected the program for %s: %v\n%s", probe, ve.Cause, strings.Join(log, "\n"))
	}
	if errors.Is(err, unix.EPERM) {
		return NotPermitted("")
	}
	return fmt.Errorf("loading BPF programs: %w", err)
}

// NotPermitted explains a load the kernel refused with EPERM, the error
// of every loader of the project (what names the one that failed: "",
// or "collector: "). cilium/ebpf's own hint (raise RLIMIT_MEMLOCK) does
// not apply to kernels since 5.11, which account BPF memory to the
// memcg. Root is refused by a security module, not for want of
// capabilities: the kernel gate (gatekeeper/lsmgate) is the likely one.
func NotPermitted(what string) error {
	if os.Geteuid() == 0 {
		return fmt.Errorf("%sloading BPF programs is not permitted: a security module refused it; if the kernel gate enforces (tracebroker gatekeeper status), this executable is not an allowed loader: %w", what, unix.EPERM)
	}
	return fmt.Errorf("%sloading BPF programs is not permitted: tracebroker run needs root (or CAP_BPF and CAP_PERFMON): %w", what, unix.EPERM)
}

// Configure writes the values only known at run time.
func (s *Session) Configure(startNs uint64, cpid int) error {
	s.config = make([]byte, program.ConfigSize)
	binary.LittleEndian.PutUint64(s.config[program.ConfigStartNs:], startNs)
	binary.LittleEndian.PutUint64(s.config[program.ConfigCpid:], uint64(cpid))
	return s.coll.Maps[program.ConfigMap].Put(uint32(0), s.config)
}

// Stop makes every attached probe return at once without doing anything,
// so that what is printed at the end is final, however long the kernel
// takes to detach.
func (s *Session) Stop() error {
	if s.config == nil {
		s.config = make([]byte, program.ConfigSize)
	}
	binary.LittleEndian.PutUint64(s.config[program.ConfigStopped:], 1)
	return s.coll.Maps[program.ConfigMap].Put(uint32(0), s.config)
}

// Run executes every probe of the given kind (Begin or End) once, in the
// calling thread's context, as bpftrace runs BEGIN and END.
func (s *Session) Run(kind program.ProbeKind) error {
	for i, pr := range s.prog.Probes {
		if pr.Kind != kind {
			continue
		}
		if _, err := s.progs[i].Run(&ebpf.RunOptions{}); err != nil {
			return fmt.Errorf("run %s probe: %w", pr.Name, err)
		}
	}
	return nil
}

// Attach attaches every probe that fires on its own (not BEGIN/END). If
// one fails, or ctx ends (the client that asked is gone), the ones
// already attached are detached again.
func (s *Session) Attach(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			s.Detach()
		}
	}()
	for _, i := range program.AttachOrder(s.prog.Probes) {
		pr := s.prog.Probes[i]
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("attach: %w", err)
		}
		var attr unix.PerfEventAttr
		switch pr.Kind {
		case program.Tracepoint:
			f, err := tracefs.ReadFormat(pr.Category, pr.Event)
			if err != nil {
				return fmt.Errorf("attach %s: %w", pr.Name, err)
			}
			attr = unix.PerfEventAttr{Type: unix.PERF_TYPE_TRACEPOINT, Config: f.ID, Sample_type: unix.PERF_SAMPLE_RAW, Sample: 1, Wakeup: 1}
		case program.Interval:
			// A cpu-clock event on CPU 0 that overflows every period,
			// as bpftrace does for interval.
			attr = unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_CPU_CLOCK, Sample: pr.PeriodNs}
		case program.RawTracepoint, program.TpBTF, program.Fentry, program.Fexit:
			name := pr.Event
			if pr.Kind != program.RawTracepoint {
				name = "" // the program names its tracepoint or function (AttachTo)
			}
			fd, err := rawTracepointOpen(name, s.progs[i])
			if err != nil && pr.Kind == program.TpBTF && errors.Is(err, unix.EPERM) {
				return fmt.Errorf("attach %s: the kernel refuses BTF tracepoint (tp_btf) programs (%w)", pr.Name, unix.EPERM)
			}
			if err != nil && pr.Kind != program.RawTracepoint {
				return fmt.Errorf("attach %s: %w", pr.Name, FentryAttachError(err))
			}
			if err != nil {
				return fmt.Errorf("attach %s: %w", pr.Name, err)
			}
			s.perfFD = append(s.perfFD, fd) // closing it detaches, like a perf event
			continue
		case program.Profile, program.Software:
			if err := s.attachProfile(pr, s.progs[i]); err != nil {
				return fmt.Errorf("attach %s: %w", pr.Name, err)
			}
			continue
		case program.Kprobe, program.Kretprobe:
			if err := s.attachKprobe(pr, s.progs[i]); err != nil {
				return fmt.Errorf("attach %s: %w", pr.Name, err)
			}
			continue
		case program.Uprobe, program.Uretprobe:
			file := pr.Path
			if pr.Binary != nil {
				file = pr.Binary.AttachPath() // the file opened once, whatever has its name now
			}
			if pr.UprobeMulti() {
				m := uprobe.Multi{Path: file, Name: pr.Path, Funcs: pr.Funcs, Offsets: pr.Offsets, Cookies: MultiCookies(len(pr.Funcs)), Ret: pr.Kind == program.Uretprobe, PID: s.pid}
				l, err := m.Attach(s.progs[i])
				if err != nil {
					return fmt.Errorf("attach %s: %w", pr.Name, err)
				}
				s.links = append(s.links, l)
				continue
			}
			fd, err := uprobe.OpenRef(file, pr.Offset, pr.RefCtrOffset, pr.Kind == program.Uretprobe, s.pid)
			if err != nil {
				return fmt.Errorf("attach %s: %w", pr.Name, err)
			}
			if err := s.setProgram(fd, s.progs[i]); err != nil {
				return fmt.Errorf("attach %s: %w", pr.Name, err)
			}
			continue
		default:
			continue
		}
		if err := s.attachPerf(&attr, 0, s.progs[i]); err != nil {
			return fmt.Errorf("attach %s: %w", pr.Name, err)
		}
	}
	return nil
}

// attachPerf opens a perf event on one CPU for all processes and sets the
// program on it. The perf event is the only handle: no BPF link, so that
// detaching is a single close (and a single RCU grace period).
func (s *Session) attachPerf(attr *unix.PerfEventAttr, cpu int, prog *ebpf.Program) error {
	attr.Size = uint32(binary.Size(unix.PerfEventAttr{}))
	fd, err := unix.PerfEventOpen(attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("perf_event_open on cpu %d: %w", cpu, err)
	}
	return s.setProgram(fd, prog)
}

// rawTracepointOpen attaches a raw tracepoint program with
// BPF_RAW_TRACEPOINT_OPEN and returns the attachment's fd: like a perf
// event's, closing it is the whole detach. A tp_btf program has its
// tracepoint from its load: name is "" then.
func rawTracepointOpen(name string, prog *ebpf.Program) (int, error) {
	var bname *byte
	if name != "" {
		var err error
		if bname, err = unix.BytePtrFromString(name); err != nil {
			return -1, err
		}
	}
	attr := struct {
		name   uint64
		progFD uint32
		_      uint32
	}{uint64(uintptr(unsafe.Pointer(bname))), uint32(prog.FD()), 0}
	const bpfRawTracepointOpen = 17
	fd, _, errno := unix.Syscall(unix.SYS_BPF, bpfRawTracepointOpen, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(bname)
	if errno != 0 {
		if name == "" {
			name = "(tp_btf)"
		}
		return -1, fmt.Errorf("BPF_RAW_TRACEPOINT_OPEN %s: %w", name, errno)
	}
	unix.CloseOnExec(int(fd))
	return int(fd), nil
}

// attachProfile opens a cpu-clock sampling event on every online CPU,
// as bpftrace's profile probe does: by frequency for profile:hz, else by
// period.
func (s *Session) attachProfile(pr *program.Probe, prog *ebpf.Program) error {
	online, err := cpus.Online()
	if err != nil {
		return err
	}
	for _, cpu := range online {
		attr := program.PerfAttr(pr.Kind, pr.Event, pr.PeriodNs, pr.Freq, pr.Sample)
		if err := s.attachPerf(&attr, cpu, prog); err != nil {
			return err
		}
	}
	return nil
}

// setProgram sets the program on an open perf event and enables it; the
// session owns fd from here, or closes it on failure.
func (s *Session) setProgram(fd int, prog *ebpf.Program) error {
	if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_SET_BPF, prog.FD()); err != nil {
		unix.Close(fd)
		return fmt.Errorf("set BPF program on perf event: %w", err)
	}
	if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
		unix.Close(fd)
		return fmt.Errorf("enable perf event: %w", err)
	}
	s.perfFD = append(s.perfFD, fd)
	return nil
}

// MultiCookies are the attach cookies of a uprobe.multi probe's n
// functions: each its index, which its code reads the function's names
// by (program.NamesMap).
func MultiCookies(n int) []uint64 {
	c := make([]uint64, n)
	for i := range c {
		c[i] = uint64(i)
	}
	return c
}

// Detach removes every attachment and waits for the kernel to finish:
// each close waits for an RCU grace period (tens of milliseconds), so they
// are closed a few at a time (package detach). It is safe to call more
// than once.
func (s *Session) Detach() {
	fds := s.perfFD
	detach.All(len(fds), func(i int) { unix.Close(fds[i]) })
	s.perfFD = nil
	for _, l := range s.links {
		l.Close()
	}
	s.links = nil
}

// Attached is the number of live attachments.
func (s *Session) Attached() int { return len(s.perfFD) + len(s.links) }

// ErrTimeout is returned by Read when the deadline passes without a record.
var ErrTimeout = os.ErrDeadlineExceeded

// Read returns the next ring buffer record, waiting until deadline (the
// zero time waits forever). The returned slice is valid until the next call.
func (s *Session) Read(deadline time.Time, rec *ringbuf.Record) error {
	return s.rd.Read(deadline, rec)
}

// Pending is how many bytes of records wait in the ring buffer.
func (s *Session) Pending() int { return s.rd.Pending() }

// Snapshot reads one user map (by id), reduced over CPUs.
func (s *Session) Snapshot(id int) (*program.MapSnapshot, error) {
	m := s.maps[id]
	pm := s.prog.Schema.Maps[id]
	b := program.NewSnapshotBuilder(pm, 0)
	var err error
	if useBatch && haveBatch() && isHash(m.Type()) {
		err = batchSnapshot(m, b)
	} else {
		err = iterateSnapshot(m, b)
	}
	if err != nil {
		return nil, fmt.Errorf("read map %s: %w", pm.Name, err)
	}
	return b.Snapshot(), nil
}

// iterateSnapshot reads a map element by element into b, where the
// kernel has no batch reads or the map is not a hash.
func iterateSnapshot(m *ebpf.Map, b *program.SnapshotBuilder) error {
	var key []byte
	it := m.Iterate()
	if PerCPU(m.Type()) {
		// The aggregates' values: one or two u64 per CPU.
		var vals [][]byte
		var buf []byte
		if m.ValueSize() == 8 {
			var cpus []uint64
			for it.Next(&key, &cpus) {
				buf, vals = buf[:0], vals[:0]
				for _, v := range cpus {
					buf = binary.LittleEndian.AppendUint64(buf, v)
				}
				for c := range cpus {
					vals = append(vals, buf[8*c:8*c+8])
				}
				b.Add(key, vals)
			}
			return it.Err()
		}
		var cpus [][2]uint64
		for it.Next(&key, &cpus) {
			buf, vals = buf[:0], vals[:0]
			for _, v := range cpus {
				buf = binary.LittleEndian.AppendUint64(buf, v[0])
				buf = binary.LittleEndian.AppendUint64(buf, v[1])
			}
			for c := range cpus {
				vals = append(vals, buf[16*c:16*c+16])
			}
			b.Add(key, vals)
		}
		return it.Err()
	}
	var val []byte
	for it.Next(&key, &val) {
		b.Add(key, [][]byte{val})
	}
	return it.Err()
}

// Clear deletes every element of a user map.
func (s *Session) Clear(id int) error {
	m := s.maps[id]
	keys, err := mapKeys(m)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

// mapKeys lists a map's keys, whatever its values are.
func mapKeys(m *ebpf.Map) ([][]byte, error) {
	var key any // nil asks for the first key
	var keys [][]byte
	for {
		next, err := m.NextKeyBytes(key)
		if err != nil {
			return nil, err
		}
		if next == nil {
			return keys, nil
		}
		keys = append(keys, next)
		key = next
	}
}

// MapErrors returns, per user map, how many updates failed (a full map).
func (s *Session) MapErrors() []uint64 {
	out := make([]uint64, len(s.maps))
	for i := range s.maps {
		out[i] = s.errorCount(i)
	}
	return out
}

// Lost returns how many events the ring buffer had no room for.
func (s *Session) Lost() uint64 { return s.errorCount(len(s.maps)) }

func (s *Session) errorCount(i int) uint64 {
	var vals []uint64
	var n uint64
	if err := s.coll.Maps[program.ErrorsMap].Lookup(uint32(i), &vals); err == nil {
		for _, v := range vals {
			n += v
		}
	}
	return n
}

// Programs returns the loaded programs, parallel to the Program's probes (for -v).
func (s *Session) Programs() []*ebpf.Program { return s.progs }

// Close detaches and releases everything.
func (s *Session) Close() {
	s.Detach()
	if s.rd != nil {
		s.rd.Close()
	}
	if s.coll != nil {
		s.coll.Close()
	}
}
