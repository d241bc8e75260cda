package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/recording"
	"github.com/tracebroker/tracebroker/broker/script/compile"
	"github.com/tracebroker/tracebroker/internal/version"
)

// plural says n things, singular or plural as bpftrace's "Attaching 1
// probe...".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// ReplayRequest is a script run over a recording, in the interpreter,
// with no kernel support and no privilege.
type ReplayRequest struct {
	Recording  string // the file tracebroker record wrote
	Name       string // the script's name in messages
	Source     []byte
	Args       []string // the script's positional parameters
	Format     string
	Quiet      bool
	MaxMapKeys int
	Stdout     io.Writer
	Stderr     io.Writer
}

// Replay runs a script over a recording and prints what a live trace in
// interpreter mode would have printed for those events. The script's
// probes must be among the recorded ones; its str() of a field or
// argument the recording did not capture reads nothing, which it says.
func Replay(ctx context.Context, rr ReplayRequest) error {
	if rr.Stdout == nil {
		rr.Stdout = os.Stdout
	}
	if rr.Stderr == nil {
		rr.Stderr = os.Stderr
	}
	rd, closer, err := recording.Open(rr.Recording)
	if err != nil {
		return err
	}
	defer closer.Close()
	h := rd.Header()
	out, err := newPrinter(rr.Format, rr.Stdout)
	if err != nil {
		return err
	}
	prog, warns, err := compileScript(rr.Name, rr.Source, rr.Args, recordedKernel(h, rr.MaxMapKeys))
	if err != nil {
		return err
	}
	if len(warns) > 0 {
		fmt.Fprint(rr.Stderr, warns.Format(rr.Name, rr.Source))
	}
	routes := make([][]route, len(h.Probes))
	recorded := map[string][]int{} // by name, in the recording's order
	for j, rp := range h.Probes {
		recorded[rp.Name] = append(recorded[rp.Name], j)
	}
	taken := map[string]int{} // of recorded[name], by the probes so far
	for i, p := range prog.Probes {
		if p.Kind == program.Begin || p.Kind == program.End {
			continue
		}
		// Each probe runs over the records of one recorded probe of its
		// name: two probes on one place were attached twice and each
		// recorded every event, so the script's probes of a name take
		// the recording's in order (the same script: each its own, with
		// the strings it had copied), and past the last, the last
		// again. A uprobe.multi probe's functions are recorded as
		// probes of their own, each of which runs the probe with its
		// cookie.
		found := true
		for k, name := range replayNames(p) {
			js := recorded[name]
			if len(js) == 0 {
				found = false
				continue
			}
			j := js[min(taken[name], len(js)-1)]
			taken[name]++
			routes[j] = append(routes[j], route{i, uint64(k)})
		}
		if !found {
			// A recording of uprobe.multi probes has thousands: the
			// first few say what it is.
			const shown = 32
			var names []string
			for _, rp := range h.Probes[:min(len(h.Probes), shown)] {
				names = append(names, rp.Name)
			}
			if len(h.Probes) > shown {
				names = append(names, fmt.Sprintf("and %d more", len(h.Probes)-shown))
			}
			return fmt.Errorf("probe %s is not in the recording %s (it has %s)", p.Name, rr.Recording, strings.Join(names, ", "))
		}
	}
	src := &recordingSource{rd: rd, probes: len(h.Probes)}
	sess, err := newInterpSession(prog, src, h.CPUs)
	if err != nil {
		return err
	}
	sess.routes = routes
	req := &Request{Name: rr.Name, Source: rr.Source, Format: rr.Format, Quiet: rr.Quiet, MaxMapKeys: rr.MaxMapKeys,
		Stdout: rr.Stdout, Stderr: rr.Stderr, Logger: slog.New(slog.DiscardHandler), startNs: h.StartNs, cpid: h.Cpid}
	if err := execute(ctx, req, prog, sess, out, nil); err != nil {
		return err
	}
	if cut := rd.CutShort(); cut != "" {
		fmt.Fprintf(rr.Stderr, "WARNING: the recording %s was %s; %s replayed\n", rr.Recording, cut, plural(rd.Events(), "event"))
	}
	return nil
}

// replayNames are the names of p's recorded probes: each function's of
// a uprobe.multi probe, in the order of its cookies; else p's own.
func replayNames(p *program.Probe) []string {
	if p.UprobeMulti() {
		return p.AttachNames()
	}
	return []string{p.Name}
}

// recordedKernel answers the compiler from a recording's header.
func recordedKernel(h *recording.Header, maxKeys int) compile.Options {
	return compile.Options{Tracepoints: h.Tracepoints(), Uprobes: h.Uprobes(), BTFTracepoints: h.BTFTracepoints(), Kprobes: h.Kprobes(), Funcs: h.Funcs(), Types: replayTypes(h), Debug: noRecordedDebug{}, MaxMapKeys: maxKeys, HaveChild: h.Cpid != 0, UprobeMulti: h.UprobeMulti()}
}

// recordingSource feeds a recording's records to the interpreter.
type recordingSource struct {
	rd     *recording.Reader
	probes int
	done   bool
}

func (r *recordingSource) Attach(context.Context) error { return nil }
func (r *recordingSource) Attached() int                { return r.probes }

func (r *recordingSource) Next(time.Time) ([]byte, error) {
	b, err := r.rd.Next()
	if err == io.EOF {
		r.done = true
	}
	return b, err
}

// passRest reads past the records no probe will run (the script called
// exit()), to the trailer.
func (r *recordingSource) passRest() {
	for !r.done {
		if _, err := r.Next(time.Time{}); err != nil {
			r.done = true
		}
	}
}

// Pending keeps the run loop from flushing the output after every
// event: a recording always has its next record at hand.
func (r *recordingSource) Pending() int {
	if r.done {
		return 0
	}
	return 1
}

func (r *recordingSource) Stop() error  { return nil }
func (r *recordingSource) Lost() uint64 { return r.rd.Lost() }
func (r *recordingSource) Detach()      {}
func (r *recordingSource) Close()       {}

// RecordRequest is a recording to make: the events of Request's script's
// probes, copied by the static collectors, written to Output.
type RecordRequest struct {
	Request
	Output string
	// MaxSize bounds the file (0: 1 GiB); recording stops when it is
	// reached, and says so.
	MaxSize int64
}

// Record captures the events of a script's probes into a file, for
// Replay. The script's program does not run; the collectors, static and
// verified for role collector, are what runs in the kernel.
func Record(ctx context.Context, rr RecordRequest) error {
	req := &rr.Request
	if req.Stderr == nil {
		req.Stderr = os.Stderr
	}
	if rr.MaxSize == 0 {
		rr.MaxSize = 1 << 30
	}
	prog, warns, err := Compile(req)
	if err != nil {
		return err
	}
	defer prog.Close()
	if len(warns) > 0 {
		fmt.Fprint(req.Stderr, warns.Format(req.Name, req.Source))
	}
	// What interpreter mode refuses, a replay (which is interpreter
	// mode) would refuse: say so before anything is attached or written.
	if err := interpCapable(prog); err != nil {
		return fmt.Errorf("cannot record for replay: %w", err)
	}
	// A replay would read its files, or run its commands, on the
	// replaying host and at replay time: not what was traced.
	for _, f := range prog.Schema.Formats {
		if f.Action != "" {
			return fmt.Errorf("cannot record for replay: %s() acts on the host at the event, which a replay cannot do again", f.Action)
		}
	}
	if usesKind(prog, program.CgroupPath) {
		return errors.New("cannot record for replay: cgroup_path() is resolved against the host's cgroups when it is printed, which a replay cannot do again")
	}
	probes, _ := collectorProbes(prog, req.PID)
	if len(probes) == 0 {
		return errors.New("nothing to record: the script has only BEGIN and END probes")
	}

	cs, err := collector.Open(collector.Options{Probes: probes, BufferSize: req.EventBufferSize, Trust: req.Collectors, IgnoreTGID: selfTGID()})
	if err != nil {
		return err
	}
	defer cs.Close()
	// The command starts stopped: its pid goes in the header, and it
	// runs once the collectors are attached.
	var kid *child
	if req.Command != "" {
		if kid, err = startChild(req.Command); err != nil {
			return err
		}
		defer kid.kill()
	}
	h, err := recordingHeader(prog, req)
	if err != nil {
		return err
	}
	if kid != nil {
		h.Cpid = kid.pid()
	}
	w, err := recording.Create(rr.Output, h, rr.MaxSize)
	if err != nil {
		return err
	}
	w.Lost = cs.Lost
	started := false
	defer func() {
		if !started {
			w.Abort()
		}
	}()
	src := &collectorSource{s: cs, n: len(probes)}
	full := false
	// write keeps a record; the size limit ends the recording, any other
	// failure to write is an error.
	write := func(b []byte) error {
		err := w.Write(b)
		if errors.Is(err, recording.ErrFull) {
			full, err = true, nil
		}
		return err
	}
	// The events of the probes attached first are recorded while the
	// rest attach, flushed as the run's are; a failed attach leaves no
	// file.
	var writeErr error
	err = src.AttachReading(ctx, func(b []byte) {
		if writeErr != nil || full {
			return
		}
		writeErr = write(b)
		if by := w.FlushBy(); writeErr == nil && !by.IsZero() && !time.Now().Before(by) {
			writeErr = w.Flush()
		}
	})
	if err != nil {
		return err
	}
	if writeErr != nil {
		return writeErr
	}
	// From here the file is the recording: an error, a signal or a kill
	// leaves what was flushed, for replay to read.
	started = true
	if !req.Quiet {
		fmt.Fprintf(req.Stderr, "Recording %s to %s...\n", plural(len(probes), "probe"), rr.Output)
	}
	var kidDone <-chan struct{}
	if kid != nil {
		if err := kid.start(); err != nil {
			return fmt.Errorf("start child: %w", err)
		}
		kidDone = kid.done
	}
	pidGone := watchPID(ctx, req.PID)
	var deadline time.Time
	if req.Duration > 0 {
		deadline = time.Now().Add(req.Duration)
	}
	end := &ending{ctx, deadline, kidDone, pidGone}
	for !full {
		wait, over := end.next()
		if over {
			break
		}
		if by := w.FlushBy(); !by.IsZero() && by.Before(wait) {
			wait = by
		}
		b, err := src.Next(wait)
		if by := w.FlushBy(); !by.IsZero() && !time.Now().Before(by) {
			if err := w.Flush(); err != nil {
				return err
			}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		if err := write(b); err != nil {
			return err
		}
	}
	cs.Stop()
	for !full {
		b, err := src.Next(time.Now())
		if err != nil {
			break
		}
		if err := write(b); err != nil {
			return err
		}
	}
	lost := cs.Lost()
	if req.DetachInBackground {
		cs.DetachInBackground()
	} else {
		cs.Detach()
	}
	if err := w.Close(lost); err != nil {
		return err
	}
	if full {
		fmt.Fprintf(req.Stderr, "WARNING: the recording reached its size limit (%d bytes); later events were not recorded\n", rr.MaxSize)
	}
	fmt.Fprintf(req.Stderr, "Recorded %s (%s) to %s\n", plural(w.Events(), "event"), plural(int(w.Bytes()), "byte"), rr.Output)
	if lost > 0 {
		fmt.Fprintf(req.Stderr, "Lost %d events\n", lost)
	}
	return nil
}

// recordingHeader describes prog's probes for a replay: what the
// collectors copy, and the kernel facts a script needs to compile.
func recordingHeader(prog *program.Program, req *Request) (*recording.Header, error) {
	h := &recording.Header{Version: recording.Version, Created: time.Now().UTC(), Broker: version.String(), Script: recording.Script{Name: req.Name, Source: string(req.Source), Args: req.Args}}
	h.Host, _ = os.Hostname()
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		h.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	cpus, err := possibleCPUs()
	if err != nil {
		return nil, err
	}
	h.CPUs = cpus
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	h.StartNs = uint64(ts.Nano())
	for _, p := range prog.Probes {
		if p.Kind == program.Begin || p.Kind == program.End {
			continue
		}
		rp := recording.Probe{Name: p.Name, Kind: p.Kind.String(), Category: p.Category, Event: p.Event, Path: p.Path, Offset: p.Offset, Funcs: p.Funcs, CtxLen: p.CtxLen, Strings: p.CtxStrings, KStack: p.KStack, UStack: p.UStack, KReads: p.KReads, Task: p.Task}
		if p.UprobeMulti() {
			// Its functions, as the collectors attach them
			// (collectorProbes): a recorded probe each.
			rp.Funcs, rp.Multi = nil, p.Name
			for k, name := range p.AttachNames() {
				fp := rp
				fp.Name, fp.Func, fp.Offset = name, p.Funcs[k], p.Offsets[k]
				h.Probes = append(h.Probes, fp)
			}
			continue
		}
		switch p.Kind {
		case program.Tracepoint:
			if rp.Fields, err = (KernelTracepoints{}).Fields(p.Category, p.Event); err != nil {
				return nil, err
			}
		case program.TpBTF:
			if rp.Fields, err = (KernelBTFTracepoints{}).Args(p.Event); err != nil {
				return nil, err
			}
		case program.Uprobe, program.Uretprobe:
			rp.Func = p.Func()
		case program.Fentry, program.Fexit:
			if rp.Fields, rp.Ret, err = (KernelFuncs{}).Proto(p.Category, p.Event); err != nil {
				return nil, err
			}
		}
		h.Probes = append(h.Probes, rp)
	}
	if h.Types, err = recording.EncodeTypes(prog.Types); err != nil {
		return nil, err
	}
	return h, nil
}
