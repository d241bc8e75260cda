package syscount

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf/tracefs"
	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
	"github.com/tracebroker/tracebroker/plugins/examples/internal/gentest"
	"github.com/tracebroker/tracebroker/plugins/sdk"
)

func TestMain(m *testing.M) {
	gentest.Main(m, map[string]func([]string) error{
		// getcwd N: N getcwd calls, which the Go runtime never makes
		// itself.
		"getcwd": func(args []string) error {
			n, _ := strconv.Atoi(args[0])
			kerneltest.Syscalls(n, 0)
			return nil
		},
		"batches": batches,
	})
}

// batches OUT N K REPORT: K batches of getcwd calls, each printed and
// cleared by the trace, whose output goes to the file OUT, before the
// next begins. A batch is made of rounds of N calls, until the trace has
// printed a getcwd count since it began. REPORT gets, per batch, the
// output's size when it began and how many calls it made.
//
// Why: a print() and the clear() after it are two steps (a snapshot of
// the map, then the deletion of its keys), and a call counted between
// them is cleared unprinted, in bpftrace as here; a call made as a print
// is written may be in the next print. So a batch waits for the trace,
// not for time: the same holds on a busy machine. Prints are written
// whole, one at a time, each after the one before was cleared. After a
// round's calls, the first print written may have taken its snapshot
// before them; the second took its snapshot after the first's clear, so
// after them: every call of the round was printed by then, or lost. A
// third print means that the second's clear is done: the map holds none
// of the batch's calls, and the next batch's are counted on their own.
func batches(args []string) error {
	out := args[0]
	n, _ := strconv.Atoi(args[1])
	k, _ := strconv.Atoi(args[2])
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return err
	}
	if _, err := unix.InotifyAddWatch(fd, out, unix.IN_MODIFY); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	// more returns the output once it is longer than b: at least one
	// print more. The trace prints at every interval, as the map is
	// never empty while this process makes system calls.
	more := func(b []byte) ([]byte, error) {
		for size := len(b); ; {
			b, err := os.ReadFile(out)
			if err != nil || len(b) > size {
				return b, err
			}
			if _, err := unix.Read(fd, buf); err != nil {
				return nil, err
			}
		}
	}
	getcwd := []byte(fmt.Sprintf("\n@syscalls[%d]: ", unix.SYS_GETCWD))
	var report []any
	for range k {
		b, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		start, calls := len(b), 0
		for !bytes.Contains(b[max(start-1, 0):], getcwd) {
			kerneltest.Syscalls(n, 0)
			calls += n
			for range 2 {
				if b, err = more(b); err != nil {
					return err
				}
			}
		}
		if _, err := more(b); err != nil {
			return err
		}
		report = append(report, start, calls)
	}
	return gentest.Report(args[3], report...)
}

var generated = []struct {
	name      string
	params    sdk.Params
	withChild bool // compiled as with -c, for cpid
	want      string
}{
	{"all", sdk.Params{}, false, `tracepoint:raw_syscalls:sys_enter
{
	@syscalls[args->id] = count();
}

END
{
	print(@syscalls);
	clear(@syscalls);
}
`},
	{"pid and top", sdk.Params{"pid": "4321", "top": "10"}, false, `tracepoint:raw_syscalls:sys_enter
/pid == 4321/
{
	@syscalls[args->id] = count();
}

END
{
	print(@syscalls, 10);
	clear(@syscalls);
}
`},
	{"child and interval", sdk.Params{"pid": "-1", "interval": "1.5s"}, true, `tracepoint:raw_syscalls:sys_enter
/pid == cpid/
{
	@syscalls[args->id] = count();
}

interval:ms:1500
{
	print(@syscalls);
	clear(@syscalls);
}

END
{
	print(@syscalls);
	clear(@syscalls);
}
`},
	{"interval and top", sdk.Params{"interval": "1ms", "top": "3"}, false, `tracepoint:raw_syscalls:sys_enter
{
	@syscalls[args->id] = count();
}

interval:ms:1
{
	print(@syscalls, 3);
	clear(@syscalls);
}

END
{
	print(@syscalls, 3);
	clear(@syscalls);
}
`},
}

func TestGenerate(t *testing.T) {
	for _, tc := range generated {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Generator{}.Generate(context.Background(), tc.params)
			if err != nil {
				t.Fatal(err)
			}
			if out.Script != tc.want {
				t.Errorf("script:\n%s\nwant:\n%s", out.Script, tc.want)
			}
		})
	}
}

func TestGenerateRejects(t *testing.T) {
	for _, tc := range []struct {
		params sdk.Params
		want   string
	}{
		{sdk.Params{"pid": "0"}, "parameter pid: 0 is not a process id (1 to 4194304), or -1 for the -c command"},
		{sdk.Params{"pid": "-2"}, "parameter pid: -2 is not a process id"},
		{sdk.Params{"pid": "4194305"}, "parameter pid: 4194305 is not a process id"},
		{sdk.Params{"top": "0"}, "parameter top: 0 is not a positive count"},
		{sdk.Params{"top": "-3"}, "parameter top: -3 is not a positive count"},
		{sdk.Params{"interval": "500us"}, "parameter interval: 500µs is not a whole number of milliseconds (at least 1ms)"},
		{sdk.Params{"interval": "1500us"}, "parameter interval: 1.5ms is not a whole number of milliseconds"},
		{sdk.Params{"interval": "-1s"}, "parameter interval: -1s is not a whole number of milliseconds"},
		{sdk.Params{"interval": "5"}, `parameter interval: "5" is not a duration`},
	} {
		_, err := Generator{}.Generate(context.Background(), tc.params)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Generate(%v) = %v, want an error with %q", tc.params, err, tc.want)
		}
	}
}

func TestDescribe(t *testing.T) { gentest.CheckInfo(t, Generator{}) }

// TestCompile: every generated script compiles against this kernel.
func TestCompile(t *testing.T) {
	for _, tc := range generated {
		t.Run(tc.name, func(t *testing.T) { gentest.Compile(t, tc.want, tc.withChild) })
	}
}

// TestChildNeedsCommand: pid -1 is the -c command's, and compiles
// only when there is one.
func TestChildNeedsCommand(t *testing.T) {
	if _, err := tracefs.Root(); err != nil {
		t.Skipf("compiling against this kernel's tracepoints needs tracefs: %v", err)
	}
	out, err := Generator{}.Generate(context.Background(), sdk.Params{"pid": "-1"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = broker.Compile(&broker.Request{Name: "gen", Source: []byte(out.Script)})
	if err == nil || !strings.Contains(err.Error(), "cpid cannot be used without child command") {
		t.Errorf("compiled without -c: %v", err)
	}
}

// TestEndToEnd counts the getcwd calls of the -c command (pid -1). The Go
// runtime's own calls vary, so only getcwd's count is exact, unless top
// leaves it alone: it is made more often than any other.
func TestEndToEnd(t *testing.T) {
	exe := gentest.Exe(t)
	getcwd := fmt.Sprintf("@syscalls[%d]: ", unix.SYS_GETCWD)
	t.Run("top", func(t *testing.T) {
		out, err := Generator{}.Generate(context.Background(), sdk.Params{"pid": "-1", "top": "1"})
		if err != nil {
			t.Fatal(err)
		}
		got := gentest.Run(t, out.Script, exe+" getcwd 5000")
		if want := "Attaching 2 probes...\n" + getcwd + "5000\n\n\n\n"; got != want {
			t.Errorf("output:\n%s\nwant:\n%s", got, want)
		}
	})
	t.Run("all", func(t *testing.T) {
		out, err := Generator{}.Generate(context.Background(), sdk.Params{"pid": "-1"})
		if err != nil {
			t.Fatal(err)
		}
		got := gentest.Run(t, out.Script, exe+" getcwd 7")
		if counts := countsOf(t, got, getcwd, "Attaching 2 probes...\n"); len(counts) != 1 || counts[0] != 7 {
			t.Errorf("getcwd counted %v, want [7], in:\n%s", counts, got)
		}
	})
	// Batches counted every 10ms: each is printed (whole or in parts)
	// and cleared before the next begins, and never counted twice.
	t.Run("interval", func(t *testing.T) {
		out, err := Generator{}.Generate(context.Background(), sdk.Params{"pid": "-1", "interval": "10ms"})
		if err != nil {
			t.Fatal(err)
		}
		dir := gentest.TempDir(t)
		output, report := filepath.Join(dir, "out"), filepath.Join(dir, "report")
		const batches = 3
		got := gentest.RunToFile(t, out.Script, fmt.Sprintf("%s batches %s 200 %d %s", exe, output, batches, report), output)
		counts := countsOf(t, got, getcwd, "Attaching 3 probes...\n")
		r := gentest.ReadReport(t, report)[1:]
		if len(r) != 2*batches {
			t.Fatalf("report %q, want an offset and a count of calls per batch", r)
		}
		for i := 0; i < batches; i++ {
			start, _ := strconv.Atoi(r[2*i])
			calls, _ := strconv.Atoi(r[2*i+1])
			end := len(got)
			if i+1 < batches {
				end, _ = strconv.Atoi(r[2*i+2])
			}
			seg := countsOf(t, got[start:end], getcwd, "")
			sum := 0
			for _, n := range seg {
				sum += n
			}
			// Calls counted while a print was under way are lost, in
			// bpftrace too: no batch is counted exactly, but every
			// one is printed, and none more than once.
			if sum < 1 || sum > calls {
				t.Errorf("batch %d of %d calls printed as %v, want 1 to %d in all", i, calls, seg, calls)
			}
		}
		if len(counts) < batches {
			t.Errorf("getcwd counted %v, want a print per batch at least", counts)
		}
	})
}

// countsOf returns the counts of the lines of out starting with prefix,
// after checking that out starts with head.
func countsOf(t *testing.T, out, prefix, head string) []int {
	t.Helper()
	if !strings.HasPrefix(out, head) {
		t.Fatalf("output does not start with %q:\n%s", head, out)
	}
	var counts []int
	for _, line := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(line, prefix); ok {
			n, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			counts = append(counts, n)
		}
	}
	return counts
}
