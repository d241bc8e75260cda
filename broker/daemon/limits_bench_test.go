package daemon

import (
	"context"
	"crypto/tls"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/broker/audit"
	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
)

// BenchmarkRefusedRequest is what an unauthenticated request (a bad
// token, a 60 KiB name) costs the daemon, from a peer that is not local
// root (TLS on loopback): each refusal recorded (an fsynced record), or
// past the peer's share of records (a count). audit_B/op is what it adds
// to the audit log.
func BenchmarkRefusedRequest(b *testing.B) {
	for _, tc := range []struct {
		name string
		rate float64
	}{{"recorded", -1}, {"limited", 1e-9}} {
		b.Run(tc.name, func(b *testing.B) {
			cert, pool := selfSigned(b)
			d := startDaemon(b, daemonOpts{listen: "127.0.0.1:0", tls: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13},
				configure: func(_ *testDaemon, c *Config) { c.RefusalRate, c.PreAuthTimeout = tc.rate, 0 }})
			c, err := Dial(Target{Addr: d.srv.TCPAddr().String(), TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}, Token: "not.a.token"})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req := &pb.TraceRequest{Name: strings.Repeat("N", 60<<10), Source: []byte("BEGIN { exit(); }")}
			size := func() int64 {
				var n int64
				fs, _ := audit.Files(d.auditLog)
				for _, f := range fs {
					if fi, err := os.Stat(f); err == nil {
						n += fi.Size()
					}
				}
				return n
			}
			start := size()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Trace(context.Background(), nil, req, io.Discard, io.Discard); err == nil {
					b.Fatal("not refused")
				}
			}
			b.ReportMetric(float64(size()-start)/float64(b.N), "audit_B/op")
		})
	}
}
