package release_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

type result struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// getcwdWorkload builds a command that calls getcwd as often as its
// argument says and nothing else, for traces that count exactly; it
// returns the command line for -c.
func getcwdWorkload(t *testing.T, dir string, n int) string {
	t.Helper()
	src := filepath.Join(dir, "getcwd.go")
	if err := os.WriteFile(src, []byte(`package main

import (
	"os"
	"strconv"
	"syscall"
)

func main() {
	n, _ := strconv.Atoi(os.Args[1])
	buf := make([]byte, 4096)
	for range n {
		syscall.Getcwd(buf)
	}
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "getcwd")
	cmd := exec.Command("go", "build", "-o", bin, src)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return fmt.Sprintf("%s %d", bin, n)
}

// runEnv runs a tracebroker binary with env added to its environment,
// to its end (60 s at most: a cold build cache makes make's first run
// slow, and the test says which step).
func runEnv(t *testing.T, dir string, env []string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
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
		t.Fatalf("%s %q: %v\nstderr: %s", name, args, err, r.stderr)
	}
	return r
}

// TestReadmeRelease is README's "Releases and trust" on a fresh host, as
// written: `make build`, a release key from `bin/tracebroker attest
// keygen`, `make release KEY=release.key`, the release's broker
// installing it with `init --trust`, then `run --mode interp` and `run
// --gen syscount` straight away, each counting the getcwd calls of a
// command the test starts, exactly. Only --state differs from the README
// (a temporary directory for /var/lib/tracebroker); make is told where to
// build (BIN, RELEASE) through its environment, so the tree is left
// alone. It lives in this package, not cmd/tracebroker's, so that make's
// build (-trimpath: a cold build cache compiles everything again) has a
// test binary's time budget of its own.
func TestReadmeRelease(t *testing.T) {
	if err := bpf.Supported(); err != nil {
		t.Skipf("kernel tracing unavailable: %v", err)
	}
	kerneltest.Lock(t)
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	rel := filepath.Join(dir, "dist", "release")
	workload := getcwdWorkload(t, dir, 7)
	mk := []string{"RELEASE=" + rel, "BIN=" + filepath.Join(dir, "bin", "tracebroker")}

	// make build
	r := runEnv(t, "..", mk, "make", "build")
	if r.code != 0 {
		t.Fatalf("make build: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("make build: %v", r.took.Round(time.Millisecond))
	// bin/tracebroker attest keygen --out release
	if r := runEnv(t, dir, nil, filepath.Join(dir, "bin", "tracebroker"), "attest", "keygen", "--out", "release"); r.code != 0 {
		t.Fatalf("keygen: %s", r.stderr)
	}
	// make release KEY=release.key
	r = runEnv(t, "..", mk, "make", "release", "KEY="+filepath.Join(dir, "release.key"))
	if r.code != 0 {
		t.Fatalf("make release: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("make release: %v; %s", r.took.Round(time.Millisecond), lastLine(r.stdout))

	// dist/release/bin/tracebroker init --trust dist/release/release.pub
	tb := filepath.Join(rel, "bin", "tracebroker")
	start := time.Now()
	r = runEnv(t, dir, nil, tb, "init", "--state", state, "--trust", filepath.Join(rel, "release.pub"))
	want := regexp.MustCompile(`(?m)^trusted release key [0-9a-f]{64}: ` + regexp.QuoteMeta(state) + `/trust/release-[0-9a-f]{16}\.pub\n` +
		`release ` + regexp.QuoteMeta(rel) + `: broker tracebroker \S+ [0-9a-f]{64} verified\n` +
		`release ` + regexp.QuoteMeta(rel) + `: broker tracebroker-rpc \S+ [0-9a-f]{64} verified\n` +
		`collectors verified: tb_coll_tp\.bpf tb_coll_rawtp\.bpf tb_coll_uprobe\.bpf tb_coll_perf\.bpf tb_coll_kprobe\.bpf tb_coll_rawtpix\.bpf tb_coll_fentry\.bpf tb_coll_fexit\.bpf \(manifests in ` + regexp.QuoteMeta(state) + `/manifests\)\n` +
		`kernel gate verified: tb_gate\.bpf sha256:[0-9a-f]{64} \(tracebroker gatekeeper enforce\)\n` +
		`plugins installed: execsnoop opensnoop syscount \(in ` + regexp.QuoteMeta(state) + `/plugins\)\n\z`)
	if r.code != 0 || !want.MatchString(r.stdout) {
		t.Fatalf("init --trust: exit %d\nstdout: %s\nstderr: %s\nwant stdout matching %s", r.code, r.stdout, r.stderr, want)
	}

	// tracebroker run --mode interp -e 'tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { @ = count(); }' -c CMD
	r = runEnv(t, dir, nil, tb, "run", "--state", state, "--mode", "interp", "-c", workload, "-e", "tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { @ = count(); }")
	if r.code != 0 || r.stdout != "Attaching 1 probe...\n\n\n@: 7\n" {
		t.Fatalf("run --mode interp: exit %d\nstdout: %q\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	t.Logf("fresh state to first trace (init --trust, run --mode interp): %v", time.Since(start).Round(time.Millisecond))

	// tracebroker run --gen syscount --param pid=-1 -c CMD
	r = runEnv(t, dir, nil, tb, "run", "--state", state, "--gen", "syscount", "--param", "pid=-1", "-c", workload)
	if getcwd := fmt.Sprintf("@syscalls[%d]: 7\n", unix.SYS_GETCWD); r.code != 0 || !bytes.Contains([]byte(r.stdout), []byte(getcwd)) {
		t.Fatalf("run --gen syscount: exit %d\nstdout: %s\nstderr: %s\nwant a line %q", r.code, r.stdout, r.stderr, getcwd)
	}

	// Run again, init keeps what is there and installs the same.
	if r := runEnv(t, dir, nil, tb, "init", "--state", state, "--trust", filepath.Join(rel, "release.pub")); r.code != 0 {
		t.Fatalf("init --trust again: exit %d: %s", r.code, r.stderr)
	}
	entries, err := os.ReadDir(state)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"attestations", "broker.json", "host.key", "host.pub", "issuers", "manifests", "plugins", "trust"}; !slices.Equal(names, want) {
		t.Errorf("the state directory holds %q; want %q, nothing staged left", names, want)
	}
}

func lastLine(s string) string {
	b := bytes.TrimRight([]byte(s), "\n")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return string(b)
}
