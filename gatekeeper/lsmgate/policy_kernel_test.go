package lsmgate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/broker/script/compile"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/gatekeeper"
	"github.com/tracebroker/tracebroker/gatekeeper/policyelf"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// unverifiable is a policy interp accepts (it checks memory at run
// time) and the kernel's verifier refuses: it reads through a value of
// the Request as if it were a pointer.
const unverifiable = "unverifiable"

// ownerPolicy sets the owner's policy from LSMGATE_POLICY and
// LSMGATE_TRUST, as tracebroker would from its flags.
func ownerPolicy(opts *Options) error {
	path := os.Getenv("LSMGATE_POLICY")
	if path == "" {
		return nil
	}
	trust := attest.NewTrust()
	if pub := os.Getenv("LSMGATE_TRUST"); pub != "" {
		var err error
		if trust, err = attest.LoadTrust(pub); err != nil {
			return err
		}
	}
	opts.Trust = trust
	po := gatekeeper.PolicyOptions{Trust: trust, Unsigned: true}
	var err error
	if path == unverifiable {
		opts.Policy, err = gatekeeper.NewPolicy(unverifiable, asm.Instructions{
			asm.LoadMem(asm.R2, asm.R1, 0, asm.DWord),
			asm.LoadMem(asm.R0, asm.R2, 0, asm.Byte),
			asm.Mov.Imm(asm.R0, int32(gatekeeper.Any)),
			asm.Return(),
		}, po)
		return err
	}
	opts.Policy, err = gatekeeper.LoadPolicyFile(path, po)
	return err
}

// drainEvents reads the records the gate has sent so far. They are in
// the ring buffer before the refused call returns, so the deadline only
// ends the reading.
func drainEvents(pin string) ([]Record, error) {
	ev, err := OpenEvents(pin)
	if err != nil {
		return nil, err
	}
	defer ev.Close()
	var recs []Record
	for {
		ev.SetDeadline(time.Now().Add(500 * time.Millisecond))
		r, err := ev.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
		recs = append(recs, r)
	}
}

// compilePolicy compiles a policy script into an object, as
// `tracebroker gatekeeper compile` does.
func compilePolicy(t *testing.T, path, src string) {
	t.Helper()
	f, err := syntax.Parse(filepath.Base(path), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	p, err := compile.Policy(f)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := policyelf.Write(&buf, gatekeeper.ELFSection, p.Probes[0].Insns, p.Maps); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// gateDir is a temporary directory with a bpffs mounted in it for the
// pins, which a loader of another uid may reach.
func gateDir(t *testing.T) (dir, pin string) {
	t.Helper()
	dir = t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bpffs := testBpffs(t, dir)
	return dir, filepath.Join(bpffs, "gate")
}

// launchOwner starts the owner helper from exe with env; it returns the
// helper once it enforces, or the line it said instead.
func launchOwner(t testing.TB, exe string, env ...string) (*helper, string) {
	t.Helper()
	cmd := exec.Command(exe, "-test.run=^TestHelperProcess$")
	cmd.Env = append(append(os.Environ(), "LSMGATE_ROLE=owner"), env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{t: t, cmd: cmd, in: in, out: bufio.NewReader(outp)}
	first, err := h.out.ReadString('\n')
	if err != nil || !strings.HasPrefix(first, "enforcing ") {
		in.Close()
		cmd.Wait()
		return nil, strings.TrimSpace(first)
	}
	released := false
	t.Cleanup(func() {
		if !released {
			h.ask("release")
		}
		in.Close()
		cmd.Wait()
	})
	h.release = func() string {
		released = true
		return h.ask("release")
	}
	h.first = strings.TrimPrefix(strings.TrimSpace(first), "enforcing ")
	return h, ""
}

// loaderRun runs exe as a loader with env, and cred when not nil (its
// uid and gid, keeping the capabilities a load needs).
func loaderRun(t *testing.T, exe string, cred *syscall.Credential, env ...string) int {
	t.Helper()
	cmd := exec.Command(exe, "-test.run=^TestHelperProcess$")
	cmd.Env = append(append(os.Environ(), "LSMGATE_ROLE=loader"), env...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Credential:  cred,
			AmbientCaps: []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_BPF, unix.CAP_PERFMON},
		}
	}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ee.ExitCode() != 3 {
			t.Logf("%s: exit %d: %s", exe, ee.ExitCode(), out)
		}
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s: %v\n%s", exe, err, out)
	}
	return 0
}

// The policy TestGatePolicy enforces: a tracepoint of at most 8
// instructions, loaded as root by a loader whose manifest verified,
// signed by a trusted broker key, whose file is DIGEST.
const gatePolicySrc = `gatekeeper {
	if (req.abi_version != 1 || req.form != 1 || req.covers != 4) { return deny; }
	if (req.program_type != "tracepoint") { return deny; }
	if (req.insn_count > 8) { return deny; }
	if (req.uid != 0) { return deny; }
	if (req.broker_verified == 0 || !trusted(req.broker_signer, "broker")) { return deny; }
	if (req.broker_digest != "sha256:DIGEST") { return deny; }
	return jit;
}
`

// TestGatePolicy enforces the gate with a compiled policy and checks
// that the kernel runs it on every guarded load, over the facts it
// knows of the load and of the loader: each condition of the policy is
// broken once by a load that the default by loader identity would
// allow, and each such load is refused and counted under ReasonPolicy,
// with the policy's deny in its record.
func TestGatePolicy(t *testing.T) {
	needGate(t)
	kerneltest.Exclusive(t)
	dir, pin := gateDir(t)
	key, err := attest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := attest.WriteKeyPair(filepath.Join(dir, "broker"), key); err != nil {
		t.Fatal(err)
	}
	// The owner and the loader are signed brokers; plain is allowed but
	// unsigned, copy is not allowed. All are this test binary.
	ownerExe, loaderExe := filepath.Join(dir, "owner.test"), filepath.Join(dir, "loader.test")
	plainExe, copyExe_ := filepath.Join(dir, "plain.test"), filepath.Join(dir, "copy.test")
	for _, p := range []string{ownerExe, loaderExe, plainExe, copyExe_} {
		copyExe(t, p)
	}
	for _, p := range []string{ownerExe, loaderExe} {
		if _, err := attest.SignArtifact(p, key, attest.ArtifactPredicate{Role: attest.RoleBroker, Name: filepath.Base(p), Version: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	digest, err := attest.FileDigest(loaderExe)
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policy.o")
	compilePolicy(t, policy, strings.Replace(gatePolicySrc, "DIGEST", digest, 1))

	h, said := launchOwner(t, ownerExe, "LSMGATE_PIN="+pin, "LSMGATE_LOADERS="+loaderExe+","+plainExe,
		"LSMGATE_POLICY="+policy, "LSMGATE_TRUST="+filepath.Join(dir, "broker.pub"))
	if h == nil {
		t.Fatalf("owner: %s", said)
	}
	var info Info
	if err := json.Unmarshal([]byte(h.first), &info); err != nil {
		t.Fatal(err)
	}
	if p := info.Policy; p == nil || !p.InKernel || p.Why != "" || p.Name != policy || !p.Unsigned || !strings.HasPrefix(p.Digest, "sha256:") {
		t.Fatalf("info.policy: %+v", info.Policy)
	}
	for _, l := range info.Loaders {
		if want := l.Path != plainExe; l.Verified != want {
			t.Errorf("loader %s: verified %v, want %v", l.Path, l.Verified, want)
		}
	}

	want := map[uint32]uint64{}
	var wantRecs []string
	type load struct {
		name string
		exe  string
		cred *syscall.Credential
		env  []string
		// refused: the policy denies it, with the program type in the
		// record.
		refused bool
		typ     uint32
	}
	for _, c := range []load{
		{"the signed loader's tracepoint", loaderExe, nil, nil, false, progTracepoint},
		{"8 instructions", loaderExe, nil, []string{"LSMGATE_INSNS=8"}, false, progTracepoint},
		{"9 instructions", loaderExe, nil, []string{"LSMGATE_INSNS=9"}, true, progTracepoint},
		{"a kprobe", loaderExe, nil, []string{"LSMGATE_TYPE=2"}, true, progKprobe},
		{"uid 1000 (with CAP_SYS_ADMIN)", loaderExe, &syscall.Credential{Uid: 1000, Gid: 1000}, nil, true, progTracepoint},
		{"an allowed loader whose manifest does not verify", plainExe, nil, nil, true, progTracepoint},
		{"a loader that is not allowed", copyExe_, nil, nil, true, progTracepoint},
	} {
		rc := loaderRun(t, c.exe, c.cred, c.env...)
		switch {
		case c.refused && rc != 3:
			t.Errorf("%s: exit %d, want 3 (EPERM from the policy)", c.name, rc)
		case !c.refused && rc != 0:
			t.Errorf("%s: exit %d, want 0 (the policy allows it)", c.name, rc)
		case c.refused:
			want[ReasonPolicy]++
			wantRecs = append(wantRecs, fmt.Sprintf("%d/%d/0", ReasonPolicy, c.typ))
		}
	}
	// This process is not an allowed loader: the policy, not the
	// default, refuses it. Unguarded types are not the policy's.
	if err := rawLoad(progTracepoint); !errors.Is(err, unix.EPERM) {
		t.Errorf("tracepoint by a root process that is not a loader: %v, want EPERM", err)
	} else {
		want[ReasonPolicy]++
		wantRecs = append(wantRecs, fmt.Sprintf("%d/%d/0", ReasonPolicy, progTracepoint))
	}
	if err := rawLoad(progSocketFilter); err != nil {
		t.Errorf("socket filter: %v", err)
	}
	if got := h.ask("load"); got != "load ok" {
		t.Errorf("owner: %s", got)
	}
	// A changed loader is refused before any policy runs.
	if err := os.Chmod(loaderExe, 0o750); err != nil {
		t.Fatal(err)
	}
	if rc := loaderRun(t, loaderExe, nil); rc != 3 {
		t.Errorf("modified loader: exit %d, want 3", rc)
	}
	want[ReasonModified]++
	wantRecs = append(wantRecs, fmt.Sprintf("%d/%d/0", ReasonModified, progTracepoint))

	st := h.ask("status")
	f := strings.SplitN(st, " ", 3)
	if len(f) != 3 || f[1] != "ok" {
		t.Fatalf("status: %s", st)
	}
	var status Status
	if err := json.Unmarshal([]byte(f[2]), &status); err != nil {
		t.Fatal(err)
	}
	if len(status.Missing) != 0 || !strings.Contains(strings.Join(status.Hooks, " "), policyHook) {
		t.Errorf("status hooks %v, missing %v", status.Hooks, status.Missing)
	}
	if fmt.Sprint(status.Counts) != fmt.Sprint(want) {
		t.Errorf("refusals counted by the gate: %v, want %v", status.Counts, want)
	}
	ev := strings.SplitN(h.ask("events"), " ", 3)
	if len(ev) != 3 || ev[1] != "ok" {
		t.Fatalf("events: %v", ev)
	}
	var recs []Record
	if err := json.Unmarshal([]byte(ev[2]), &recs); err != nil {
		t.Fatal(err)
	}
	var gotRecs []string
	for _, r := range recs {
		gotRecs = append(gotRecs, fmt.Sprintf("%d/%d/%d", r.Reason, r.Arg, r.Verdict))
	}
	if strings.Join(gotRecs, " ") != strings.Join(wantRecs, " ") {
		t.Errorf("records (reason/type/verdict): %v, want %v", gotRecs, wantRecs)
	}
	if got := h.release(); got != "release ok" {
		t.Fatalf("release: %s", got)
	}
	if err := rawLoad(progTracepoint); err != nil {
		t.Errorf("after release: %v", err)
	}
}

// TestGatePolicyRefused: a policy the kernel's verifier refuses fails
// Enforce, which leaves nothing attached or pinned.
func TestGatePolicyRefused(t *testing.T) {
	needGate(t)
	kerneltest.Exclusive(t)
	dir, pin := gateDir(t)
	ownerExe := filepath.Join(dir, "owner.test")
	copyExe(t, ownerExe)
	h, said := launchOwner(t, ownerExe, "LSMGATE_PIN="+pin, "LSMGATE_POLICY="+unverifiable)
	if h != nil {
		t.Fatalf("the gate enforced a policy the kernel refuses: %s", h.first)
	}
	if !strings.HasPrefix(said, "error: ") || !strings.Contains(said, "the kernel refuses policy "+unverifiable) {
		t.Errorf("owner: %s", said)
	}
	t.Log(said)
	if _, err := os.Stat(pin); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: %v, want nothing pinned", pin, err)
	}
	if err := rawLoad(progTracepoint); err != nil {
		t.Errorf("no gate: %v", err)
	}
}
