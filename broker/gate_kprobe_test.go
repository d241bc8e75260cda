package broker

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/attest"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/compile"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/gatekeeper"
	"github.com/tracebroker/tracebroker/gatekeeper/abi"
)

// kprobePolicy admits kprobes on vfs_ functions, interpreted, and no
// other kprobe; kretprobes on anything.
const kprobePolicy = `
gatekeeper {
	if (req.program_type == "kretprobe") { return any; }
	if (req.program_type == "kprobe" && has_prefix(req.attach, "kprobe:vfs_")) { return interpreter; }
	return deny;
}
`

// TestAttacksKprobePolicy: the gatekeeper's Request carries the kprobe
// kinds as program_type, and a kprobe.multi probe is judged function by
// function, so that its pattern cannot carry a function past a policy
// that names functions.
func TestAttacksKprobePolicy(t *testing.T) {
	k := policyKeeper(t, "kprobe.bt", kprobePolicy)
	for _, tt := range []struct {
		name   string
		probe  *program.Probe
		denied string
	}{
		{"item6/kprobe_admitted", &program.Probe{Kind: program.Kprobe, Name: "kprobe:vfs_read", Event: "vfs_read"}, ""},
		{"item6/kprobe_denied", &program.Probe{Kind: program.Kprobe, Name: "kprobe:commit_creds", Event: "commit_creds"}, "kprobe:commit_creds"},
		{"item6/kretprobe_type", &program.Probe{Kind: program.Kretprobe, Name: "kretprobe:commit_creds", Event: "commit_creds"}, ""},
		{"item6/multi_admitted", &program.Probe{Kind: program.Kprobe, Name: "kprobe:vfs_*", Funcs: []string{"vfs_read", "vfs_write"}}, ""},
		{"item6/multi_pattern_hides_function", &program.Probe{Kind: program.Kprobe, Name: "kprobe:vfs_*", Funcs: []string{"vfs_read", "commit_creds"}}, "kprobe:commit_creds"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := &Gate{Keeper: k, Request: gatekeeper.Request{UID: 1000, Form: abi.FormSource}}
			a, err := admit(g, &Request{Name: "stdin"}, &program.Program{Probes: []*program.Probe{tt.probe}})
			denied := wantDenied(t, err, tt.denied)
			switch {
			case tt.denied != "" && denied.Probe != tt.denied:
				t.Errorf("denied %s, want %s", denied.Probe, tt.denied)
			case tt.denied == "" && tt.probe.Kind == program.Kprobe && a.Mode != gatekeeper.ModeInterpreter:
				t.Errorf("mode %s, want the policy's interpreter", a.Mode)
			}
		})
	}
}

// TestAttestKprobeMulti: the attestation of a kprobe.multi probe names
// every function it attaches to, not only its pattern.
func TestAttestKprobeMulti(t *testing.T) {
	insns := asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	prog := &program.Program{Probes: []*program.Probe{
		{Kind: program.Kprobe, Name: "kprobe:vfs_*", Funcs: []string{"vfs_read", "vfs_write"}, Insns: insns},
		{Kind: program.Kretprobe, Name: "kretprobe:vfs_read", Event: "vfs_read", Insns: insns},
	}}
	got := attestedAttach(t, prog, "kprobe:vfs_* {} kretprobe:vfs_read {}")
	want := map[string][]string{"kprobe:vfs_*": {"kprobe:vfs_read", "kprobe:vfs_write"}, "kretprobe:vfs_read": nil}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("attested %v, want %v", got, want)
	}
}

// attestedAttach attests prog, generated from source, and returns what
// each probe's verified attestation says it attaches to, by probe name.
func attestedAttach(t *testing.T, prog *program.Program, source string) map[string][]string {
	t.Helper()
	host, err := attest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a := &Attest{Dir: dir, Key: host, Broker: attest.Identity{Path: "/opt/tracebroker", Digest: strings.Repeat("cd", 32), Reason: string(attest.ReasonUnsigned)}}
	if _, err := attestPrograms(a, &Request{Name: "stdin", Source: []byte(source)}, prog, nil); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.dsse.json"))
	got := map[string][]string{}
	for _, file := range files {
		env, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		p, _, err := attest.VerifyProgram(env, attest.NewTrust(host.Public()), nil)
		if err != nil {
			t.Fatal(err)
		}
		got[p.Program.Name] = p.Program.Attach
	}
	return got
}

// policyKeeper is a gatekeeper with the loose default and the policy
// src, compiled, loaded as name.
func policyKeeper(t *testing.T, name, src string) *gatekeeper.Gatekeeper {
	t.Helper()
	f, err := syntax.Parse(name, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	pp, err := compile.Policy(f)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := gatekeeper.NewPolicy(name, pp.Probes[0].Insns, gatekeeper.PolicyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k, err := gatekeeper.New(gatekeeper.Config{Default: gatekeeper.DefaultLoose, Platform: gatekeeper.Platform{JITAvailable: true}})
	if err != nil {
		t.Fatal(err)
	}
	k.Load(pol)
	return k
}

// wantDenied fails the test unless admit's err is a denial when denied
// names a probe, and nil when it is ""; it returns the denial.
func wantDenied(t *testing.T, err error, denied string) *DeniedError {
	t.Helper()
	var d *DeniedError
	switch {
	case denied == "" && err != nil:
		t.Fatalf("denied: %v", err)
	case denied != "" && !errors.As(err, &d):
		t.Fatalf("admitted (%v), want %s denied", err, denied)
	}
	return d
}
