package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/broker/program"
)

// collectorProbes are the attach points of prog's probes that fire on
// their own, as the collectors take them, and for each the program's
// probe it feeds: one each, but a uprobe.multi probe's functions, a
// collector probe each, attached with one link, which feed the probe
// with their cookies.
func collectorProbes(prog *program.Program, pid int) (probes []collector.Probe, routes [][]route) {
	for i, p := range prog.Probes {
		if p.Kind == program.Begin || p.Kind == program.End {
			continue
		}
		cp := collector.Probe{
			Kind: p.Kind, Category: p.Category, Event: p.Event, Path: p.Path, Offset: p.Offset,
			PeriodNs: p.PeriodNs, Freq: p.Freq, Sample: p.Sample, CtxLen: p.CtxLen, PID: pid, KStack: p.KStack, UStack: p.UStack, Funcs: p.Funcs,
			Reads: p.KReads, Task: p.Task, RefCtrOffset: p.RefCtrOffset, Block: p.Block,
		}
		switch p.Kind {
		case program.RawTracepoint, program.TpBTF:
			// The event, as JIT mode attaches it: the name is what
			// judges it (Probe.CheckName ties the two).
			cp.Name = p.Event
		case program.Uprobe, program.Uretprobe:
			if p.Binary != nil {
				cp.AttachPath = p.Binary.AttachPath()
			}
			cp.Func = p.Func()
		}
		for _, s := range p.CtxStrings {
			cp.Strings = append(cp.Strings, collector.StringSpec{CtxOff: s.Off, User: s.User, Array: s.Array})
		}
		if p.UprobeMulti() {
			cp.Multi = i + 1
			for k, f := range p.Funcs {
				fp := cp
				fp.Offset, fp.Func = p.Offsets[k], f
				probes = append(probes, fp)
				routes = append(routes, []route{{i, uint64(k)}})
			}
			continue
		}
		probes = append(probes, cp)
		routes = append(routes, []route{{probe: i}})
	}
	return probes, routes
}

// openInterp is interpreter mode's executor: the static collectors,
// verified, loaded and configured for prog's probes, feeding the
// interpreter.
func openInterp(prog *program.Program, req *Request) (*interpSession, error) {
	cpus, err := possibleCPUs()
	if err != nil {
		return nil, err
	}
	// The interpreter checks and loads the programs first: what it
	// refuses, it refuses with nothing in the kernel.
	s, err := newInterpSession(prog, noEvents{}, cpus)
	if err != nil {
		return nil, err
	}
	if err := s.collect(req); err != nil {
		return nil, err
	}
	return s, nil
}

// Bounds of the collectors' ring buffer that collectorBuffer sizes.
const (
	collectorBytesPerKey = 64
	maxCollectorBuffer   = 256 << 20
)

// collectorBuffer is the collectors' ring buffer for prog when the
// request does not size it: collector.DefaultBufferSize, and for maps of
// many keys collectorBytesPerKey per key of the largest. The
// interpreter's cost per event grows with its maps (a lookup in a
// million keys is a cache miss, in a thousand it is not): at a million
// keys the reader fell behind a process that did nothing but system
// calls, by up to half of its events, and a 4 MiB buffer lost them. 32
// MiB still lost 3% in one run of five, 64 MiB none in five. The
// buffer is mapped once (bpf/ring), so it costs its size in resident
// memory: 64 bytes per key, against the maps' own 100 or so. A script
// that asks for a million keys expects events to fill them; the kernel
// preallocates JIT mode's maps of that size too.
func collectorBuffer(prog *program.Program) int {
	most := 0
	for _, m := range prog.Maps {
		if m.Name != program.EventsMap {
			most = max(most, int(m.MaxEntries))
		}
	}
	n := collector.DefaultBufferSize
	for n < most*collectorBytesPerKey && n < maxCollectorBuffer {
		n <<= 1
	}
	return n
}

// collect makes the static collectors, loaded for the session's probes
// as req trusts them and ignoring the broker's own events, its source.
func (s *interpSession) collect(req *Request) error {
	probes, routes := collectorProbes(s.prog, req.PID)
	if len(probes) == 0 {
		// BEGIN and END only: nothing to collect, nothing in the kernel.
		return nil
	}
	for i := range probes {
		probes[i].Omit = unusedFields(s.prog.Probes[routes[i][0].probe])
	}
	size := req.EventBufferSize
	if size == 0 {
		size = collectorBuffer(s.prog)
	}
	cs, err := collector.Open(collector.Options{Probes: probes, BufferSize: size, Trust: req.Collectors, IgnoreTGID: selfTGID()})
	if err != nil {
		return err
	}
	s.src, s.routes = &collectorSource{s: cs, n: len(probes)}, routes
	return nil
}

// fieldHelpers are the helpers that read a record's header fields in
// the interpreter (interp's helpers take them from the event's Env).
var fieldHelpers = map[asm.BuiltinFunc]collector.Fields{
	asm.FnKtimeGetNs:         collector.OmitKtime,
	asm.FnGetCurrentUidGid:   collector.OmitIDs,
	asm.FnGetCurrentCgroupId: collector.OmitCgroup,
	asm.FnGetCurrentComm:     collector.OmitComm,
}

// unusedFields are the header fields p's program never reads: the
// collector need not call their helpers at each event. Its process and
// thread ids and its CPU are always there (per-CPU maps, the strings
// saved for other probes, stacks' symbols need them, and they cost next
// to nothing).
func unusedFields(p *program.Probe) collector.Fields {
	var omit collector.Fields
	for _, f := range fieldHelpers {
		omit |= f
	}
	for _, ins := range p.Insns {
		if ins.IsBuiltinCall() {
			omit &^= fieldHelpers[asm.BuiltinFunc(ins.Constant)]
		}
	}
	return omit
}

// collectorSource reads the collectors' ring buffer.
type collectorSource struct {
	s   *collector.Session
	n   int
	rec ringbuf.Record
	on  bool
}

func (c *collectorSource) Attach(ctx context.Context) error {
	if err := c.s.Attach(ctx); err != nil {
		return err
	}
	c.on = true
	return nil
}

// AttachReading attaches the probes while it hands every record they
// deliver meanwhile to handle, in order, on the caller's goroutine.
// Attaching hundreds of probes takes seconds (more while another trace
// detaches: the kernel's event mutex), and the probes attached first
// fire meanwhile; a ring buffer nobody read would fill and drop events
// (9,877 in one 720-probe attach, 685,058 in one behind a detach).
// Read this way, the collectors drop only what a reader that keeps up
// has no room for. It returns as soon as the attach is over, whatever
// is still in the buffer: a storm never empties it.
func (c *collectorSource) AttachReading(ctx context.Context, handle func([]byte)) error {
	var over atomic.Bool
	done := make(chan error, 1)
	go func() {
		err := c.s.Attach(ctx)
		over.Store(true)
		// A read waiting for records returns (Next: ErrWoken).
		c.s.Wake()
		done <- err
	}()
	var readErr error
	for !over.Load() {
		if readErr = c.s.Read(time.Time{}, &c.rec); readErr != nil {
			break
		}
		handle(c.rec.RawSample)
	}
	err := <-done
	if err == nil && readErr != nil && !errors.Is(readErr, collector.ErrWoken) {
		// Attached, but the buffer cannot be read: the run fails, and
		// its Close detaches.
		err = fmt.Errorf("read events: %w", readErr)
	}
	if err != nil {
		return err
	}
	c.on = true
	return nil
}

// Attached is the number of attachments, as JIT mode counts them: one
// per probe, but one per CPU for a profile, one for every function of
// a uprobe.multi link.
func (c *collectorSource) Attached() int {
	if c.on {
		return c.s.Attached()
	}
	return 0
}

// Next needs no batching of its own: the collectors wake the reader
// only once a batch of records waits (collector.WakeFraction of the
// buffer), and it polls meanwhile.
func (c *collectorSource) Next(deadline time.Time) ([]byte, error) {
	err := c.s.Read(deadline, &c.rec)
	if errors.Is(err, collector.ErrWoken) {
		// AttachReading's wake, where it stopped reading before the
		// buffer was empty: it comes once the buffer is, so it says
		// what a deadline would, a little early.
		return nil, os.ErrDeadlineExceeded
	}
	if err != nil {
		return nil, err
	}
	return c.rec.RawSample, nil
}

func (c *collectorSource) Pending() int { return c.s.Pending() }
func (c *collectorSource) Stop() error  { return c.s.Stop() }
func (c *collectorSource) Lost() uint64 { return c.s.Lost() }
func (c *collectorSource) Detach()      { c.s.Detach(); c.on = false }
func (c *collectorSource) Close()       { c.s.Close() }

// DetachInBackground: see interpSession.DetachInBackground.
func (c *collectorSource) DetachInBackground() { c.s.DetachInBackground(); c.on = false }

// selfTGID is the broker's process, whose events the collectors ignore:
// in interpreter mode each batch of events the reader takes is a
// wake-up of the broker, and its threads' system calls and context
// switches would otherwise be events of the trace that reads them (63%
// of sched_switch's, once). JIT mode has no reader per event; bpftrace
// filters nothing.
func selfTGID() uint32 {
	if traceSelf {
		return 0
	}
	return uint32(os.Getpid())
}

// traceSelf, set by benchmarks that make the traced calls themselves,
// collects the broker's own events too.
var traceSelf bool

// possibleCPUs is how many CPUs per-CPU maps keep: the kernel's possible
// CPUs, which bound the CPU numbers of events.
func possibleCPUs() (int, error) { return ebpf.PossibleCPU() }

// noEvents is the source of a trace without probes that fire: it waits.
type noEvents struct{}

func (noEvents) Attach(context.Context) error { return nil }
func (noEvents) Attached() int                { return 0 }
func (noEvents) Next(deadline time.Time) ([]byte, error) {
	if deadline.IsZero() {
		select {}
	}
	time.Sleep(time.Until(deadline))
	return nil, os.ErrDeadlineExceeded
}
func (noEvents) Pending() int { return 0 }
func (noEvents) Stop() error  { return nil }
func (noEvents) Lost() uint64 { return 0 }
func (noEvents) Detach()      {}
func (noEvents) Close()       {}
