package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// daemonEnv is a daemon run as a user runs it: `tracebroker serve` in a
// process of its own, a state directory from `tracebroker init`, and a
// token from `tracebroker token issue`, used by nobody.
type daemonEnv struct {
	dir, bin, state, socket, tokenFile string
	serve                              *exec.Cmd
	serveErr                           bytes.Buffer
	exited                             chan error
}

func newDaemonEnv(t *testing.T, serveArgs ...string) *daemonEnv {
	t.Helper()
	// nobody reaches the socket, the binary and the token through dir.
	dir := kerneltest.SharedDir(t)
	e := &daemonEnv{dir: dir, bin: filepath.Join(dir, "tracebroker"), state: filepath.Join(dir, "state"),
		socket: filepath.Join(dir, "broker.sock"), tokenFile: filepath.Join(dir, "token")}
	if err := copyPair(e.bin); err != nil {
		t.Fatal(err)
	}
	e.must(t, "init", "--state", e.state)
	e.must(t, "attest", "keygen", "--out", filepath.Join(dir, "issuer"))
	if err := copyFile(filepath.Join(dir, "issuer.pub"), filepath.Join(e.state, "issuers", "issuer.pub"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.issueToken(t, e.tokenFile, "trace probe:tracepoint:syscalls:sys_enter_getcwd")
	e.serve = exec.Command(e.bin, append([]string{"serve", "--state", e.state, "--socket", e.socket, "--socket-group", fmt.Sprint(nobody), "--log-format", "json"}, serveArgs...)...)
	e.serve.Stderr = &e.serveErr
	if err := e.serve.Start(); err != nil {
		t.Fatal(err)
	}
	e.exited = make(chan error, 1)
	go func() { e.exited <- e.serve.Wait() }()
	t.Cleanup(func() {
		e.serve.Process.Kill()
		<-e.exited
		if t.Failed() {
			t.Logf("serve's log:\n%s", e.serveErr.String())
		}
	})
	for i := 0; ; i++ {
		if r := e.run(t, 0, "sessions", "list", "--socket", e.socket); r.code == 0 {
			break
		} else if i > 100 {
			t.Fatalf("the daemon does not answer: %s", r.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return e
}

// issueToken writes a token for alice with scope to path, for nobody to
// read.
func (e *daemonEnv) issueToken(t *testing.T, path, scope string) {
	t.Helper()
	tok := e.must(t, "token", "issue", "--key", filepath.Join(e.dir, "issuer.key"), "--sub", "alice", "--scope", scope, "--ttl", "10m")
	if err := os.WriteFile(path, []byte(tok), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (e *daemonEnv) must(t *testing.T, args ...string) string {
	t.Helper()
	r := e.run(t, 0, args...)
	if r.code != 0 {
		t.Fatalf("tracebroker %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// command is the binary with args as uid (0: as this process).
func (e *daemonEnv) command(uid int, args ...string) *exec.Cmd {
	cmd := exec.Command(e.bin, args...)
	cmd.Dir = e.dir
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	}
	return cmd
}

func (e *daemonEnv) run(t *testing.T, uid int, args ...string) result {
	t.Helper()
	return runCmd(t, e.command(uid, args...))
}

// runCmd runs cmd to its end and returns what it wrote and its exit
// status.
func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// attached waits until the daemon lists n sessions with probes attached.
func (e *daemonEnv) attached(t *testing.T, n int) {
	t.Helper()
	for i := 0; ; i++ {
		r := e.run(t, 0, "sessions", "list", "--json", "--socket", e.socket)
		if strings.Count(r.stdout, `"mode":"jit"`) >= n {
			return
		}
		if i > 500 {
			t.Fatalf("%d sessions not attached: %s%s", n, r.stdout, r.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDaemonCLI: nobody traces through the daemon with a token, and
// only with one; Ctrl-C and SIGTERM end traces with their maps printed;
// the audit log verifies; nothing stays loaded.
func TestDaemonCLI(t *testing.T) {
	require(t, needKernel)
	before, _ := kerneltest.LoadedIDs(t)
	revoked, err := os.CreateTemp("", "tbrevoked")
	if err != nil {
		t.Fatal(err)
	}
	revoked.Close()
	defer os.Remove(revoked.Name())
	e := newDaemonEnv(t, "--revoked", revoked.Name())
	script := fmt.Sprintf("tracepoint:syscalls:sys_enter_getcwd /pid == %d/ { @ = count(); }", os.Getpid())

	for _, tt := range []struct {
		name   string
		uid    int
		args   []string
		stderr *regexp.Regexp
	}{
		{"nobody_without_token", nobody, []string{"trace", "--socket", e.socket, "-e", script},
			regexp.MustCompile(`^ERROR: a token is required: only root on the unix socket may trace without one \(you are uid 65534 \(pid \d+\)\)\n$`)},
		{"nobody_lists_sessions", nobody, []string{"sessions", "list", "--socket", e.socket},
			regexp.MustCompile(`^ERROR: only root on the unix socket may list sessions \(you are uid 65534 \(pid \d+\)\)\n$`)},
		{"probe_outside_scope", nobody, []string{"trace", "--socket", e.socket, "--token-file", e.tokenFile, "-e", "tracepoint:syscalls:sys_enter_getpid { @ = count(); }"},
			regexp.MustCompile(`^ERROR: the token of "alice" does not allow probe tracepoint:syscalls:sys_enter_getpid \(its probe scopes: probe:tracepoint:syscalls:sys_enter_getcwd\)\n$`)},
		{"script_error", nobody, []string{"trace", "--socket", e.socket, "--token-file", e.tokenFile, "-e", "tracepoint:syscalls:sys_enter_getcwd { @ = count2(); }"},
			regexp.MustCompile(`^stdin:1:44-50: ERROR: Unknown function: count2\ntracepoint:syscalls:sys_enter_getcwd \{ @ = count2\(\); \}\n {43}\^~~~~~\n$`)},
		{"no_daemon", nobody, []string{"trace", "--socket", filepath.Join(e.dir, "nosuch.sock"), "--token-file", e.tokenFile, "-e", script},
			regexp.MustCompile("^ERROR: cannot connect to " + regexp.QuoteMeta(filepath.Join(e.dir, "nosuch.sock")) + ": there is no socket there; is `tracebroker serve` running\\? \\(give --socket PATH if it listens elsewhere\\)\n$")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run(t, tt.uid, tt.args...)
			if r.code != 1 || r.stdout != "" || !tt.stderr.MatchString(r.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 1, no stdout, stderr matching %s", r.code, r.stdout, r.stderr, tt.stderr)
			}
		})
	}

	// Ctrl-C: the trace ends as run's does, with its maps.
	var out, errb bytes.Buffer
	client := e.command(nobody, "trace", "--socket", e.socket, "--token-file", e.tokenFile, "-e", script)
	client.Stdout, client.Stderr = &out, &errb
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	e.attached(t, 1)
	kerneltest.Syscalls(5, 0)
	client.Process.Signal(os.Interrupt)
	if err := client.Wait(); err != nil || out.String() != "Attaching 1 probe...\n\n\n@: 5\n" {
		t.Errorf("Ctrl-C: %v, stdout %q, stderr %q", err, out.String(), errb.String())
	}

	// A token revoked while the daemon runs is refused once SIGHUP has
	// it re-read the list.
	bob := filepath.Join(e.dir, "bob")
	if err := os.WriteFile(bob, []byte(e.must(t, "token", "issue", "--key", filepath.Join(e.dir, "issuer.key"), "--sub", "bob", "--scope", "trace probe:**", "--ttl", "10m", "--jti", "bob-1")), 0o644); err != nil {
		t.Fatal(err)
	}
	begin := []string{"trace", "--socket", e.socket, "--token-file", bob, "-e", `BEGIN { printf("ok\n"); exit(); }`}
	if r := e.run(t, nobody, begin...); r.code != 0 || r.stdout != "Attaching 1 probe...\nok\n\n\n" {
		t.Fatalf("bob before revocation: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if err := os.WriteFile(revoked.Name(), []byte("bob-1 # lost laptop\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.serve.Process.Signal(syscall.SIGHUP)
	for i := 0; ; i++ {
		r := e.run(t, nobody, begin...)
		if r.code == 1 && r.stderr == "ERROR: invalid token: token bob-1 is revoked\n" {
			break
		}
		if i > 100 {
			t.Fatalf("bob after revocation and SIGHUP: exit %d, %q %q", r.code, r.stdout, r.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// SIGTERM to the daemon: every session ends with its maps printed to
	// its client, and the daemon exits 0 with nothing attached.
	clients := make([]*exec.Cmd, 3)
	outs := make([]*bytes.Buffer, 3)
	errs := make([]*bytes.Buffer, 3)
	for i := range clients {
		clients[i] = e.command(nobody, "trace", "--socket", e.socket, "--token-file", e.tokenFile, "-e", script)
		outs[i], errs[i] = &bytes.Buffer{}, &bytes.Buffer{}
		clients[i].Stdout, clients[i].Stderr = outs[i], errs[i]
		if err := clients[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	e.attached(t, 3)
	kerneltest.Syscalls(4, 0)
	e.serve.Process.Signal(syscall.SIGTERM)
	for i, c := range clients {
		if err := c.Wait(); err != nil || outs[i].String() != "Attaching 1 probe...\n\n\n@: 4\n" || errs[i].String() != "tracebroker: the broker daemon shut down\n" {
			t.Errorf("client %d after SIGTERM: %v, stdout %q, stderr %q", i, err, outs[i].String(), errs[i].String())
		}
	}
	select {
	case err := <-e.exited:
		e.exited <- err
		if err != nil {
			t.Errorf("serve after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not exit after SIGTERM")
	}
	if _, err := os.Stat(e.socket); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	if left := kerneltest.LeftLoaded(t, before, "sys_enter_getcw", 2*time.Second); len(left) > 0 {
		t.Errorf("programs left loaded: %v", left)
	}
	r := e.run(t, 0, "audit", "verify", filepath.Join(e.state, "audit.log"))
	if r.code != 0 {
		t.Errorf("audit verify: %s%s", r.stdout, r.stderr)
	}
}

// TestDaemonGen: a generator plugin through the daemon, for a token with
// its gen: scope and the probes it generates, and not without them.
func TestDaemonGen(t *testing.T) {
	require(t, needKernel)
	plugins := pluginDir(t)
	e := newDaemonEnv(t, "--plugin-dir", plugins, "--trust", testPub)
	files := filepath.Join(e.dir, "files")
	if err := os.Mkdir(files, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(files, "known"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	noGen, noProbe, ok := filepath.Join(e.dir, "t1"), filepath.Join(e.dir, "t2"), filepath.Join(e.dir, "t3")
	e.issueToken(t, noGen, "trace probe:tracepoint:syscalls:*")
	e.issueToken(t, noProbe, "trace gen:opensnoop probe:tracepoint:syscalls:sys_enter_openat")
	e.issueToken(t, ok, "trace gen:open* probe:tracepoint:syscalls:sys_*_openat")
	gen := []string{"trace", "--socket", e.socket, "--gen", "opensnoop", "--param", "path=" + files + "/"}
	for _, tt := range []struct{ tok, stderr string }{
		{noGen, `ERROR: the token of "alice" does not allow generator opensnoop (no gen:opensnoop scope)` + "\n"},
		{noProbe, `ERROR: the token of "alice" does not allow probe tracepoint:syscalls:sys_exit_openat (its probe scopes: probe:tracepoint:syscalls:sys_enter_openat)` + "\n"},
	} {
		if r := e.run(t, nobody, append(gen, "--token-file", tt.tok)...); r.code != 1 || r.stderr != tt.stderr {
			t.Errorf("exit %d, stderr %q; want 1, %q", r.code, r.stderr, tt.stderr)
		}
	}
	var out, errb bytes.Buffer
	client := e.command(nobody, append(gen, "--token-file", ok)...)
	client.Stdout, client.Stderr = &out, &errb
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	e.attached(t, 1)
	if b, err := exec.Command("cat", filepath.Join(files, "known")).CombinedOutput(); err != nil {
		t.Fatalf("cat: %v %s", err, b)
	}
	client.Process.Signal(os.Interrupt)
	client.Wait()
	if !regexp.MustCompile(`(?m)^\d+ +cat +\d+ +0 ` + regexp.QuoteMeta(files) + `/known$`).MatchString(out.String()) {
		t.Errorf("opensnoop through the daemon: stdout %q, stderr %q", out.String(), errb.String())
	}
}
