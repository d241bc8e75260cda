// Package gentest is what the example generators' tests share: compiling
// a generated script against this kernel, and running it end to end with
// the test binary itself as the traced command.
package gentest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/tracefs"
	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
	"github.com/tracebroker/tracebroker/plugins/examples/internal/script"
	"github.com/tracebroker/tracebroker/plugins/sdk"
)

// workloadEnv marks a test binary started as a workload.
const workloadEnv = "TB_WORKLOAD"

// Main runs the tests; in a workload (the command Run starts), it runs
// instead the function its first argument names, with the rest, and
// exits. A workload must make exactly the calls its test expects, so
// each is a few plain system calls.
func Main(m *testing.M, workloads map[string]func(args []string) error) {
	if os.Getenv(workloadEnv) == "1" {
		if len(os.Args) < 2 || workloads[os.Args[1]] == nil {
			fmt.Fprintf(os.Stderr, "unknown workload %q\n", os.Args[1:])
			os.Exit(2)
		}
		if err := workloads[os.Args[1]](os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Setenv(workloadEnv, "1")
	os.Exit(m.Run())
}

// Exe is the test binary, which Run's commands start as a workload.
func Exe(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// Comm is the test binary's comm once executed: its name, truncated as
// the kernel truncates it.
func Comm(t testing.TB) string {
	c := filepath.Base(Exe(t))
	return c[:min(len(c), script.CommLen)]
}

// Compile checks that script compiles, without warnings, against this
// kernel's tracepoints; withChild compiles it as with -c, for cpid.
func Compile(t testing.TB, script string, withChild bool) {
	t.Helper()
	if _, err := tracefs.Root(); err != nil {
		t.Skipf("compiling against this kernel's tracepoints needs tracefs: %v", err)
	}
	req := &broker.Request{Name: "gen", Source: []byte(script)}
	if withChild {
		req.Command = "true"
	}
	_, warns, err := broker.Compile(req)
	if err != nil {
		t.Fatalf("compile:\n%v\nscript:\n%s", err, script)
	}
	if len(warns) > 0 {
		t.Errorf("compile warnings:\n%s", warns.Format(req.Name, req.Source))
	}
}

// Run traces script on the kernel while command runs, and returns what
// it printed. It fails the test on an error or anything on stderr.
func Run(t testing.TB, script, command string) string {
	t.Helper()
	var stdout bytes.Buffer
	run(t, script, command, &stdout)
	return stdout.String()
}

// RunToFile is Run with the output written to the file out as it comes,
// for a workload that watches what is printed.
func RunToFile(t testing.TB, script, command, out string) string {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	run(t, script, command, f)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func run(t testing.TB, script, command string, stdout io.Writer) {
	t.Helper()
	if err := bpf.Supported(); err != nil {
		t.Skipf("kernel tracing unavailable: %v", err)
	}
	kerneltest.Lock(t)
	var stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := &teeLog{w: stdout}
	err := broker.Run(ctx, broker.Request{Name: "gen", Source: []byte(script), Command: command, Stdout: out, Stderr: &stderr})
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("run: %v\nstderr:\n%s\nscript:\n%s", err, stderr.String(), script)
	}
	t.Logf("output:\n%s", out.b.String())
}

// teeLog keeps a copy of what is written, for the test's log.
type teeLog struct {
	w io.Writer
	b bytes.Buffer
}

func (l *teeLog) Write(p []byte) (int, error) {
	l.b.Write(p)
	return l.w.Write(p)
}

// TempDir returns a new directory under the system's temporary one,
// whose path is short enough for str()'s 63 bytes (t.TempDir's, named
// after the test, may not be).
func TempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Report writes this process's pid and fields to file, for the test
// to expect in the output what only the workload knows. It makes bare
// system calls: os.WriteFile could start the Go runtime's poller, whose
// file descriptors would shift the workload's.
func Report(file string, fields ...any) error {
	fd, err := unix.Open(file, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, []byte(fmt.Sprintln(append([]any{os.Getpid()}, fields...)...)))
	return err
}

// ReadReport returns what a workload's Report wrote: its pid, then its
// fields.
func ReadReport(t testing.TB, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// CheckInfo checks what a generator declares: a name, a version,
// parameters with distinct names, known types and defaults of their
// type; and that it generates from the defaults alone, as the host calls
// it when no parameter is given.
func CheckInfo(t testing.TB, g sdk.Generator) {
	t.Helper()
	info, err := g.Describe()
	if err != nil {
		t.Fatal(err)
	}
	if info.Name == "" || info.Version == "" || info.Description == "" {
		t.Errorf("incomplete info %+v", info)
	}
	seen, defaults := map[string]bool{}, sdk.Params{}
	for _, p := range info.Params {
		if seen[p.Name] {
			t.Errorf("parameter %s declared twice", p.Name)
		}
		seen[p.Name] = true
		if p.Help == "" {
			t.Errorf("parameter %s has no help", p.Name)
		}
		if p.Default == "" {
			continue
		}
		defaults[p.Name] = p.Default
		ps := sdk.Params{p.Name: p.Default}
		switch p.Type {
		case sdk.String:
		case sdk.Int:
			_, _, err = ps.Int(p.Name)
		case sdk.Bool:
			_, err = ps.Bool(p.Name)
		case sdk.Duration:
			_, _, err = ps.Duration(p.Name)
		default:
			err = fmt.Errorf("unknown type %q", p.Type)
		}
		if err != nil {
			t.Errorf("parameter %s: default: %v", p.Name, err)
		}
	}
	if _, err := g.Generate(context.Background(), defaults); err != nil {
		t.Errorf("generate with the defaults %v: %v", defaults, err)
	}
}
