package broker

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/attest"
)

// TestAttestedRun: a run with Attest writes one attestation per program
// before loading, each verifiable offline with the host key alone and
// naming the script, the generator and the requester; a run whose
// attestations cannot be written does not start.
func TestAttestedRun(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	f := newFixture(t)
	host, err := attest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	broker := attest.Identity{Path: "/opt/tracebroker", Digest: strings.Repeat("cd", 32), Reason: string(attest.ReasonUnsigned)}
	dir := t.TempDir()
	script := `BEGIN { printf("hi\n"); }
tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { @n = count(); }
END { printf("bye\n"); }`
	req := Request{
		Source:  []byte(script),
		Command: f.expand("EXE get 2 0"),
		Attest:  &Attest{Dir: dir, Key: host, Broker: broker, Requester: attest.Requester{UID: 1234}},
	}
	out, stderr, err := runScript(t, req)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "@n: 2") {
		t.Fatalf("output %q", out)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.dsse.json"))
	if len(files) != 3 {
		t.Fatalf("%d attestations, want 3: %v", len(files), files)
	}
	var names []string
	for _, file := range files {
		env, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		p, signer, err := attest.VerifyProgram(env, attest.NewTrust(host.Public()), nil)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		names = append(names, p.Program.Name)
		// The source is kept once, beside the attestations, by the
		// digest each of them signs.
		if text, err := os.ReadFile(filepath.Join(dir, p.Source.TextRef)); err != nil || string(text) != script {
			t.Errorf("%s: source kept at %q: %q, %v", file, p.Source.TextRef, text, err)
		}
		if signer != host.ID || p.Source.Text != "" || p.Source.Digest != attest.SourceDigest([]byte(script)) ||
			p.Generator.Name != ScriptGenerator || p.Broker != broker || p.Requester.UID != 1234 || p.Program.Insns == 0 {
			t.Errorf("%s: predicate %+v", file, p)
		}
		// The gatekeeper's decision (here the loose default for root)
		// is part of what was attested.
		if d := p.Decision; d.Verdict != "any" || d.Mode != "jit" || !strings.Contains(d.Reason, "loose default") {
			t.Errorf("%s: decision %+v", file, d)
		}
	}
	if srcs, _ := filepath.Glob(filepath.Join(dir, "sources", "*")); len(srcs) != 1 {
		t.Errorf("sources kept: %v, want one", srcs)
	}
	slices.Sort(names)
	if want := []string{"BEGIN", "END", "tracepoint:syscalls:sys_enter_getcwd"}; !slices.Equal(names, want) {
		t.Fatalf("attested %v, want %v", names, want)
	}

	req.Attest = &Attest{Dir: "/dev/null/attest", Key: host, Broker: broker}
	out, _, err = runScript(t, req)
	if err == nil || !strings.Contains(err.Error(), "attestation") || out != "" {
		t.Fatalf("unwritable attestation dir: err %v, output %q", err, out)
	}
}
