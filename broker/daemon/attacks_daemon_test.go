package daemon

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/broker/audit"
	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/token"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

func only(recs []auditRecord, event string, keep func(auditRecord) bool) []auditRecord {
	var out []auditRecord
	for _, r := range recs {
		if r.Event == event && (keep == nil || keep(r)) {
			out = append(out, r)
		}
	}
	return out
}

func fromUID(uid int) func(auditRecord) bool {
	return func(r auditRecord) bool {
		c, _ := r.Data["caller"].(map[string]any)
		return c != nil && c["uid"] == float64(uid)
	}
}

// sumHeld adds up a field of the peer.limited records of peer.
func sumHeld(recs []auditRecord, peer, field string) int {
	n := 0
	for _, r := range only(recs, audit.EventPeerLimited, nil) {
		if r.Data["peer"] == peer {
			n += int(r.Data[field].(float64))
		}
	}
	return n
}

// refusedWith runs req and checks that it is refused with code and a
// message containing msg, having printed nothing.
func refusedWith(t *testing.T, d *testDaemon, tok string, req *pb.TraceRequest, code codes.Code, msg string) {
	t.Helper()
	r := d.start(t, tok, req)
	r.wait(t)
	var ce *CallError
	if !errors.As(r.err, &ce) || ce.Code != code.String() || !strings.Contains(ce.Message, msg) {
		t.Fatalf("err = %v, want %s containing %q", r.err, code, msg)
	}
	if r.stdout.Len() > 0 {
		t.Errorf("stdout %q", r.stdout.String())
	}
}

// holderScope is what the valid token holder of every row may do.
const holderScope = "trace probe:tracepoint:syscalls:sys_enter_getcwd"

// holderTraces is the end of every row: a valid token holder, of uid
// (0: in this process), traces and counts exactly the syscalls made.
func holderTraces(t *testing.T, d *testDaemon, uid int, o token.IssueOptions) {
	t.Helper()
	o.Scope = holderScope
	if o.Subject == "" {
		o.Subject = "holder"
	}
	tok := d.token(t, o)
	const n = 6
	want := "Attaching 1 probe...\n\n\n@: " + strconv.Itoa(n)
	if uid == 0 {
		r := d.start(t, tok, &pb.TraceRequest{Source: getcwdScript()})
		d.attached(t, 1, r)
		kerneltest.Syscalls(n, 0)
		close(r.interrupt)
		r.wait(t)
		if r.err != nil || r.stdout.String() != want+"\n" {
			t.Fatalf("the token holder's trace: %v, stdout %q, want %q", r.err, r.stdout.String(), want+"\n")
		}
		return
	}
	c := startChild(t, filepath.Dir(d.socket), uid, "trace", "TB_SOCKET="+d.socket, "TB_SCRIPT="+string(getcwdScript()), TokenEnv+"="+tok)
	if l := c.line(t); l != "started" {
		t.Fatalf("child: %q", l)
	}
	d.attached(t, 1)
	kerneltest.Syscalls(n, 0)
	out, err := c.wait(t)
	if err != nil || out != want {
		t.Fatalf("the token holder's trace as uid %d: %v, stdout %q, want %q; stderr %s", uid, err, out, want, c.stderr.String())
	}
}

// craftToken signs header and claims given as JSON text, byte for byte.
func craftToken(key ed25519.PrivateKey, header, claims string) string {
	in := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(claims))
	return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(in)))
}

// claimsJSON are a token's claims, with extra ones appended as JSON.
func claimsJSON(iat, exp time.Time, extra string) string {
	return fmt.Sprintf(`{"iss":"tracebroker","sub":"mallory","aud":"tracebroker","iat":%d,"exp":%d,"jti":"j-%d","scope":%q%s}`,
		iat.Unix(), exp.Unix(), time.Now().UnixNano(), holderScope, extra)
}

// withVerifier makes the daemon verify tokens with c (its issuer key
// and revocation list added).
func withVerifier(c token.Config) func(*testDaemon, *Config) {
	return func(d *testDaemon, cfg *Config) {
		c.Keys, c.Revoked = []*attest.PublicKey{d.issuer.Public()}, d.rev
		v, err := token.NewVerifier(c)
		if err != nil {
			panic(err)
		}
		cfg.Tokens = v
	}
}

// TestAttacksDaemon: the daemon against its own users (issue 15, items
// 4, 5, 6, 7, 11 and 13's audit record). Each row makes an attack
// through the real daemon, as another uid where the attacker is a local
// user, and checks that it is refused or contained, what the audit log
// says of it, that it left nothing loaded, and that a valid token
// holder still traces afterwards, counting exactly.
func TestAttacksDaemon(t *testing.T) {
	needKernel(t)
	type row struct {
		name   string
		opts   daemonOpts
		holder int                // the valid holder's uid (0: this process)
		issue  token.IssueOptions // the valid holder's token
		attack func(*testing.T, *testDaemon)
		audit  func(*testing.T, []auditRecord)
		after  func(*testing.T, *testDaemon) // once it has stopped
	}
	// item 4: every number of the API in range, before anything else.
	outOfRange := func(name string, req *pb.TraceRequest, msg string) row {
		return row{name: "item4/" + name,
			attack: func(t *testing.T, d *testDaemon) {
				tok := d.token(t, token.IssueOptions{Scope: holderScope, MaxDuration: time.Second})
				req.Source = getcwdScript()
				refusedWith(t, d, tok, req, codes.InvalidArgument, msg)
			},
			audit: func(t *testing.T, recs []auditRecord) {
				ref := only(recs, audit.EventTraceRefused, func(r auditRecord) bool { return r.Data["stage"] == "request" })
				if len(ref) != 1 || ref[0].Data["code"] != "InvalidArgument" || !strings.Contains(ref[0].Data["reason"].(string), msg) {
					t.Errorf("refusals %v", ref)
				}
				if n := len(only(recs, audit.EventTraceAdmitted, nil)); n != 1 {
					t.Errorf("%d admissions: only the holder's may be", n)
				}
			}}
	}
	var revokeOnce sync.Once
	reloaded := make(chan struct{}, 1)
	rows := []row{
		outOfRange("duration_overflow", &pb.TraceRequest{DurationMs: math.MaxInt64}, "duration_ms 9223372036854775807 is out of range: 0 (no limit) to 2592000000 (30 days)"),
		outOfRange("duration_past_range", &pb.TraceRequest{DurationMs: MaxDurationMs + 1}, "duration_ms 2592000001 is out of range"),
		outOfRange("duration_negative", &pb.TraceRequest{DurationMs: -1}, "duration_ms -1 is out of range"),
		outOfRange("pid_negative", &pb.TraceRequest{Pid: -1}, "pid -1 is out of range: 0 (none) to 4194304"),
		outOfRange("pid_past_range", &pb.TraceRequest{Pid: MaxPID + 1}, "pid 4194305 is out of range"),
		{name: "item4/duration_at_range_capped",
			// The largest duration passes, and the token's max_duration
			// still caps it.
			attack: func(t *testing.T, d *testDaemon) {
				tok := d.token(t, token.IssueOptions{Scope: holderScope, MaxDuration: 2 * time.Second})
				r := d.start(t, tok, &pb.TraceRequest{Source: getcwdScript(), DurationMs: MaxDurationMs})
				ss := d.attached(t, 1, r)
				kerneltest.Syscalls(3, 0)
				if until := time.Until(time.UnixMilli(ss[0].DeadlineUnixMs)); until > 2*time.Second {
					t.Errorf("the session ends in %v, past the token's max_duration", until)
				}
				r.wait(t)
				if r.err != nil || r.res.Reason != "max_duration" || !strings.HasSuffix(r.stdout.String(), "\n@: 3\n") {
					t.Errorf("trace: %v, reason %q, stdout %q", r.err, r.res.Reason, r.stdout.String())
				}
			},
			audit: func(t *testing.T, recs []auditRecord) {
				if e := only(recs, audit.EventTraceEnd, func(r auditRecord) bool { return r.Data["reason"] == "max_duration" }); len(e) != 1 {
					t.Errorf("%d trace.end records for max_duration", len(e))
				}
			}},

		// item 5: a token revoked after its request was verified does
		// not run, whichever way the reload falls.
		{name: "item5/revoked_between_verify_and_register",
			opts: daemonOpts{configure: func(d *testDaemon, c *Config) {
				c.hooks = &testHooks{verified: func() {
					revokeOnce.Do(func() {
						if err := writeFile(d.revPath, "jti-5a\n"); err != nil {
							panic(err)
						}
						d.srv.Reload()
					})
				}}
			}},
			attack: func(t *testing.T, d *testDaemon) {
				revokeOnce = sync.Once{}
				tok := d.token(t, token.IssueOptions{Scope: holderScope, ID: "jti-5a"})
				refusedWith(t, d, tok, &pb.TraceRequest{Source: getcwdScript()}, codes.Unauthenticated, "invalid token: token jti-5a is revoked")
			},
			audit: func(t *testing.T, recs []auditRecord) {
				ref := only(recs, audit.EventTraceRefused, nil)
				if len(ref) != 1 || ref[0].Data["stage"] != "token" || len(only(recs, audit.EventTraceRequest, nil)) != 2 {
					t.Errorf("refusals %v", ref)
				}
				if r := only(recs, audit.EventDaemonReload, nil); len(r) != 1 || r[0].Data["revoked"] != 1.0 || r[0].Data["sessions_ended"] != 0.0 {
					t.Errorf("reloads %v", r)
				}
			}},
		{name: "item5/revoked_while_registering",
			// The last check passes on the old list; the reload reads
			// the new one and its sweep waits for the registration,
			// then ends the session.
			opts: daemonOpts{configure: func(d *testDaemon, c *Config) {
				c.hooks = &testHooks{
					admitted: func() {
						revokeOnce.Do(func() {
							if err := writeFile(d.revPath, "jti-5b\n"); err != nil {
								panic(err)
							}
							go d.srv.Reload()
							<-reloaded
						})
					},
					listReloaded: func() { reloaded <- struct{}{} },
				}
			}},
			attack: func(t *testing.T, d *testDaemon) {
				revokeOnce = sync.Once{}
				tok := d.token(t, token.IssueOptions{Scope: holderScope, ID: "jti-5b"})
				r := d.start(t, tok, &pb.TraceRequest{Source: getcwdScript()})
				r.wait(t)
				if r.res.Reason != "token_revoked" && !strings.Contains(fmt.Sprint(r.err), "revoked") {
					t.Errorf("the revoked token's trace: %v, reason %q, stdout %q", r.err, r.res.Reason, r.stdout.String())
				}
			},
			audit: func(t *testing.T, recs []auditRecord) {
				if r := only(recs, audit.EventDaemonReload, nil); len(r) != 1 || r[0].Data["sessions_ended"] != 1.0 {
					t.Errorf("reloads %v: want one that ended the session", r)
				}
				if e := only(recs, audit.EventTraceEnd, func(r auditRecord) bool { return r.Data["reason"] == "token_revoked" }); len(e) != 1 {
					t.Errorf("%d trace.end records for token_revoked", len(e))
				}
			}},

		// item 6: a flood of unauthenticated requests from one uid
		// costs a few bounded records and a count, while another uid
		// traces through it.
		{name: "item6/unauthenticated_flood", holder: holderUID,
			opts: daemonOpts{shared: true, configure: func(_ *testDaemon, c *Config) {
				// (The flooder's connection may stay: a busy host may take
				// longer than the default deadline to answer 300 requests.)
				c.RefusalBurst, c.RefusalRate, c.SummaryInterval, c.PreAuthTimeout = 5, 1e-9, time.Hour, 5*time.Minute
			}},
			attack: func(t *testing.T, d *testDaemon) {
				// The holder traces throughout the flood.
				tok := d.token(t, token.IssueOptions{Scope: holderScope, Subject: "holder"})
				h := startChild(t, filepath.Dir(d.socket), holderUID, "trace", "TB_SOCKET="+d.socket, "TB_SCRIPT="+string(getcwdScript()), TokenEnv+"="+tok)
				h.line(t)
				d.attached(t, 1)
				kerneltest.Syscalls(4, 0)
				f := startChild(t, filepath.Dir(d.socket), flooderUID, "flood", "TB_SOCKET="+d.socket, "TB_N=300", "TB_NAME_SIZE=61440")
				kerneltest.Syscalls(3, 0)
				if out, err := f.wait(t); err != nil || out != "Unauthenticated 300" {
					t.Fatalf("flood: %v, %q, %s", err, out, f.stderr.String())
				}
				kerneltest.Syscalls(2, 0)
				if out, err := h.wait(t); err != nil || out != "Attaching 1 probe...\n\n\n@: 9" {
					t.Errorf("the holder's trace during the flood: %v, %q, %s", err, out, h.stderr.String())
				}
			},
			audit: func(t *testing.T, recs []auditRecord) {
				ref := only(recs, audit.EventTraceRefused, fromUID(flooderUID))
				name := strings.Repeat("N", 61440)
				sum := sha256.Sum256([]byte(name))
				for _, r := range ref {
					if len(r.line) > 4096 || !strings.HasSuffix(r.Data["name"].(string), "…(sha256:"+hex.EncodeToString(sum[:])+", 61440 bytes)") {
						t.Errorf("a refusal of %d bytes, name %.60q…", len(r.line), r.Data["name"])
					}
				}
				if len(ref) != 5 || sumHeld(recs, "uid:65534", "refusals_unrecorded") != 295 {
					t.Errorf("%d refusals recorded, %d counted: want 5 and 295", len(ref), sumHeld(recs, "uid:65534", "refusals_unrecorded"))
				}
				var size int
				for _, r := range recs {
					size += len(r.line) + 1
				}
				t.Logf("300 refused requests of 60 KiB names: %d audit bytes in all", size)
			}},
		{name: "item6/refusal_record_bounded",
			// What one unauthenticated request can put in the log is a
			// few KiB, however much it sends.
			attack: func(t *testing.T, d *testDaemon) {
				params := map[string]string{}
				for i := 0; i < 500; i++ {
					params[fmt.Sprintf("%04d%s", i, strings.Repeat("k", 1000))] = strings.Repeat("v", 1000)
				}
				req := &pb.TraceRequest{Name: strings.Repeat("N", 60<<10), Generator: strings.Repeat("g", 60<<10), Params: params}
				refusedWith(t, d, "not.a.token", req, codes.Unauthenticated, "invalid token")
			},
			audit: func(t *testing.T, recs []auditRecord) {
				ref := only(recs, audit.EventTraceRefused, nil)
				if len(ref) != 1 || len(ref[0].line) > 4096 || ref[0].Data["params_count"] != 500.0 || ref[0].Data["params"] != nil ||
					!strings.HasPrefix(ref[0].Data["params_digest"].(string), "sha256:") {
					t.Errorf("refusals %v", ref)
				}
				if len(ref) == 1 {
					t.Logf("a refused request of %d KiB: a record of %d bytes", (60<<10+60<<10+500*2000)>>10, len(ref[0].line))
				}
			}},
		{name: "item6/flood_rotates", holder: holderUID,
			// Every refusal recorded: the log rotates, its files bounded
			// in size and number, the chain unbroken.
			opts: daemonOpts{shared: true, audit: audit.Options{MaxSize: audit.MinMaxSize, Keep: 2}, configure: func(_ *testDaemon, c *Config) {
				c.RefusalRate, c.PreAuthTimeout = -1, 5*time.Minute
			}},
			attack: func(t *testing.T, d *testDaemon) {
				f := startChild(t, filepath.Dir(d.socket), flooderUID, "flood", "TB_SOCKET="+d.socket, "TB_N=600", "TB_NAME_SIZE=61440")
				if out, err := f.wait(t); err != nil || out != "Unauthenticated 600" {
					t.Fatalf("flood: %v, %q, %s", err, out, f.stderr.String())
				}
			},
			after: checkRotated},

		// item 7: connections are bounded per peer, in all, and in time.
		{name: "item7/idle_flood", holder: holderUID,
			opts: daemonOpts{shared: true, configure: func(_ *testDaemon, c *Config) {
				c.MaxConnsPerPeer, c.MaxConns, c.PreAuthTimeout = 8, 64, time.Hour
			}},
			attack: func(t *testing.T, d *testDaemon) {
				c := startChild(t, filepath.Dir(d.socket), flooderUID, "idle", "TB_SOCKET="+d.socket, "TB_N=100")
				if l := c.line(t); l != "dialed" {
					t.Fatalf("child: %q", l)
				}
				// The 92 past the limit are closed at once.
				for i := 0; i < 92; i++ {
					c.line(t)
				}
				if n := d.srv.conns.count("uid:65534"); n != 8 {
					t.Fatalf("uid 65534 holds %d connections, want 8", n)
				}
				// Another uid traces meanwhile (holderTraces, next).
			},
			audit: func(t *testing.T, recs []auditRecord) {
				if n := sumHeld(recs, "uid:65534", "connections_refused"); n != 92 {
					t.Errorf("%d refused connections counted, want 92", n)
				}
			}},
		{name: "item7/preauth_deadline",
			opts: daemonOpts{shared: true, configure: func(_ *testDaemon, c *Config) {
				c.PreAuthTimeout = time.Second
			}},
			attack: func(t *testing.T, d *testDaemon) {
				c := startChild(t, filepath.Dir(d.socket), flooderUID, "idle", "TB_SOCKET="+d.socket, "TB_N=4")
				c.line(t)
				for i := 0; i < 4; i++ {
					var idx, ms int
					if _, err := fmt.Sscanf(c.line(t), "closed %d %d", &idx, &ms); err != nil || ms < 1000 || ms > 10000 {
						t.Errorf("connection %d closed after %d ms: want the deadline, 1s", idx, ms)
					}
				}
				// A Trace call that never sends its request ends too.
				conn, err := grpc.NewClient("unix://"+d.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				st, err := pb.NewBrokerClient(conn).Trace(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if _, err := st.Recv(); status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "no request within 1s") {
					t.Errorf("a call without a request: %v", err)
				}
			},
			audit: func(t *testing.T, recs []auditRecord) {
				if n := sumHeld(recs, "uid:65534", "connections_timed_out"); n != 4 {
					t.Errorf("%d connections counted as timed out, want 4", n)
				}
			}},
		{name: "item7/total_bound", holder: holderUID,
			opts: daemonOpts{shared: true, configure: func(_ *testDaemon, c *Config) {
				c.MaxConns, c.MaxConnsPerPeer, c.PreAuthTimeout = 10, 8, 2*time.Second
			}},
			attack: func(t *testing.T, d *testDaemon) {
				waitConns(t, d, func() bool { return d.srv.conns.total == 0 })
				a := startChild(t, filepath.Dir(d.socket), flooderUID, "idle", "TB_SOCKET="+d.socket, "TB_N=8")
				a.line(t)
				waitConns(t, d, func() bool { return d.srv.conns.byPeer["uid:65534"] == 8 })
				b := startChild(t, filepath.Dir(d.socket), flooder2UID, "idle", "TB_SOCKET="+d.socket, "TB_N=8")
				b.line(t)
				for i := 0; i < 6; i++ {
					if _, ms := closedLine(t, b); ms >= 2000 {
						t.Errorf("a connection past the total closed after %d ms, at the deadline rather than at once", ms)
					}
				}
				d.srv.conns.mu.Lock()
				total := d.srv.conns.total
				d.srv.conns.mu.Unlock()
				if total != 10 {
					t.Errorf("%d connections open, want the total bound, 10", total)
				}
				// The deadline frees them all.
				for i := 0; i < 8; i++ {
					closedLine(t, a)
				}
				for i := 0; i < 2; i++ {
					closedLine(t, b)
				}
			},
			audit: func(t *testing.T, recs []auditRecord) {
				if n := sumHeld(recs, "uid:65532", "connections_refused"); n != 6 {
					t.Errorf("%d connections of uid 65532 refused, want 6", n)
				}
			}},

		// item 11: tokens bound to their daemon and their lifetime.
		{name: "item11/token_for_another_host",
			opts:  daemonOpts{configure: withVerifier(token.Config{Audience: "tracebroker:host-a"})},
			issue: token.IssueOptions{Audience: "tracebroker:host-a"},
			attack: func(t *testing.T, d *testDaemon) {
				tok := d.token(t, token.IssueOptions{Scope: holderScope, Audience: "tracebroker:host-b"})
				refusedWith(t, d, tok, &pb.TraceRequest{Source: getcwdScript()}, codes.Unauthenticated, `token audience ["tracebroker:host-b"] is not tracebroker:host-a`)
			},
			audit: refusedAt("token", `token audience ["tracebroker:host-b"] is not tracebroker:host-a`)},
		{name: "item11/token_of_another_issuer",
			opts:  daemonOpts{configure: withVerifier(token.Config{Issuer: "corp-a"})},
			issue: token.IssueOptions{Issuer: "corp-a"},
			attack: func(t *testing.T, d *testDaemon) {
				tok := d.token(t, token.IssueOptions{Scope: holderScope, Issuer: "corp-b"})
				refusedWith(t, d, tok, &pb.TraceRequest{Source: getcwdScript()}, codes.Unauthenticated, `token issuer "corp-b" is not corp-a`)
			},
			audit: refusedAt("token", `token issuer "corp-b" is not corp-a`)},
		{name: "item11/lifetime_past_max",
			attack: func(t *testing.T, d *testDaemon) {
				now := time.Now()
				tok := craftToken(d.issuer.Key, `{"alg":"EdDSA","typ":"at+jwt","kid":"`+d.issuer.ID+`"}`, claimsJSON(now, now.Add(365*24*time.Hour), ""))
				refusedWith(t, d, tok, &pb.TraceRequest{Source: getcwdScript()}, codes.Unauthenticated, "token lives 8760h0m0s from iat to exp, longer than this broker's limit of 24h0m0s")
			},
			audit: refusedAt("token", "token lives 8760h0m0s from iat to exp")},
		{name: "item11/lifetime_past_configured",
			opts: daemonOpts{configure: withVerifier(token.Config{MaxLifetime: time.Hour})},
			attack: func(t *testing.T, d *testDaemon) {
				tok := d.token(t, token.IssueOptions{Scope: holderScope, TTL: 2 * time.Hour})
				refusedWith(t, d, tok, &pb.TraceRequest{Source: getcwdScript()}, codes.Unauthenticated, "token lives 2h0m0s from iat to exp, longer than this broker's limit of 1h0m0s")
			},
			audit: refusedAt("token", "longer than this broker's limit of 1h0m0s")},
		{name: "item11/duplicate_scope",
			// The second scope would be the one encoding/json keeps.
			attack: func(t *testing.T, d *testDaemon) {
				now := time.Now()
				tok := craftToken(d.issuer.Key, `{"alg":"EdDSA","typ":"at+jwt","kid":"`+d.issuer.ID+`"}`, claimsJSON(now, now.Add(time.Hour), `,"scope":"trace probe:**"`))
				refusedWith(t, d, tok, &pb.TraceRequest{Source: []byte("tracepoint:syscalls:sys_enter_getpid { @ = count(); }")}, codes.Unauthenticated, `token claims: the key "scope" appears more than once`)
			},
			audit: refusedAt("token", `the key "scope" appears more than once`)},
		{name: "item11/duplicate_header_folded",
			attack: func(t *testing.T, d *testDaemon) {
				now := time.Now()
				tok := craftToken(d.issuer.Key, `{"alg":"EdDSA","typ":"at+jwt","kid":"`+d.issuer.ID+`","Typ":"JWT"}`, claimsJSON(now, now.Add(time.Hour), ""))
				refusedWith(t, d, tok, &pb.TraceRequest{Source: getcwdScript()}, codes.Unauthenticated, `token header: the key "Typ" appears more than once`)
			},
			audit: refusedAt("token", `the key "Typ" appears more than once`)},

		// item 13: a record over 64 KiB is kept, bounded, not dropped.
		{name: "item13/audit_record_over_64k",
			attack: func(t *testing.T, d *testDaemon) {
				tok := d.token(t, token.IssueOptions{Scope: holderScope})
				// An error shows at most 1 KiB of the script's line, but
				// all of a name it does not know.
				script := "tracepoint:syscalls:sys_enter_getcwd { @ = count2" + strings.Repeat("x", 100<<10) + "(); }"
				r := d.start(t, tok, &pb.TraceRequest{Source: []byte(script)})
				r.wait(t)
				var ee *ExitError
				if !errors.As(r.err, &ee) || !strings.Contains(ee.Message, "Unknown function: count2") || len(ee.Message) < 100<<10 {
					t.Fatalf("trace: %v", r.err)
				}
			},
			audit: func(t *testing.T, recs []auditRecord) {
				e := only(recs, audit.EventTraceEnd, func(r auditRecord) bool { return r.Data["stage"] == "compile" })
				if len(e) != 1 {
					t.Fatalf("%d trace.end records of the compile error: it was dropped", len(e))
				}
				msg := e[0].Data["error"].(string)
				if !strings.Contains(msg, "Unknown function: count2") || len(msg) > audit.MaxField+100 || !strings.Contains(msg, "…(sha256:") {
					t.Errorf("the error recorded: %d bytes, %.100q", len(msg), msg)
				}
			}},
	}
	for _, tt := range rows {
		t.Run(tt.name, func(t *testing.T) {
			d := startDaemon(t, tt.opts)
			before, _ := kerneltest.LoadedIDs(t)
			tt.attack(t, d)
			holderTraces(t, d, tt.holder, tt.issue)
			if left := newSince(t, before); len(left) > 0 {
				t.Errorf("programs left loaded: %v", left)
			}
			d.stop(t)
			recs := auditRecords(t, d.auditLog)
			if tt.audit != nil {
				tt.audit(t, recs)
			}
			if tt.after != nil {
				tt.after(t, d)
			}
		})
	}
}

// refusedAt checks the one early refusal of a row: its stage and
// reason, in a trace.refused record that holds the request too.
func refusedAt(stage, reason string) func(*testing.T, []auditRecord) {
	return func(t *testing.T, recs []auditRecord) {
		t.Helper()
		ref := only(recs, audit.EventTraceRefused, nil)
		if len(ref) != 1 || ref[0].Data["stage"] != stage || !strings.Contains(ref[0].Data["reason"].(string), reason) || ref[0].Data["session"] == nil || ref[0].Data["caller"] == nil {
			t.Errorf("refusals %v, want one at %s: %s", ref, stage, reason)
		}
	}
}

// checkRotated: the flood's log rotated within its bounds, and says
// what it deleted.
func checkRotated(t *testing.T, d *testDaemon) {
	t.Helper()
	files, err := audit.Files(d.auditLog)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Errorf("%d audit files, want 2 rotated and the current: %v", len(files), files)
	}
	var size int64
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > audit.MinMaxSize {
			t.Errorf("%s: %d bytes, past the maximum", f, fi.Size())
		}
		size += fi.Size()
	}
	b, err := os.ReadFile(d.auditLog)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := bytes.Cut(b, []byte("\n"))
	if !bytes.Contains(first, []byte(`"event":"audit.rotated"`)) || !bytes.Contains(first, []byte(`"deleted_through":`)) {
		t.Errorf("the current file begins %.300s", first)
	}
	t.Logf("600 refusals, each recorded: %d bytes in %d files", size, len(files))
}

func waitConns(t *testing.T, d *testDaemon, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		d.srv.conns.mu.Lock()
		done := ok()
		d.srv.conns.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the connection table never got there")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func closedLine(t *testing.T, c *child) (idx, ms int) {
	t.Helper()
	l := c.line(t)
	if _, err := fmt.Sscanf(l, "closed %d %d", &idx, &ms); err != nil {
		t.Fatalf("child: %q", l)
	}
	return idx, ms
}
