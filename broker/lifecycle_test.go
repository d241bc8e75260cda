package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/internal/detach"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// lockKernel keeps a kernel test out of the way of the tests that flood
// tracepoints (kerneltest.Lock); floodKernel is for those, and for
// measurements.
func lockKernel(t testing.TB)  { kerneltest.Lock(t) }
func floodKernel(t testing.TB) { kerneltest.Exclusive(t) }

// leakCheck finds what a run left behind: what the processes of the
// test (this one, and the ones it started: the -c command, a release
// helper) hold, or were seen to hold and is still loaded in the kernel
// (kerneltest.Objects). Other tracers on the machine do not count.
type leakCheck struct{ objs *kerneltest.Objects }

// kernelWait bounds how long the kernel may take to free what a run
// closed: a check that fails takes that long, one that passes does not.
const kernelWait = 10 * time.Second

func newLeakCheck(t testing.TB) *leakCheck {
	return &leakCheck{objs: kerneltest.Track(t)}
}

// expectReleased checks, right after a run, that it left nothing behind:
// nothing held by this process or, with tree, any process it started (a
// run that detaches synchronously); then nothing held or loaded once the
// kernel and any release helper have had the time to free it. That is
// checked at once, before the garbage collector closes what leaked
// (cilium/ebpf closes unreachable objects).
func (c *leakCheck) expectReleased(t testing.TB, tree bool) {
	t.Helper()
	held := c.objs.HeldBySelf(t)
	if tree {
		held = c.objs.Held(t)
	}
	for _, h := range held {
		t.Errorf("right after the run: %v", h)
	}
	c.objs.ExpectReleased(t, kernelWait)
}

// ppid returns the parent of pid, or 0 if it is gone.
func ppid(pid int) int {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(fields[1])
	return n
}

// countRE matches a run whose only output is one count map, and captures
// the count.
func countRE(name string) *regexp.Regexp {
	return regexp.MustCompile(`^Attaching 1 probe\.\.\.\n\n\n` + regexp.QuoteMeta(name) + `: (\d+)\n$`)
}

// TestRunEnds covers every way a trace ends short of exit(): -d, a signal
// (context cancellation), the end of the -c child and the end of the -p
// process. Each must end the run in time, print the maps and, detaching
// synchronously, leave no program loaded once Run returns.
func TestRunEnds(t *testing.T) {
	needKernel(t)
	tests := []struct {
		name     string
		script   string
		duration time.Duration
		command  string // -c
		// pidSleep starts `sleep 0.3` and passes its pid as -p.
		pidSleep    bool
		cancelAfter time.Duration
		want        string         // exact output, or
		wantRE      *regexp.Regexp // its first group is a count that must be > 0
		min, max    time.Duration  // how long Run may take
	}{
		{
			name:     "duration",
			script:   `BEGIN { @a = 1; }`,
			duration: 300 * time.Millisecond,
			want:     "Attaching 1 probe...\n\n\n@a: 1\n",
			min:      300 * time.Millisecond, max: 3 * time.Second,
		},
		{
			name:        "context cancelled",
			script:      `interval:ms:10 { @n = count(); }`,
			cancelAfter: 200 * time.Millisecond,
			wantRE:      countRE("@n"),
			min:         200 * time.Millisecond, max: 2 * time.Second,
		},
		{
			// The workload sleeps 100 ms; its one execve is the shim
			// becoming the command, so the child was traced from its start.
			name:    "child exits",
			script:  `tracepoint:syscalls:sys_enter_execve /pid == cpid/ { @execs = count(); }`,
			command: "EXE sleep 100",
			want:    "Attaching 1 probe...\n\n\n@execs: 1\n",
			min:     100 * time.Millisecond, max: 3 * time.Second,
		},
		{
			// The same through a BTF tracepoint: a tracing program
			// attached by a raw tracepoint link, not a perf event.
			name:    "tp_btf child exits",
			script:  `tp_btf:sched_process_exec /args.old_pid == cpid/ { @execs = count(); }`,
			command: "EXE sleep 100",
			want:    "Attaching 1 probe...\n\n\n@execs: 1\n",
			min:     100 * time.Millisecond, max: 3 * time.Second,
		},
		{
			// sleep cannot exit before 300 ms: a run shorter than that
			// did not wait for it.
			name:     "pid exits",
			script:   `interval:ms:50 { @ = count(); }`,
			pidSleep: true,
			wantRE:   countRE("@"),
			min:      300 * time.Millisecond, max: 2 * time.Second,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lockKernel(t)
			f := newFixture(t)
			var stdout, stderr bytes.Buffer
			req := Request{Name: "stdin", Source: []byte(tc.script), Stdout: &stdout, Stderr: &stderr,
				Duration: tc.duration, Command: f.expand(tc.command)}
			lc := newLeakCheck(t)
			ctx, cancel := context.WithTimeout(context.Background(), kerneltest.Slow(30*time.Second))
			defer cancel()
			start := time.Now()
			var reaped chan struct{}
			if tc.pidSleep {
				cmd := exec.Command("sleep", "0.3")
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				// Reap it, or it stays a zombie that kill(pid, 0) still finds.
				reaped = make(chan struct{})
				go func() { cmd.Wait(); close(reaped) }()
				t.Cleanup(func() {
					cmd.Process.Kill()
					<-reaped
				})
				req.PID = cmd.Process.Pid
			}
			if tc.cancelAfter > 0 {
				time.AfterFunc(tc.cancelAfter, cancel)
			}
			err := Run(ctx, req)
			took := time.Since(start)
			if err != nil {
				t.Fatalf("Run: %v\nstderr: %s", err, stderr.String())
			}
			if reaped != nil {
				select {
				case <-reaped:
				case <-time.After(kerneltest.Slow(time.Second)):
					t.Errorf("Run returned while process %d was still running", req.PID)
				}
			}
			// Detached synchronously: nothing is held once Run returns.
			lc.expectReleased(t, true)
			// The upper bound is the promise, stretched where everything
			// is slower (TCG); the lower one, a wait that happened.
			if max := kerneltest.Slow(tc.max); took < tc.min || took >= max {
				t.Errorf("Run took %v, want [%v, %v)", took, tc.min, max)
			}
			out := stdout.String()
			if tc.wantRE != nil {
				m := tc.wantRE.FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("output %q does not match %s", out, tc.wantRE)
				}
				if n, _ := strconv.Atoi(m[1]); n <= 0 {
					t.Errorf("count %d in %q, want > 0", n, out)
				}
			} else if out != tc.want {
				t.Errorf("output %q, want %q", out, tc.want)
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr: %q, want nothing", stderr.String())
			}
		})
	}
}

// TestExitThenEnd: exit() ends its own probe at once, events emitted after
// it (by later firings of other probes too) are dropped, END still runs
// and its output comes before the map dump. Same output as bpftrace 0.17.
func TestExitThenEnd(t *testing.T) {
	needKernel(t)
	tests := []struct {
		name, script string
		command      string // -c, if any
		want         *regexp.Regexp
		minCount     int
	}{
		{
			// @b is declared but never set: the second assignment is
			// after exit(). An empty map prints an empty line.
			name:   "in BEGIN",
			script: `BEGIN { printf("before\n"); @a = 1; exit(); printf("after\n"); @b = 2; } END { printf("end\n"); }`,
			want:   regexp.MustCompile(`^Attaching 2 probes\.\.\.\nbefore\nend\n\n\n@a: (1)\n\n$`),
		},
		{
			// The interval keeps firing until the run stops it: its
			// "tick 4" and later, if any, come after the exit event.
			name: "in interval",
			script: `BEGIN { printf("begin\n"); }
interval:ms:10 { @n = @n + 1; if (@n == 3) { printf("three\n"); exit(); printf("after\n"); } printf("tick %d\n", @n); }
END { printf("end\n"); }`,
			want:     regexp.MustCompile(`^Attaching 3 probes\.\.\.\nbegin\ntick 1\ntick 2\nthree\nend\n\n\n@n: (\d+)\n$`),
			minCount: 3,
		},
		{
			// The child's three getcwd calls take microseconds: the
			// events of the second and third are in the ring buffer
			// behind the exit event before the tracer reads it.
			name:    "later events in the buffer",
			command: "EXE get 3 0",
			script: `tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { @n = @n + 1; printf("getcwd %d\n", @n); if (@n == 1) { exit(); } }
END { printf("end\n"); }`,
			want:     regexp.MustCompile(`^Attaching 2 probes\.\.\.\ngetcwd 1\nend\n\n\n@n: ([123])\n$`),
			minCount: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lockKernel(t)
			f := newFixture(t)
			out, stderr, err := runScript(t, Request{Source: []byte(tc.script), Command: f.expand(tc.command)})
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, stderr)
			}
			m := tc.want.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("output %q does not match %s", out, tc.want)
			}
			if n, _ := strconv.Atoi(m[1]); n < tc.minCount {
				t.Errorf("count %d, want >= %d", n, tc.minCount)
			}
		})
	}
}

// TestMapFull: updates beyond --max-map-keys are dropped, counted and
// reported once at the end; the keys that fit are printed exactly.
func TestMapFull(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	f := newFixture(t)
	out, stderr, err := runScript(t, Request{
		Source:     []byte(`tracepoint:syscalls:sys_enter_pread64 /pid == cpid && args->pos == 12345/ { @[args->count] = count(); }`),
		Command:    f.expand("EXE pread FILE 1 2 3 4 5 6"),
		MaxMapKeys: 3,
	})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, stderr)
	}
	if want := "Attaching 1 probe...\n\n\n@[1]: 1\n@[2]: 1\n@[3]: 1\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	if want := "WARNING: map @ is full: 3 updates were dropped (raise --max-map-keys, now 3)\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
}

// TestRunErrorsLeaveNothing: every failure returns its error before
// printing anything and leaves no program or map loaded. Script errors are
// printed as bpftrace prints them.
func TestRunErrorsLeaveNothing(t *testing.T) {
	needKernel(t)
	noPID := kerneltest.NoSuchPID(t)
	const valid = `BEGIN { @a = 1; }`
	tests := []struct {
		name       string
		req        Request
		wantScript string // the ScriptError's exact text, or
		wantErr    string // a substring of a plain error
	}{
		{
			name:       "syntax error",
			req:        Request{Source: []byte("BEGIN { @a = 1 ")},
			wantScript: "stdin:1:16-17: ERROR: syntax error, unexpected end of file, expecting }\nBEGIN { @a = 1 \n               ^\n",
		},
		{
			name:       "unknown function",
			req:        Request{Source: []byte("BEGIN { @x = count2(); }")},
			wantScript: "stdin:1:14-20: ERROR: Unknown function: count2\nBEGIN { @x = count2(); }\n             ^~~~~~\n",
		},
		{
			name:       "unknown function on line 2 of a file",
			req:        Request{Name: "/tmp/x.bt", Source: []byte("BEGIN {\n  @x = count2();\n}\n")},
			wantScript: "/tmp/x.bt:2:8-14: ERROR: Unknown function: count2\n  @x = count2();\n       ^~~~~~\n",
		},
		{
			name:       "unknown tracepoint",
			req:        Request{Source: []byte("tracepoint:syscalls:sys_enter_nosuch { @ = count(); }")},
			wantScript: "stdin:1:1-37: ERROR: tracepoint not found: syscalls:sys_enter_nosuch\ntracepoint:syscalls:sys_enter_nosuch { @ = count(); }\n^" + strings.Repeat("~", 35) + "\n",
		},
		{
			name:       "kprobe",
			req:        Request{Source: []byte("kprobe:do_sys_open { @ = count(); }")},
			wantScript: "stdin:1:1-19: ERROR: kprobe probes are not available: this kernel was built without kprobes (CONFIG_KPROBES is not set)\nkprobe:do_sys_open { @ = count(); }\n^" + strings.Repeat("~", 17) + "\n",
		},
		{
			name:    "signal in interpreter mode",
			req:     Request{Source: []byte("tracepoint:syscalls:sys_enter_getcwd { signal(\"KILL\"); }"), Mode: ModeInterp, Unsafe: true},
			wantErr: "tracepoint:syscalls:sys_enter_getcwd: signal() cannot run in interpreter mode: it needs the kernel at the event (use --mode jit)",
		},
		{
			name:    "unknown mode",
			req:     Request{Source: []byte(valid), Mode: "fast"},
			wantErr: `unknown mode "fast"`,
		},
		{
			name:    "invalid format",
			req:     Request{Source: []byte(valid), Format: "xml"},
			wantErr: "Invalid output format \"xml\"\nvalid formats: text, json",
		},
		{
			name:    "pid does not exist",
			req:     Request{Source: []byte(valid), PID: noPID},
			wantErr: fmt.Sprintf("process %d: no such process", noPID),
		},
		{
			// Found after the program is loaded: Run must unload it.
			name:    "command does not exist",
			req:     Request{Source: []byte(valid), Command: "tb-no-such-command --flag"},
			wantErr: "failed to find executable tb-no-such-command",
		},
		{
			name:    "command with unterminated quote",
			req:     Request{Source: []byte(valid), Command: `echo "hi`},
			wantErr: "unterminated quote",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lockKernel(t)
			lc := newLeakCheck(t)
			out, stderr, err := runScript(t, tc.req)
			if err == nil {
				t.Fatalf("Run succeeded, want an error; output %q", out)
			}
			var se *ScriptError
			isScript := errors.As(err, &se)
			switch {
			case tc.wantScript != "" && !isScript:
				t.Errorf("error %v (%T), want a *ScriptError", err, err)
			case tc.wantScript != "" && se.Error() != tc.wantScript:
				t.Errorf("script error:\n%s\nwant:\n%s", se.Error(), tc.wantScript)
			case tc.wantScript == "" && isScript:
				t.Errorf("error is a *ScriptError, want a plain error: %v", err)
			case tc.wantScript == "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("error %q, want it to contain %q", err, tc.wantErr)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if stderr != "" {
				t.Errorf("stderr %q, want nothing (the caller prints the error)", stderr)
			}
			lc.expectReleased(t, true)
		})
	}
}

// releaseHelpers lists the live processes this one started as release
// helpers.
func releaseHelpers(t *testing.T) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || ppid(pid) != self {
			continue
		}
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if bytes.Contains(env, []byte("TRACEBROKER_RELEASE_FDS=")) || string(bytes.TrimSpace(comm)) == bpf.ReleaseName {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestDetachInBackground: the helper process closes the attachments after
// Run returns, in both modes; soon nothing is loaded and the helper is
// gone. A helper that cannot start leaves the run to detach in place:
// nothing stays attached when Run returns.
func TestDetachInBackground(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	f := newFixture(t)
	t.Cleanup(func() {
		for _, pid := range releaseHelpers(t) {
			unix.Kill(pid, unix.SIGKILL) // a stuck helper, on failure
		}
	})
	for _, mode := range modes {
		// A run's two attachments go to a forked copy; with none
		// forked, to this binary run again; with neither, detached in
		// place.
		for _, kind := range []string{"fork", "exec", "none"} {
			helper := kind != "none"
			name := string(mode) + "/" + kind
			t.Run(name, func(t *testing.T) {
				// Counted: the run hands its attachments to a helper.
				asked := 0
				defer func(e func() (string, error), n int) { detach.Executable, detach.ForkUpTo = e, n }(detach.Executable, detach.ForkUpTo)
				if kind != "fork" {
					detach.ForkUpTo = 0
				}
				exe := detach.Executable
				detach.Executable = func() (string, error) {
					asked++
					if !helper {
						return "/nonexistent/tracebroker", nil
					}
					return exe()
				}
				req := Request{
					Source:             []byte(`tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { @ = count(); } tracepoint:syscalls:sys_enter_getcpu /pid == cpid/ { @cpu = count(); }`),
					Command:            f.expand("EXE get 3 2"),
					DetachInBackground: true,
					Mode:               mode,
					Collectors:         testCollectors(t),
				}
				lc := newLeakCheck(t)
				out, stderr, err := runScript(t, req)
				if err != nil {
					t.Fatalf("Run: %v\n%s", err, stderr)
				}
				if want := "Attaching 2 probes...\n\n\n@: 3\n@cpu: 2\n"; out != want {
					t.Errorf("output %q, want %q", out, want)
				}
				if want := map[string]int{"fork": 0, "exec": 1, "none": 1}[kind]; asked != want {
					t.Errorf("the helper executable was asked for %d times, want %d", asked, want)
				}
				// Without a helper, detached in place: nothing held by
				// this process or any it started, at once.
				lc.expectReleased(t, !helper)
				// Everything released: the helper has nothing left to do but exit.
				deadline := time.Now().Add(kernelWait)
				for pids := releaseHelpers(t); len(pids) > 0; pids = releaseHelpers(t) {
					if !helper {
						t.Fatalf("release helpers %v, though none could start", pids)
					}
					if time.Now().After(deadline) {
						t.Fatalf("release helpers still running %v after they released everything: %v", kernelWait, pids)
					}
					time.Sleep(10 * time.Millisecond)
				}
			})
		}
	}
}

// TestLostEvents floods a one-page ring buffer faster than it is read: the
// loss is counted in the kernel and reported, never silent, and the run
// still ends cleanly with its map.
func TestLostEvents(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	f := newFixture(t)
	script := `tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { @n = count(); printf("%s %s %s %s\n", comm, comm, comm, comm); }`
	out, stderr, err := runScript(t, Request{Source: []byte(script), Command: f.expand("EXE get 5000 0"), EventBufferSize: 4096})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr)
	}
	lines := strings.Split(out, "\n")
	printed, lost := 0, 0
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "broker.test "):
			printed++
		case strings.HasPrefix(l, "Lost "):
			var n int
			if _, err := fmt.Sscanf(l, "Lost %d events", &n); err != nil {
				t.Fatalf("bad line %q", l)
			}
			lost += n
		}
	}
	if !strings.HasSuffix(out, "\n\n\n@n: 5000\n") {
		t.Fatalf("output does not end with the count of 5000 events:\n%s", out[max(0, len(out)-200):])
	}
	if lost == 0 || printed+lost != 5000 {
		t.Errorf("printed %d + lost %d, want > 0 lost and 5000 in all", printed, lost)
	}
}

// TestAttachManyLosesNothing attaches 361 syscall tracepoints while a
// process makes numbered getpriority calls, some 30,000 a second, on the
// one attached first: in interpreter mode its collector fires while the
// other 360 attach, and its events are read and run meanwhile (-v says
// how many; before, the ring buffer was first read once all were
// attached, and a 2 MiB one behind 720 probes lost hundreds to hundreds
// of thousands of events). Every call from the first one seen to the
// process's last is counted, in both modes, and nothing is reported
// lost: the 16 MiB ring buffer holds a second or more of events, room to
// spare for a reader that keeps up on a loaded machine.
func TestAttachManyLosesNothing(t *testing.T) {
	needKernel(t)
	floodKernel(t)
	t.Cleanup(func() {
		for _, pid := range releaseHelpers(t) {
			unix.Kill(pid, unix.SIGKILL) // a stuck helper, on failure
		}
	})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Not sys_enter_* for the others: interpreter mode cannot attach
	// its collector twice to one tracepoint.
	const script = `tracepoint:syscalls:sys_enter_getpriority /pid == $1/ { @n = count(); @lo = min(args->who); @hi = max(args->who); }
tracepoint:syscalls:sys_exit_* { @others = count(); }`
	countRE := regexp.MustCompile(`(?m)^@(n|lo|hi): (\d+)$`)
	attachedRE := regexp.MustCompile(`(?m)^Attached 361 probes in (\S+?)(; (\d+) events read meanwhile)?$`)
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			cmd := exec.Command(exe, "prioloop", "40")
			stop, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			var last bytes.Buffer
			cmd.Stdout = &last
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			// Reaped as it exits: -p sees it gone only then.
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			pid := cmd.Process.Pid
			req := Request{
				Source:             []byte(script),
				Args:               []string{strconv.Itoa(pid)},
				PID:                pid, // the run ends with it
				Mode:               mode,
				Collectors:         testCollectors(t),
				EventBufferSize:    16 << 20,
				DetachInBackground: true,
				Verbose:            true,
				// Attached: the calls go on a little longer, then stop.
				Attached: func(*Admission) { time.AfterFunc(200*time.Millisecond, func() { stop.Close() }) },
			}
			start := time.Now()
			out, stderr, err := runScriptWithin(t, req, 2*time.Minute)
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, stderr)
			}
			took := time.Since(start)
			if err := <-exited; err != nil {
				t.Fatalf("prioloop: %v", err)
			}
			made, err := strconv.Atoi(strings.TrimSpace(last.String()))
			if err != nil {
				t.Fatalf("prioloop printed %q", last.String())
			}
			got := map[string]int{}
			for _, m := range countRE.FindAllStringSubmatch(out, -1) {
				got[m[1]], _ = strconv.Atoi(m[2])
			}
			if strings.Contains(out, "Lost ") {
				t.Errorf("events lost:\n%s", out)
			}
			if got["hi"] != prioBase+made {
				t.Errorf("the last call seen is %d, the process's last was %d", got["hi"]-prioBase, made)
			}
			if got["n"] == 0 || got["n"] != got["hi"]-got["lo"]+1 {
				t.Errorf("%d calls counted from call %d to %d: %d missing", got["n"], got["lo"]-prioBase, got["hi"]-prioBase, got["hi"]-got["lo"]+1-got["n"])
			}
			m := attachedRE.FindStringSubmatch(stderr)
			if m == nil {
				t.Fatalf("no line Attached 361 probes:\n%s", stderr)
			}
			attach, err := time.ParseDuration(m[1])
			if err != nil {
				t.Fatal(err)
			}
			// The counted probe, attached first, fired while the others
			// attached: an attach of ten of the reader's polls or more
			// read some of its events.
			if mode == ModeInterp && attach >= 10*collector.ReadPoll && (m[3] == "" || m[3] == "0") {
				t.Errorf("no events read during an attach of %v:\n%s", attach, stderr)
			}
			t.Logf("%d calls made in %v, %d counted from call %d; attached in %v%s", made, took.Round(time.Millisecond), got["n"], got["lo"]-prioBase, attach, m[2])
			// The next run's attach would wait for the helper's detach.
			deadline := time.Now().Add(kerneltest.Slow(time.Minute))
			for pids := releaseHelpers(t); len(pids) > 0; pids = releaseHelpers(t) {
				if time.Now().After(deadline) {
					t.Fatalf("release helpers still running a minute on: %v", pids)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
