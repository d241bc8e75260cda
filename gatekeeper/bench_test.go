package gatekeeper

import (
	"slices"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/gatekeeper/abi"
)

// benchRequest is what realisticPolicy admits: a verified broker's
// tracepoint program, with a token.
func benchRequest() *Request {
	return &Request{
		Form: abi.FormSource, Covers: abi.CoversSourceOfProgram,
		BrokerVerified: true, TokenPresent: true, TokenScope: abi.ScopeTrace | abi.ScopeProbe,
		UID: 1000, GID: 1000, InsnCount: 120,
		ProgramType: "tracepoint", Attach: "tracepoint:syscalls:sys_enter_openat",
		BrokerDigest: "sha256:" + releaseKey, BrokerSigner: releaseKey,
		Generator: "script", TokenSubject: "responder@example.com",
	}
}

// latencyP99 times n decisions one by one and returns the 99th
// percentile: admission is on the path of every trace started, so its
// tail matters more than its mean.
func latencyP99(tb testing.TB, g *Gatekeeper, req *Request, n int) time.Duration {
	lat := make([]time.Duration, n)
	for i := range lat {
		start := time.Now()
		d := g.Decide(req)
		lat[i] = time.Since(start)
		if d.Verdict != Any {
			tb.Fatalf("Decide = %+v", d)
		}
	}
	slices.Sort(lat)
	return lat[n*99/100]
}

// BenchmarkDecide is admission latency with a realistic policy. Besides
// ns/op it reports p99-ns over 100k separately timed decisions; the goal
// is a p99 of at most 20 µs.
func BenchmarkDecide(b *testing.B) {
	g := mustGatekeeper(b, Config{Default: "strict", Platform: jitOn, Roles: testRoles})
	p := mustPolicy(b, "realistic", realisticPolicy(), PolicyOptions{Roles: testRoles})
	g.Load(p)
	req := benchRequest()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		g.Decide(req)
	}
	b.StopTimer()
	b.ReportMetric(float64(latencyP99(b, g, req, 100_000).Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(p.prog.Len()), "insns")
}

// TestDecideLatency holds the goal in the ordinary test run, with a
// margin for a loaded machine or the race detector.
func TestDecideLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	g := mustGatekeeper(t, Config{Default: "strict", Platform: jitOn, Roles: testRoles})
	g.Load(mustPolicy(t, "realistic", realisticPolicy(), PolicyOptions{Roles: testRoles}))
	if p99 := latencyP99(t, g, benchRequest(), 20_000); p99 > 200*time.Microsecond {
		t.Errorf("p99 admission latency %v, goal 20µs", p99)
	}
}
