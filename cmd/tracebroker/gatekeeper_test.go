package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/broker/script/compile"
	"github.com/tracebroker/tracebroker/gatekeeper/abi"
	"github.com/tracebroker/tracebroker/gatekeeper/policyelf"
)

// The test-only release key: public, never to be trusted outside tests.
const (
	testKeySource = "../../attest/testdata/test-only-release.key"
	testPub       = "../../attest/testdata/test-only-release.pub"
)

// testKey is a 0600 copy of the test-only key: attest refuses a private
// key others may read, and a git checkout does not keep the mode.
var testKey = func() string {
	data, err := os.ReadFile(testKeySource)
	if err != nil {
		panic(err)
	}
	dir, err := os.MkdirTemp("", "tbkey")
	if err != nil {
		panic(err)
	}
	path := filepath.Join(dir, "test-only-release.key")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		panic(err)
	}
	return path
}()

type decision struct {
	Verdict, Mode, Reason string
	PolicyDigest          string `json:"policy_digest"`
}

// compileAndSign runs `gatekeeper compile` and `attest sign --role ROLE`
// on a policy source and returns the object's path.
func compileAndSign(t *testing.T, dir, name, src, role string) string {
	t.Helper()
	bt := filepath.Join(dir, name+".bt")
	if err := os.WriteFile(bt, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(dir, name+".o")
	if r := tracebroker(t, "gatekeeper", "compile", bt, "-o", obj); r.code != 0 {
		t.Fatalf("gatekeeper compile: %d\n%s", r.code, r.stderr)
	}
	if role != "" {
		if r := tracebroker(t, "attest", "sign", "--key", testKey, "--role", role, obj); r.code != 0 {
			t.Fatalf("attest sign: %d\n%s", r.code, r.stderr)
		}
	}
	return obj
}

func eval(t *testing.T, dir string, request string, args ...string) (decision, result) {
	t.Helper()
	req := filepath.Join(dir, "req.json")
	if err := os.WriteFile(req, []byte(request), 0o644); err != nil {
		t.Fatal(err)
	}
	r := tracebroker(t, append(append([]string{"gatekeeper", "eval"}, args...), "--request", req)...)
	var d decision
	if r.code == 0 {
		if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
			t.Fatalf("eval printed %q: %v", r.stdout, err)
		}
	}
	return d, r
}

// TestGatekeeperHeldOut runs the held-out site policy and scenarios of
// testdata/gatekeeper/heldout through `gatekeeper compile` and
// `gatekeeper eval`, signed with the test-only release key.
func TestGatekeeperHeldOut(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("../../testdata/gatekeeper/heldout/policy.bt")
	if err != nil {
		t.Fatal(err)
	}
	obj := compileAndSign(t, dir, "site", string(src), "policy")
	data, err := os.ReadFile("../../testdata/gatekeeper/heldout/scenarios.json")
	if err != nil {
		t.Fatal(err)
	}
	var scenarios []struct {
		Name          string
		Flags         []string
		Request       json.RawMessage
		Verdict, Mode string
	}
	if err := json.Unmarshal(data, &scenarios); err != nil {
		t.Fatal(err)
	}
	pub, err := attest.LoadPublicKey(testPub)
	if err != nil {
		t.Fatal(err)
	}
	ids := strings.NewReplacer(`"RELEASE"`, `"`+pub.ID+`"`, `"OTHER"`, `"`+strings.Repeat("c", 64)+`"`)
	for _, sc := range scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			args := []string{"--trust", testPub}
			policy := true
			for _, f := range sc.Flags {
				if f == "--no-policy" {
					policy = false
					continue
				}
				args = append(args, f)
			}
			if policy {
				args = append(args, "--policy", obj)
			}
			d, r := eval(t, dir, ids.Replace(string(sc.Request)), args...)
			if r.code != 0 {
				t.Fatalf("eval exited %d: %s", r.code, r.stderr)
			}
			if d.Verdict != sc.Verdict || d.Mode != sc.Mode {
				t.Errorf("verdict %s mode %q (%s), want %s %q", d.Verdict, d.Mode, d.Reason, sc.Verdict, sc.Mode)
			}
			if policy && !strings.HasPrefix(d.PolicyDigest, "sha256:") {
				t.Errorf("no policy digest in %+v", d)
			}
		})
	}
}

// writePolicy writes hand-made policy bytecode as an object, for what
// the script language cannot express.
func writePolicy(t *testing.T, path string, insns asm.Instructions) {
	t.Helper()
	var b bytes.Buffer
	spec := &ebpf.MapSpec{Name: compile.TrustedKeysMap, Type: ebpf.Hash, KeySize: abi.KeyIDSize, ValueSize: 8, MaxEntries: 16}
	if err := policyelf.Write(&b, "gatekeeper", insns, []*ebpf.MapSpec{spec}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestGatekeeperHostile: policies that loop forever, read outside the
// Request or call a helper policies do not get all deny, promptly, with
// the reason; so do a tampered or wrongly signed policy. eval still
// exits 0: it decided.
func TestGatekeeperHostile(t *testing.T) {
	dir := t.TempDir()
	loop := compileAndSign(t, dir, "loop", `gatekeeper { $i = 0; while ($i >= 0) { $i = $i + 0; } return any; }`, "")
	oob := filepath.Join(dir, "oob.o")
	writePolicy(t, oob, asm.Instructions{
		asm.LoadMem(asm.R0, asm.R1, int16(abi.Size), asm.DWord),
		asm.Return(),
	})
	helper := filepath.Join(dir, "helper.o")
	writePolicy(t, helper, asm.Instructions{
		asm.FnKtimeGetNs.Call(),
		asm.Mov.Imm(asm.R0, abi.Any),
		asm.Return(),
	})
	tampered := compileAndSign(t, dir, "tampered", `gatekeeper { return deny; }`, "policy")
	f, err := os.OpenFile(tampered, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0})
	f.Close()
	wrongRole := compileAndSign(t, dir, "wrongrole", `gatekeeper { return any; }`, "generator")
	tests := []struct {
		name   string
		args   []string
		reason string
	}{
		{"endless loop", []string{"--policy", loop, "--unsigned-policy"}, "budget"},
		{"read past the request", []string{"--policy", oob, "--unsigned-policy"}, "policy refused"},
		{"helper outside the policy table", []string{"--policy", helper, "--unsigned-policy"}, "policy refused"},
		{"tampered after signing", []string{"--policy", tampered, "--trust", testPub}, "digest mismatch"},
		{"signed for another role", []string{"--policy", wrongRole, "--trust", testPub}, "role"},
		{"unsigned", []string{"--policy", oob, "--trust", testPub}, "policy refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, r := eval(t, dir, `{"uid": 0}`, tc.args...)
			if r.code != 0 {
				t.Fatalf("eval exited %d: %s", r.code, r.stderr)
			}
			if d.Verdict != "deny" || d.Mode != "" || !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("decision %+v, want a denial with %q", d, tc.reason)
			}
			if r.took > 5*time.Second {
				t.Errorf("eval took %v", r.took)
			}
		})
	}
	// What eval cannot decide is an error, not a verdict.
	if _, r := eval(t, dir, `{"uid": "root"}`); r.code == 0 || !strings.Contains(r.stderr, "uid") {
		t.Errorf("a bad request: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestRunGatekeeper: run asks the gatekeeper first; a denial or a mode
// this build cannot run leaves nothing loaded and says why.
func TestRunGatekeeper(t *testing.T) {
	require(t, needKernel)
	dir := t.TempDir()
	admit := compileAndSign(t, dir, "admit", `gatekeeper { if (req.uid == 0 && req.program_type == "begin") { return any; } }`, "policy")
	deny := compileAndSign(t, dir, "deny", `gatekeeper { return deny; }`, "policy")
	begin := []string{"-e", `BEGIN { printf("ran\n"); exit(); }`}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"admitted", append([]string{"run", "-q", "--policy", admit, "--trust", testPub}, begin...), 0, "ran\n\n\n", ""},
		{"denied", append([]string{"run", "--policy", deny, "--trust", testPub}, begin...), 1, "",
			"ERROR: the gatekeeper denied BEGIN: policy " + deny + " returned deny\n"},
		{"HVCI picks the interpreter", append([]string{"run", "-v", "-q", "--policy", admit, "--trust", testPub, "--hvci", "on"}, begin...), 0, "ran\n\n\n",
			"(interpreter mode)"},
		{"untrusted policy", append([]string{"run", "--policy", admit, "--trust", filepath.Join(dir, "nosuch.pub")}, begin...), 1, "", "nosuch.pub"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tracebroker(t, tc.args...)
			if r.code != tc.code || r.stdout != tc.stdout || !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("exit %d stdout %q stderr %q; want %d %q %q", r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}
