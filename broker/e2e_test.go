package broker

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf"
)

// The test binary doubles as the traced workload: a child started with -c
// re-runs it with TB_WORKLOAD set, and it does exactly what its arguments
// say, so that every count in the expected output is exact.
func TestMain(m *testing.M) {
	RunChildShim()
	if os.Getenv("TB_WORKLOAD") == "1" {
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
		buf := make([]byte, 4096)
		for i := 0; i < cwd; i++ {
			syscall.Getcwd(buf)
		}
		var c, node uint32
		for i := 0; i < cpu; i++ {
			unix.Syscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&c)), uintptr(unsafe.Pointer(&node)), 0)
		}
	case "sleep": // sleep MS
		ms, _ := strconv.Atoi(args[1])
		time.Sleep(time.Duration(ms) * time.Millisecond)
	default:
		return 2
	}
	return 0
}

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
	var stdout, stderr bytes.Buffer
	req.Stdout, req.Stderr = &stdout, &stderr
	if req.Name == "" {
		req.Name = "stdin"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := Run(ctx, req)
	return stdout.String(), stderr.String(), err
}

// e2eCases is the shared table of end-to-end language tests: each script
// runs against a workload it starts with -c and must print exactly want.
var e2eCases = []struct {
	name, script, cmd, format, want string
	// newSyntax marks scripts bpftrace 0.17 cannot run (newer bpftrace
	// syntax that tracebroker accepts too): no side-by-side run.
	newSyntax bool
}{
	{
		name:   "count opens of a known file",
		script: `tracepoint:syscalls:sys_enter_openat /pid == cpid && str(args->filename) == "FILE"/ { @opens = count(); }`,
		cmd:    "EXE open FILE 7",
		want:   "Attaching 1 probe...\n\n\n@opens: 7\n",
	},
	{
		name:   "count by comm and pid key",
		script: `tracepoint:syscalls:sys_enter_openat /pid == cpid && str(args->filename) == "FILE"/ { @[comm, pid == cpid] = count(); }`,
		cmd:    "EXE open FILE 3",
		want:   "Attaching 1 probe...\n\n\n@[broker.test, 1]: 3\n",
	},
	{
		name:   "printf of strings and ints",
		script: `tracepoint:syscalls:sys_enter_openat /pid == cpid && str(args->filename) == "FILE"/ { printf("%s opened %s (%d)\n", comm, str(args->filename), 42); }`,
		cmd:    "EXE open FILE 2",
		want:   "Attaching 1 probe...\nbroker.test opened FILE (42)\nbroker.test opened FILE (42)\n\n\n",
	},
	{
		name:   "hist of pread sizes",
		script: `tracepoint:syscalls:sys_enter_pread64 /pid == cpid && args->pos == 12345/ { @bytes = hist(args->count); }`,
		cmd:    "EXE pread FILE 0 1 2 3 4096 5000 70000",
		want: "Attaching 1 probe...\n\n\n@bytes: \n" +
			"[0]                    1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n" +
			"[1]                    1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n" +
			"[2, 4)                 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n" +
			"[4, 8)                 0 |                                                    |\n" +
			"[8, 16)                0 |                                                    |\n" +
			"[16, 32)               0 |                                                    |\n" +
			"[32, 64)               0 |                                                    |\n" +
			"[64, 128)              0 |                                                    |\n" +
			"[128, 256)             0 |                                                    |\n" +
			"[256, 512)             0 |                                                    |\n" +
			"[512, 1K)              0 |                                                    |\n" +
			"[1K, 2K)               0 |                                                    |\n" +
			"[2K, 4K)               0 |                                                    |\n" +
			"[4K, 8K)               2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n" +
			"[8K, 16K)              0 |                                                    |\n" +
			"[16K, 32K)             0 |                                                    |\n" +
			"[32K, 64K)             0 |                                                    |\n" +
			"[64K, 128K)            1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n\n",
	},
	{
		name:   "lhist, stats, avg, min, max, sum of pread sizes",
		script: `tracepoint:syscalls:sys_enter_pread64 /pid == cpid && args->pos == 12345/ { @l = lhist(args->count, 0, 100, 25); @s = stats(args->count); @a = avg(args->count); @mn = min(args->count); @mx = max(args->count); @sum = sum(args->count); }`,
		cmd:    "EXE pread FILE 10 20 30 60 200",
		want: "Attaching 1 probe...\n\n\n@a: 64\n\n@l: \n" +
			"[0, 25)                2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n" +
			"[25, 50)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n" +
			"[50, 75)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n" +
			"[75, 100)              0 |                                                    |\n" +
			"[100, ...)             1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n" +
			"\n@mn: 10\n@mx: 200\n@s: count 5, average 64, total 320\n\n@sum: 320\n",
	},
	{
		name:   "BEGIN and END with exit",
		script: `BEGIN { printf("hello\n"); @x = 5; exit(); } END { printf("bye %d\n", @x); }`,
		want:   "Attaching 2 probes...\nhello\nbye 5\n\n\n@x: 5\n",
	},
	{
		name:   "interval fires until exit",
		script: `interval:ms:20 { @ticks = @ticks + 1; if (@ticks >= 3) { exit(); } }`,
		want:   "Attaching 1 probe...\n\n\n@ticks: 3\n",
	},
	{
		name:   "operators and signedness",
		script: `BEGIN { printf("%d %d %d %d %d %d %d\n", 7 + 3 * 2, (7 + 3) * 2, 17 % 5, 1 << 4, 0xff & 0x0f, 5 ^ 1, ~0); printf("%ld %lu %ld %d %d %d\n", -7 / 2, -1, -8 >> 1, -1 < 1, 1 > 2 || 2 > 1, !0 && 3 != 3); $s = "abc"; printf("%d %d %s\n", $s == "abc", $s != "abc", 1 ? "yes" : "no"); exit(); }`,
		want:   "Attaching 1 probe...\n13 20 2 16 15 4 -1\n9223372036854775804 18446744073709551615 9223372036854775804 1 1 0\n1 0 yes\n\n\n",
	},
	{
		name:   "print, clear and delete",
		script: `BEGIN { @a[1] = 10; @a[2] = 20; @b = 3; print(@a); delete(@a[1]); print(@a); clear(@b); exit(); }`,
		// print() reads the map when its event is handled, after delete()
		// ran: bpftrace prints the same.
		want: "Attaching 1 probe...\n@a[2]: 20\n@a[2]: 20\n\n\n@a[2]: 20\n\n",
	},
	{
		name:   "wildcard probes share a block; probe builtin",
		script: `t:syscalls:sys_enter_getc* /pid == cpid/ { @[probe] = count(); }`,
		cmd:    "EXE get 3 2",
		want:   "Attaching 2 probes...\n\n\n@[tracepoint:syscalls:sys_enter_getcpu]: 2\n@[tracepoint:syscalls:sys_enter_getcwd]: 3\n",
	},
	{
		name:      "comma-separated probes, args.field, tuple keys, delete(@m, k)",
		script:    `tracepoint:syscalls:sys_enter_getcwd, tracepoint:syscalls:sys_exit_getcwd /pid == cpid/ { @n[(args.__syscall_nr, comm)] = count(); @k[1] = 1; @k[2] = 2; delete(@k, 1); }`,
		cmd:       "EXE get 2 0",
		want:      "Attaching 2 probes...\n\n\n@k[2]: 2\n@n[(79, broker.test)]: 4\n",
		newSyntax: true,
	},
	{
		name:   "uid, gid, elapsed and nsecs",
		script: `tracepoint:syscalls:sys_enter_pread64 /pid == cpid && args->pos == 12345/ { @ids[uid, gid] = count(); @clock = nsecs > 0 && elapsed > 0 && elapsed < 60000000000; }`,
		cmd:    "EXE pread FILE 9",
		want:   "Attaching 1 probe...\n\n\n@clock: 1\n@ids[0, 0]: 1\n",
	},
	{
		name:   "printf widths and conversions, str with length",
		script: `tracepoint:syscalls:sys_enter_openat /pid == cpid && str(args->filename) == "FILE"/ { printf("%-12s|%6d|%06d|%x|%X|%c|%%|%u|%lld|%s|\n", comm, 42, 42, 255, 255, 65, -1, -2, str(args->filename, 4)); }`,
		cmd:    "EXE open FILE 1",
		want:   "Attaching 1 probe...\nbroker.test |    42|000042|ff|FF|A|%|4294967295|-2|/tmp|\n\n\n",
	},
	{
		name:   "if/else chains, ternary strings, scratch variables",
		script: `tracepoint:syscalls:sys_enter_pread64 /pid == cpid && args->pos == 12345/ { $n = args->count; if ($n < 10) { $s = "small"; } else if ($n < 1000) { $s = "medium"; } else { $s = "large"; } @[$s, $n > 100 ? "big" : "tiny"] = sum($n); }`,
		cmd:    "EXE pread FILE 1 50 500 5000 7",
		want:   "Attaching 1 probe...\n\n\n@[small, tiny]: 8\n@[medium, tiny]: 50\n@[medium, big]: 500\n@[large, big]: 5000\n",
	},
	{
		name:      "lower-case begin/end and hex literals",
		script:    `begin { @x = 0x10 + 0X1f; printf("%d\n", 0xff); exit(); } end { @y = @x * 2; }`,
		want:      "Attaching 2 probes...\n255\n\n\n@x: 47\n@y: 94\n",
		newSyntax: true,
	},
	{
		name:   "hist and stats as json",
		script: `tracepoint:syscalls:sys_enter_pread64 /pid == cpid && args->pos == 12345/ { @h[comm] = hist(args->count); @l = lhist(args->count, 0, 10, 5); @s = stats(args->count); @a = avg(args->count); @m = min(args->count); }`,
		cmd:    "EXE pread FILE 1 2 3 8 64 9",
		format: "json",
		want: `{"type": "attached_probes", "data": {"probes": 1}}` + "\n\n\n" +
			`{"type": "stats", "data": {"@a": 14}}` + "\n" +
			`{"type": "hist", "data": {"@h": {"broker.test": [{"min": 1, "max": 1, "count": 1}, {"min": 2, "max": 3, "count": 2}, {"min": 4, "max": 7, "count": 0}, {"min": 8, "max": 15, "count": 2}, {"min": 16, "max": 31, "count": 0}, {"min": 32, "max": 63, "count": 0}, {"min": 64, "max": 127, "count": 1}]}}}` + "\n" +
			`{"type": "hist", "data": {"@l": [{"min": 0, "max": 4, "count": 3}, {"min": 5, "max": 9, "count": 2}, {"min": 10, "count": 1}]}}` + "\n" +
			`{"type": "map", "data": {"@m": 1}}` + "\n" +
			`{"type": "stats", "data": {"@s": {"count": 6, "average": 14, "total": 87}}}` + "\n",
	},
	{
		name:   "several keyed hists in one map",
		script: `tracepoint:syscalls:sys_enter_pread64 /pid == cpid && args->pos == 12345/ { @h[args->count > 4] = hist(args->count); }`,
		cmd:    "EXE pread FILE 1 2 3 8 64 9",
		want: "Attaching 1 probe...\n\n\n@h[0]: \n" +
			"[1]                    1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n" +
			"[2, 4)                 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n" +
			"\n@h[1]: \n" +
			"[8, 16)                2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n" +
			"[16, 32)               0 |                                                    |\n" +
			"[32, 64)               0 |                                                    |\n" +
			"[64, 128)              1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n\n",
	},
	{
		name:   "json output",
		script: `tracepoint:syscalls:sys_enter_openat /pid == cpid && str(args->filename) == "FILE"/ { @opens[comm] = count(); printf("open\n"); }`,
		cmd:    "EXE open FILE 2",
		format: "json",
		want: `{"type": "attached_probes", "data": {"probes": 1}}` + "\n" +
			`{"type": "printf", "data": "open\n"}` + "\n" +
			`{"type": "printf", "data": "open\n"}` + "\n\n\n" +
			`{"type": "map", "data": {"@opens": {"broker.test": 2}}}` + "\n",
	},
}

func TestEndToEnd(t *testing.T) {
	needKernel(t)
	for _, tc := range e2eCases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == "" {
				t.Skip("no expectation recorded")
			}
			f := newFixture(t)
			out, stderr, err := runScript(t, Request{Source: []byte(f.expand(tc.script)), Command: f.expand(tc.cmd), Format: tc.format})
			if err != nil {
				t.Fatalf("run: %v\n%s", err, stderr)
			}
			if want := f.expand(tc.want); out != want {
				t.Errorf("output:\n%q\nwant:\n%q\nstderr: %s", out, want, stderr)
			}
		})
	}
}

// TestSideBySide runs the shared table through bpftrace 0.17 on the same
// workload and requires identical output: bpftrace is the reference.
func TestSideBySide(t *testing.T) {
	needKernel(t)
	bt, err := exec.LookPath("bpftrace")
	if err != nil {
		t.Skip("bpftrace is not installed (apt-get install bpftrace)")
	}
	for _, tc := range e2eCases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.newSyntax {
				t.Skip("newer bpftrace syntax: bpftrace 0.17 cannot run it")
			}
			f := newFixture(t)
			script, command := f.expand(tc.script), f.expand(tc.cmd)
			args := []string{"-e", script}
			if command != "" {
				args = append(args, "-c", command)
			}
			if tc.format != "" {
				args = append(args, "-f", tc.format)
			}
			cmd := exec.Command(bt, args...)
			var ref, refErr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &ref, &refErr
			if err := cmd.Run(); err != nil {
				t.Fatalf("bpftrace: %v\n%s", err, refErr.String())
			}
			out, stderr, err := runScript(t, Request{Source: []byte(script), Command: command, Format: tc.format})
			if err != nil {
				t.Fatalf("run: %v\n%s", err, stderr)
			}
			if out != ref.String() {
				t.Errorf("tracebroker:\n%s\nbpftrace:\n%s", out, ref.String())
			}
			if tc.want != "" && f.expand(tc.want) != ref.String() {
				t.Errorf("the recorded expectation differs from bpftrace's output:\n%q", ref.String())
			}
			if os.Getenv("TB_SHOW") != "" {
				fmt.Printf("%s:\n%q\n", tc.name, ref.String())
			}
		})
	}
}
