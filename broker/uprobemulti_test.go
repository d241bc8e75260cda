package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// multiFuncs is how many functions fn_000, fn_001, … the uprobe.multi
// workload has.
const multiFuncs = 50

// multiWorkloadC is the traced program of the uprobe.multi tests:
// with argv[1] = K, it calls fn_I(1) exactly (I+1)*K times for each I,
// so that every function's count is its own and every total is known;
// fn_I returns 1+I. argv[2], if given, is a number of milliseconds to
// sleep before exiting: bpftrace resolves func while the process lives. fnx_lock starts with a lock-prefixed instruction,
// which the kernel will not put a uprobe on (as glibc's AVX2 string
// functions start with instructions it will not): with argv[1] = wait,
// the program waits to be killed, having mapped itself, so that a
// uprobe on fnx_lock fails to attach.
func multiWorkloadC() string {
	var b strings.Builder
	b.WriteString("#include <stdlib.h>\n#include <string.h>\n#include <unistd.h>\n")
	b.WriteString(kerneltest.CFuncs("fn_", 3, multiFuncs))
	b.WriteString("__attribute__((naked, noinline)) void fnx_lock(int *p) { __asm__ volatile(\"lock incl (%rdi)\\n\\tret\"); }\n")
	fmt.Fprintf(&b, `int main(int argc, char **argv) {
	if (argc > 1 && strcmp(argv[1], "wait") == 0) {
		int x = 0;
		fnx_lock(&x);
		for (;;)
			pause();
	}
	int k = argc > 1 ? atoi(argv[1]) : 1;
	volatile long sum = 0;
	for (int i = 0; i < %d; i++)
		for (int j = 0; j < (i + 1) * k; j++)
			sum += fns[i](1);
	if (argc > 2)
		usleep(atoi(argv[2]) * 1000);
	return sum == -1;
}
`, multiFuncs)
	return b.String()
}

// buildMultiWorkload compiles multiWorkloadC, in a short directory
// (probe names hold the path, and a probe name is 64 bytes).
func buildMultiWorkload(t *testing.T) string {
	t.Helper()
	return kerneltest.CC(t, "the uprobe.multi workload", "w", multiWorkloadC())
}

// multiK is the workload's K in the tests: fn_I is called (I+1)*K times.
const multiK = 2

// multiCase is a script over the workload's functions and what it prints.
type multiCase struct {
	name, script string
	links        int // uprobe.multi links where the kernel has them
	funcs        int // the functions on them
	want         func(bin string) string
	// differs, when set, says why bpftrace 0.17 does not print want.
	differs string
}

func multiCases() []multiCase {
	calls := func(i int) int { return (i + 1) * multiK }
	total, retsum := 0, 0
	for i := range multiFuncs {
		total += calls(i)
		retsum += calls(i) * (1 + i)
	}
	lines := func(f func(i int) string) string {
		var b strings.Builder
		for i := range multiFuncs {
			fmt.Fprintf(&b, "%s: %d\n", f(i), calls(i))
		}
		return b.String()
	}
	head := func(n int) string { return fmt.Sprintf("Attaching %d probes...\n", n) }
	return []multiCase{
		{name: "probe", script: `uprobe:BIN:fn_* { @[probe] = count(); }`, links: 1, funcs: multiFuncs, want: func(bin string) string {
			return head(multiFuncs) + "\n\n" + lines(func(i int) string { return fmt.Sprintf("@[uprobe:%s:fn_%03d]", bin, i) })
		}},
		{name: "func and uretprobe", script: `uprobe:BIN:fn_* { @[func] = count(); } uretprobe:BIN:fn_* { @calls = count(); @ret = sum(retval); }`, links: 2, funcs: 2 * multiFuncs, want: func(bin string) string {
			return head(2*multiFuncs) + "\n\n" + lines(func(i int) string { return fmt.Sprintf("@[fn_%03d]", i) }) +
				fmt.Sprintf("@calls: %d\n@ret: %d\n", total, retsum)
		}, differs: "bpftrace 0.17 resolves func's address when it prints the map, once the -c command has exited: it prints addresses"},
		{name: "func printed", script: `uprobe:BIN:fn_00* { printf("%s %d\n", func, arg0); }`, links: 1, funcs: 10, want: func(bin string) string {
			s := head(10)
			for i := range 10 {
				s += strings.Repeat(fmt.Sprintf("fn_%03d 1\n", i), calls(i))
			}
			return s + "\n\n"
		}},
		{name: "count", script: `BEGIN { @begin = 1; } uprobe:BIN:fn_* { @ = count(); }`, links: 1, funcs: multiFuncs, want: func(bin string) string {
			return head(1+multiFuncs) + "\n\n" + fmt.Sprintf("@: %d\n@begin: 1\n", total)
		}},
	}
}

// eachPath runs f as a subtest for each way a uprobe wildcard attaches
// here: "multi", one uprobe.multi link, where the kernel has them, and
// "one by one", one uprobe per function as on kernels before 6.6
// (forced by uprobe.NoMultiEnv on a kernel that has links, so that both
// run here).
func eachPath(t *testing.T, f func(t *testing.T, path string)) {
	paths := []string{"multi", "one by one"}
	if !uprobe.HaveMulti() {
		t.Logf("this kernel has no uprobe.multi links: the wildcards attach one uprobe per function only")
		paths = paths[1:]
	}
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			if path == "one by one" {
				t.Setenv(uprobe.NoMultiEnv, "1")
			}
			f(t, path)
		})
	}
}

// eachPathMode is eachPath with a subtest for each mode within, which
// holds the kernel lock.
func eachPathMode(t *testing.T, f func(t *testing.T, path string, mode Mode)) {
	eachPath(t, func(t *testing.T, path string) {
		for _, mode := range modes {
			t.Run(string(mode), func(t *testing.T) {
				lockKernel(t)
				f(t, path, mode)
			})
		}
	})
}

// TestUprobeMulti: a wildcard over the workload's 50 functions counts
// every call of every function exactly, named by probe and func, in both
// modes, attached with one uprobe.multi link per wildcard where the
// kernel has them and one uprobe per function where it has not, with
// the same output; -v says which.
func TestUprobeMulti(t *testing.T) {
	needKernel(t)
	bin := buildMultiWorkload(t)
	trust := testCollectors(t)
	eachPath(t, func(t *testing.T, path string) {
		for _, tc := range multiCases() {
			t.Run(tc.name, func(t *testing.T) {
				for _, mode := range modes {
					t.Run(string(mode), func(t *testing.T) {
						lockKernel(t)
						script := strings.ReplaceAll(tc.script, "BIN", bin)
						out, stderr, err := runScriptWithin(t, Request{Source: []byte(script), Command: bin + " " + strconv.Itoa(multiK), Mode: mode, Collectors: trust, Verbose: true}, 120*time.Second)
						if err != nil {
							t.Fatalf("Run: %v\n%s", err, stderr)
						}
						if want := tc.want(bin); out != want {
							t.Errorf("output:\n%s\nwant:\n%s", out, want)
						}
						note := fmt.Sprintf("(%s on %d functions)", plural(tc.links, "uprobe.multi link"), tc.funcs)
						if got := strings.Contains(stderr, note); got != (path == "multi") {
							t.Errorf("-v says %q: %v, want %v\n%s", note, got, path == "multi", stderr)
						}
					})
				}
			})
		}
	})
}

// TestUprobeMultiSideBySide: bpftrace 0.17, which attaches one uprobe per
// function, prints what TestUprobeMulti expects (the command lingers, so
// that bpftrace resolves func in printf while the process lives).
func TestUprobeMultiSideBySide(t *testing.T) {
	bt := kerneltest.Bpftrace017(t)
	needKernel(t)
	bin := buildMultiWorkload(t)
	for _, tc := range multiCases() {
		t.Run(tc.name, func(t *testing.T) {
			if tc.differs != "" {
				t.Skip(tc.differs)
			}
			lockKernel(t)
			script := strings.ReplaceAll(tc.script, "BIN", bin)
			ref := startBpftrace(t, bt, []string{"-e", script, "-c", bin + " " + strconv.Itoa(multiK) + " 300"}, nil).output(t)
			if want := tc.want(bin); ref != want {
				t.Errorf("bpftrace:\n%s\nwant:\n%s", ref, want)
			}
		})
	}
}

// TestUprobeMultiRecordReplay: the functions of a uprobe.multi link are
// recorded as probes of their own, with their offsets, and replay to the
// live trace's output: the same script, a narrower wildcard, and two
// blocks on the same functions (two links, each recording every call),
// each of which counts every call once.
func TestUprobeMultiRecordReplay(t *testing.T) {
	needKernel(t)
	bin := buildMultiWorkload(t)
	trust := testCollectors(t)
	calls10 := 0 // the calls of fn_000..fn_009
	for i := range 10 {
		calls10 += (i + 1) * multiK
	}
	twice := `uprobe:BIN:fn_00* { @a = count(); } uprobe:BIN:fn_00* { @b = count(); }`
	eachPath(t, func(t *testing.T, path string) {
		lockKernel(t)
		for _, rc := range []struct {
			script  string
			replays []struct{ script, want string }
		}{
			{multiCases()[1].script, []struct{ script, want string }{
				{multiCases()[1].script, multiCases()[1].want(bin)},
				{`uprobe:BIN:fn_04* { @[probe] = count(); }`, func() string {
					s := "Attaching 10 probes...\n\n\n"
					for i := 40; i < 50; i++ {
						s += fmt.Sprintf("@[uprobe:%s:fn_%03d]: %d\n", bin, i, (i+1)*multiK)
					}
					return s
				}()},
			}},
			{twice, []struct{ script, want string }{
				{twice, fmt.Sprintf("Attaching 20 probes...\n\n\n@a: %d\n@b: %d\n", calls10, calls10)},
				{`uprobe:BIN:fn_00* { @c = count(); }`, fmt.Sprintf("Attaching 10 probes...\n\n\n@c: %d\n", calls10)},
			}},
		} {
			script := strings.ReplaceAll(rc.script, "BIN", bin)
			rec := filepath.Join(t.TempDir(), "rec.tbrec")
			ctx, cancel := context.WithTimeout(context.Background(), kerneltest.Slow(120*time.Second))
			defer cancel()
			var stderr bytes.Buffer
			if err := Record(ctx, RecordRequest{Request: Request{Name: "stdin", Source: []byte(script), Command: bin + " " + strconv.Itoa(multiK), Collectors: trust, Stderr: &stderr}, Output: rec}); err != nil {
				t.Fatalf("record: %v\n%s", err, stderr.String())
			}
			for _, r := range rc.replays {
				var out, rstderr bytes.Buffer
				src := strings.ReplaceAll(r.script, "BIN", bin)
				if err := Replay(ctx, ReplayRequest{Recording: rec, Name: "stdin", Source: []byte(src), Stdout: &out, Stderr: &rstderr}); err != nil {
					t.Fatalf("replay %s: %v\n%s", src, err, rstderr.String())
				}
				if out.String() != r.want {
					t.Errorf("recorded %s, replay of %s:\n%s\nwant:\n%s", script, src, out.String(), r.want)
				}
			}
		}
	})
}

// heldLinks lists the BPF links this process holds, by type, with the
// functions of each uprobe.multi link.
func heldLinks(t *testing.T) (byType map[link.Type]int, multiFuncs []uint32) {
	t.Helper()
	byType = map[link.Type]int{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range fds {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, _ := os.Readlink("/proc/self/fd/" + e.Name()); target != "anon_inode:bpf_link" {
			continue
		}
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			continue
		}
		l, err := link.NewFromFD(dup)
		if err != nil {
			unix.Close(dup)
			continue
		}
		info, err := l.Info()
		l.Close()
		if err != nil {
			t.Errorf("link info: %v", err)
			continue
		}
		byType[info.Type]++
		if um := info.UprobeMulti(); um != nil {
			multiFuncs = append(multiFuncs, um.Count)
		}
	}
	return byType, multiFuncs
}

// TestUprobeMultiDetached: a wildcard over the workload's functions is
// one uprobe.multi link (or one uprobe per function where the kernel
// has no such links) while attached, in both modes, and once the trace
// has detached every link, perf event, program and map the test made is
// gone from the kernel.
func TestUprobeMultiDetached(t *testing.T) {
	needKernel(t)
	bin := buildMultiWorkload(t)
	trust := testCollectors(t)
	eachPathMode(t, func(t *testing.T, path string, mode Mode) {
		leaks := newLeakCheck(t)
		script := strings.ReplaceAll(`uprobe:BIN:fn_* { @[probe] = count(); }`, "BIN", bin)
		var links map[link.Type]int
		var funcs []uint32
		var perf int
		req := Request{Source: []byte(script), Command: bin + " 1", Mode: mode, Collectors: trust,
			Attached: func(*Admission) {
				links, funcs = heldLinks(t)
				for _, o := range leaks.objs.HeldBySelf(t) {
					if o.Kind == kerneltest.KindPerfEvent {
						perf++
					}
				}
			}}
		if _, stderr, err := runScriptWithin(t, req, 120*time.Second); err != nil {
			t.Fatalf("Run: %v\n%s", err, stderr)
		}
		switch {
		case path == "multi":
			if len(funcs) != 1 || funcs[0] != multiFuncs || links[link.UprobeMultiType] != 1 || links[link.PerfEventType] != 0 || perf != 0 {
				t.Errorf("attached: links %v, uprobe.multi functions %v, perf events %d; want one uprobe.multi link on %d functions", links, funcs, perf, multiFuncs)
			}
		case mode == ModeJIT:
			// Perf events with the program set on them.
			if len(links) != 0 || perf != multiFuncs {
				t.Errorf("attached: links %v, perf events %d; want %d perf events", links, perf, multiFuncs)
			}
		default:
			// The collectors' perf links.
			if links[link.PerfEventType] != multiFuncs || links[link.UprobeMultiType] != 0 {
				t.Errorf("attached: links %v; want %d perf links", links, multiFuncs)
			}
		}
		leaks.expectReleased(t, false)
	})
}

// startMapped starts the workload waiting, having mapped itself (and
// run fnx_lock), and returns once it has: a uprobe on a file that a
// process maps is checked, instruction by instruction, when it attaches.
func startMapped(t *testing.T, bin string) {
	t.Helper()
	cmd := exec.Command(bin, "wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(kerneltest.Slow(10 * time.Second))
	for {
		// pause(): the process sleeps once it is past fnx_lock.
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(f) > 0 && f[0] == "S" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the workload did not start waiting: %s", stat)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUprobeMultiUnprobeable: a wildcard one of whose functions cannot
// take a uprobe fails as bpftrace fails, naming that function, whether
// it attaches with one uprobe.multi link (which then attaches none of
// them) or one by one; and nothing is left attached, in either mode.
func TestUprobeMultiUnprobeable(t *testing.T) {
	needKernel(t)
	bin := buildMultiWorkload(t)
	trust := testCollectors(t)
	startMapped(t, bin)
	eachPathMode(t, func(t *testing.T, path string, mode Mode) {
		leaks := newLeakCheck(t)
		// fn_000…fn_049, then fnx_lock: the search for the
		// function at fault goes down to the last.
		script := strings.ReplaceAll(`uprobe:BIN:fn* { @[probe] = count(); }`, "BIN", bin)
		_, stderr, err := runScriptWithin(t, Request{Source: []byte(script), Command: bin + " 1", Mode: mode, Collectors: trust}, 120*time.Second)
		var want []string
		if path == "multi" {
			want = []string{"Error attaching probe: uprobe:" + bin + ":fnx_lock (offset 0x", "the kernel cannot put a uprobe on its first instruction", fmt.Sprintf("the uprobe.multi link on %d functions attached none of them", multiFuncs+1)}
		} else {
			want = []string{"uprobe:" + bin + ":fnx_lock", "the kernel cannot put a uprobe on its first instruction"}
		}
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("Run: %v\n%s\nwant an error saying %q", err, stderr, w)
			}
		}
		if !errors.Is(err, unix.Errno(524)) {
			t.Errorf("Run: %v, want ENOTSUPP among its causes", err)
		}
		leaks.expectReleased(t, true)
	})
}

// pidWorkloadC waits until its stdin closes, then calls t_one 3 times in
// its main thread and t_two 5 times in another, and exits.
const pidWorkloadC = `#include <pthread.h>
#include <unistd.h>
__attribute__((noinline)) int t_one(int x) { __asm__ volatile(""); return x + 1; }
__attribute__((noinline)) int t_two(int x) { __asm__ volatile(""); return x + 2; }
static void *run(void *a) { for (int i = 0; i < 5; i++) t_two(i); return 0; }
int main() {
	char c;
	while (read(0, &c, 1) > 0)
		;
	pthread_t t;
	pthread_create(&t, 0, run, 0);
	for (int i = 0; i < 3; i++)
		t_one(i);
	pthread_join(t, 0);
	return 0;
}
`

// TestUprobeMultiPID: with -p, a wildcard counts the calls of every
// thread of that process, and none of another process running the same
// file, attached with one link or one by one.
func TestUprobeMultiPID(t *testing.T) {
	needKernel(t)
	bin := kerneltest.CC(t, "the workload", "thr", pidWorkloadC, "-O0", "-pthread")
	trust := testCollectors(t)
	// start starts the workload; run lets it run its calls and returns
	// once it has exited and been reaped (-p watches for the pid to go).
	start := func(t *testing.T) (cmd *exec.Cmd, run func()) {
		cmd = exec.Command(bin)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		t.Cleanup(func() { cmd.Process.Kill(); <-done })
		return cmd, func() { in.Close(); <-done }
	}
	eachPathMode(t, func(t *testing.T, path string, mode Mode) {
		traced, runTraced := start(t)
		_, runOther := start(t)
		script := strings.ReplaceAll(`uprobe:BIN:t_* { @[probe, tid == pid] = count(); }`, "BIN", bin)
		req := Request{Source: []byte(script), PID: traced.Process.Pid, Mode: mode, Collectors: trust,
			Attached: func(*Admission) {
				// Both run their calls, the other first;
				// the trace ends when the traced one exits.
				runOther()
				go runTraced()
			}}
		out, stderr, err := runScriptWithin(t, req, 120*time.Second)
		if err != nil {
			t.Fatalf("Run: %v\n%s", err, stderr)
		}
		want := fmt.Sprintf("Attaching 2 probes...\n\n\n@[uprobe:%s:t_one, 1]: 3\n@[uprobe:%s:t_two, 0]: 5\n", bin, bin)
		if out != want {
			t.Errorf("output:\n%s\nwant:\n%s", out, want)
		}
	})
}
