package broker

import (
	"maps"
	"slices"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/gatekeeper"
	"github.com/tracebroker/tracebroker/gatekeeper/abi"
)

// uprobePolicy admits uprobes on /srv/app's handle_ functions in either
// mode, and no other uprobe; uretprobes interpreted.
const uprobePolicy = `
gatekeeper {
	if (req.program_type == "uretprobe") { return interpreter; }
	if (req.program_type == "uprobe" && has_prefix(req.attach, "uprobe:/srv/app:handle_")) { return any; }
	return deny;
}
`

// TestAttacksUprobeMultiPolicy: a uprobe.multi probe is judged by the
// gatekeeper function by function, under the program_type of a uprobe,
// so that its pattern carries no function past a policy that names
// functions; a uretprobe.multi probe allowed only interpreted makes the
// trace so.
func TestAttacksUprobeMultiPolicy(t *testing.T) {
	k := policyKeeper(t, "uprobe.bt", uprobePolicy)
	multi := func(kind program.ProbeKind, pattern string, funcs ...string) *program.Probe {
		offs := make([]uint64, len(funcs))
		for i := range offs {
			offs[i] = uint64(0x1000 + 16*i)
		}
		return &program.Probe{Kind: kind, Name: program.UprobeName(kind, "/srv/app", pattern), Path: "/srv/app", Funcs: funcs, Offsets: offs}
	}
	for _, tt := range []struct {
		name   string
		probes []*program.Probe
		denied string
		mode   string
	}{
		{"admitted", []*program.Probe{multi(program.Uprobe, "handle_*", "handle_get", "handle_put")}, "", gatekeeper.ModeJIT},
		{"pattern_hides_a_function", []*program.Probe{multi(program.Uprobe, "*", "handle_get", "check_password", "handle_put")}, "uprobe:/srv/app:check_password", ""},
		{"another_file", []*program.Probe{{Kind: program.Uprobe, Name: "uprobe:/srv/other:handle_*", Path: "/srv/other", Funcs: []string{"handle_get"}, Offsets: []uint64{0x1000}}}, "uprobe:/srv/other:handle_get", ""},
		{"uretprobe_interpreted", []*program.Probe{multi(program.Uprobe, "handle_*", "handle_get"), multi(program.Uretprobe, "handle_*", "handle_get")}, "", gatekeeper.ModeInterpreter},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := &Gate{Keeper: k, Request: gatekeeper.Request{UID: 1000, Form: abi.FormSource}}
			a, err := admit(g, &Request{Name: "stdin"}, &program.Program{Probes: tt.probes})
			denied := wantDenied(t, err, tt.denied)
			switch {
			case tt.denied != "" && denied.Probe != tt.denied:
				t.Errorf("denied %s, want %s", denied.Probe, tt.denied)
			case tt.denied == "" && a.Mode != tt.mode:
				t.Errorf("mode %s, want %s", a.Mode, tt.mode)
			}
		})
	}
}

// TestAttestUprobeMulti: the attestation of a uprobe.multi probe names
// every function it attaches to, not only its pattern.
func TestAttestUprobeMulti(t *testing.T) {
	insns := asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	prog := &program.Program{Probes: []*program.Probe{
		{Kind: program.Uprobe, Name: "uprobe:/srv/app:handle_*", Path: "/srv/app", Funcs: []string{"handle_get", "handle_put"}, Offsets: []uint64{0x1000, 0x1010}, Insns: insns},
		{Kind: program.Uretprobe, Name: "uretprobe:/srv/app:main", Path: "/srv/app", Offset: 0x2000, Insns: insns},
	}}
	got := attestedAttach(t, prog, "uprobe:/srv/app:handle_* {} uretprobe:/srv/app:main {}")
	want := map[string][]string{"uprobe:/srv/app:handle_*": {"uprobe:/srv/app:handle_get", "uprobe:/srv/app:handle_put"}, "uretprobe:/srv/app:main": nil}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("attested %v, want %v", got, want)
	}
}
