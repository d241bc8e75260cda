// Package daemon is the broker daemon (tracebroker serve) and its
// client: traces submitted over a unix socket or TLS, admitted by the
// caller's kernel-proven uid or a scoped token, run as sessions whose
// output streams back, every request and decision in the audit log.
package daemon

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/attest/store"
	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/broker/audit"
	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/token"
	"github.com/tracebroker/tracebroker/gatekeeper"
	"github.com/tracebroker/tracebroker/internal/version"
	"github.com/tracebroker/tracebroker/plugins"
)

// Config is what a Server needs; New checks it.
type Config struct {
	// Socket is the unix socket's path; its directory must exist. It is
	// created mode 0660, owned by SocketGroup when set (a group name or
	// number), so that membership of that group is what lets a user
	// reach the daemon at all.
	Socket      string
	SocketGroup string
	// Listen, with TLS, also serves TCP. Callers over TCP need a token.
	Listen string
	TLS    *tls.Config

	// Tokens verifies bearer tokens; nil accepts none (only local root).
	Tokens *token.Verifier
	// Revoked is Tokens' revocation list, which Reload re-reads; nil:
	// none.
	Revoked *token.Revocations
	// LoadPolicy loads the gatekeeper's policy again, for Reload; nil:
	// no policy is configured.
	LoadPolicy func() (*gatekeeper.Policy, error)
	// Keeper admits every program; Broker is this daemon's measured
	// identity, the broker and built-in generator in every Request.
	Keeper *gatekeeper.Gatekeeper
	Broker attest.Identity
	// Attest, when HostKey is set, writes a signed attestation of every
	// program to AttestDir before it is loaded.
	HostKey   *attest.PrivateKey
	AttestDir string
	// AttestMaxBytes bounds AttestDir, AttestMaxBytesPerSubject what one
	// subject's traces take of it (0: 1 GiB and 64 MiB; negative:
	// unbounded); the oldest go first (attest/store).
	AttestMaxBytes, AttestMaxBytesPerSubject int64
	// Audit receives one record per request, decision and session end.
	// A record that cannot be written refuses the request.
	Audit *audit.Log
	// GatePinDir is where the kernel gate is pinned
	// (lsmgate.DefaultPinDir); when set, the daemon drains the gate's
	// refusals into Audit, as gate.refused records, and names the
	// gate's state in every attestation.
	GatePinDir string
	// Plugins runs generator plugins (gen:NAME scopes); nil: none.
	Plugins *plugins.Host
	// Collectors verifies interpreter mode's static collectors.
	Collectors collector.Trust
	// Trust verifies the signatures of the eBPF objects clients send
	// (role program); nil trusts no key, and every object is unsigned.
	Trust *attest.Trust

	// MaxSessions bounds concurrent sessions (0: 128); MaxPerSubject
	// those of one token subject or one uid (0: 8).
	MaxSessions, MaxPerSubject int
	// EventBufferSize is the ring buffer of each session whose script
	// prints (0: 1 MiB); one that does not keeps its page.
	EventBufferSize int
	// OutputQueue bounds, in bytes, each session's output waiting for
	// its client (0: 1 MiB); beyond it output is dropped (output.go).
	OutputQueue int
	// MaxMapKeys is each map's size (0: 4096).
	MaxMapKeys int
	// Limits bounds each request (limits.go).
	Limits RequestLimits
	// ShutdownTimeout bounds how long shutdown waits for sessions to
	// print their maps (0: 10s).
	ShutdownTimeout time.Duration
	// TraceOwnProcess lets token holders' probes see this process's own
	// events, which they otherwise never do (see hidePID): for tests
	// whose workload is the process the daemon runs in.
	TraceOwnProcess bool

	// RefusalBurst and RefusalRate bound the records of requests refused
	// before anything is recorded of them (out of range, no valid
	// token), per peer (a uid on the socket, an address over TCP): a
	// token bucket of RefusalBurst records, refilled at RefusalRate a
	// second. Past it a refusal is answered as ever but only counted, in
	// a peer.limited record. All peers together get ten times that
	// (allPeersScale), and the peer.limited records of one interval are
	// at most maxHeldRecords + 1. 0: 20 and 0.05; a negative rate
	// records every refusal. Local root is never held back.
	RefusalBurst int
	RefusalRate  float64
	// SummaryInterval is how often peer.limited records are written, for
	// the peers that have had something held back (0: a minute).
	SummaryInterval time.Duration
	// MaxConns bounds the open connections on the unix socket and, apart,
	// over TCP (0: 1024 each), MaxConnsPerPeer those of one peer (0: 32;
	// see tcpPeer for what a peer over TCP is); local root's are counted but never
	// refused. PreAuthTimeout closes a connection that has not made a
	// request with a valid token (or as local root) in that long, and
	// ends a Trace call whose request does not come (0: 10s).
	MaxConns, MaxConnsPerPeer int
	PreAuthTimeout            time.Duration

	// MetricsListen, when set, serves Prometheus metrics at /metrics on
	// this TCP address (metrics.go), which must be a loopback one unless
	// MetricsPublic (CheckMetricsListen). Metrics, when set, are the
	// metrics to keep (one is made for MetricsListen otherwise).
	MetricsListen string
	MetricsPublic bool
	Metrics       *Metrics

	hooks *testHooks

	Logger *slog.Logger
}

// Server is a running daemon.
type Server struct {
	cfg      Config
	log      *slog.Logger
	sessions *sessions
	attest   *store.Store
	ledger   *ledger
	conns    *conns
	metrics  *Metrics
	mserver  *metricsServer

	mu       sync.Mutex
	closing  bool
	servers  []*grpc.Server
	listener []net.Listener

	pb.UnimplementedBrokerServer
}

// New checks cfg and returns a Server that is not serving yet.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Socket == "" && cfg.Listen == "":
		return nil, errors.New("nothing to listen on: give a socket path or a TCP address")
	case cfg.Listen != "" && cfg.TLS == nil:
		return nil, errors.New("TCP needs TLS: give a certificate and key")
	case cfg.Keeper == nil:
		return nil, errors.New("no gatekeeper")
	case cfg.Audit == nil:
		return nil, errors.New("no audit log")
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 128
	}
	if cfg.MaxPerSubject <= 0 {
		cfg.MaxPerSubject = 8
	}
	if cfg.EventBufferSize <= 0 {
		cfg.EventBufferSize = 1 << 20
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	var err error
	if cfg.Limits, err = cfg.Limits.withDefaults(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, sessions: newSessions(cfg.MaxSessions, cfg.MaxPerSubject)}
	s.sessions.admit = s.stillValid
	s.applyLimits()
	if err := s.setUpMetrics(); err != nil {
		return nil, err
	}
	if err := s.openAttestations(); err != nil {
		return nil, fmt.Errorf("attestations: %w", err)
	}
	return s, nil
}

// Serve listens and serves until ctx ends, then shuts down: new requests
// are refused, every session ends as -d would (END runs, maps are
// printed to its client), and Serve returns once they have, with
// nothing left attached. Nothing is served if a listener cannot be set
// up.
func (s *Server) Serve(ctx context.Context) error {
	var lis []net.Listener
	var srvs []*grpc.Server
	closeAll := func() {
		for _, l := range lis {
			l.Close()
		}
	}
	if s.cfg.Socket != "" {
		l, err := listenUnix(s.cfg.Socket, s.cfg.SocketGroup)
		if err != nil {
			return err
		}
		lis = append(lis, boundedListener{l, s.conns})
		srvs = append(srvs, s.newGRPC(peerCreds{}))
	}
	if s.cfg.Listen != "" {
		l, err := net.Listen("tcp", s.cfg.Listen)
		if err != nil {
			closeAll()
			return err
		}
		lis = append(lis, boundedListener{l, s.conns})
		srvs = append(srvs, s.newGRPC(boundTLS{credentials.NewTLS(s.cfg.TLS)}))
	}
	if err := s.listenMetrics(); err != nil {
		closeAll()
		return err
	}
	defer s.closeMetrics()
	s.mu.Lock()
	s.servers, s.listener = srvs, lis
	s.mu.Unlock()

	if err := s.record(audit.EventDaemonStart, map[string]any{
		"version": version.String(), "pid": os.Getpid(), "broker": s.cfg.Broker,
		"socket": s.cfg.Socket, "listen": s.cfg.Listen,
	}); err != nil {
		closeAll()
		return fmt.Errorf("audit log: %w", err)
	}
	s.log.Info("serving", "socket", s.cfg.Socket, "listen", s.cfg.Listen, "version", version.String())
	summaries := make(chan struct{})
	defer close(summaries)
	go s.summarize(summaries)
	if s.cfg.GatePinDir != "" {
		gctx, stopGate := context.WithCancel(ctx)
		defer stopGate()
		go s.drainGate(gctx)
	}

	errc := make(chan error, len(lis)+1)
	for i, l := range lis {
		go func() { errc <- srvs[i].Serve(l) }()
	}
	s.serveMetrics(errc)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		s.log.Error("listener failed", "err", err)
	}
	s.shutdown()
	if s.cfg.Socket != "" {
		os.Remove(s.cfg.Socket)
	}
	return err
}

// TCPAddr is the TCP address served, once Serve has set it up; nil
// before, or without Listen.
func (s *Server) TCPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listener {
		if a, ok := l.Addr().(*net.TCPAddr); ok {
			return a
		}
	}
	return nil
}

func (s *Server) newGRPC(creds credentials.TransportCredentials) *grpc.Server {
	g := grpc.NewServer(append([]grpc.ServerOption{grpc.Creds(creds), grpc.MaxRecvMsgSize(s.cfg.Limits.messageSize())}, s.connOptions()...)...)
	pb.RegisterBrokerServer(g, s)
	return g
}

// shutdown ends every session and waits for them (bounded), then stops
// the gRPC servers, which lets the sessions' last events reach their
// clients first.
func (s *Server) shutdown() {
	s.mu.Lock()
	s.closing = true
	srvs := s.servers
	s.mu.Unlock()
	s.conns.closeAll(true)
	n := s.sessions.stopAll(errShutdown)
	s.log.Info("shutting down", "sessions", n)
	if !s.sessions.wait(s.cfg.ShutdownTimeout) {
		s.log.Error("sessions did not end in time", "timeout", s.cfg.ShutdownTimeout, "unended", s.recordUnended())
	}
	done := make(chan struct{})
	go func() {
		for _, g := range srvs {
			g.GracefulStop()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		s.conns.closeAll(false)
		for _, g := range srvs {
			g.Stop()
		}
	}
	s.flushHeld()
	if err := s.record(audit.EventDaemonStop, map[string]any{"sessions_ended": n}); err != nil {
		s.log.Error("audit log", "err", err)
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// listenUnix makes the socket: a stale one (nobody listening) is
// replaced, a live one is an error, and the mode is set before anyone
// can connect.
func listenUnix(path, group string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another daemon is listening", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	gid := -1
	if group != "" {
		g, err := lookupGroup(group)
		if err != nil {
			return nil, err
		}
		gid = g
	}
	// umask 0117 would race with other goroutines; the socket is made
	// in a fresh name and moved into place once its mode is right.
	tmp := path + ".new"
	os.Remove(tmp)
	l, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, err
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		l.Close()
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Chmod(tmp, 0o660); err != nil {
		return fail(err)
	}
	if gid >= 0 {
		if err := os.Chown(tmp, -1, gid); err != nil {
			return fail(fmt.Errorf("socket group %s: %w", group, err))
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	return l, nil
}

func lookupGroup(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("socket group: %w", err)
	}
	return strconv.Atoi(g.Gid)
}

// Reload is SIGHUP: the revocation list and the policy are read again,
// and the sessions of tokens now revoked end as an administrator's stop
// ends them. A list that cannot be read refuses every token until one
// can (the token package fails closed), and ends every token holder's
// session; a policy that no longer loads leaves the one loaded in place.
// The log and the audit say which.
func (s *Server) Reload() {
	rec := map[string]any{}
	if rev := s.cfg.Revoked; rev != nil {
		if err := rev.Reload(); err != nil {
			s.log.Error("revocation list unreadable: every token is refused until it can be read", "err", err)
			rec["revoked_error"] = err.Error()
		} else {
			rec["revoked"] = rev.Len()
		}
		s.hook(func(h *testHooks) func() { return h.listReloaded })
		rec["sessions_ended"] = s.endRevoked(rev)
	}
	if st := s.cfg.Tokens.ReloadIssuers(); st != nil {
		rec["identity_providers"] = st
	}
	if s.cfg.LoadPolicy != nil {
		p, err := s.cfg.LoadPolicy()
		if err != nil {
			s.log.Error("policy not reloaded; the loaded one stays", "err", err)
			rec["policy_error"] = err.Error()
		} else {
			s.cfg.Keeper.Load(p)
			rec["policy_digest"] = p.Digest()
		}
	}
	s.log.Info("reloaded", "what", rec)
	if err := s.record(audit.EventDaemonReload, rec); err != nil {
		s.log.Error("audit log", "err", err)
	}
}

// endRevoked ends every session whose token rev revokes, or, if rev
// cannot say, every token holder's session (fail closed).
func (s *Server) endRevoked(rev *token.Revocations) int {
	n := s.sessions.stopIf(func(p *pb.Session) bool {
		if p.TokenId == "" {
			return false
		}
		revoked, err := rev.Revoked(p.TokenId)
		return revoked || err != nil
	}, errRevoked)
	if n > 0 {
		s.log.Info("ended the sessions of revoked tokens", "sessions", n)
	}
	return n
}

// ListSessions is for administrators.
func (s *Server) ListSessions(ctx context.Context, _ *pb.ListSessionsRequest) (*pb.ListSessionsResponse, error) {
	if _, err := s.requireAdmin(ctx, "list sessions"); err != nil {
		return nil, err
	}
	return &pb.ListSessionsResponse{Sessions: s.sessions.list()}, nil
}

// StopSession is for administrators.
func (s *Server) StopSession(ctx context.Context, req *pb.StopSessionRequest) (*pb.StopSessionResponse, error) {
	c, err := s.requireAdmin(ctx, "stop sessions")
	if err != nil {
		return nil, err
	}
	found := s.sessions.stop(req.GetId(), errStopped)
	if err := s.record(audit.EventSessionStop, map[string]any{"session": req.GetId(), "by": c, "found": found}); err != nil {
		return nil, status.Errorf(codes.Unavailable, "audit log: %v", err)
	}
	if !found {
		return nil, status.Errorf(codes.NotFound, "no session %q", req.GetId())
	}
	return &pb.StopSessionResponse{}, nil
}

func (s *Server) requireAdmin(ctx context.Context, what string) (Caller, error) {
	c, err := callerOf(ctx)
	if err != nil {
		return c, status.Error(codes.Unauthenticated, err.Error())
	}
	if !c.admin() {
		return c, status.Errorf(codes.PermissionDenied, "only root on the unix socket may %s (you are %s)", what, c)
	}
	markAuthenticated(ctx)
	return c, nil
}

// record writes an audit record and logs its head: the log (journald)
// is the anchor that shows records cut off the end of the audit log,
// which no hash chain can.
func (s *Server) record(event string, data any) error {
	t0 := time.Now()
	h, err := s.cfg.Audit.Append(event, data)
	s.metrics.auditWrite(time.Since(t0))
	if err != nil {
		return err
	}
	s.log.Info("audit", "event", event, "head", h.String())
	return nil
}

func newID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
