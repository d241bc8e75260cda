package execsnoop

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/plugins/examples/internal/gentest"
	"github.com/tracebroker/tracebroker/plugins/examples/internal/script"
	"github.com/tracebroker/tracebroker/plugins/sdk"
)

func TestMain(m *testing.M) {
	gentest.Main(m, map[string]func([]string) error{
		// exec REPORT ARGV...: report the pid, then execute this binary
		// again with ARGV (an exec keeps the pid).
		"exec": func(args []string) error {
			if err := gentest.Report(args[0]); err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			return unix.Exec(exe, args[1:], os.Environ())
		},
		"true": func([]string) error { return nil },
	})
}

var generated = []struct {
	name   string
	params sdk.Params
	want   string
}{
	{"defaults", sdk.Params{"args": "true"}, `BEGIN
{
	printf("%-6s %-16s %s\n", "PID", "COMM", "ARGS");
}

tracepoint:syscalls:sys_enter_execve,
tracepoint:syscalls:sys_enter_execveat
{
	printf("%-6d %-16s ", pid, comm);
	join(args->argv);
}
`},
	// A direct caller that leaves out args gets its default.
	{"absent args", sdk.Params{"comm": "bash"}, `BEGIN
{
	printf("%-6s %-16s %s\n", "PID", "COMM", "ARGS");
}

tracepoint:syscalls:sys_enter_execve,
tracepoint:syscalls:sys_enter_execveat
/comm == "bash"/
{
	printf("%-6d %-16s ", pid, comm);
	join(args->argv);
}
`},
	{"filename", sdk.Params{"comm": `x"\`, "args": "false"}, `BEGIN
{
	printf("%-6s %-16s %s\n", "PID", "COMM", "PATH");
}

tracepoint:syscalls:sys_enter_execve,
tracepoint:syscalls:sys_enter_execveat
/comm == "x\"\\"/
{
	printf("%-6d %-16s %s\n", pid, comm, str(args->filename));
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
		{sdk.Params{"comm": "0123456789abcdef"}, `parameter comm: "0123456789abcdef" is 16 bytes long; at most 15 can match`},
		{sdk.Params{"comm": ""}, "parameter comm: must not be empty"},
		{sdk.Params{"comm": "a\x00"}, "contains a NUL byte"},
		{sdk.Params{"args": "yes"}, `parameter args: "yes" is not a boolean`},
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
		t.Run(tc.name, func(t *testing.T) { gentest.Compile(t, tc.want, false) })
	}
}

// TestEndToEnd traces a workload that executes a known command line.
// The -c command is itself executed by a shell (comm "sh"); filtering on
// the test binary's comm leaves only the workload's own exec.
func TestEndToEnd(t *testing.T) {
	exe, comm := gentest.Exe(t), gentest.Comm(t)
	report := filepath.Join(gentest.TempDir(t), "report")
	cmd := fmt.Sprintf("%s exec %s argv0 true 'two words' ''", exe, report)
	for _, tc := range []struct {
		name   string
		params sdk.Params
		want   string // the exec's line after pid and comm
	}{
		// join() separates arguments with spaces, whatever they hold.
		{"args", sdk.Params{"comm": comm, "args": "true"}, "argv0 true two words \n"},
		// str() reads at most 63 bytes.
		{"filename", sdk.Params{"comm": comm, "args": "false"}, exe[:min(len(exe), script.StrLen)] + "\n"},
		{"other comm", sdk.Params{"comm": "no-such-comm"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Generator{}.Generate(context.Background(), tc.params)
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(report)
			got := gentest.Run(t, out.Script, cmd)
			header := "ARGS"
			if tc.params["args"] == "false" {
				header = "PATH"
			}
			want := fmt.Sprintf("Attaching 3 probes...\n%-6s %-16s %s\n", "PID", "COMM", header)
			if tc.want != "" {
				want += fmt.Sprintf("%-6s %-16s %s", gentest.ReadReport(t, report)[0], comm, tc.want)
			}
			want += "\n\n"
			if got != want {
				t.Errorf("output:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
