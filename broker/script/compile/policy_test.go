package compile

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/gatekeeper/abi"
	"github.com/tracebroker/tracebroker/interp"
)

const testPolicy = `
gatekeeper {
	if (req.uid == 0) { return any; }
	if (req.hvci && !req.broker_verified) { return deny; }
	$n = 0;
	while ($n < 3) { $n++; }
	if (trusted(req.program_signer, "release") && req.program_signed) {
		return jit;
	}
	if (has_prefix(req.attach, "tracepoint:syscalls:") && req.covers == 4 && req.broker_verified) {
		return interpreter;
	}
	if (req.generator == "opensnoop" && $n == 3) { return interpreter; }
}
`

// TestPolicy compiles a policy and runs it in the interpreter over
// requests laid out by gatekeeper/abi, with a trusted-keys map.
func TestPolicy(t *testing.T) {
	f, err := syntax.Parse("policy.bt", []byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	prog, err := Policy(f)
	if err != nil {
		t.Fatal(err)
	}
	maps := map[string]*interp.Map{}
	for _, spec := range prog.Maps {
		m, err := interp.NewMap(spec, interp.MapOptions{})
		if err != nil {
			t.Fatal(err)
		}
		maps[spec.Name] = m
	}
	release := strings.Repeat("ab", 32)
	key := make([]byte, abi.KeyIDSize)
	copy(key, release)
	roles := binary.LittleEndian.AppendUint64(nil, abi.RoleRelease|abi.RoleBroker)
	if err := maps[TrustedKeysMap].Update(key, roles, 0); err != nil {
		t.Fatal(err)
	}
	p, err := interp.LoadInstructions(prog.Probes[0].Insns, maps, interp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		set  map[string]any
		want uint64
	}{
		{"root", map[string]any{"uid": uint64(0)}, abi.Any},
		{"nobody, nothing", map[string]any{"uid": uint64(1000)}, abi.Deny},
		{"hvci, broker unverified", map[string]any{"uid": uint64(1000), "hvci": true, "program_signed": true, "program_signer": release}, abi.Deny},
		{"signed by release key", map[string]any{"uid": uint64(1000), "program_signed": true, "program_signer": release}, abi.JIT},
		{"signer not trusted", map[string]any{"uid": uint64(1000), "program_signed": true, "program_signer": strings.Repeat("cd", 32)}, abi.Deny},
		{"trusted but not signed", map[string]any{"uid": uint64(1000), "program_signer": release}, abi.Deny},
		{"syscalls from a verified broker", map[string]any{"uid": uint64(1000), "attach": "tracepoint:syscalls:sys_enter_openat", "covers": uint64(4), "broker_verified": true}, abi.Interpreter},
		{"sched from a verified broker", map[string]any{"uid": uint64(1000), "attach": "tracepoint:sched:sched_switch", "covers": uint64(4), "broker_verified": true}, abi.Deny},
		{"generator by name", map[string]any{"uid": uint64(1000), "generator": "opensnoop"}, abi.Interpreter},
		{"generator prefix only", map[string]any{"uid": uint64(1000), "generator": "opensnoopX"}, abi.Deny},
	}
	for _, tc := range tests {
		req := make([]byte, abi.Size)
		for name, v := range tc.set {
			f, ok := abi.Lookup(name)
			if !ok {
				t.Fatalf("no field %s", name)
			}
			if err := abi.Put(req, f, v); err != nil {
				t.Fatal(err)
			}
		}
		got, err := p.Run(&interp.Env{}, req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s: verdict %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestPolicyErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{`gatekeeper { @x = 1; return any; }`, "maps are not available in a gatekeeper policy"},
		{`gatekeeper { return pid; }`, "pid is not available in a gatekeeper policy"},
		{`gatekeeper { printf("x"); }`, "printf() is not available in a gatekeeper policy"},
		{`gatekeeper { return req.nosuch; }`, "the gatekeeper Request has no field named 'nosuch'"},
		{`gatekeeper { return req.attach; }`, "a policy returns a verdict, not string[128]"},
		{`gatekeeper { return; }`, "a policy returns a verdict: return deny|interpreter|jit|any;"},
		{`gatekeeper { if (trusted(req.broker_signer, "admin")) { return any; } }`, "unknown role \"admin\""},
		{`gatekeeper { if (has_prefix(req.attach, req.generator)) { return any; } }`, "has_prefix() expects a string literal as second argument"},
		{`gatekeeper { return any; } gatekeeper { return deny; }`, "More than one gatekeeper block defined"},
		{`BEGIN { return; }`, "a policy holds one gatekeeper { … } block and nothing else"},
		{`gatekeeper /req.uid == 0/ { return any; }`, "a gatekeeper block takes no predicate"},
	}
	for _, tc := range tests {
		f, err := syntax.Parse("policy.bt", []byte(tc.src))
		if err == nil {
			_, err = Policy(f)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.src, err, tc.want)
		}
	}
	// A gatekeeper block is not a probe.
	_, _, err := compileString(t, `gatekeeper { return any; }`)
	if err == nil || !strings.Contains(err.Error(), "a gatekeeper block is an admission policy, not a probe") {
		t.Errorf("Compile of a policy: %v", err)
	}
}
