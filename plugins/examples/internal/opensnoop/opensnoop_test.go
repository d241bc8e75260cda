package opensnoop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/plugins/examples/internal/gentest"
	"github.com/tracebroker/tracebroker/plugins/sdk"
)

func TestMain(m *testing.M) {
	gentest.Main(m, map[string]func([]string) error{
		// open REPORT DIR N: open DIR/known N times, then DIR/missing
		// once, which fails, and report the file descriptors. The
		// Go runtime may hold some already (its cgroup files), so
		// they are learned, not assumed.
		"open": func(args []string) error {
			n, _ := strconv.Atoi(args[2])
			var fds []any
			for range n {
				fd, err := unix.Open(filepath.Join(args[1], "known"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					return err
				}
				unix.Close(fd)
				fds = append(fds, fd)
			}
			if _, err := unix.Open(filepath.Join(args[1], "missing"), unix.O_RDONLY|unix.O_CLOEXEC, 0); !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("open missing: %v", err)
			}
			return gentest.Report(args[0], fds...)
		},
	})
}

var generated = []struct {
	name   string
	params sdk.Params
	want   string
}{
	{"no filter", sdk.Params{"failed": "false"}, `BEGIN
{
	printf("%-6s %-16s %4s %3s %s\n", "PID", "COMM", "FD", "ERR", "PATH");
}

tracepoint:syscalls:sys_enter_openat
{
	@filename[tid] = str(args->filename);
}

tracepoint:syscalls:sys_exit_openat
/has_key(@filename, tid)/
{
	$ret = args->ret;
	$fd = $ret >= 0 ? $ret : -1;
	$errno = $ret >= 0 ? 0 : -$ret;
	printf("%-6d %-16s %4d %3d %s\n", pid, comm, $fd, $errno, @filename[tid]);
	delete(@filename[tid]);
}

END
{
	clear(@filename);
}
`},
	{"pid and comm", sdk.Params{"pid": "1234", "comm": "nginx"}, `BEGIN
{
	printf("%-6s %-16s %4s %3s %s\n", "PID", "COMM", "FD", "ERR", "PATH");
}

tracepoint:syscalls:sys_enter_openat
/pid == 1234 && comm == "nginx"/
{
	@filename[tid] = str(args->filename);
}

tracepoint:syscalls:sys_exit_openat
/has_key(@filename, tid)/
{
	$ret = args->ret;
	$fd = $ret >= 0 ? $ret : -1;
	$errno = $ret >= 0 ? 0 : -$ret;
	printf("%-6d %-16s %4d %3d %s\n", pid, comm, $fd, $errno, @filename[tid]);
	delete(@filename[tid]);
}

END
{
	clear(@filename);
}
`},
	{"path and failed", sdk.Params{"path": "/etc/", "failed": "true"}, `BEGIN
{
	printf("%-6s %-16s %4s %3s %s\n", "PID", "COMM", "FD", "ERR", "PATH");
}

tracepoint:syscalls:sys_enter_openat
{
	@filename[tid] = str(args->filename);
}

tracepoint:syscalls:sys_exit_openat
/has_key(@filename, tid)/
{
	$ret = args->ret;
	$fd = $ret >= 0 ? $ret : -1;
	$errno = $ret >= 0 ? 0 : -$ret;
	if ($ret < 0 && strncmp(@filename[tid], "/etc/", 5) == 0) {
		printf("%-6d %-16s %4d %3d %s\n", pid, comm, $fd, $errno, @filename[tid]);
	}
	delete(@filename[tid]);
}

END
{
	clear(@filename);
}
`},
	// Quotes, backslashes and line breaks stay inside their literals;
	// the length compared is the path's, not its escaped form's.
	{"escaped", sdk.Params{"comm": `a"b\c`, "path": "/tmp/\"x\n\\y/"}, `BEGIN
{
	printf("%-6s %-16s %4s %3s %s\n", "PID", "COMM", "FD", "ERR", "PATH");
}

tracepoint:syscalls:sys_enter_openat
/comm == "a\"b\\c"/
{
	@filename[tid] = str(args->filename);
}

tracepoint:syscalls:sys_exit_openat
/has_key(@filename, tid)/
{
	$ret = args->ret;
	$fd = $ret >= 0 ? $ret : -1;
	$errno = $ret >= 0 ? 0 : -$ret;
	if (strncmp(@filename[tid], "/tmp/\"x\x0a\\y/", 11) == 0) {
		printf("%-6d %-16s %4d %3d %s\n", pid, comm, $fd, $errno, @filename[tid]);
	}
	delete(@filename[tid]);
}

END
{
	clear(@filename);
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
		{sdk.Params{"pid": "-5"}, "parameter pid: -5 is not a process id (1 to 4194304)"},
		{sdk.Params{"pid": "0"}, "parameter pid: 0 is not a process id"},
		{sdk.Params{"pid": "12x"}, `parameter pid: "12x" is not an integer`},
		{sdk.Params{"comm": "a-very-long-process-name"}, `parameter comm: "a-very-long-process-name" is 24 bytes long; at most 15 can match`},
		{sdk.Params{"comm": ""}, "parameter comm: must not be empty"},
		{sdk.Params{"path": "/" + strings.Repeat("x", 63)}, "is 64 bytes long; at most 63 can match"},
		{sdk.Params{"path": "/a\x00b"}, `parameter path: "/a\x00b" contains a NUL byte`},
		{sdk.Params{"failed": "maybe"}, `parameter failed: "maybe" is not a boolean`},
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

// TestEndToEnd traces a workload that opens a file in a fresh directory
// three times and a missing one once, filtered by that directory; one
// directory's name needs escaping in the script.
func TestEndToEnd(t *testing.T) {
	const opens = 3
	// The report is outside the directories whose opens are traced.
	tmp, reportDir := gentest.TempDir(t), gentest.TempDir(t)
	plain, odd := filepath.Join(tmp, "plain"), filepath.Join(tmp, `q"b\s`)
	for _, dir := range []string{plain, odd} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "known"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	report := filepath.Join(reportDir, "report")
	comm := gentest.Comm(t)
	for _, tc := range []struct {
		name           string
		dir            string
		params         sdk.Params
		known, missing bool // lines expected
	}{
		{"path", plain, sdk.Params{"path": plain + "/"}, true, true},
		{"failed", plain, sdk.Params{"path": plain + "/", "failed": "true"}, false, true},
		{"comm", plain, sdk.Params{"path": plain + "/", "comm": comm}, true, true},
		{"other comm", plain, sdk.Params{"path": plain + "/", "comm": "no-such-comm"}, false, false},
		{"escaped path", odd, sdk.Params{"path": odd + "/"}, true, true},
		{"other path", plain, sdk.Params{"path": odd + "/"}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Generator{}.Generate(context.Background(), tc.params)
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(report)
			got := gentest.Run(t, out.Script, fmt.Sprintf("%s open %s '%s' %d", gentest.Exe(t), report, tc.dir, opens))
			r := gentest.ReadReport(t, report)
			if len(r) != 1+opens {
				t.Fatalf("workload reported %q, want a pid and %d fds", r, opens)
			}
			want := "Attaching 4 probes...\nPID    COMM               FD ERR PATH\n"
			if tc.known {
				for _, fd := range r[1:] {
					want += fmt.Sprintf("%-6s %-16s %4s %3d %s\n", r[0], comm, fd, 0, filepath.Join(tc.dir, "known"))
				}
			}
			if tc.missing {
				want += fmt.Sprintf("%-6s %-16s %4d %3d %s\n", r[0], comm, -1, unix.ENOENT, filepath.Join(tc.dir, "missing"))
			}
			want += "\n\n\n"
			if got != want {
				t.Errorf("output:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
