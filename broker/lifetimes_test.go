package broker

import (
	"bytes"
	"context"
	"log/slog"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/recording"
	"github.com/tracebroker/tracebroker/broker/script/compile"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// newStormSource is a collector that always has another getcwd record:
// events arrive faster than the interpreter runs them. After Stop it has
// backlog more.
func newStormSource(backlog int) *loopSource {
	r := collector.Record{Probe: 0, TGID: 42, PID: 42, Context: make([]byte, 32)}
	copy(r.Comm[:], "storm")
	return &loopSource{recs: [][]byte{collector.Encode(nil, &r)}, backlog: backlog}
}

// getcwdKernel is a kernel that has sys_enter_getcwd, for the compiler.
var getcwdKernel = &recording.Header{Version: recording.Version, CPUs: 1, Probes: []recording.Probe{
	{Name: "tracepoint:syscalls:sys_enter_getcwd", Kind: "tracepoint", Category: "syscalls", Event: "sys_enter_getcwd", CtxLen: 32,
		Fields: []compile.Field{{Name: "__syscall_nr", Type: "int", Offset: 8, Size: 4, Signed: true, Kind: compile.FieldInt}}},
}}

// runStorm runs script in the interpreter over src until one of req's
// endings, and returns its output and how long it ran. Every probe of
// the script that is not BEGIN or END runs over each record.
func runStorm(t *testing.T, ctx context.Context, script string, req Request, src *loopSource) (string, time.Duration) {
	t.Helper()
	prog, _, err := compileScript("stdin", []byte(script), nil, recordedKernel(getcwdKernel, 0))
	if err != nil {
		t.Fatal(err)
	}
	sess, err := newInterpSession(prog, src, 1)
	if err != nil {
		t.Fatal(err)
	}
	sess.routes = [][]route{nil}
	for i, p := range prog.Probes {
		if p.Kind != program.Begin && p.Kind != program.End {
			sess.routes[0] = append(sess.routes[0], route{probe: i})
		}
	}
	var stdout, stderr bytes.Buffer
	req.Name, req.Source, req.Stdout, req.Stderr, req.Logger = "stdin", []byte(script), &stdout, &stderr, slog.New(slog.DiscardHandler)
	out, _ := newPrinter("text", &stdout)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- execute(ctx, &req, prog, sess, out, nil) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("execute: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the trace did not end in 20s (%d records run)", src.i)
	}
	if stderr.Len() > 0 {
		t.Errorf("stderr: %q", stderr.String())
	}
	return stdout.String(), time.Since(start)
}

// TestInterpEndsUnderStorm: a script that only updates maps, over
// events that never stop coming, still ends at -d and at a signal: the
// interpreter returns to the run loop at its deadline. (It ran until
// the events stopped.)
func TestInterpEndsUnderStorm(t *testing.T) {
	const script = `tracepoint:syscalls:sys_enter_getcwd { @[comm] = count(); }`
	const after = 200 * time.Millisecond
	for _, tt := range []struct {
		name     string
		duration time.Duration
		cancel   bool
	}{
		{"duration", after, false},
		{"signal", 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				time.AfterFunc(after, cancel)
			}
			src := newStormSource(1000)
			out, took := runStorm(t, ctx, script, Request{Duration: tt.duration}, src)
			t.Logf("ended %v after its end was due, %d records run", took-after, src.i)
			if took-after > 2*time.Second {
				t.Errorf("ended %v after its end was due", took-after)
			}
			if !strings.HasPrefix(out, "Attaching 1 probe...\n\n\n@[storm]: ") {
				t.Errorf("output %q", out)
			}
		})
	}
}

// TestInterpNothingAfterExit: once a probe's run has called exit(), no
// probe runs again: not the records queued behind it, nor another probe
// of the same record. END sees the maps as they were at exit().
func TestInterpNothingAfterExit(t *testing.T) {
	for _, tt := range []struct {
		name, script, want string
	}{
		{"records queued behind exit",
			`tracepoint:syscalls:sys_enter_getcwd { @n = @n + 1; if (@n == 1000) { exit(); } } END { printf("end %d\n", @n); }`,
			"Attaching 2 probes...\nend 1000\n\n\n@n: 1000\n"},
		{"a second probe of the same record",
			`tracepoint:syscalls:sys_enter_getcwd { @a = @a + 1; if (@a == 10) { exit(); } } tracepoint:syscalls:sys_enter_getcwd { @b = @b + 1; }`,
			"Attaching 2 probes...\n\n\n@a: 10\n@b: 9\n"},
		{"exit in BEGIN", `BEGIN { exit(); } tracepoint:syscalls:sys_enter_getcwd { @n = @n + 1; }`,
			"Attaching 2 probes...\n\n\n\n"}, // @n never set: an empty map
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := newStormSource(5000)
			out, _ := runStorm(t, context.Background(), tt.script, Request{}, src)
			if out != tt.want {
				t.Errorf("output %q, want %q", out, tt.want)
			}
		})
	}
}

// TestReplayNothingAfterExit: a replay stops running probes at exit()
// too, and still reads the recording's trailer: its lost events are
// reported, and a whole recording is not said to be cut short.
func TestReplayNothingAfterExit(t *testing.T) {
	events := []opened{{"cat", 10, 0, "/a"}, {"ls", 11, 1, "/b"}, {"cat", 10, 2, "/c"}, {"vim", 12, 3, "/d"}}
	rec := writeRecording(t, events, true, true)
	var out, stderr bytes.Buffer
	err := Replay(context.Background(), ReplayRequest{Recording: rec, Name: "stdin", Stdout: &out, Stderr: &stderr,
		Source: []byte(`tracepoint:syscalls:sys_enter_openat { @n = @n + 1; printf("%s\n", str(args->filename)); if (@n == 2) { exit(); } }`)})
	if err != nil {
		t.Fatal(err)
	}
	if want := "Attaching 1 probe...\n/a\n/b\nLost 7 events\n\n\n@n: 2\n"; out.String() != want || stderr.Len() > 0 {
		t.Errorf("output %q, stderr %q; want %q and no warning", out.String(), stderr.String(), want)
	}
}

// startStorm starts the test binary calling getcwd n times, as fast as
// it can: a storm of events that only the test makes. It is killed when
// the test ends; exited is closed when it has exited, at *at.
func startStorm(t *testing.T, f *fixture, n int) (cmd *exec.Cmd, exited <-chan struct{}, at *time.Time) {
	t.Helper()
	cmd = exec.Command(f.exe, "get", strconv.Itoa(n), "0")
	// A storm of 1<<40 calls outlives a test binary killed before its
	// cleanups run (a timeout), and would load the host for hours.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch, at := make(chan struct{}), new(time.Time)
	go func() {
		cmd.Wait()
		*at = time.Now()
		close(ch)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-ch
	})
	return cmd, ch, at
}

// heavyScript only updates maps, and runs long enough per event (a
// 300-turn loop) that a storm of getcwd calls outruns the interpreter:
// its ring buffer is never empty.
const heavyScript = `tracepoint:syscalls:sys_enter_getcwd { @[comm] = count(); $i = 0; while ($i < 300) { $i++; } }`

// TestRunEndsUnderStorm: under a storm of events faster than the
// program runs, every ending — -d, a signal, the -c command's exit, the
// -p process's — ends the trace in time in both modes, maps printed and
// nothing left attached. The bound asserted (2 s) is a liveness check;
// the lateness measured is logged.
func TestRunEndsUnderStorm(t *testing.T) {
	needKernel(t)
	trust := testCollectors(t)
	const after = 500 * time.Millisecond
	for _, mode := range modes {
		for _, ending := range []string{"duration", "signal", "child exits", "pid exits"} {
			t.Run(string(mode)+"/"+ending, func(t *testing.T) {
				floodKernel(t)
				f := newFixture(t)
				var stdout, stderr bytes.Buffer
				req := Request{Name: "stdin", Source: []byte(heavyScript), Mode: mode, Collectors: trust, Stdout: &stdout, Stderr: &stderr}
				lc := newLeakCheck(t)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				storm, stormExited, exitedAt := startStorm(t, f, 1<<40)
				var due time.Time
				switch ending {
				case "duration":
					req.Duration = after
				case "child exits":
					req.Command = f.expand("EXE sleep " + strconv.Itoa(int(after/time.Millisecond)))
				case "pid exits":
					// The storm is the process: it ends by itself.
					storm.Process.Kill()
					<-stormExited
					storm, stormExited, exitedAt = startStorm(t, f, 1_000_000)
					req.PID = storm.Process.Pid
				}
				req.Attached = func(*Admission) {
					due = time.Now().Add(after)
					if ending == "signal" {
						time.AfterFunc(after, cancel)
					}
				}
				err := Run(ctx, req)
				end := time.Now()
				if err != nil {
					t.Fatalf("Run: %v\n%s", err, stderr.String())
				}
				if ending == "pid exits" {
					<-stormExited
					due = *exitedAt
				}
				late := end.Sub(due)
				t.Logf("ended %v after its end was due", late.Round(time.Millisecond))
				if late > kerneltest.Slow(2*time.Second) {
					t.Errorf("ended %v after its end was due", late)
				}
				lc.expectReleased(t, true)
				// The interpreter is slower than the storm: its collector
				// drops events, which it reports, and the end may not wait
				// for all it holds, which it says.
				if !regexp.MustCompile(`^Attaching 1 probe\.\.\.\n(Lost \d+ events\n)*\n\n(@\[.*\]: \d+\n)+$`).MatchString(stdout.String()) {
					t.Errorf("output %q", stdout.String())
				}
				if !regexp.MustCompile(`^(WARNING: the trace ended with events still unread: .*\n)?$`).MatchString(stderr.String()) {
					t.Errorf("stderr %q", stderr.String())
				}
			})
		}
	}
}

// TestExitStopsProbes: after exit() no probe body runs, in either mode:
// in the kernel exit() sets the stop flag every probe checks first, and
// the interpreter does not run the records queued behind the exit. The
// workload is one thread, so END and the map dump show exactly the count
// at exit().
func TestExitStopsProbes(t *testing.T) {
	needKernel(t)
	trust := testCollectors(t)
	const script = `tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { @n = @n + 1; $i = 0; while ($i < 300) { $i++; } if (@n == 1000) { exit(); } }
END { printf("end %d\n", @n); }`
	// The interpreter may be slower than the flood (under TCG it is):
	// its collector drops events, which it reports as it finds them.
	re := regexp.MustCompile(`^Attaching 2 probes\.\.\.\n(?:Lost \d+ events\n)*end (\d+)\n(?:Lost \d+ events\n)*\n\n@n: (\d+)\n$`)
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			floodKernel(t) // 100,000 getcwd calls, which go on after exit()
			f := newFixture(t)
			out, stderr, err := runScript(t, Request{Source: []byte(script), Command: f.expand("EXE get 100000 0"), Mode: mode, Collectors: trust})
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, stderr)
			}
			m := re.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("output %q", out)
			}
			t.Logf("%s: end %s", mode, m[1])
			if m[1] != m[2] {
				t.Errorf("END saw %s, the dump %s: a probe ran between them", m[1], m[2])
			}
			if m[1] != "1000" {
				t.Errorf("count %s at the end, want 1000", m[1])
			}
		})
	}
}
