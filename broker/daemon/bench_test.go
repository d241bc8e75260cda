package daemon

import (
	"context"
	"io"
	"testing"
	"time"

	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/token"
)

// BenchmarkTrace is one whole trace through the daemon, from the
// request to the Exit: token check, compile, gatekeeper, attestation
// (signed, written), four audit records (fsync each), load, attach,
// BEGIN, detach, output streamed back. Compare with `run`'s start-up
// (make bench).
func BenchmarkTrace(b *testing.B) {
	for _, tc := range []struct {
		name           string
		token, metrics bool
	}{{"root", false, false}, {"token", true, false}, {"token+metrics", true, true}} {
		b.Run(tc.name, func(b *testing.B) { benchTrace(b, tc.token, tc.metrics) })
	}
}

func benchTrace(b *testing.B, withToken, metrics bool) {
	needKernel(b)
	o := daemonOpts{}
	if metrics {
		o.configure = withMetrics
	}
	d := startDaemon(b, o)
	scope := ""
	if withToken {
		scope = "trace probe:**"
	}
	c := benchClient(b, d, scope)
	req := &pb.TraceRequest{Source: []byte(`BEGIN { printf("hi\n"); exit(); }`), Quiet: true}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Trace(context.Background(), nil, req, io.Discard, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// benchClient is a client of d with a token of scope, or without a token
// for "": closed when b ends.
func benchClient(b *testing.B, d *testDaemon, scope string) *Client {
	b.Helper()
	tok := ""
	if scope != "" {
		var err error
		tok, err = token.Issue(d.issuer, token.IssueOptions{Subject: "bench", Scope: scope, TTL: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
	}
	c, err := Dial(Target{Socket: d.socket, Token: tok})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}
