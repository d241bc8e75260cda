package broker

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/compile"
	"github.com/tracebroker/tracebroker/gatekeeper"
	"github.com/tracebroker/tracebroker/gatekeeper/abi"
)

// TestRequestReads: each class of program.Reads has its own bit in the
// Request, the one ABI.md documents.
func TestRequestReads(t *testing.T) {
	var all program.Reads
	seen := uint64(0)
	for _, b := range readBits {
		if got := requestReads(b.class); got != b.bit || seen&got != 0 {
			t.Errorf("%s: bit %#x (seen %#x)", b.class, got, seen)
		}
		all |= b.class
		seen |= b.bit
	}
	if all != program.ReadsContext|program.ReadsUserContext|program.ReadsUser|program.ReadsKernel|program.ReadsKernelAddr {
		t.Errorf("readBits covers %s", all)
	}
	if requestReads(0) != 0 {
		t.Error("no reads, some bits")
	}
}

// kernelReadsPolicy denies token holders any kernel read or kernel
// address, whatever their scopes, and admits the rest of what a token
// with the trace scope submits.
const kernelReadsPolicy = `
gatekeeper {
	if (!req.token_present) { return any; }
	if (req.reads & 24) { return deny; }
	if (req.token_scope & 1) { return any; }
	return deny;
}
`

// TestPolicyOnReads: the compiler's read classes reach the policy as
// req.reads, probe by probe, and a policy can refuse kernel reads to
// token holders even where their scopes would allow them.
func TestPolicyOnReads(t *testing.T) {
	k := policyKeeper(t, "reads.bt", kernelReadsPolicy)
	for _, tt := range []struct {
		name, script string
		token        bool
		denied       string // the probe denied, "" for admitted
	}{
		{"printf", `BEGIN { printf("hi\n"); }`, true, ""},
		{"kernel read", `BEGIN { printf("%s\n", str(0xffff888000000000)); }`, true, "BEGIN"},
		{"kernel read in END only", `BEGIN { printf("hi\n"); } END { printf("%rx\n", buf(0xffff888000000000, 8)); }`, true, "END"},
		{"kernel read as root", `BEGIN { printf("%s\n", str(0xffff888000000000)); }`, false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			prog, _, err := compileScript("stdin", []byte(tt.script), nil, compile.Options{})
			if err != nil {
				t.Fatal(err)
			}
			g := &Gate{Keeper: k, Request: gatekeeper.Request{UID: 1000, Form: abi.FormSource}}
			if tt.token {
				// read:kernel granted: the policy is stricter than the scopes.
				g.Request.TokenPresent, g.Request.TokenSubject = true, "alice"
				g.Request.TokenScope = abi.ScopeTrace | abi.ScopeReadKernel | abi.ScopeReadUser
			}
			_, err = admit(g, &Request{Name: "stdin"}, prog)
			denied := wantDenied(t, err, tt.denied)
			switch {
			case tt.denied != "" && (denied.Probe != tt.denied || !strings.Contains(denied.Decision.Reason, "policy reads.bt returned deny")):
				t.Errorf("denied %s: %s; want %s by the policy", denied.Probe, denied.Decision.Reason, tt.denied)
			}
		})
	}
}

// TestRawReads: a plugin's raw eBPF is judged by the helpers it calls
// and how its output prints, and nothing it claimed is kept.
func TestRawReads(t *testing.T) {
	prog := &program.Program{
		Probes: []*program.Probe{
			{Name: "a", Insns: asm.Instructions{asm.FnProbeReadUserStr.Call()}, Reads: program.ReadsContext,
				ReadSites: []program.ReadSite{{Class: program.ReadsUser}}},
			{Name: "b", Insns: asm.Instructions{asm.FnProbeReadKernel.Call(), asm.FnMapLookupElem.Call()}},
			{Name: "c", Insns: asm.Instructions{asm.FnGetCurrentPidTgid.Call()}},
		},
		Schema: program.Schema{Maps: []*program.Map{{Keys: []program.Type{{Kind: program.KStack, Perf: true}}}}},
	}
	judgeRawReads(prog)
	want := []program.Reads{
		program.ReadsUser | program.ReadsKernelAddr,
		program.ReadsKernel | program.ReadsKernelAddr,
		program.ReadsKernelAddr,
	}
	for i, p := range prog.Probes {
		if p.Reads != want[i] || p.ReadSites != nil {
			t.Errorf("%s: %s %v, want %s and no sites", p.Name, p.Reads, p.ReadSites, want[i])
		}
	}
}
