package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// The operator path's users: the responder alice is uid 65533, in the
// socket's group; 65534 (nobody) is not in it.
const (
	operatorResponder = 65533
	operatorGroup     = 65531
)

// operator is README's "The broker daemon" run on a fresh host: the
// state directory is made by init, the socket's directory does not exist
// until serve makes it.
type operator struct {
	dir, bin, state, socket, token string
	serve                          *exec.Cmd
	serveErr                       bytes.Buffer
	exited                         chan error
}

// operatorStep is one README command of the operator path and what it
// must do. Steps run in order on one host; a later item's step (audit
// show) is appended to operatorSteps.
type operatorStep struct {
	name string
	run  func(o *operator, t *testing.T)
}

func operatorSteps() []operatorStep {
	return []operatorStep{
		{"init", (*operator).init},
		{"serve", (*operator).startServe},
		{"token_issue", (*operator).issue},
		{"trace", (*operator).trace},
		{"refused_scope", (*operator).refused},
		{"audit_show", (*operator).auditShow},
	}
}

// TestReadmeOperator: init → serve --socket-group with no runtime
// directory yet → token issue → trace as a responder in the group, with
// an exact count of the calls this test makes → a probe outside the
// token's scope refused with its message → audit show of what ran and
// what was refused (readme_operator_audit_test.go). Only paths differ from the
// README (--state, --socket in a temporary directory) and the group is
// given by number.
func TestReadmeOperator(t *testing.T) {
	require(t, needKernel)
	before := kerneltest.Track(t)
	dir := kerneltest.SharedDir(t)
	o := &operator{dir: dir, bin: filepath.Join(dir, "tracebroker"), state: filepath.Join(dir, "state"),
		socket: filepath.Join(dir, "run", "tracebroker", "broker.sock"), token: filepath.Join(dir, "alice.token")}
	if err := copyPair(o.bin); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range operatorSteps() {
		if !t.Run(s.name, func(t *testing.T) { s.run(o, t) }) {
			t.Fatalf("step %s failed; the steps after it need it", s.name)
		}
	}
	o.stop(t)
	if left := before.Left(t, 5*time.Second); len(left) > 0 {
		t.Errorf("left loaded: %v", left)
	}
}

// command is the binary with args, as uid in groups (0: as this
// process), in the operator's directory.
func (o *operator) command(uid int, groups []uint32, args ...string) *exec.Cmd {
	cmd := exec.Command(o.bin, args...)
	cmd.Dir = o.dir
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: groups}}
	}
	return cmd
}

func (o *operator) run(t *testing.T, uid int, groups []uint32, args ...string) result {
	t.Helper()
	return runCmd(t, o.command(uid, groups, args...))
}

func (o *operator) must(t *testing.T, args ...string) string {
	t.Helper()
	r := o.run(t, 0, nil, args...)
	if r.code != 0 {
		t.Fatalf("tracebroker %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// tracebroker init
// tracebroker attest keygen --out issuer
// cp issuer.pub /var/lib/tracebroker/issuers/
func (o *operator) init(t *testing.T) {
	out := o.must(t, "init", "--state", o.state)
	if !strings.Contains(out, "daemon config created: "+filepath.Join(o.state, "broker.json")) {
		t.Errorf("init: %s", out)
	}
	for _, d := range []string{"trust", "manifests", "issuers", "plugins", "attestations"} {
		if fi, err := os.Lstat(filepath.Join(o.state, d)); err != nil || !fi.IsDir() {
			t.Errorf("init made no %s/: %v", d, err)
		}
	}
	o.must(t, "attest", "keygen", "--out", "issuer")
	if err := copyFile(filepath.Join(o.dir, "issuer.pub"), filepath.Join(o.state, "issuers", "issuer.pub"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tracebroker serve --socket-group tracers --audience tracebroker:db-7
func (o *operator) startServe(t *testing.T) {
	runDir := filepath.Dir(o.socket)
	if _, err := os.Lstat(runDir); err == nil {
		t.Fatalf("%s exists before serve", runDir)
	}
	o.serve = o.command(0, nil, "serve", "--state", o.state, "--socket", o.socket, "--socket-group", fmt.Sprint(operatorGroup), "--audience", "tracebroker:db-7")
	o.serve.Stderr = &o.serveErr
	if err := o.serve.Start(); err != nil {
		t.Fatal(err)
	}
	o.exited = make(chan error, 1)
	go func() { o.exited <- o.serve.Wait() }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve's log:\n%s", o.serveErr.String())
		}
	})
	for i := 0; ; i++ {
		if r := o.run(t, 0, nil, "sessions", "list", "--socket", o.socket); r.code == 0 {
			break
		} else if i > 200 {
			t.Fatalf("the daemon does not answer: %s\n%s", r.stderr, o.serveErr.String())
		}
		select {
		case err := <-o.exited:
			t.Fatalf("serve exited: %v\n%s", err, o.serveErr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	fi, err := os.Lstat(runDir)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || fi.Mode().Perm() != 0o750 || st.Uid != 0 || st.Gid != operatorGroup {
		t.Errorf("serve made %s %v uid %d gid %d; want drwxr-x--- root:%d", runDir, fi.Mode(), st.Uid, st.Gid, operatorGroup)
	}
}

// tracebroker token issue --key issuer.key --sub alice --ttl 2h --max-duration 10m --aud tracebroker:db-7 --scope '…' > alice.token
func (o *operator) issue(t *testing.T) {
	tok := o.must(t, "token", "issue", "--key", "issuer.key", "--sub", "alice", "--ttl", "2h", "--max-duration", "10m", "--aud", "tracebroker:db-7",
		"--scope", "trace probe:tracepoint:syscalls:sys_enter_getcwd")
	if err := os.WriteFile(o.token, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(o.token, operatorResponder, operatorResponder); err != nil {
		t.Fatal(err)
	}
}

// alice, not root, in the socket's group:
// tracebroker trace --token-file alice.token -e '…', ended by Ctrl-C.
func (o *operator) trace(t *testing.T) {
	script := fmt.Sprintf("tracepoint:syscalls:sys_enter_getcwd /pid == %d/ { @ = count(); }", os.Getpid())
	client := o.command(operatorResponder, []uint32{operatorGroup}, "trace", "--socket", o.socket, "--token-file", o.token, "-e", script)
	var out, errb bytes.Buffer
	client.Stdout, client.Stderr = &out, &errb
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		r := o.run(t, 0, nil, "sessions", "list", "--json", "--socket", o.socket)
		if strings.Contains(r.stdout, `"mode":"jit"`) {
			break
		}
		if i > 500 {
			client.Process.Kill()
			client.Wait()
			t.Fatalf("the session is not attached: %s%s\nclient: %s", r.stdout, r.stderr, errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	kerneltest.Syscalls(5, 0)
	client.Process.Signal(os.Interrupt)
	if err := client.Wait(); err != nil || out.String() != "Attaching 1 probe...\n\n\n@: 5\n" || errb.String() != endingLine {
		t.Errorf("trace: %v, stdout %q, stderr %q; want @: 5", err, out.String(), errb.String())
	}
}

// A probe outside alice's scopes is refused, with the probe and the
// scopes she has, and nothing runs.
func (o *operator) refused(t *testing.T) {
	r := o.run(t, operatorResponder, []uint32{operatorGroup}, "trace", "--socket", o.socket, "--token-file", o.token,
		"-e", "tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }")
	want := `ERROR: the token of "alice" does not allow probe tracepoint:syscalls:sys_enter_openat (its probe scopes: probe:tracepoint:syscalls:sys_enter_getcwd)` + "\n"
	if r.code != 1 || r.stdout != "" || r.stderr != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and %q", r.code, r.stdout, r.stderr, want)
	}
}

// stop ends serve with SIGTERM, as systemctl stop does.
func (o *operator) stop(t *testing.T) {
	if o.serve == nil || o.serve.Process == nil {
		return
	}
	o.serve.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-o.exited:
		if err != nil {
			t.Errorf("serve: %v\n%s", err, o.serveErr.String())
		}
	case <-time.After(30 * time.Second):
		o.serve.Process.Kill()
		<-o.exited
		t.Errorf("serve did not stop on SIGTERM")
	}
}

// TestAttacksFreshHost: directories planted where init and serve make
// theirs — a link to elsewhere, one anyone may write — are refused with
// the fix, and what a link leads to is not changed.
func TestAttacksFreshHost(t *testing.T) {
	for _, tt := range []struct {
		name   string
		plant  func(t *testing.T, dir, state, victim string)
		args   func(dir, state string) []string
		stderr string
	}{
		{"item1/serve_runtime_dir_symlink", func(t *testing.T, dir, state, victim string) {
			if r := tracebroker(t, "init", "--state", state); r.code != 0 {
				t.Fatal(r.stderr)
			}
			if err := os.Symlink(victim, filepath.Join(dir, "tracebroker")); err != nil {
				t.Fatal(err)
			}
		}, func(dir, state string) []string {
			return []string{"serve", "--state", state, "--socket", filepath.Join(dir, "tracebroker", "broker.sock"), "--socket-group", fmt.Sprint(operatorGroup)}
		}, "is a symbolic link: refused"},
		{"item1/init_state_world_writable", func(t *testing.T, dir, state, _ string) {
			if err := os.Mkdir(state, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(state, 0o777); err != nil {
				t.Fatal(err)
			}
		}, func(dir, state string) []string { return []string{"init", "--state", state} }, "is writable by others than its owner (mode 0777)"},
		{"item1/init_plugins_symlink", func(t *testing.T, dir, state, victim string) {
			if err := os.Mkdir(state, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(victim, filepath.Join(state, "plugins")); err != nil {
				t.Fatal(err)
			}
		}, func(dir, state string) []string { return []string{"init", "--state", state} }, "plugins: is a symbolic link: refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			state, victim := filepath.Join(dir, "state"), filepath.Join(dir, "victim")
			if err := os.Mkdir(victim, 0o700); err != nil {
				t.Fatal(err)
			}
			tt.plant(t, dir, state, victim)
			r := tracebroker(t, tt.args(dir, state)...)
			if r.code != 1 || !strings.HasPrefix(r.stderr, "ERROR: ") || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want exit 1 and %q", r.code, r.stderr, tt.stderr)
			}
			fi, err := os.Lstat(victim)
			if err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(victim)
			if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o700 || int(st.Gid) != os.Getegid() || len(entries) != 0 {
				t.Errorf("the link's target changed: %v gid %d, %d entries", fi.Mode(), st.Gid, len(entries))
			}
			if _, err := os.Stat(filepath.Join(state, "host.key")); tt.name == "item1/init_state_world_writable" && err == nil {
				t.Error("init wrote a host key into a directory anyone may write")
			}
		})
	}
}

// TestServeSocketDirGroup: an existing socket directory that the
// socket's group cannot search is refused at start with the fix, rather
// than every member's connection failing later.
func TestServeSocketDirGroup(t *testing.T) {
	dir := t.TempDir()
	state, run := filepath.Join(dir, "state"), filepath.Join(dir, "run")
	if r := tracebroker(t, "init", "--state", state); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	r := tracebroker(t, "serve", "--state", state, "--socket", filepath.Join(run, "broker.sock"), "--socket-group", fmt.Sprint(operatorGroup))
	want := fmt.Sprintf("ERROR: the socket's directory %s (mode 0700, group %d) cannot be searched by group %d, whose members could not reach the socket: chgrp %[3]d and chmod g+x it, or remove it and serve makes it\n", run, os.Getegid(), operatorGroup)
	if r.code != 1 || r.stderr != want {
		t.Errorf("exit %d, stderr %q; want %q", r.code, r.stderr, want)
	}
}
