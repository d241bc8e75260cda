package token

import (
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/attest"
)

// BenchmarkVerify is the daemon's cost per request for its token:
// header and claims checks, one Ed25519 verification, the revocation
// lookup.
func BenchmarkVerify(b *testing.B) {
	k := genKey(b)
	raw, err := Issue(k, IssueOptions{Subject: "alice", Scope: "trace probe:tracepoint:syscalls:* gen:opensnoop", TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	v, err := NewVerifier(Config{Keys: []*attest.PublicKey{k.Public()}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAllowsProbe is one probe checked against a token's scopes.
func BenchmarkAllowsProbe(b *testing.B) {
	s, err := ParseScopes("trace probe:tracepoint:sched:* probe:uprobe:/usr/bin/*:* probe:tracepoint:syscalls:sys_*_open*")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !s.AllowsProbe("tracepoint:syscalls:sys_enter_openat") {
			b.Fatal("not allowed")
		}
	}
}

// BenchmarkCheckScopes is what `token issue` and `token inspect` add to
// ParseScopes: each probe pattern run over the known probe types.
func BenchmarkCheckScopes(b *testing.B) {
	const scope = "trace probe:tracepoint:sched:* probe:uprobe:/usr/bin/*:* probe:tracepoint:syscalls:sys_*_open* gen:opensnoop read:user"
	for _, bm := range []struct {
		name  string
		check func(string) (Scopes, error)
	}{{"parse", ParseScopes}, {"check", CheckScopes}} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bm.check(scope); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
