package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// root on the host:
// tracebroker audit show --since 1h
// tracebroker audit show --session ID
// tracebroker audit show --subject alice --event trace.refused
// What alice's trace ran, from its attestations, and her refusal.
func (o *operator) auditShow(t *testing.T) {
	out := o.must(t, "audit", "show", "--state", o.state, "--since", "1h")
	for _, want := range []string{": chain verified\n", " trace.request ", " trace.admitted ", " trace.end ", " trace.refused "} {
		if !strings.Contains(out, want) {
			t.Errorf("audit show: no %q in\n%s", want, out)
		}
	}
	var recs []struct {
		Session string `json:"session"`
	}
	if err := json.Unmarshal([]byte(o.must(t, "audit", "show", "--state", o.state, "--event", "trace.admitted", "--json")), &recs); err != nil || len(recs) != 1 {
		t.Fatalf("audit show --json: %v, %d admissions, want 1", err, len(recs))
	}
	out = o.must(t, "audit", "show", "--state", o.state, "--session", recs[0].Session)
	for _, want := range []string{
		"session " + recs[0].Session + "\n",
		" by alice (token ",
		" mode jit\n",
		"  ended      ",
		": interrupted, status 0",
		"  attestations (1):\n    tracepoint:syscalls:sys_enter_getcwd: ",
		"  source (kept, matches the signed digest):\n    | tracepoint:syscalls:sys_enter_getcwd /pid == ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("audit show --session: no %q in\n%s", want, out)
		}
	}
	out = o.must(t, "audit", "show", "--state", o.state, "--subject", "alice", "--event", "trace.refused")
	if !strings.Contains(out, "stage=scope code=PermissionDenied reason=the token of \"alice\" does not allow probe tracepoint:syscalls:sys_enter_openat") {
		t.Errorf("audit show --subject alice --event trace.refused:\n%s", out)
	}
}
