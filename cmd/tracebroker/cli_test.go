package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/tracefs"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// binary is the tracebroker command built once for the whole test, run as
// a user runs it.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tracebroker-cli")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The pair make builds: every test runs the lean tracebroker, and
	// its RPC commands run in tracebroker-rpc beside it.
	binary = filepath.Join(dir, "tracebroker")
	if err := kerneltest.BuildPair(".", binary); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.RemoveAll(filepath.Dir(testKey))
	os.Exit(code)
}

// need says what a test needs from the machine.
type need int

const (
	needNothing     need = iota
	needTracefs          // list reads tracefs
	needKernel           // run loads and attaches BPF programs
	needKernelAlone      // needKernel, for a test that storms tracepoints: it runs alone
	needBTF              // list tp_btf reads the kernel's BTF
)

func require(t *testing.T, n need) {
	t.Helper()
	switch n {
	case needTracefs:
		if _, err := tracefs.Root(); err != nil {
			t.Skipf("tracefs unavailable: %v", err)
		}
	case needKernel, needKernelAlone:
		if err := bpf.Supported(); err != nil {
			t.Skipf("kernel tracing unavailable: %v", err)
		}
		if n == needKernelAlone {
			kerneltest.Exclusive(t)
		} else {
			lockKernel(t)
		}
	case needBTF:
		if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
			t.Skipf("kernel BTF unavailable: %v", err)
		}
	}
}

func lockKernel(t testing.TB) { kerneltest.Lock(t) }

type result struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// tracebroker runs the binary to its end (30 s at most).
func tracebroker(t *testing.T, args ...string) result {
	t.Helper()
	return tracebrokerAt(t, binary, args...)
}

// tracebrokerAt runs a copy of the binary at path, for tests where which
// file runs matters (measured identity).
func tracebrokerAt(t *testing.T, path string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	default:
		t.Fatalf("tracebroker %q: %v\nstderr: %s", args, err, r.stderr)
	}
	return r
}

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	badScript := filepath.Join(dir, "bad.bt")
	if err := os.WriteFile(badScript, []byte("BEGIN {\n  @x = count2();\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	goodScript := filepath.Join(dir, "good.bt")
	if err := os.WriteFile(goodScript, []byte("BEGIN { printf(\"from a file\\n\"); exit(); }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.bt")
	t.Cleanup(func() {
		// The -o case's file holds what stdout would have, but for the
		// blank lines before the maps, which bpftrace writes to stdout.
		if b, err := os.ReadFile(filepath.Join(dir, "out.txt")); err == nil && string(b) != "Attaching 1 probe...\nhi\n" {
			t.Errorf("-o file holds %q", b)
		}
	})

	tests := []struct {
		name string
		args []string
		need need
		code int
		// Exact stdout and stderr, unless the RE or contains forms are set.
		stdout, stderr string
		stdoutRE       *regexp.Regexp
		stdoutHas      []string
		stderrRE       *regexp.Regexp
		minTook        time.Duration
	}{
		{
			name:   "unknown function",
			args:   []string{"run", "-e", "BEGIN { @x = count2(); }"},
			code:   1,
			stderr: "stdin:1:14-20: ERROR: Unknown function: count2\nBEGIN { @x = count2(); }\n             ^~~~~~\n",
		},
		{
			name:   "error in a script file is reported with its path",
			args:   []string{"run", badScript},
			code:   1,
			stderr: badScript + ":2:8-14: ERROR: Unknown function: count2\n  @x = count2();\n       ^~~~~~\n",
		},
		{
			name:   "no program",
			args:   []string{"run"},
			code:   1,
			stderr: "ERROR: no program given: use -e PROGRAM, FILE or --gen NAME\n",
		},
		{
			// As in bpftrace, the words after -e PROGRAM are its
			// positional parameters, a file's name too.
			name:   "words after -e are $1, $2",
			args:   []string{"run", "-e", `BEGIN { printf("%d %s %d %d\n", $#, str($1), $2 + 1, $3); exit(); }`, goodScript, "41"},
			need:   needKernel,
			stdout: "Attaching 1 probe...\n2 " + goodScript + " 42 0\n\n\n",
		},
		{
			name:   "replay --info takes no script",
			args:   []string{"replay", "--info", missing, "-e", "BEGIN { exit(); }"},
			code:   1,
			stderr: "ERROR: replay --info takes the recording alone: no script\n",
		},
		{
			name:   "script file missing",
			args:   []string{"run", missing},
			code:   1,
			stderr: "ERROR: failed to open file '" + missing + "': No such file or directory\n",
		},
		{
			name:   "-q leaves out the attaching line, as bpftrace -q",
			args:   []string{"run", "-q", "-e", `BEGIN { printf("hi\n"); exit(); }`},
			need:   needKernel,
			stdout: "hi\n\n\n",
		},
		{
			name:   "-o writes the output to a file",
			args:   []string{"run", "-o", filepath.Join(dir, "out.txt"), "-e", `BEGIN { printf("hi\n"); exit(); }`},
			need:   needKernel,
			stdout: "\n\n",
		},
		{
			name:   "bad duration",
			args:   []string{"run", "-d", "soon", "-e", "BEGIN { @a = 1; }"},
			code:   1,
			stderr: `ERROR: invalid duration "soon": use e.g. 5s, 500ms, 1m or a number of seconds` + "\n",
		},
		{
			name:   "negative duration",
			args:   []string{"run", "-d", "-1", "-e", "BEGIN { @a = 1; }"},
			code:   1,
			stderr: `ERROR: duration must be positive: "-1"` + "\n",
		},
		{
			name:   "mode interp",
			args:   []string{"run", "--mode", "interp", "-e", "BEGIN { @a = 1; printf(\"%s\\n\", comm); exit(); }"},
			stdout: "Attaching 1 probe...\ntracebroker\n\n\n@a: 1\n",
		},
		{
			name: "help",
			args: []string{"run", "--help"},
			stdoutHas: []string{
				"-e, --program", "-c, --command", "-p, --pid", "-f, --format",
				"-d, --duration", "-v, --verbose", "--mode", "--max-map-keys",
			},
		},
		{
			name:   "list one tracepoint",
			args:   []string{"list", "tracepoint:syscalls:sys_enter_openat"},
			need:   needTracefs,
			stdout: "tracepoint:syscalls:sys_enter_openat\n",
		},
		{
			name:   "list -v shows the args",
			args:   []string{"list", "-v", "tracepoint:syscalls:sys_enter_openat"},
			need:   needTracefs,
			stdout: "tracepoint:syscalls:sys_enter_openat\n    int __syscall_nr\n    int dfd\n    const char * filename\n    int flags\n    umode_t mode\n",
		},
		{
			name:   "list tp_btf with a wildcard",
			args:   []string{"list", "tp_btf:sched_process_e*"},
			need:   needBTF,
			stdout: "tp_btf:sched_process_exec\ntp_btf:sched_process_exit\n",
		},
		{
			name:   "list -v tp_btf shows the arguments",
			args:   []string{"list", "-v", "tp_btf:sys_enter"},
			need:   needBTF,
			stdout: "tp_btf:sys_enter\n    struct pt_regs *regs\n    long int id\n",
		},
		{
			name:   "printf and exit",
			args:   []string{"run", "-e", `BEGIN { printf("hi\n"); exit(); }`},
			need:   needKernel,
			stdout: "Attaching 1 probe...\nhi\n\n\n",
		},
		{
			name:   "script file",
			args:   []string{"run", goodScript},
			need:   needKernel,
			stdout: "Attaching 1 probe...\nfrom a file\n\n\n",
		},
		{
			name:    "duration in seconds",
			args:    []string{"run", "-d", "0.3", "-e", "BEGIN { @a = 1; }"},
			need:    needKernel,
			stdout:  "Attaching 1 probe...\n\n\n@a: 1\n",
			minTook: 300 * time.Millisecond,
		},
		{
			name:   "-c traces the command from its exec",
			args:   []string{"run", "-c", "/bin/true", "-e", "tracepoint:syscalls:sys_enter_execve /pid == cpid/ { @ = count(); }"},
			need:   needKernel,
			stdout: "Attaching 1 probe...\n\n\n@: 1\n",
		},
		{
			name:   "-c command not found",
			args:   []string{"run", "-c", "tb-no-such-command", "-e", "BEGIN { @a = 1; }"},
			need:   needKernel,
			code:   1,
			stderr: "ERROR: failed to find executable tb-no-such-command: exec: \"tb-no-such-command\": executable file not found in $PATH\n",
		},
		{
			name:     "-v reports what is loaded and attached",
			args:     []string{"run", "-v", "-e", `BEGIN { printf("hi\n"); exit(); }`},
			need:     needKernel,
			stdout:   "Attaching 1 probe...\nhi\n\n\n",
			stderrRE: regexp.MustCompile(`^Gatekeeper: jit mode: loose default: uid 0 may run any program; JIT available\nKernel gate: (enforcing|absent)[^\n]*\nProgram BEGIN: \d+ instructions, id \d+\nLoaded 1 programs and \d+ maps in \S+\nAttached 0 probes in \S+\nRead and printed 0 maps in \S+\nDetached in \S+\n$`),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require(t, tc.need)
			r := tracebroker(t, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit code %d, want %d\nstderr: %s", r.code, tc.code, r.stderr)
			}
			switch {
			case tc.stdoutRE != nil:
				if !tc.stdoutRE.MatchString(r.stdout) {
					t.Errorf("stdout %q does not match %s", r.stdout, tc.stdoutRE)
				}
			case tc.stdoutHas != nil:
				for _, s := range tc.stdoutHas {
					if !strings.Contains(r.stdout, s) {
						t.Errorf("stdout does not mention %q:\n%s", s, r.stdout)
					}
				}
			default:
				if r.stdout != tc.stdout {
					t.Errorf("stdout %q, want %q", r.stdout, tc.stdout)
				}
			}
			if tc.stderrRE != nil {
				if !tc.stderrRE.MatchString(r.stderr) {
					t.Errorf("stderr %q does not match %s", r.stderr, tc.stderrRE)
				}
			} else if r.stderr != tc.stderr {
				t.Errorf("stderr %q, want %q", r.stderr, tc.stderr)
			}
			if r.took < tc.minTook {
				t.Errorf("took %v, want at least %v", r.took, tc.minTook)
			}
		})
	}
}

// TestCLISignal: SIGINT (Ctrl-C) and SIGTERM end a trace as bpftrace does:
// the maps are printed and the exit status is 0. The signal comes once the
// interval has fired, which the trace says, rather than after a while.
func TestCLISignal(t *testing.T) {
	// A double Ctrl-C ends it as one does, as in bpftrace (which
	// exits 0 with its maps printed): no "context canceled".
	for _, sigs := range [][]syscall.Signal{{syscall.SIGINT}, {syscall.SIGTERM}, {syscall.SIGINT, syscall.SIGINT}} {
		sig := sigs[0]
		name := sig.String()
		if len(sigs) > 1 {
			name = "double " + name
		}
		t.Run(name, func(t *testing.T) {
			require(t, needKernel)
			cmd := exec.Command(binary, "run", "-e", `interval:ms:10 { @n = @n + 1; if (@n == 1) { printf("fired\n"); } }`)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			pipe, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The first line comes once the probes are loaded and BEGIN
			// ran, the second once the interval fired.
			first, fired := make(chan string, 1), make(chan string, 1)
			done := make(chan struct{})
			var rest []byte
			var readErr error
			go func() {
				defer close(done)
				out := bufio.NewReader(pipe)
				line, _ := out.ReadString('\n')
				first <- line
				line, _ = out.ReadString('\n')
				fired <- line
				rest, readErr = io.ReadAll(out)
				cmd.Wait()
			}()
			t.Cleanup(func() {
				cmd.Process.Kill() // if still running
				<-done
			})
			// stderr may be read once the process is gone.
			fail := func(format string, args ...any) {
				t.Helper()
				cmd.Process.Kill()
				<-done
				t.Fatalf(format+"; stderr: %s", append(args, stderr.String())...)
			}
			select {
			case line := <-first:
				if line != "Attaching 1 probe...\n" {
					fail("first line %q", line)
				}
			case <-time.After(30 * time.Second):
				fail("nothing printed after 30s")
			}
			select {
			case line := <-fired:
				if line != "fired\n" {
					fail("second line %q", line)
				}
			case <-time.After(30 * time.Second):
				fail("the interval had not fired after 30s")
			}
			sent := time.Now()
			for _, sig := range sigs {
				if err := cmd.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				fail("still running 30s after %v", sig)
			}
			t.Logf("exited %v after the signal", time.Since(sent).Round(time.Millisecond))
			if readErr != nil {
				t.Fatal(readErr)
			}
			if code := cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("exit code %d, want 0; stderr: %s", code, stderr.String())
			}
			m := regexp.MustCompile(`^\n\n@n: (\d+)\n$`).FindSubmatch(rest)
			if m == nil {
				t.Fatalf("stdout %q", rest)
			}
			if n, _ := strconv.Atoi(string(m[1])); n <= 0 {
				t.Errorf("@n: %d, want > 0", n)
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr %q, want nothing", stderr.String())
			}
		})
	}
}

// TestSubcommandsTable: the table newRootCmdFor builds from names every
// command of the root, each by its own name, and a command line that
// names one builds the root with that one alone.
func TestSubcommandsTable(t *testing.T) {
	root := newRootCmd()
	var names []string
	for _, c := range root.Commands() {
		names = append(names, c.Name())
	}
	if len(names) != len(subcommands) {
		t.Errorf("root has %d commands %v, the table %d", len(names), names, len(subcommands))
	}
	for _, c := range subcommands {
		if got := c.new().Name(); got != c.name {
			t.Errorf("subcommands names %q a command named %q", c.name, got)
		}
		only := newRootCmdFor([]string{c.name, "--help"})
		if n := len(only.Commands()); n != 1 || only.Commands()[0].Name() != c.name {
			t.Errorf("root for %q has %d commands", c.name, n)
		}
	}
	if n := len(newRootCmdFor([]string{"help", "run"}).Commands()); n != len(subcommands) {
		t.Errorf("root for help has %d commands, want all %d", n, len(subcommands))
	}
}
