package broker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// The test binary doubles as the traced workload: a child started with -c
// re-runs it with TB_WORKLOAD set, and it does exactly what its arguments
// say, so that every count in the expected output is exact.
func TestMain(m *testing.M) {
	// DetachInBackground re-runs this binary as its release helper when
	// there are more attachments than a forked copy closes.
	bpf.RunReleaseHelper()
	// A workload is started with its own words; the fuzzing engine's
	// workers inherit TB_WORKLOAD too, but run with -test. flags.
	if os.Getenv("TB_WORKLOAD") == "1" && !slices.ContainsFunc(os.Args[1:], func(a string) bool { return strings.HasPrefix(a, "-test.") }) {
		os.Exit(workload(os.Args[1:]))
	}
	os.Setenv("TB_WORKLOAD", "1")
	os.Exit(m.Run())
}

// preadPos marks the workload's own pread64 calls: the Go runtime's are
// never at this offset.
const preadPos = 12345

func workload(args []string) int {
	if len(args) == 0 {
		return 2
	}
	switch args[0] {
	case "open": // open PATH N
		n, _ := strconv.Atoi(args[2])
		for i := 0; i < n; i++ {
			f, err := os.Open(args[1])
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			f.Close()
		}
	case "pread": // pread PATH SIZE...: one pread64 at offset preadPos per size
		f, err := os.Open(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer f.Close()
		buf := make([]byte, 1<<20)
		for _, a := range args[2:] {
			n, _ := strconv.Atoi(a)
			syscall.Pread(int(f.Fd()), buf[:n], preadPos)
		}
	case "get": // get CWD CPU: getcwd and getcpu, which the Go runtime never calls itself
		cwd, _ := strconv.Atoi(args[1])
		cpu, _ := strconv.Atoi(args[2])
		kerneltest.Syscalls(cwd, cpu)
	case "prio": // prio WHO...: getpriority(PRIO_PROCESS, WHO), which fails harmlessly for pids that do not exist
		for _, a := range args[1:] {
			who, _ := strconv.Atoi(a)
			unix.Syscall(unix.SYS_GETPRIORITY, 0, uintptr(who), 0)
		}
	case "rename": // rename NAME N: set the thread's comm to NAME N times (task_rename)
		// On one thread: the file opened as thread-self names the
		// thread that opened it, and the write that renames it must come
		// from that thread, the renamed task (a goroutine moved between
		// the two made task_rename's task another thread than the
		// caller, once in a 6.12 run).
		runtime.LockOSThread()
		n, _ := strconv.Atoi(args[2])
		for i := 0; i < n; i++ {
			if err := os.WriteFile("/proc/thread-self/comm", []byte(args[1]), 0); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
	case "prioloop": // prioloop K: getpriority(PRIO_PROCESS, prioBase+i), i = 1, 2, ..., K at a time with a sleep of 50 µs (to a millisecond) between, until stdin closes; then prints the last i
		k, _ := strconv.Atoi(args[1])
		var closed atomic.Bool
		go func() {
			io.Copy(io.Discard, os.Stdin)
			closed.Store(true)
		}()
		i := 0
		for !closed.Load() {
			for range k {
				i++
				unix.Syscall(unix.SYS_GETPRIORITY, 0, uintptr(prioBase+i), 0)
			}
			time.Sleep(50 * time.Microsecond)
		}
		fmt.Println(i)
	case "sleep": // sleep MS
		ms, _ := strconv.Atoi(args[1])
		time.Sleep(time.Duration(ms) * time.Millisecond)

	default:
		return 2
	}
	return 0
}

// prioBase is where prioloop's getpriority who arguments start: far
// above any pid, so the calls fail harmlessly (ESRCH).
const prioBase = 1 << 30

// needKernel skips a test on machines where tracing cannot work, saying why.
func needKernel(t testing.TB) {
	t.Helper()
	if err := bpf.Supported(); err != nil {
		t.Skipf("kernel tracing unavailable: %v", err)
	}
}

type fixture struct {
	dir, file string
	exe       string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	// str() reads at most 63 characters: keep the path short.
	dir, err := os.MkdirTemp("", "tb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	file := filepath.Join(dir, "known.txt")
	if err := os.WriteFile(file, bytes.Repeat([]byte("x"), 1<<16), 0o644); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: dir, file: file, exe: exe}
}

// expand replaces FILE and EXE in scripts, commands and expected output.
func (f *fixture) expand(s string) string {
	return strings.NewReplacer("FILE", f.file, "EXE", f.exe).Replace(s)
}

func runScript(t *testing.T, req Request) (string, string, error) {
	t.Helper()
	return runScriptWithin(t, req, 30*time.Second)
}

// runScriptWithin is runScript with a run that may take up to d.
func runScriptWithin(t *testing.T, req Request, d time.Duration) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	req.Stdout, req.Stderr = &stdout, &stderr
	if req.Name == "" {
		req.Name = "stdin"
	}
	// d stretches where everything is slower (TCG): a hang guard.
	ctx, cancel := context.WithTimeout(context.Background(), kerneltest.Slow(d))
	defer cancel()
	err := Run(ctx, req)
	return stdout.String(), stderr.String(), err
}

// e2eCase is one end-to-end language test, kept as data in
// testdata/scripts: NAME.bt is the script, NAME.out its exact output, the
// right answer (bpftrace 0.17's, but where a bug of bpftrace's is
// recorded: bpftraceBug). The script's leading comments carry directives:
// "// cmd: ..." is the workload started with -c, "// format: json" the
// output format, "// new-syntax" marks newer bpftrace syntax that bpftrace
// 0.17 cannot run (no side-by-side run), "// bpftrace-bug: ..." a bug of
// bpftrace's. FILE and EXE stand for the fixture's file and the test
// binary.
type e2eCase struct {
	name, script, cmd, format, want string
	path                            string // of the .out file
	newSyntax                       bool
	// interpRefused is why interpreter mode refuses the script, which
	// needs the kernel at the event: "// interp: refused: REASON".
	interpRefused string
	bug           *bpftraceBug
}

func loadCases(t testing.TB) []e2eCase { return loadCasesFrom(t, "../testdata/scripts") }

// loadCasesFrom loads the table of NAME.bt and NAME.out files in dir.
func loadCasesFrom(t testing.TB, dir string) []e2eCase {
	t.Helper()
	scripts, err := filepath.Glob(filepath.Join(dir, "*.bt"))
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts in %s: %v", dir, err)
	}
	var cases []e2eCase
	for _, path := range scripts {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(strings.TrimSuffix(path, ".bt") + ".out")
		if err != nil {
			t.Fatal(err)
		}
		tc := e2eCase{name: strings.TrimSuffix(filepath.Base(path), ".bt"), script: string(src), want: string(want),
			path: strings.TrimSuffix(path, ".bt") + ".out"}
		for _, line := range strings.Split(string(src), "\n") {
			d, ok := strings.CutPrefix(line, "// ")
			if !ok {
				break
			}
			key, val, _ := strings.Cut(d, ":")
			if bugDirective(&tc.bug, key, val) {
				continue
			}
			switch key {
			case "cmd":
				tc.cmd = strings.TrimSpace(val)
			case "format":
				tc.format = strings.TrimSpace(val)
			case "new-syntax":
				tc.newSyntax = true
			case "interp":
				tc.interpRefused = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(val), "refused:"))
			}
		}
		loadBug(t, tc.bug, path)
		cases = append(cases, tc)
	}
	return cases
}

// TestEndToEnd runs the shared table in every mode, against the same
// expectations: interpreter mode prints what JIT mode prints. A script
// that needs the kernel at the event (stacks, signal()) is refused in
// interpreter mode before anything runs, with its reason ("// interp:"
// directive).
func TestEndToEnd(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	trust := testCollectors(t)
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			for _, tc := range loadCases(t) {
				t.Run(tc.name, func(t *testing.T) { runCase(t, tc, mode, trust) })
			}
		})
	}
}

// runCase runs a table's script in mode against its workload: its
// expected output, or in interpreter mode the refusal it names.
func runCase(t *testing.T, tc e2eCase, mode Mode, trust collector.Trust) {
	t.Helper()
	f := newFixture(t)
	req := Request{Source: []byte(f.expand(tc.script)), Command: f.expand(tc.cmd), Format: tc.format, Mode: mode, Collectors: trust}
	out, stderr, err := runScript(t, req)
	if mode == ModeInterp && tc.interpRefused != "" {
		if err == nil || !strings.Contains(err.Error(), tc.interpRefused) || out != "" {
			t.Fatalf("interpreter mode: err %v, output %q; want a refusal with %q and no output", err, out, tc.interpRefused)
		}
		return
	}
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr)
	}
	if want := f.expand(tc.want); out != want {
		t.Errorf("output:\n%q\nwant:\n%q\nstderr: %s", out, want, stderr)
	}
}

// TestSideBySide runs the shared table through bpftrace 0.17 on the same
// workload: tracebroker must print the right answer, which is what
// bpftrace prints but where a bug of bpftrace's is recorded, and bpftrace
// what the table records of it (checkReference). TB_RECORD=1 records
// bpftrace's output as the expectation of a new script: TB_RECORD=1 go
// test -run 'SideBySide/NAME'.
func TestSideBySide(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	sideBySide(t, loadCases(t))
}

// sideBySide runs a table through bpftrace 0.17 and tracebroker.
func sideBySide(t *testing.T, cases []e2eCase) {
	bt := kerneltest.Bpftrace017(t)
	fixtures, refs := make([]*fixture, len(cases)), make([]*bpftraceRun, len(cases))
	for i, tc := range cases {
		if tc.newSyntax {
			continue
		}
		f := newFixture(t)
		args := []string{"-e", f.expand(tc.script)}
		if tc.cmd != "" {
			args = append(args, "-c", f.expand(tc.cmd))
		}
		if tc.format != "" {
			args = append(args, "-f", tc.format)
		}
		fixtures[i], refs[i] = f, startBpftrace(t, bt, args, nil)
	}
	// All of them done before tracebroker runs: its timing is then
	// no more disturbed by the test than it is in TestEndToEnd.
	for _, r := range refs {
		if r != nil {
			<-r.done
		}
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.newSyntax {
				t.Skip("newer bpftrace syntax: bpftrace 0.17 cannot run it")
			}
			f := fixtures[i]
			script, command := f.expand(tc.script), f.expand(tc.cmd)
			ref := refs[i].output(t)
			unexpand := strings.NewReplacer(f.file, "FILE", f.exe, "EXE").Replace
			want := f.expand(tc.want)
			checkReference(t, ref, want, tc.bug, f.expand, unexpand, tc.path)
			out, stderr, err := runScript(t, Request{Source: []byte(script), Command: command, Format: tc.format})
			if err != nil {
				t.Fatalf("run: %v\n%s", err, stderr)
			}
			if out != want {
				t.Errorf("tracebroker:\n%s\nwant (%s):\n%s\nbpftrace:\n%s", out, filepath.Base(tc.path), want, ref)
			}
		})
	}
}
