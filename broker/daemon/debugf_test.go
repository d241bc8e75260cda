package daemon

import (
	"errors"
	"strings"
	"testing"

	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/token"
)

// TestDebugfRefused: debugf() writes the host's trace buffer, which every
// tracer shares: no scope grants it to a token holder, and the refusal
// names the helper.
func TestDebugfRefused(t *testing.T) {
	needKernel(t)
	d := startDaemon(t, daemonOpts{})
	tok := d.token(t, token.IssueOptions{Subject: "mallory", Scope: "trace probe:** read:kernel read:user", ID: "jti-debugf"})
	r := d.start(t, tok, &pb.TraceRequest{Source: []byte(`tracepoint:syscalls:sys_enter_getcwd { debugf("spam %d", pid); }`)})
	r.wait(t)
	var ce *CallError
	if !errors.As(r.err, &ce) || ce.Code != "PermissionDenied" || !strings.Contains(ce.Message, "bpf_trace_printk") {
		t.Fatalf("err = %v, want PermissionDenied naming bpf_trace_printk", r.err)
	}
}
