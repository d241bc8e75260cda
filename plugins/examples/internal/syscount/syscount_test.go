package syscount

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf/tracefs"
	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
	"github.com/tracebroker/tracebroker/plugins/examples/internal/gentest"
	"github.com/tracebroker/tracebroker/plugins/sdk"
)

func TestMain(m *testing.M) {
	gentest.Main(m, map[string]func([]string) error{
		// getcwd N [MS]: N getcwd calls, which the Go runtime never
		// makes itself; with MS, a pause of MS milliseconds and N more.
		"getcwd": func(args []string) error {
			n, _ := strconv.Atoi(args[0])
			kerneltest.Syscalls(n, 0)
			if len(args) > 1 {
				ms, _ := strconv.Atoi(args[1])
				time.Sleep(time.Duration(ms) * time.Millisecond)
				kerneltest.Syscalls(n, 0)
			}
			return nil
		},
	})
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
	// Two batches 100ms apart, counted every 10ms: each is printed
	// (whole or in parts) and cleared before the next, and none is
	// lost between an interval and END.
	t.Run("interval", func(t *testing.T) {
		out, err := Generator{}.Generate(context.Background(), sdk.Params{"pid": "-1", "interval": "10ms"})
		if err != nil {
			t.Fatal(err)
		}
		got := gentest.Run(t, out.Script, exe+" getcwd 500 100")
		counts := countsOf(t, got, getcwd, "Attaching 3 probes...\n")
		sum := 0
		for _, n := range counts {
			sum += n
		}
		if len(counts) < 2 || sum != 1000 {
			t.Errorf("getcwd counted %v, want at least 2 prints adding up to 1000, in:\n%s", counts, got)
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
