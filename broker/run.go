// Package broker is the pipeline: a request becomes a program (generator),
// the program runs on a backend (executor), and its events become output.
// It owns the lifetime of a trace: every path out detaches what it attached.
package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/broker/output"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/compile"
	"github.com/tracebroker/tracebroker/broker/script/cpp"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/gatekeeper"
)

// Mode is the execution mode asked for.
type Mode string

const (
	ModeAuto   Mode = "auto"
	ModeJIT    Mode = "jit"
	ModeInterp Mode = "interp"
)

// Request is one trace to run.
type Request struct {
	Name   string // script name for messages: a path, or "stdin" for -e
	Source []byte
	Args   []string // the script's positional parameters: $1, $2, ...
	// Includes are --include headers; HostHeaders lets #include read
	// the host's files (the CLI's, never the daemon's: preprocess.go).
	Includes    []string
	HostHeaders bool
	// HelperErrors is bpftrace's -k (1) or -kk (2): failed helper calls
	// are reported as they happen (helpererr.go).
	HelperErrors int

	Format   string        // "text" (default) or "json"
	Duration time.Duration // 0: until exit(), a signal or the child's end
	Command  string        // -c: run this, trace it, stop when it exits
	PID      int           // -p: stop when this process exits
	Mode     Mode
	Verbose  bool
	Quiet    bool // -q: no "Attaching N probes..." line
	// Unsafe allows builtins that change the traced system (signal()),
	// as bpftrace's --unsafe does.
	Unsafe     bool
	MaxMapKeys int
	// EventBufferSize is the ring buffer's size in bytes (0: the
	// compiler's, 4 MiB for a script that prints; a script that does
	// not keeps its page whatever this says). See EventBufferForPages.
	EventBufferSize int
	// DetachInBackground hands the attachments to a helper process that
	// closes them after this one is gone: the probes are already stopped,
	// and the command returns without waiting for the kernel's grace
	// periods. For the CLI; a long-lived process detaches in place.
	DetachInBackground bool

	// Attest, when set, signs a source-of-program attestation for every
	// generated program before anything is loaded.
	Attest *Attest
	// Gate admits the programs; nil is the loose default (uid 0 only) on
	// the detected platform.
	Gate *Gate
	// Collectors says which static collectors interpreter mode may load:
	// they must verify for role collector unless Unsigned.
	Collectors collector.Trust
	// Object, when set, is a precompiled eBPF object to run instead of
	// a script (OpenObject).
	Object *Object
	// Generator, when set, says that a plugin generated the program:
	// Source is its script (compiled as usual), or Generator.Program its
	// eBPF. Its identity, not this broker's, is the program's source.
	Generator *Generator

	// UprobeScope, when set, limits which files uprobes may open, and
	// names their probes by the files' real paths (uprobe.OpenTarget).
	// The daemon sets it from a token's probe: scopes; its refusal is
	// Run's error as it is.
	UprobeScope *uprobe.Scope
	// MaxUprobes bounds the functions a script's uprobes attach to,
	// one by one and on uprobe.multi links together (0:
	// program.MaxUprobeFuncs). The daemon gives a token holder
	// program.MaxTokenUprobes.
	MaxUprobes int

	// Authorize, when set, sees the program before the gatekeeper does;
	// its error refuses the trace with nothing loaded. The daemon checks
	// a token's probe and read scopes here.
	Authorize func(*program.Program) error
	// HidePID, when not 0, is a process whose events the program
	// ignores, compiled or raw (hideRaw): the daemon's own, for token
	// holders.
	HidePID int
	// Admitted, when set, hears the gatekeeper's admission before
	// anything is loaded; Attached once the probes are attached.
	Admitted func(*Admission)
	Attached func(*Admission)
	// PrintMaps, when set, asks for every map to be printed now, as
	// bpftrace prints them on SIGUSR1; the run goes on.
	PrintMaps <-chan struct{}
	// Stopping, when set, hears that the probes have stopped: what is
	// printed from then on is the trace's end (the events left in the
	// buffer, END's output, the maps), bounded by the buffer and the
	// maps.
	Stopping func()
	// Events and Lost, when set, count the events read from the probes
	// and those dropped for lack of room, as the run goes (counts.go).
	Events, Lost Counter

	Stdout, Stderr io.Writer
	// Console, when Stdout is a file (-o), is standard output: bpftrace
	// writes the blank lines before the maps at exit there.
	Console io.Writer
	Logger  *slog.Logger

	// startNs is when the trace started on the monotonic clock, for
	// elapsed; 0 is now. A replay starts when its recording did, and
	// its cpid is the recorded command's.
	startNs uint64
	cpid    int
}

// ScriptError is a compile error with its source, ready to print.
type ScriptError struct {
	Name string
	Src  []byte
	List syntax.ErrorList
}

func (e *ScriptError) Error() string { return e.List.Format(e.Name, e.Src) }

// ErrorText is an error as tracebroker prints it: a script error with
// its position and caret lines (its own, or one the daemon sent as
// text), anything else as "ERROR: ...".
func ErrorText(err error) string {
	var se *ScriptError
	if errors.As(err, &se) {
		return se.Error()
	}
	var st interface{ ScriptText() (string, bool) }
	if errors.As(err, &st) {
		if text, ok := st.ScriptText(); ok {
			return text
		}
	}
	return "ERROR: " + err.Error() + "\n"
}

// Compile parses and checks a script against the running kernel. The
// program holds its uprobes' files open until its Close.
func Compile(req *Request) (*program.Program, syntax.ErrorList, error) {
	files := newUprobeFiles(req.UprobeScope)
	files.pid = req.PID
	prog, warns, err := compilePreprocessed(req.Name, req.Source, req.Args, req.cppOptions(), compile.Options{
		Tracepoints:  KernelTracepoints{},
		Uprobes:      files,
		USDT:         files,
		MaxMapKeys:   req.MaxMapKeys,
		HaveChild:    req.Command != "",
		Symbols:      hostSymbols{files},
		Unsafe:       req.Unsafe,
		HelperErrors: req.HelperErrors,
		HidePID:      uint32(max(req.HidePID, 0)),
		NoV4:         !bpf.HaveV4ISA(),
		UprobeMulti:  uprobe.HaveMulti(),
		MaxUprobes:   req.MaxUprobes,

		BTFTracepoints: KernelBTFTracepoints{},
		Funcs:          KernelFuncs{},
		Kprobes:        &kernelKprobes{},
		Types:          KernelTypes{},
		Debug:          files,
	})
	files.keep(prog)
	if err != nil && files.refused != nil {
		return nil, nil, files.refused
	}
	return prog, warns, err
}

// compileScript parses and checks a script against the kernel facts in
// opts (the running kernel's, or a recording's). Its errors are
// *ScriptErrors, ready to print.
func compileScript(name string, src []byte, args []string, opts compile.Options) (*program.Program, syntax.ErrorList, error) {
	return compilePreprocessed(name, src, args, cpp.Options{BTF: haveBTF()}, opts)
}

// compilePreprocessed is compileScript after the preprocessor: its
// errors and warnings point at the script as written.
func compilePreprocessed(name string, src []byte, args []string, copts cpp.Options, opts compile.Options) (*program.Program, syntax.ErrorList, error) {
	pre, err := cpp.Process(src, copts)
	if err == nil {
		var f *syntax.File
		if f, err = syntax.ParseArgs(name, pre.Src, args); err == nil {
			prog, warns, cerr := compile.Compile(f, opts)
			if cerr == nil {
				helperSitesAt(prog, pre)
				return prog, pre.Errors(warns), nil
			}
			err = cerr
		}
	}
	var l syntax.ErrorList
	if errors.As(err, &l) {
		return nil, nil, &ScriptError{name, src, pre.Errors(l)}
	}
	return nil, nil, err
}

// Run compiles and runs one trace to its end, writing bpftrace's output.
func Run(ctx context.Context, req Request) (err error) {
	if req.Stdout == nil {
		req.Stdout = os.Stdout
	}
	if req.Stderr == nil {
		req.Stderr = os.Stderr
	}
	if req.Logger == nil {
		req.Logger = slog.New(slog.DiscardHandler)
	}
	switch req.Mode {
	case "", ModeAuto, ModeJIT, ModeInterp:
	default:
		return fmt.Errorf("unknown mode %q (auto, jit or interp)", req.Mode)
	}
	var opts []output.Option
	if req.Console != nil {
		opts = append(opts, output.Console(req.Console))
	}
	out, err := newPrinter(req.Format, req.Stdout, opts...)
	if err != nil {
		return err
	}
	if req.PID < 0 {
		return fmt.Errorf("invalid pid %d", req.PID)
	}
	if req.PID != 0 {
		if err := unix.Kill(req.PID, 0); err != nil && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("process %d: %w", req.PID, err)
		}
	}
	if req.Object != nil {
		return runObject(ctx, &req)
	}

	var prog *program.Program
	var warns syntax.ErrorList
	if req.Generator != nil && req.Generator.Program != nil {
		prog = req.Generator.Program
		judgeRawReads(prog)
		hideRaw(prog, req.HidePID)
	} else if prog, warns, err = Compile(&req); err != nil {
		return err
	}
	defer prog.Close()
	if len(warns) > 0 {
		fmt.Fprint(req.Stderr, warns.Format(req.Name, req.Source))
	}
	if err := bindProbes(prog, req.UprobeScope); err != nil {
		return err
	}
	if err := sizeEvents(prog, req.EventBufferSize); err != nil {
		return err
	}
	if req.Authorize != nil {
		if err := req.Authorize(prog); err != nil {
			return err
		}
	}
	adm, err := judge(ctx, &req, prog, nil)
	if err != nil {
		return err
	}
	mode := adm.Mode
	t0 := time.Now()
	var sess executor
	if mode == gatekeeper.ModeJIT {
		js, err := bpf.Load(prog, bpf.Options{EventBufferSize: req.EventBufferSize, PID: req.PID})
		if err != nil {
			return err
		}
		if req.Verbose {
			for i, p := range js.Programs() {
				info, _ := p.Info()
				id, _ := info.ID()
				fmt.Fprintf(req.Stderr, "Program %s: %d instructions, id %d\n", prog.Probes[i].Name, len(prog.Probes[i].Insns), id)
			}
		}
		sess = js
	} else {
		is, err := openInterp(prog, &req)
		if err != nil {
			return err
		}
		sess = is
	}
	defer sess.Close()
	reportLoaded(&req, len(prog.Probes), len(prog.Maps), t0, mode)
	return execute(ctx, &req, prog, sess, out, adm)
}

// judge is what every program goes through before anything is loaded,
// generated or precompiled: the gatekeeper's admission and the mode (the
// one asked for, if the gatekeeper allows it), the Admitted hook and -v,
// and the attestation. check, when set, refuses what the chosen mode
// cannot run, before anything is attested.
func judge(ctx context.Context, req *Request, prog *program.Program, check func(mode string) error) (*Admission, error) {
	gate := req.Gate
	if gate == nil {
		var err error
		if gate, err = defaultGate(); err != nil {
			return nil, err
		}
	}
	adm, err := admit(gate, req, prog)
	if err != nil {
		return nil, err
	}
	mode, err := chooseMode(req.Mode, adm)
	if err != nil {
		return nil, err
	}
	// The mode the trace runs in is what the record says: --mode interp
	// may choose the interpreter where the gatekeeper allowed either.
	adm.Mode = mode
	adm.KernelGate = gate.Kernel
	if req.Verbose {
		fmt.Fprintln(req.Stderr, adm.describe())
		if gate.Kernel != "" {
			fmt.Fprintf(req.Stderr, "Kernel gate: %s\n", gate.Kernel)
		}
	}
	if check != nil {
		if err := check(mode); err != nil {
			return nil, err
		}
	}
	if err := notStarted(ctx); err != nil {
		return nil, err
	}
	if req.Admitted != nil {
		req.Admitted(adm)
	}
	if req.Attest != nil {
		files, err := attestPrograms(req.Attest, req, prog, adm)
		if err != nil {
			return nil, fmt.Errorf("attestation: %w", err)
		}
		if req.Verbose {
			for _, f := range files {
				fmt.Fprintf(req.Stderr, "Attested: %s\n", f)
			}
		}
	}
	if err := notStarted(ctx); err != nil {
		return nil, err
	}
	return adm, nil
}

// reportLoaded is -v's line once the programs are loaded, in the mode
// they run in.
func reportLoaded(req *Request, programs, maps int, t0 time.Time, mode string) {
	if !req.Verbose {
		return
	}
	how := ""
	if mode != gatekeeper.ModeJIT {
		how = " (interpreter mode)"
	}
	fmt.Fprintf(req.Stderr, "Loaded %d programs and %d maps in %v%s\n", programs, maps, time.Since(t0).Round(time.Microsecond), how)
}

// ErrNotStarted is a trace that ended (its context did) before anything
// ran: nothing was loaded or attached, nothing printed.
var ErrNotStarted = errors.New("the trace ended before its probes were attached")

// notStarted says, before something is loaded or run, that the trace has
// already ended: a daemon shutting down or a session stopped while it
// compiled must not attach probes only to detach them again.
func notStarted(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrNotStarted, context.Cause(ctx))
}

// newPrinter is the printer of a -f format.
func newPrinter(format string, w io.Writer, opts ...output.Option) (output.Printer, error) {
	opts = append(opts, output.Batched())
	switch format {
	case "", "text":
		return output.NewText(w, opts...), nil
	case "json":
		return output.NewJSON(w, opts...), nil
	}
	return nil, fmt.Errorf("Invalid output format %q\nvalid formats: text, json", format)
}

// chooseMode is the mode a trace runs in: the gatekeeper's, which an
// explicit --mode must agree with.
func chooseMode(asked Mode, adm *Admission) (string, error) {
	switch {
	case asked == ModeInterp && adm.Mode == gatekeeper.ModeJIT:
		for i, d := range adm.Decisions {
			if d.Verdict == gatekeeper.JIT {
				return "", fmt.Errorf("--mode interp: the gatekeeper allows %s only JIT-compiled (%s)", adm.Probes[i], d.Reason)
			}
		}
		return gatekeeper.ModeInterpreter, nil
	case asked == ModeJIT && adm.Mode == gatekeeper.ModeInterpreter:
		return "", fmt.Errorf("--mode jit: the gatekeeper chose the interpreter for this trace (%s)", adm.Decisions[0].Reason)
	}
	return adm.Mode, nil
}

// execute runs a loaded trace to its end on sess: the part of Run that
// JIT mode, interpreter mode and replay share.
func execute(ctx context.Context, req *Request, prog *program.Program, sess executor, out output.Printer, adm *Admission) (err error) {
	if err := notStarted(ctx); err != nil {
		return err
	}
	var kid *child
	if req.Command != "" {
		kid, err = startChild(req.Command)
		if err != nil {
			return err
		}
		defer kid.kill()
	}
	cpid := req.cpid
	if kid != nil {
		cpid = kid.pid()
	}
	start := req.startNs
	if start == 0 {
		var ts unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		start = uint64(ts.Nano())
	}
	if err := sess.Configure(start, cpid); err != nil {
		return fmt.Errorf("configure: %w", err)
	}

	r := &runner{ctx: ctx, req: req, prog: prog, sess: sess, out: out, res: newResolver(sess, req.Stderr)}
	defer r.flushCounts()
	if !req.Quiet {
		out.AttachedProbes(prog.AttachPoints())
		out.Flush()
	}
	if err := sess.Run(program.Begin); err != nil {
		return err
	}
	tAttach := time.Now()
	if err := sess.Attach(ctx); err != nil {
		return err
	}
	if req.Verbose {
		var meanwhile string
		if is, ok := sess.(*interpSession); ok && is.attachRead > 0 {
			meanwhile = fmt.Sprintf("; %d events read meanwhile", is.attachRead)
		}
		fmt.Fprintf(req.Stderr, "Attached %d probes%s in %v%s\n", sess.Attached(), multiLinks(prog), time.Since(tAttach).Round(time.Microsecond), meanwhile)
	}
	// Watchers of the traced processes end with the run.
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	if kid != nil {
		if err := kid.start(); err != nil {
			return fmt.Errorf("start child: %w", err)
		}
		if usesUserSymbols(prog) {
			go r.res.watch(watchCtx, cpid)
		}
	}
	// Attached hears it once what the trace sees has begun: the probes
	// and the child (bpftrace's test notification comes here too).
	if req.Attached != nil {
		req.Attached(adm)
	}
	req.Logger.Debug("attached", "probes", len(prog.Probes))

	var deadline time.Time
	if req.Duration > 0 {
		deadline = time.Now().Add(req.Duration)
	}
	var kidDone <-chan struct{}
	if kid != nil {
		kidDone = kid.done
	}
	pidGone := watchPID(ctx, req.PID)
	if req.PID != 0 && usesUserSymbols(prog) {
		go r.res.watch(watchCtx, req.PID)
	}
	if err := r.loop(&ending{ctx, deadline, kidDone, pidGone}); err != nil {
		return err
	}

	// Finish as bpftrace does: no more events from the probes, then END,
	// then every map. Stopping is a flag the probes check, so the maps are
	// final at once; the kernel's detaching, which waits for RCU grace
	// periods, happens last.
	if err := sess.Stop(); err != nil {
		return fmt.Errorf("stop probes: %w", err)
	}
	if req.Stopping != nil {
		req.Stopping()
	}
	r.drain()
	if err := sess.Run(program.End); err != nil {
		return err
	}
	r.exited = false
	r.drain()
	r.reportLost()
	tPrint := time.Now()
	if err := r.printAll(); err != nil {
		return err
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if req.Verbose {
		fmt.Fprintf(req.Stderr, "Read and printed %d maps in %v\n", len(prog.Schema.Maps), time.Since(tPrint).Round(time.Microsecond))
	}
	r.reportMapErrors()
	if is, ok := sess.(*interpSession); ok {
		for _, w := range is.warnings() {
			fmt.Fprintln(req.Stderr, w)
		}
	}
	tDetach := time.Now()
	if req.DetachInBackground {
		err = sess.DetachInBackground()
	} else {
		sess.Detach()
	}
	if req.Verbose {
		fmt.Fprintf(req.Stderr, "Detached in %v\n", time.Since(tDetach).Round(time.Microsecond))
	}
	return err
}

// multiLinks is -v's note of the uprobe.multi links among the
// attachments, each of which attaches a probe to many functions.
func multiLinks(prog *program.Program) string {
	links, funcs := 0, 0
	for _, p := range prog.Probes {
		if p.UprobeMulti() {
			links++
			funcs += len(p.Funcs)
		}
	}
	if links == 0 {
		return ""
	}
	return fmt.Sprintf(" (%s on %s)", plural(links, "uprobe.multi link"), plural(funcs, "function"))
}

type runner struct {
	ctx    context.Context // the run's: a system() command ends with it
	req    *Request
	prog   *program.Program
	sess   executor
	out    output.Printer
	res    *resolver
	exited bool
	cut    bool // a drain ran out of time (said once)
	rec    ringbuf.Record
	lost   uint64 // events reported lost so far
	counts eventCounts
	// A printf event's, kept from one to the next.
	formats []*output.Format
	args    []program.Value
	line    []byte
}

// reportLost prints how many events the ring buffer dropped since the
// last report, as bpftrace reports lost events while it runs.
func (r *runner) reportLost() {
	if n := r.sess.Lost(); n > r.lost {
		r.out.Lost(n - r.lost)
		if r.req != nil && r.req.Lost != nil {
			r.req.Lost.Add(float64(n - r.lost))
		}
		r.lost = n
	}
}

// pollInterval bounds how late a signal, -d or the child's exit is noticed.
const pollInterval = 50 * time.Millisecond

// ending is what ends a trace besides exit(): a signal (ctx), -d, the
// -c command's exit, -p's process's.
type ending struct {
	ctx              context.Context
	deadline         time.Time
	kidDone, pidGone <-chan struct{}
}

// next says until when the next read may wait, or that the trace is
// over.
func (e *ending) next() (wait time.Time, over bool) {
	select {
	case <-e.ctx.Done():
		return wait, true
	case <-e.kidDone:
		return wait, true
	case <-e.pidGone:
		return wait, true
	default:
	}
	wait = time.Now().Add(pollInterval)
	if !e.deadline.IsZero() {
		if time.Now().After(e.deadline) {
			return wait, true
		}
		if e.deadline.Before(wait) {
			wait = e.deadline
		}
	}
	return wait, false
}

func (r *runner) loop(end *ending) error {
	for !r.exited {
		wait, over := end.next()
		if over {
			return nil
		}
		select {
		case <-r.req.PrintMaps:
			if err := r.printMaps(); err != nil {
				return err
			}
		default:
		}
		err := r.sess.Read(wait, &r.rec)
		if errors.Is(err, io.EOF) {
			return nil // a replay's recording ended
		}
		if errors.Is(err, bpf.ErrTimeout) {
			r.reportLost()
			r.out.Flush()
			r.flushCounts()
			continue
		}
		if err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		if err := r.handle(r.rec.RawSample); err != nil {
			return err
		}
		if r.sess.Pending() == 0 {
			// Nothing more to print at once: write what was printed.
			r.out.Flush()
			r.flushCounts()
		}
	}
	return nil
}

// drainBudget bounds each drain at the end of a trace, so that the end
// comes in time whatever is left: a program that does not check the
// stop flag (a plugin's own bytecode) may go on writing events, and a
// large ring buffer may hold more than a second of work.
const drainBudget = 500 * time.Millisecond

// drain handles what is already in the ring buffer, for at most
// drainBudget. Events after exit() are dropped, as bpftrace drops them.
func (r *runner) drain() {
	end := time.Now().Add(drainBudget)
	for {
		err := r.sess.Read(time.Now(), &r.rec)
		switch {
		case err == nil:
			r.handle(r.rec.RawSample)
		case errors.Is(err, bpf.ErrTimeout) && r.sess.Pending() > 0:
			// The interpreter gave the clock a look; records are left.
		default:
			return
		}
		if time.Now().After(end) {
			if !r.cut {
				r.cut = true
				fmt.Fprintf(r.req.Stderr, "WARNING: the trace ended with events still unread: its end waits at most %v for them\n", drainBudget)
			}
			return
		}
	}
}

func (r *runner) handle(rec []byte) error {
	r.counts.events++
	if r.exited || len(rec) < 8 {
		return nil
	}
	le := binary.LittleEndian
	word := func(i int) uint64 {
		if len(rec) < 8*(i+1) {
			return 0
		}
		return le.Uint64(rec[8*i:])
	}
	switch word(0) {
	case program.EventPrintf:
		id := word(1)
		if id >= uint64(len(r.prog.Schema.Formats)) {
			return fmt.Errorf("event with unknown printf id %d", id)
		}
		f := r.prog.Schema.Formats[id]
		if len(rec) < f.Size {
			return fmt.Errorf("short printf event: %d bytes, want %d", len(rec), f.Size)
		}
		args := r.args[:0]
		for _, a := range f.Args {
			args = append(args, program.Decode(a.Type, rec[a.Offset:]))
			r.res.resolve(&args[len(args)-1])
		}
		r.args = args
		r.line = r.printf(id).Append(r.line[:0], args)
		text := string(r.line)
		switch f.Action {
		case "cat":
			r.cat(text)
			return nil
		case "system":
			r.system(text)
			return nil
		case "":
		default:
			return fmt.Errorf("format %d: unknown action %q", id, f.Action)
		}
		if v := f.Value; v != nil && v.Offset+v.Type.Size <= len(rec) {
			r.out.Value(text, program.Decode(v.Type, rec[v.Offset:]))
		} else {
			r.out.Printf(text)
		}
	case program.EventTime:
		if f := r.format(word(1)); f != nil {
			if s, ok := output.Time(f.Fmt, time.Now()); ok {
				r.out.Time(s)
			} else {
				fmt.Fprintln(r.req.Stderr, output.StrftimeFailed)
			}
		}
	case program.EventJoin:
		f := r.format(word(1))
		if f == nil || len(rec) < f.Size {
			return fmt.Errorf("short join event: %d bytes", len(rec))
		}
		n := min(int(word(2)), len(f.Args))
		parts := make([]string, n)
		for i, a := range f.Args[:n] {
			parts[i] = program.Decode(a.Type, rec[a.Offset:]).Str
		}
		r.out.Join(strings.Join(parts, f.Fmt))
	case program.EventZero:
		id := int(word(1))
		if id < len(r.prog.Schema.Maps) {
			if err := r.sess.Zero(id); err != nil {
				return fmt.Errorf("zero %s: %w", r.prog.Schema.Maps[id].Name, err)
			}
		}
	case program.EventHelperError:
		r.helperError(word(1), int32(word(2)))
	case program.EventExit:
		r.exited = true
	case program.EventPrint:
		id := int(word(1))
		if id >= len(r.prog.Schema.Maps) {
			return fmt.Errorf("event with unknown map id %d", id)
		}
		snap, err := r.sess.Snapshot(id)
		if err != nil {
			return err
		}
		snap.Resolve = r.res.resolve
		r.out.Map(snap, int(word(2)), int(word(3)))
	case program.EventClear:
		id := int(word(1))
		if id < len(r.prog.Schema.Maps) {
			if err := r.sess.Clear(id); err != nil {
				return fmt.Errorf("clear %s: %w", r.prog.Schema.Maps[id].Name, err)
			}
		}
	}
	return nil
}

// format returns the Schema format of an event, nil for an unknown id.
// printf is format id (valid) parsed, once per run: a storm prints
// millions of lines with a handful of formats.
func (r *runner) printf(id uint64) *output.Format {
	if r.formats == nil {
		r.formats = make([]*output.Format, len(r.prog.Schema.Formats))
	}
	if r.formats[id] == nil {
		r.formats[id] = output.NewFormat(r.prog.Schema.Formats[id].Fmt)
	}
	return r.formats[id]
}

func (r *runner) format(id uint64) *program.Format {
	if id >= uint64(len(r.prog.Schema.Formats)) {
		return nil
	}
	return r.prog.Schema.Formats[id]
}

// printMaps prints every map, as print(@m) prints it, in the order of
// their names: bpftrace's answer to SIGUSR1.
func (r *runner) printMaps() error {
	err := r.eachMap()
	r.out.Flush()
	return err
}

// printAll prints what bpftrace prints at exit: Exit's blank lines, then
// every map by name, each read as it is printed so that only one map's
// snapshot is held at a time.
func (r *runner) printAll() error {
	r.out.Exit(nil)
	return r.eachMap()
}

// eachMap prints every map as print(@m) does, in the order of their
// names.
func (r *runner) eachMap() error {
	for _, id := range output.ByName(r.prog.Schema.Maps) {
		s, err := r.sess.Snapshot(id)
		if err != nil {
			return err
		}
		s.Resolve = r.res.resolve
		r.out.Map(s, 0, 1)
	}
	return nil
}

func (r *runner) reportMapErrors() {
	for id, n := range r.sess.MapErrors() {
		if n > 0 {
			fmt.Fprintf(r.req.Stderr, "WARNING: map %s is full: %d updates were dropped (raise --max-map-keys, now %d)\n",
				r.prog.Schema.Maps[id].Name, n, r.req.maxKeys())
		}
	}
}

// MapKeysEnv is bpftrace's BPFTRACE_MAP_KEYS_MAX, the maps' size when
// no flag sets it: ok is false when the variable is not set, and an
// error says it is not a positive integer, as bpftrace refuses it.
func MapKeysEnv() (n int, ok bool, err error) {
	v, set := os.LookupEnv("BPFTRACE_MAP_KEYS_MAX")
	if !set {
		return 0, false, nil
	}
	x, err := strconv.ParseUint(v, 10, 32)
	if err != nil || x == 0 {
		return 0, false, fmt.Errorf("Env var 'BPFTRACE_MAP_KEYS_MAX' did not contain a valid uint64_t, or was zero-valued.")
	}
	return int(x), true, nil
}

func (req *Request) maxKeys() int {
	if req.MaxMapKeys > 0 {
		return req.MaxMapKeys
	}
	return 4096
}

// watchPID closes the returned channel when pid exits (never if pid is 0).
func watchPID(ctx context.Context, pid int) <-chan struct{} {
	if pid == 0 {
		return nil
	}
	ch := make(chan struct{})
	go func() {
		t := time.NewTicker(pollInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
					close(ch)
					return
				}
			}
		}
	}()
	return ch
}

// sizeEvents gives prog's events ring buffer the size it will be created
// with (bpf.EventsSize), so that what judges and attests the program
// sees the buffer the kernel gets.
func sizeEvents(prog *program.Program, n int) error {
	for i, m := range prog.Maps {
		if m.Name != program.EventsMap {
			continue
		}
		size, err := bpf.EventsSize(m.MaxEntries, n)
		if err != nil {
			return err
		}
		if size != m.MaxEntries {
			m = m.Copy()
			m.MaxEntries = size
			prog.Maps[i] = m
		}
	}
	return nil
}

// EventBufferForPages is the ring buffer that holds what bpftrace's
// per-CPU perf buffers of pages pages each (BPFTRACE_PERF_RB_PAGES, 64 by
// default) hold together: pages pages per possible CPU, rounded up to the
// power of two the kernel wants.
func EventBufferForPages(pages int) (int, error) {
	cpus, err := possibleCPUs()
	if err != nil {
		return 0, err
	}
	const most = 1 << 30
	if pages <= 0 || pages > most/os.Getpagesize()/cpus {
		return 0, fmt.Errorf("%d pages per CPU: not from 1 to %d", pages, most/os.Getpagesize()/cpus)
	}
	n := os.Getpagesize()
	for n < pages*os.Getpagesize()*cpus {
		n <<= 1
	}
	return n, nil
}
