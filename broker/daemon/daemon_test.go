package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/broker/audit"
	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/token"
	"github.com/tracebroker/tracebroker/gatekeeper"
	"github.com/tracebroker/tracebroker/internal/collectortest"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// testDaemon is a daemon served in this process on a socket of its own.
type testDaemon struct {
	srv      *Server
	socket   string
	auditLog string
	attest   string
	issuer   *attest.PrivateKey
	rev      *token.Revocations
	revPath  string
	cancel   context.CancelFunc
	done     chan error
}

type daemonOpts struct {
	hvci       bool // the platform forbids JIT: traces run in the interpreter
	listen     string
	tls        *tls.Config
	perSubject int
	def        string // gatekeeper default: loose unless set
	// shared puts the socket where other uids reach it (attacks_daemon_test.go).
	shared bool
	audit  audit.Options
	// configure, when set, changes the daemon's Config before New.
	configure func(*testDaemon, *Config)
}

func needKernel(t testing.TB) {
	t.Helper()
	if err := bpf.Supported(); err != nil {
		t.Skipf("kernel tracing unavailable: %v", err)
	}
	kerneltest.Lock(t)
}

func startDaemon(t testing.TB, o daemonOpts) *testDaemon {
	t.Helper()
	dir := t.TempDir()
	if o.shared {
		dir = kerneltest.SharedDir(t)
	}
	d := &testDaemon{socket: filepath.Join(dir, "broker.sock"), auditLog: filepath.Join(dir, "audit.log"), attest: filepath.Join(dir, "attestations"), revPath: filepath.Join(dir, "revoked")}
	var err error
	if d.issuer, err = attest.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.revPath, []byte("# revoked\nrevoked-jti\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if d.rev, err = token.LoadRevocations(d.revPath); err != nil {
		t.Fatal(err)
	}
	ver, err := token.NewVerifier(token.Config{Keys: []*attest.PublicKey{d.issuer.Public()}, Revoked: d.rev})
	if err != nil {
		t.Fatal(err)
	}
	hvci := "auto"
	if o.hvci {
		hvci = "on"
	}
	pf, err := gatekeeper.DetectPlatform(hvci)
	if err != nil {
		t.Fatal(err)
	}
	def := o.def
	if def == "" {
		def = gatekeeper.DefaultLoose
	}
	k, err := gatekeeper.New(gatekeeper.Config{Default: def, Platform: pf})
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := attest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	al, err := audit.Open(d.auditLog, o.audit)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Socket: d.socket, Listen: o.listen, TLS: o.tls, Tokens: ver, Revoked: d.rev, Keeper: k, Audit: al, HostKey: hostKey, AttestDir: d.attest,
		MaxPerSubject: o.perSubject, Collectors: collectortest.Signed(t), Broker: attest.Identity{Path: "/test/tracebroker", Digest: strings.Repeat("ab", 32)},
		TraceOwnProcess: true, Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})), // the workload is this process
	}
	if o.shared {
		cfg.SocketGroup = fmt.Sprint(otherGID)
	}
	if o.configure != nil {
		o.configure(d, &cfg)
	}
	d.srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done = cancel, make(chan error, 1)
	go func() { d.done <- d.srv.Serve(ctx) }()
	t.Cleanup(func() {
		d.stop(t)
		al.Close()
	})
	// Serving once the socket answers.
	for i := 0; ; i++ {
		c := d.client(t, "")
		_, err := c.Sessions(context.Background())
		c.Close()
		if err == nil {
			break
		}
		if i > 200 {
			t.Fatalf("daemon does not answer: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return d
}

// stop shuts the daemon down as SIGTERM does and waits for Serve.
func (d *testDaemon) stop(t testing.TB) {
	d.cancel()
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		d.done <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after shutdown")
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (d *testDaemon) client(t testing.TB, tok string) *Client {
	t.Helper()
	c, err := Dial(Target{Socket: d.socket, Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (d *testDaemon) token(t *testing.T, o token.IssueOptions) string {
	t.Helper()
	if o.Subject == "" {
		o.Subject = "alice"
	}
	if o.TTL == 0 {
		o.TTL = 10 * time.Minute
	}
	tok, err := token.Issue(d.issuer, o)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// traceRun is one trace through a client, run in the background.
type traceRun struct {
	stdout, stderr bytes.Buffer
	res            TraceResult
	err            error
	done           chan struct{}
	interrupt      chan struct{}
	cancel         context.CancelFunc
}

func (d *testDaemon) start(t *testing.T, tok string, req *pb.TraceRequest) *traceRun {
	t.Helper()
	c := d.client(t, tok)
	ctx, cancel := context.WithCancel(context.Background())
	r := &traceRun{done: make(chan struct{}), interrupt: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(r.done)
		defer c.Close()
		r.res, r.err = c.Trace(ctx, r.interrupt, req, &r.stdout, &r.stderr)
	}()
	return r
}

func (r *traceRun) wait(t *testing.T) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("trace did not end")
	}
}

// attached waits until n sessions run with their probes attached.
func (d *testDaemon) attached(t *testing.T, n int, runs ...*traceRun) []*pb.Session {
	t.Helper()
	return d.waitSessions(t, fmt.Sprintf("%d sessions attached", n), func(ss []*pb.Session) bool {
		ready := 0
		for _, s := range ss {
			if s.Mode != "" {
				ready++
			}
		}
		for _, r := range runs {
			select {
			case <-r.done:
				t.Fatalf("trace ended before it attached: %v\n%s", r.err, r.stderr.String())
			default:
			}
		}
		return ready >= n
	})
}

// getcwdScript counts this process's getcwd calls, which only the
// workload makes (kerneltest.Syscalls).
func getcwdScript() []byte {
	return fmt.Appendf(nil, "tracepoint:syscalls:sys_enter_getcwd /pid == %d/ { @ = count(); }", os.Getpid())
}

// getcwdProg is the kernel's name for getcwdScript's program.
const getcwdProg = "sys_enter_getcw"

// newSince lists the getcwd programs loaded now that were not in before,
// once they have had time to be freed.
func newSince(t testing.TB, before map[uint32]bool) []uint32 {
	return kerneltest.LeftLoaded(t, before, getcwdProg, 2*time.Second)
}

func auditEvents(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	for _, r := range auditRecords(t, path) {
		out = append(out, r.Event)
	}
	return out
}

// TestTraceWithToken: a token holder's trace runs and prints exactly what
// run prints; its attestation names the token.
func TestTraceWithToken(t *testing.T) {
	needKernel(t)
	d := startDaemon(t, daemonOpts{})
	tok := d.token(t, token.IssueOptions{Scope: "trace probe:tracepoint:syscalls:sys_enter_getcwd", ID: "jti-ok"})
	r := d.start(t, tok, &pb.TraceRequest{Name: "stdin", Source: getcwdScript()})
	d.attached(t, 1)
	kerneltest.Syscalls(7, 0)
	close(r.interrupt)
	r.wait(t)
	if r.err != nil {
		t.Fatalf("trace: %v\nstderr: %s", r.err, r.stderr.String())
	}
	if got, want := r.stdout.String(), "Attaching 1 probe...\n\n\n@: 7\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if r.res.Mode != gatekeeper.ModeJIT || r.res.Reason != "interrupted" || r.res.SessionID == "" {
		t.Errorf("result = %+v", r.res)
	}
	files, _ := filepath.Glob(filepath.Join(d.attest, "*.dsse.json"))
	if len(files) != 1 {
		t.Fatalf("%d attestations, want 1", len(files))
	}
	b, _ := os.ReadFile(files[0])
	for _, want := range []string{"token_subject", "jti-ok", "token_scope"} {
		if !bytes.Contains(decodeDSSE(t, b), []byte(want)) {
			t.Errorf("attestation lacks %q", want)
		}
	}
	d.stop(t)
	got := strings.Join(auditEvents(t, d.auditLog), " ")
	if want := "daemon.start trace.request trace.admitted trace.end daemon.stop"; got != want {
		t.Errorf("audit events = %s, want %s", got, want)
	}
}

func decodeDSSE(t *testing.T, b []byte) []byte {
	t.Helper()
	env, err := attest.ParseEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	b, err = base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSessionEnds: every way a session ends leaves nothing loaded, says
// why it ended, and prints the maps where the client is still there.
func TestSessionEnds(t *testing.T) {
	needKernel(t)
	d := startDaemon(t, daemonOpts{})
	admin := d.client(t, "")
	defer admin.Close()
	for _, tt := range []struct {
		name     string
		maxDur   time.Duration // token max_duration; 0: no token
		ttl      time.Duration // token lifetime (with maxDur)
		duration int64         // -d in ms
		end      func(r *traceRun, id string)
		reason   string
		maps     bool
	}{
		{"duration", 0, 0, 300, nil, "", true},
		{"max_duration", time.Second, 0, 0, nil, "max_duration", true},
		{"max_duration_below_-d", time.Second, 0, 60_000, nil, "max_duration", true},
		{"token_expires", time.Hour, 2 * time.Second, 0, nil, "token_expired", true},
		{"interrupt", 0, 0, 0, func(r *traceRun, _ string) { close(r.interrupt) }, "interrupted", true},
		{"admin_stop", 0, 0, 0, func(_ *traceRun, id string) {
			if err := admin.Stop(context.Background(), id); err != nil {
				t.Error(err)
			}
		}, "stopped", true},
		{"disconnect", 0, 0, 0, func(r *traceRun, _ string) { r.cancel() }, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// A session that ends by time must outlive the workload;
			// on a busy machine it may not, and then the limits are
			// doubled, until it does (see inTime).
			for scale := time.Duration(1); ; scale *= 2 {
				before, _ := kerneltest.LoadedIDs(t)
				tok, expires := "", time.Time{}
				if tt.maxDur > 0 {
					issued := time.Now()
					tok = d.token(t, token.IssueOptions{Scope: "trace probe:tracepoint:syscalls:*", MaxDuration: tt.maxDur * scale, TTL: tt.ttl * scale, Now: func() time.Time { return issued }})
					if tt.ttl > 0 {
						expires = issued.Truncate(time.Second).Add(tt.ttl * scale) // as Issue counts it
					}
				}
				r := d.start(t, tok, &pb.TraceRequest{Source: getcwdScript(), DurationMs: tt.duration * int64(scale)})
				ss, ok := d.attachedOrEnded(t, r)
				switch {
				case ok:
					kerneltest.Syscalls(3, 0)
				case expires.IsZero(): // only a token's expiry ends a session before it attaches
					t.Fatalf("trace ended before it attached: %v\n%s", r.err, r.stderr.String())
				}
				if !inTime(t, ok, ss, expires, scale) {
					r.wait(t)
					continue
				}
				t0 := time.Now()
				if tt.end != nil {
					tt.end(r, ss[0].Id)
				}
				r.wait(t)
				if tt.name == "disconnect" {
					// The daemon notices and detaches within a second.
					if left := kerneltest.LeftLoaded(t, before, getcwdProg, time.Second); len(left) > 0 {
						t.Fatalf("programs %v still loaded %v after the client left", left, time.Since(t0))
					}
					t.Logf("detached %v after the client left", time.Since(t0).Round(time.Millisecond))
					if !errors.Is(r.err, context.Canceled) && r.err == nil {
						t.Errorf("err = %v", r.err)
					}
					return
				}
				if r.err != nil {
					t.Fatalf("trace: %v", r.err)
				}
				if r.res.Reason != tt.reason {
					t.Errorf("reason = %q, want %q", r.res.Reason, tt.reason)
				}
				if got := r.stdout.String(); tt.maps && !strings.HasSuffix(got, "\n@: 3\n") {
					t.Errorf("stdout = %q, want the map with 3", got)
				}
				if left := newSince(t, before); len(left) > 0 {
					t.Errorf("programs left loaded: %v", left)
				}
				return
			}
		})
	}
}

// TestInterpreterSession: on a platform that forbids JIT, the gatekeeper
// sends a token holder's trace to the interpreter; it prints the same,
// and leaves nothing loaded.
func TestInterpreterSession(t *testing.T) {
	needKernel(t)
	d := startDaemon(t, daemonOpts{hvci: true})
	before, _ := kerneltest.LoadedIDs(t)
	tok := d.token(t, token.IssueOptions{Scope: "trace probe:tracepoint:syscalls:sys_enter_getcwd"})
	// The calls are another process's: interpreter mode's collectors
	// skip the daemon's own.
	c := startChild(t, filepath.Dir(d.socket), os.Getuid(), "getcwd", "TB_N=9")
	if l := c.line(t); l != "ready" {
		t.Fatalf("child: %q", l)
	}
	script := fmt.Appendf(nil, "tracepoint:syscalls:sys_enter_getcwd /pid == %d/ { @ = count(); }", c.cmd.Process.Pid)
	r := d.start(t, tok, &pb.TraceRequest{Source: script})
	d.attached(t, 1, r)
	if out, err := c.wait(t); err != nil {
		t.Fatalf("child: %v %s", err, out)
	}
	close(r.interrupt)
	r.wait(t)
	if r.err != nil {
		t.Fatalf("trace: %v\n%s", r.err, r.stderr.String())
	}
	if got, want := r.stdout.String(), "Attaching 1 probe...\n\n\n@: 9\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if r.res.Mode != gatekeeper.ModeInterpreter {
		t.Errorf("mode = %q, want the interpreter", r.res.Mode)
	}
	if left := kerneltest.LeftLoaded(t, before, "tb_coll_tp", 2*time.Second); len(left) > 0 {
		t.Errorf("collectors left loaded: %v", left)
	}
}
