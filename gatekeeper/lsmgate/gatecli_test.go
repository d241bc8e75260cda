package lsmgate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

type cliResult struct {
	stdout, stderr string
	code           int
}

func runCLI(t *testing.T, env []string, bin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kerneltest.Slow(60*time.Second))
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := cliResult{stdout: o.String(), stderr: e.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %q: %v", bin, args, err)
	}
	return r
}

func signFile(t *testing.T, key *attest.PrivateKey, path string, role attest.Role) {
	t.Helper()
	if _, err := attest.SignArtifact(path, key, attest.ArtifactPredicate{Role: role, Name: filepath.Base(path)}); err != nil {
		t.Fatal(err)
	}
}

// refusedLoads is the gate's count of guarded loads refused, as status
// --json says to anyone.
func refusedLoads(t *testing.T, bin, pins string) uint64 {
	t.Helper()
	r := runCLI(t, nil, bin, "gatekeeper", "status", "--pin-dir", pins, "--json")
	var st struct {
		Enforcing bool              `json:"enforcing"`
		Refused   map[string]uint64 `json:"refused"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil || !st.Enforcing {
		t.Fatalf("status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	return st.Refused[ReasonText(ReasonLoad)]
}

// TestGateCLI is the gate as an operator runs it: enforce refuses an
// unsigned or mis-signed gate and leaves nothing; enforced, the signed
// tracebroker traces in both modes (and says the gate enforces), while
// bpftrace, bpftool, this test and a copy of tracebroker with one byte
// changed are refused; the daemon writes the refusals to its audit log;
// only the enforcing executable releases it, and the gate's own log
// records enforce and release.
func TestGateCLI(t *testing.T) {
	needGate(t)
	kerneltest.Exclusive(t)
	e := newCLIEnv(t)
	dir, bpffs, pins, state, tb, key := e.dir, e.bpffs, e.pins, e.state, e.tb, e.key
	enforce := []string{"gatekeeper", "enforce", "--state", state, "--pin-dir", pins}

	// No manifest, then one for other bytes: refused, nothing pinned.
	r := runCLI(t, nil, tb, enforce...)
	if r.code == 0 || !strings.Contains(r.stderr, "gate: not signed (no "+ManifestPath(attest.StateManifestDir(state))+")") {
		t.Errorf("unsigned gate: exit %d\n%s", r.code, r.stderr)
	}
	wrong := filepath.Join(dir, "wrong", ObjectFile)
	os.MkdirAll(filepath.Dir(wrong), 0o755)
	os.WriteFile(wrong, []byte("not the gate"), 0o644)
	signFile(t, key, wrong, attest.RoleGate)
	copyFile(t, wrong+attest.SigSuffix, ManifestPath(attest.StateManifestDir(state)))
	r = runCLI(t, nil, tb, enforce...)
	if r.code == 0 || !strings.Contains(r.stderr, "digest mismatch") {
		t.Errorf("gate signed for other bytes: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(pins); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused gate left %s: %v", pins, err)
	}
	if err := rawLoad(progTracepoint); err != nil {
		t.Fatalf("no gate, yet: %v", err)
	}

	// The gate, signed.
	e.signGate(t)
	r = runCLI(t, nil, tb, enforce...)
	if r.code != 0 || !strings.Contains(r.stdout, "Kernel gate: enforcing since") || !strings.Contains(r.stdout, "signed by "+key.ID) {
		t.Fatalf("enforce: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Both builds own the gate: tracebroker-rpc runs the daemon, which
	// drains the gate's refusals (below).
	for _, exe := range []string{tb, kerneltest.RPCBinary(tb)} {
		if !regexp.MustCompile(`(?m)^  loader: ` + regexp.QuoteMeta(exe) + ` \(sha256:[0-9a-f]{64}, signed by ` + key.ID + `, owner\)$`).MatchString(r.stdout) {
			t.Errorf("enforce: no owner %s:\n%s", exe, r.stdout)
		}
	}
	released := false
	t.Cleanup(func() {
		if !released {
			runCLI(t, nil, tb, "gatekeeper", "release", "--state", state, "--pin-dir", pins)
		}
	})

	// The daemon drains the gate's refusals into its audit log.
	serve := exec.Command(tb, "serve", "--state", state, "--socket", filepath.Join(dir, "broker.sock"), "--gate-pin-dir", pins)
	var serveLog bytes.Buffer
	serve.Stderr = &serveLog
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		serve.Process.Signal(syscall.SIGTERM)
		serve.Wait()
		if t.Failed() {
			t.Logf("serve's log:\n%s", serveLog.String())
		}
	}()

	// The signed broker traces, JIT and interpreted, and says so.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	workload := self + " -test.run=^TestHelperProcess$"
	getcwd := []string{"LSMGATE_ROLE=getcwd"}
	attestDir := filepath.Join(dir, "attest")
	for _, mode := range []string{"jit", "interp"} {
		r = runCLI(t, getcwd, tb, "run", "--state", state, "--gate-pin-dir", pins, "--mode", mode, "--unsigned-collectors", "-v", "--attest-dir", attestDir,
			"-e", "tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { @ = count(); }", "-c", workload)
		if r.code != 0 || !strings.HasSuffix(r.stdout, "@: 7\n") || !strings.Contains(r.stderr, "Kernel gate: enforcing, strict, tb_gate sha256:"+Digest()+" signed by "+key.ID) {
			t.Errorf("run --mode %s under the gate: exit %d\n%s%s", mode, r.code, r.stdout, r.stderr)
		}
	}
	// A signed object, the program-only form, under the strict default:
	// the broker judges the form, the gate its loader.
	obj := filepath.Join(dir, "opencount.bpf.o")
	copyFile(t, "../../testdata/objects/opencount.bpf.o", obj)
	signFile(t, key, obj, attest.RoleProgram)
	opened := filepath.Join(dir, "opened")
	os.WriteFile(opened, nil, 0o644)
	r = runCLI(t, []string{"LSMGATE_ROLE=open", "LSMGATE_FILE=" + opened}, tb, "run", "--state", state, "--gate-pin-dir", pins, "--default", "strict", "-v", obj, "-c", workload)
	if r.code != 0 || !strings.Contains(r.stdout, ", "+opened+"]: 3\n") || !strings.Contains(r.stderr, "Kernel gate: enforcing") {
		t.Errorf("a signed object under the gate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := grepPayloads(t, attestDir, `"kernel_gate":"enforcing, strict, tb_gate sha256:`+Digest()); n != 2 {
		t.Errorf("attestations naming the enforcing gate: %d, want 2", n)
	}

	// What is refused, each counted once more by the gate.
	before := refusedLoads(t, tb, pins)
	want := before
	refused := func(what string, r cliResult) {
		t.Helper()
		if r.code == 0 {
			t.Errorf("%s: loaded under the gate\n%s%s", what, r.stdout, r.stderr)
		}
		if now := refusedLoads(t, tb, pins); now <= want {
			t.Errorf("%s: the gate counts %d refused loads, had %d", what, now, want)
		} else {
			want = now
		}
	}
	if err := rawLoad(progTracepoint); !errors.Is(err, unix.EPERM) {
		t.Errorf("this test's own load: %v, want EPERM", err)
	}
	if n := refusedLoads(t, tb, pins); n != before+1 {
		t.Errorf("refused loads: %d, want exactly %d", n, before+1)
	}
	want = before + 1
	tb2 := e.install(t, "bin2", true)
	r = runCLI(t, getcwd, tb2, "run", "--state", state, "-e", "tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { @ = count(); }", "-c", workload)
	refused("tracebroker with one byte changed", r)
	if !strings.Contains(r.stderr, "operation not permitted") {
		t.Errorf("the changed copy's error: %s", r.stderr)
	}
	if bt, err := exec.LookPath("bpftrace"); err == nil {
		refused("bpftrace", runCLI(t, nil, bt, "-e", "tracepoint:syscalls:sys_enter_getcwd { exit(); }"))
	} else {
		t.Log("no bpftrace here: not tried")
	}
	if bt, err := exec.LookPath("bpftool"); err == nil {
		repoObj, _ := filepath.Abs("../../testdata/objects/opencount.bpf.o")
		refused("bpftool prog load", runCLI(t, nil, bt, "prog", "load", repoObj, filepath.Join(bpffs, "opencount")))
	} else {
		t.Log("no bpftool here: not tried")
	}

	// Only the enforcing executable releases it: the changed copy may not
	// (it is refused its first unlink).
	r = runCLI(t, nil, tb2, "gatekeeper", "release", "--state", state, "--pin-dir", pins)
	if r.code == 0 || !strings.Contains(r.stderr, "only its owners, the executable that enforced it and the broker build beside it, may") {
		t.Errorf("release by another executable: exit %d\n%s", r.code, r.stderr)
	}
	r = runCLI(t, nil, tb, "gatekeeper", "status", "--pin-dir", pins)
	if r.code != 0 || !strings.Contains(r.stdout, "refused 1: "+ReasonText(ReasonPin)) {
		t.Errorf("status:\n%s%s", r.stdout, r.stderr)
	}

	// A daemon that is not the gate's owner is refused its events once,
	// and does not ask the same gate again every poll.
	state2 := filepath.Join(dir, "state2")
	if r := runCLI(t, nil, tb2, "init", "--state", state2); r.code != 0 {
		t.Fatalf("init: %s", r.stderr)
	}
	other := exec.Command(tb2, "serve", "--state", state2, "--socket", filepath.Join(dir, "other.sock"), "--gate-pin-dir", pins)
	otherLog := filepath.Join(dir, "other.log")
	lf, err := os.Create(otherLog)
	if err != nil {
		t.Fatal(err)
	}
	other.Stderr = lf
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	for deadline := time.Now().Add(kerneltest.Slow(20 * time.Second)); ; {
		b, _ := os.ReadFile(otherLog)
		if bytes.Contains(b, []byte("its refusals cannot be read")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other daemon never tried the gate's events:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * gatePollForTest) // polls in which it must not ask again
	other.Process.Signal(syscall.SIGTERM)
	other.Wait()
	r = runCLI(t, nil, tb, "gatekeeper", "status", "--pin-dir", pins)
	if !strings.Contains(r.stdout, "refused 1: "+ReasonText(ReasonGateObject)) {
		t.Errorf("after a daemon that is not the owner ran, status:\n%s", r.stdout)
	}

	// The daemon's audit log has this test's own refusal.
	auditLog := filepath.Join(state, "audit.log")
	deadline := time.Now().Add(kerneltest.Slow(20 * time.Second))
	for {
		b, _ := os.ReadFile(auditLog)
		if bytes.Contains(b, []byte(`"event":"gate.refused"`)) && bytes.Contains(b, []byte(`"comm":"`+comm()+`"`)) &&
			bytes.Contains(b, []byte(`"reason":"`+ReasonText(ReasonLoad)+`"`)) && bytes.Contains(b, []byte(`"reason":"`+ReasonText(ReasonPin)+`"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon's audit log has no gate.refused record of this test's load and of the release refused:\n%s", b)
		}
		time.Sleep(200 * time.Millisecond)
	}

	r = runCLI(t, nil, tb, "gatekeeper", "release", "--state", state, "--pin-dir", pins)
	if r.code != 0 || !strings.Contains(r.stdout, "Kernel gate: released") {
		t.Fatalf("release: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	released = true
	if err := rawLoad(progTracepoint); err != nil {
		t.Errorf("after release: %v", err)
	}
	gateLog := filepath.Join(state, "gate.log")
	if r := runCLI(t, nil, tb, "audit", "verify", gateLog); r.code != 0 {
		t.Errorf("audit verify %s: %s%s", gateLog, r.stdout, r.stderr)
	}
	lb, _ := os.ReadFile(gateLog)
	if !bytes.Contains(lb, []byte(`"event":"gate.enforced"`)) || !bytes.Contains(lb, []byte(`"event":"gate.released"`)) {
		t.Errorf("the gate's log:\n%s", lb)
	}
}

// cliEnv is a host as an operator sets it up: a release key, a signed
// tracebroker (the lean build and tracebroker-rpc beside it, which runs
// the daemon) on a tmpfs (files the gate can name), a state directory
// trusting the key, a bpffs of the test's own for the gate's pins.
type cliEnv struct {
	dir, bpffs, pins, state, tb string
	bin, rpc                    []byte // the two builds, as built
	key                         *attest.PrivateKey
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	e := &cliEnv{}
	src := kerneltest.Binary(t, "../../cmd/tracebroker")
	e.dir = t.TempDir()
	e.bpffs = testBpffs(t, e.dir)
	e.pins = filepath.Join(e.bpffs, "gate")
	e.state = filepath.Join(e.dir, "state")

	// A release key, a signed broker on the tmpfs, the state trusting it.
	var err error
	if e.key, err = attest.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(e.dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Apart from the broker: a directory with bin/tracebroker.sig beside
	// the key would be taken for a release directory by init.
	if err := attest.WriteKeyPair(filepath.Join(e.dir, "keys", "release"), e.key); err != nil {
		t.Fatal(err)
	}
	if e.bin, err = os.ReadFile(src); err != nil {
		t.Fatal(err)
	}
	if e.rpc, err = os.ReadFile(kerneltest.RPCBinary(src)); err != nil {
		t.Fatal(err)
	}
	e.tb = e.install(t, "sbin", false)
	if r := runCLI(t, nil, e.tb, "init", "--state", e.state, "--trust", filepath.Join(e.dir, "keys", "release.pub")); r.code != 0 {
		t.Fatalf("init: %s", r.stderr)
	}
	return e
}

// install writes the two builds into DIR/sub, signed by the release key,
// each with one byte changed if changed (the section header table's
// last: it still runs), and returns the lean one's path.
func (e *cliEnv) install(t *testing.T, sub string, changed bool) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(e.dir, sub), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"tracebroker": e.bin, "tracebroker-rpc": e.rpc} {
		if changed {
			b = append([]byte(nil), b...)
			b[len(b)-1] ^= 0xff
		}
		p := filepath.Join(e.dir, sub, name)
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
		signFile(t, e.key, p, attest.RoleBroker)
	}
	return filepath.Join(e.dir, sub, "tracebroker")
}

// signGate signs the gate's object with the release key and installs
// its manifest.
func (e *cliEnv) signGate(t *testing.T) {
	t.Helper()
	obj, err := Object()
	if err != nil {
		t.Fatal(err)
	}
	gateObj := filepath.Join(e.dir, "export", ObjectFile)
	os.MkdirAll(filepath.Dir(gateObj), 0o755)
	os.WriteFile(gateObj, obj, 0o644)
	signFile(t, e.key, gateObj, attest.RoleGate)
	copyFile(t, gateObj+attest.SigSuffix, ManifestPath(attest.StateManifestDir(e.state)))
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// grepPayloads counts the envelopes under dir whose payload contains s.
func grepPayloads(t *testing.T, dir, s string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		var env struct {
			Payload []byte `json:"payload"`
		}
		if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &env) == nil && bytes.Contains(env.Payload, []byte(s)) {
			n++
		}
		return nil
	})
	return n
}

// comm is this process's name as the kernel keeps it (15 bytes).
func comm() string {
	c := filepath.Base(os.Args[0])
	if len(c) > 15 {
		c = c[:15]
	}
	return c
}

// TestGateCLIPolicy: enforce --policy runs a compiled, signed
// gatekeeper policy in the kernel. This one lets only a verified,
// trusted broker load, and only programs under 4096 instructions: the
// signed tracebroker traces, and this test's own load (not a broker) is
// refused by the policy, counted as such.
func TestGateCLIPolicy(t *testing.T) {
	needGate(t)
	kerneltest.Exclusive(t)
	e := newCLIEnv(t)
	e.signGate(t)
	src := filepath.Join(e.dir, "policy.bt")
	os.WriteFile(src, []byte(`gatekeeper {
	if (req.broker_verified && trusted(req.broker_signer, "broker") && req.insn_count < 4096) { return jit; }
	return deny;
}
`), 0o644)
	pol := filepath.Join(e.dir, "policy.o")
	if r := runCLI(t, nil, e.tb, "gatekeeper", "compile", src, "-o", pol); r.code != 0 {
		t.Fatalf("compile: %s", r.stderr)
	}
	signFile(t, e.key, pol, attest.RolePolicy)
	t.Cleanup(func() {
		if _, err := os.Stat(e.pins); err == nil {
			runCLI(t, nil, e.tb, "gatekeeper", "release", "--state", e.state, "--pin-dir", e.pins)
		}
	})
	r := runCLI(t, nil, e.tb, "gatekeeper", "enforce", "--state", e.state, "--pin-dir", e.pins, "--policy", pol)
	if r.code != 0 || !strings.Contains(r.stdout, "  policy: "+pol+" (sha256:") || !strings.Contains(r.stdout, "signed by "+e.key.ID+"), in the kernel, on every guarded load") {
		t.Fatalf("enforce --policy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, []string{"LSMGATE_ROLE=getcwd"}, e.tb, "run", "--state", e.state, "--gate-pin-dir", e.pins,
		"-e", "tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { @ = count(); }", "-c", self+" -test.run=^TestHelperProcess$")
	if r.code != 0 || !strings.HasSuffix(r.stdout, "@: 7\n") {
		t.Errorf("run under the policy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := rawLoad(progTracepoint); !errors.Is(err, unix.EPERM) {
		t.Errorf("this test's load: %v, want EPERM", err)
	}
	r = runCLI(t, nil, e.tb, "gatekeeper", "status", "--pin-dir", e.pins, "--json")
	var st struct {
		Refused map[string]uint64 `json:"refused"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status: %v\n%s", err, r.stdout)
	}
	if want := map[string]uint64{ReasonText(ReasonPolicy): 1}; fmt.Sprint(st.Refused) != fmt.Sprint(want) {
		t.Errorf("refused: %v, want %v", st.Refused, want)
	}
}

// gatePollForTest is the daemon's gate poll (broker/daemon's gatePoll).
const gatePollForTest = 2 * time.Second
