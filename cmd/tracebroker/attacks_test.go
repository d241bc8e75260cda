package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/broker/recording"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
	"github.com/tracebroker/tracebroker/internal/recordingtest"
)

// evil is what an attacker puts where a terminal will show it: a title
// change (OSC), a screen clear (CSI), an 8-bit CSI and a bidi override.
const evil = "\x1b]0;pwned\x07\x1b[2J\u009b6n\u202e"

// evilShown is evil as the terminal must show it.
const evilShown = `\x1b]0;pwned\x07\x1b[2J\u009b6n\u202e`

// ptyRun runs cmd with stdout on a pseudo-terminal and stderr on a
// pipe, and returns what each got; a pty turns \n into \r\n, which is
// undone.
func ptyRun(t *testing.T, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	return ptyStart(t, cmd)()
}

// ptyStart starts cmd as ptyRun runs it; wait waits for it on the
// test's goroutine.
func ptyStart(t *testing.T, cmd *exec.Cmd) (wait func() (stdout, stderr string, code int)) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = slave, &errb
	if err := cmd.Start(); err != nil {
		slave.Close()
		t.Fatal(err)
	}
	slave.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(&out, master) // ends with EIO once the last writer closes the slave
	}()
	return func() (string, string, int) {
		t.Helper()
		err := cmd.Wait()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the pty did not close")
		}
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(out.String(), "\r\n", "\n"), errb.String(), code
	}
}

// asUser runs the binary at bin as uid (0: as this process) in dir.
func asUser(bin, dir string, uid int, args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Cancel = func() error { cancel(); return cmd.Process.Kill() }
	cmd.Dir = dir
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	}
	return cmd
}

// craftRecording is testdata's cat.tbrec with its header changed by edit,
// as an attacker who hands someone a recording writes it.
func craftRecording(t *testing.T, path string, edit func(h *recording.Header)) {
	t.Helper()
	recordingtest.Rewrite(t, "../../testdata/recordings/cat.tbrec", path, edit)
}

// TestAttacksEscapes: what others control — a recording's script, a
// traced string, a request's name, a token's claims — reaches a terminal
// as visible text, while a pipe gets bpftrace's bytes.
func TestAttacksEscapes(t *testing.T) {
	dir, err := os.MkdirTemp("", "tbescapes")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "tracebroker")
	if err := copyPair(bin); err != nil {
		t.Fatal(err)
	}
	// A recording whose script prints evil for each file cat opened.
	printing := filepath.Join(dir, "printing.tbrec")
	craftRecording(t, printing, func(h *recording.Header) {
		h.Script.Source = fmt.Sprintf(`tracepoint:syscalls:sys_enter_openat /pid == cpid/ { printf("%%s %s\n", comm); exit(); }`, strings.ReplaceAll(evil, "\x1b", `\x1b`))
	})
	// A recording whose script has an error, and evil in its name and
	// around the error.
	failing := filepath.Join(dir, "failing.tbrec")
	craftRecording(t, failing, func(h *recording.Header) {
		h.Script.Name = "x" + evil + ".bt"
		h.Script.Source = "tracepoint:syscalls:sys_enter_openat { /*" + evil + "*/ nosuch(); }"
	})
	for _, tt := range []struct {
		name      string
		kernel    bool
		pty       bool
		args      []string
		stdout    string // what stdout must contain
		stderr    string // what stderr must contain
		rawStdout bool   // stdout keeps the raw bytes
	}{
		{"item12/replay_on_terminal", false, true, []string{"replay", printing}, "cat " + evilShown + "\n", "", false},
		{"item12/replay_to_pipe", false, false, []string{"replay", printing}, "cat " + evil + "\n", "", true},
		{"item12/replay_error", false, false, []string{"replay", failing}, "", "x" + evilShown + ".bt:1:", false},
		{"item12/replay_error_on_terminal", false, true, []string{"replay", failing}, "", "/*" + evilShown + "*/ nosuch(); }\n", false},
		{"item12/run_printf_on_terminal", true, true, []string{"run", "-e", `BEGIN { printf("%s\n", "` + strings.ReplaceAll(evil, "\x1b", `\x1b`) + `"); exit(); }`}, evilShown + "\n", "", false},
		{"item12/run_printf_to_pipe", true, false, []string{"run", "-e", `BEGIN { printf("%s\n", "` + strings.ReplaceAll(evil, "\x1b", `\x1b`) + `"); exit(); }`}, evil + "\n", "", true},
		{"item12/run_json_on_terminal", true, true, []string{"run", "-f", "json", "-e", `BEGIN { printf("%s\n", "` + strings.ReplaceAll(evil, "\x1b", `\x1b`) + `"); exit(); }`}, `\u001b]0;pwned\u0007\u001b[2J\u009b6n\u202e\n`, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			uid := nobody
			if tt.kernel {
				require(t, needKernel)
				uid = 0
			}
			var stdout, stderr string
			if tt.pty {
				stdout, stderr, _ = ptyRun(t, asUser(bin, dir, uid, tt.args...))
			} else {
				r := (&errorsEnv{dir: dir, tracebroker: bin}).runAs(t, uid, tt.args...)
				stdout, stderr = r.stdout, r.stderr
			}
			if !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stdout %q\nstderr %q\nwant them to contain %q and %q", stdout, stderr, tt.stdout, tt.stderr)
			}
			if !tt.rawStdout && strings.ContainsAny(stdout, "\x1b\x07\u009b\u202e") {
				t.Errorf("stdout %q reaches the terminal raw", stdout)
			}
			if strings.ContainsAny(stderr, "\x1b\x07\u009b\u202e") {
				t.Errorf("stderr %q has control characters", stderr)
			}
		})
	}

	// A traced process names itself: its comm on the admin's terminal.
	t.Run("item12/comm_on_terminal", func(t *testing.T) {
		require(t, needKernel)
		named := filepath.Join(dir, "\x1b]0;x\x07\x1b[5m")
		if err := copyFile("/bin/true", named, 0o755); err != nil {
			t.Fatal(err)
		}
		script := `tracepoint:syscalls:sys_enter_exit_group /pid == cpid/ { printf("[%s]\n", comm); }`
		stdout, stderr, code := ptyRun(t, asUser(bin, dir, 0, "run", "-q", "-c", "'"+named+"'", "-e", script))
		if code != 0 || !strings.Contains(stdout, `[\x1b]0;x\x07\x1b[5m]`) || strings.ContainsRune(stdout, 0x1b) {
			t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})

	// Through the daemon: nobody names a trace, and prints, with evil.
	t.Run("item12/daemon", func(t *testing.T) {
		require(t, needKernel)
		e := newDaemonEnv(t)
		script := filepath.Join(e.dir, "s"+evil+".bt")
		src := fmt.Sprintf(`tracepoint:syscalls:sys_enter_getcwd /pid == %d/ { printf("%%s\n", "%s"); }`, os.Getpid(), strings.ReplaceAll(evil, "\x1b", `\x1b`))
		if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		client := e.command(nobody, "trace", "--socket", e.socket, "--token-file", e.tokenFile, script)
		wait := ptyStart(t, client)
		e.attached(t, 1)
		// The administrator's listing shows the name escaped, and
		// --json is JSON.
		list := e.run(t, 0, "sessions", "list", "--socket", e.socket)
		if !strings.Contains(list.stdout, "s"+evilShown+".bt") || strings.ContainsAny(list.stdout, "\x1b\x07\u009b\u202e") {
			t.Errorf("sessions list:\n%q", list.stdout)
		}
		if js := e.run(t, 0, "sessions", "list", "--json", "--socket", e.socket); !json.Valid([]byte(js.stdout)) || strings.ContainsAny(js.stdout, "\x1b\x07") {
			t.Errorf("sessions list --json:\n%q", js.stdout)
		}
		kerneltest.Syscalls(1, 0)
		client.Process.Signal(os.Interrupt)
		stdout, _, _ := wait()
		if !strings.Contains(stdout, evilShown+"\n") || strings.ContainsAny(stdout, "\x1b\x07\u009b\u202e") {
			t.Errorf("trace on a terminal: %q", stdout)
		}
	})

	// Token claims are whoever minted the token's.
	t.Run("item12/token_inspect", func(t *testing.T) {
		if r := tracebroker(t, "attest", "keygen", "--out", filepath.Join(dir, "issuer")); r.code != 0 {
			t.Fatal(r.stderr)
		}
		r := tracebroker(t, "token", "issue", "--key", filepath.Join(dir, "issuer.key"), "--sub", "mallory"+evil, "--scope", "trace", "--ttl", "1h")
		if r.code != 0 {
			t.Fatalf("issue: %s", r.stderr)
		}
		out := tracebroker(t, "token", "inspect", strings.TrimSpace(r.stdout))
		if out.code != 0 || strings.ContainsAny(out.stdout, "\x1b\x07\u009b\u202e") || !strings.Contains(out.stdout, `\u001b]0;pwned\u0007\u001b[2J\u009b6n\u202e`) {
			t.Errorf("inspect: exit %d\n%s%s", out.code, out.stdout, out.stderr)
		}
	})
}

// TestAttacksBounds: nobody, with a token, sends the daemon a script that
// used to kill it and one over its size limit, each through the CLI; both
// are refused with a bounded error and the daemon serves the next trace.
func TestAttacksBounds(t *testing.T) {
	require(t, needKernel)
	e := newDaemonEnv(t)
	write := func(name, src string) string {
		path := filepath.Join(e.dir, name)
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	getcwd := fmt.Sprintf("tracepoint:syscalls:sys_enter_getcwd /pid == %d/ ", os.Getpid())
	for _, tt := range []struct {
		name, script, stderr string
	}{
		{"item2/plus_chain_100k", write("plus.bt", getcwd+"{ @x = 1"+strings.Repeat("+1", 100_000)+"; }"),
			fmt.Sprintf("ERROR: program is too large (more than %d expressions, statements and probes)\n...1+1+1", syntax.MaxNodes)},
		{"item2/ternary_chain_60k", write("ternary.bt", getcwd+"{ @x = "+strings.Repeat("1?1:", 60_000)+"1; }"),
			fmt.Sprintf("ERROR: program is nested too deeply (more than %d levels)\n...", syntax.MaxDepth)},
		{"item2/script_over_limit", write("big.bt", strings.Repeat("/", 300<<10)),
			"ERROR: script of 307200 bytes is larger than 262144 (serve --max-script-bytes)\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run(t, nobody, "trace", "--socket", e.socket, "--token-file", e.tokenFile, tt.script)
			if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, tt.stderr) || len(r.stderr) > 4096 {
				t.Errorf("exit %d, stdout %q, stderr (%d bytes) %.600q; want exit 1 and %q", r.code, r.stdout, len(r.stderr), r.stderr, tt.stderr)
			}
		})
	}
	// The daemon is up, and counts exactly.
	var out, errb bytes.Buffer
	client := e.command(nobody, "trace", "--socket", e.socket, "--token-file", e.tokenFile, "-e", getcwd+"{ @ = count(); }")
	client.Stdout, client.Stderr = &out, &errb
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	e.attached(t, 1)
	kerneltest.Syscalls(6, 0)
	client.Process.Signal(os.Interrupt)
	if err := client.Wait(); err != nil || out.String() != "Attaching 1 probe...\n\n\n@: 6\n" {
		t.Errorf("after the attacks: %v, stdout %q, stderr %q", err, out.String(), errb.String())
	}
}
