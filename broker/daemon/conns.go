package daemon

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
)

// conns bounds the daemon's connections: in all, per peer, and in how
// long one may stay without authenticating a request. Connecting costs
// nothing and needs no token, so without bounds one local user's idle
// connections could take every descriptor, or every slot, from the
// others. Local root is never refused (it is counted). The unix socket
// and TCP are bounded apart: over TCP a party may come from many
// addresses, and must not take the local users' slots.
type conns struct {
	max, perPeer int
	preAuth      time.Duration
	ledger       *ledger
	log          func(msg string, args ...any)

	mu     sync.Mutex
	total  int
	tcp    int // of total, over TCP
	byPeer map[string]int
	open   map[*trackedConn]struct{}
}

// onTransport is how many connections are open over c's transport.
func (t *conns) onTransport(c *trackedConn) int {
	if c.cred == nil {
		return t.tcp
	}
	return t.total - t.tcp
}

// admit registers c, or refuses it for a limit; it reads a unix peer's
// credentials once, for the handshake too.
func (t *conns) admit(c net.Conn) (*trackedConn, error) {
	tc := &trackedConn{Conn: c, t: t}
	switch nc := c.(type) {
	case *net.UnixConn:
		cred, err := peerCred(nc)
		if err != nil {
			return nil, err
		}
		tc.cred, tc.peer = cred, unixPeer(cred.Uid)
		tc.root = cred.Uid == 0
	default:
		tc.peer = tcpPeer(c.RemoteAddr())
	}
	t.mu.Lock()
	over := ""
	switch {
	case tc.root:
	case t.onTransport(tc) >= t.max:
		over = fmt.Sprintf("the daemon has %d connections %s, its limit", t.onTransport(tc), tc.transport())
	case t.byPeer[tc.peer] >= t.perPeer:
		over = fmt.Sprintf("%s has %d connections, the limit per peer", tc.peer, t.byPeer[tc.peer])
	}
	if over == "" {
		t.total++
		if tc.cred == nil {
			t.tcp++
		}
		t.byPeer[tc.peer]++
		t.open[tc] = struct{}{}
	}
	t.mu.Unlock()
	if over != "" {
		t.ledger.count(tc.peer, func(h *held) { h.connRefused++ })
		return nil, fmt.Errorf("connection refused: %s", over)
	}
	if tc.root {
		tc.authed.Store(true)
	} else {
		tc.admitted = time.Now()
		tc.timer = time.AfterFunc(t.preAuth, tc.expire)
	}
	return tc, nil
}

// count is how many connections peer has open.
func (t *conns) count(peer string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byPeer[peer]
}

func (t *conns) release(c *trackedConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total--
	if c.cred == nil {
		t.tcp--
	}
	if t.byPeer[c.peer]--; t.byPeer[c.peer] <= 0 {
		delete(t.byPeer, c.peer)
	}
	delete(t.open, c)
}

// closeAll closes the open connections, or only those that have not
// authenticated: at shutdown, these hold nothing worth waiting for (gRPC
// would wait for a handshake that is not coming), and the others are
// closed once their sessions have had their say.
func (t *conns) closeAll(unauthenticated bool) {
	t.mu.Lock()
	var cs []*trackedConn
	for c := range t.open {
		if !unauthenticated || !c.authed.Load() {
			cs = append(cs, c)
		}
	}
	t.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// trackedConn is an admitted connection.
type trackedConn struct {
	net.Conn
	t      *conns
	peer   string
	cred   *unix.Ucred // on the unix socket
	root   bool
	timer  *time.Timer
	authed atomic.Bool
	once   sync.Once
	// admitted is when the pre-authentication deadline started.
	admitted time.Time
}

func (c *trackedConn) transport() string {
	if c.cred == nil {
		return "over TCP"
	}
	return "on the unix socket"
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		// gRPC's handshake deadline is PreAuthTimeout too, and may close
		// the connection before expire runs: past the deadline and
		// unauthenticated, it timed out whichever closed it.
		if c.timer != nil && c.timer.Stop() && !c.authed.Load() && time.Since(c.admitted) >= c.t.preAuth {
			c.t.ledger.count(c.peer, func(h *held) { h.timedOut++ })
		}
		c.t.release(c)
	})
	return c.Conn.Close()
}

// authenticated marks the connection as one that has made a request
// with a valid token (or as local root): it may stay.
func (c *trackedConn) authenticated() {
	if c.authed.CompareAndSwap(false, true) && c.timer != nil {
		c.timer.Stop()
	}
}

// expire closes a connection that has not authenticated in time.
func (c *trackedConn) expire() {
	if c.authed.Load() {
		return
	}
	c.t.ledger.count(c.peer, func(h *held) { h.timedOut++ })
	c.t.log("closing a connection that did not authenticate in time", "peer", c.peer, "after", c.t.preAuth)
	c.Close()
}

// boundedListener admits connections through conns; a refused one is
// closed at once, before any byte is read from it.
type boundedListener struct {
	net.Listener
	t *conns
}

func (l boundedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, err := l.t.admit(c)
		if err == nil {
			return tc, nil
		}
		c.Close()
	}
}

// markAuthenticated marks the connection of the request in ctx as
// authenticated.
func markAuthenticated(ctx context.Context) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return
	}
	switch ai := p.AuthInfo.(type) {
	case peerCredInfo:
		if ai.conn != nil {
			ai.conn.authenticated()
		}
	case tlsAuthInfo:
		if ai.conn != nil {
			ai.conn.authenticated()
		}
	}
}

// boundTLS is TLS whose AuthInfo carries the tracked connection, so
// that a request can mark it authenticated.
type boundTLS struct {
	credentials.TransportCredentials
}

type tlsAuthInfo struct {
	credentials.TLSInfo
	conn *trackedConn
}

func (b boundTLS) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, ai, err := b.TransportCredentials.ServerHandshake(c)
	if err != nil {
		return nil, nil, err
	}
	ti, ok := ai.(credentials.TLSInfo)
	if !ok {
		out.Close()
		return nil, nil, fmt.Errorf("TLS handshake gave %T", ai)
	}
	tc, _ := c.(*trackedConn)
	return out, tlsAuthInfo{TLSInfo: ti, conn: tc}, nil
}

func (b boundTLS) Clone() credentials.TransportCredentials {
	return boundTLS{b.TransportCredentials.Clone()}
}

// applyLimits sets the limits' defaults and makes the ledger and the
// connection table.
func (s *Server) applyLimits() {
	c := &s.cfg
	if c.RefusalBurst <= 0 {
		c.RefusalBurst = 20
	}
	if c.RefusalRate == 0 {
		c.RefusalRate = 0.05
	}
	if c.SummaryInterval <= 0 {
		c.SummaryInterval = time.Minute
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 1024
	}
	if c.MaxConnsPerPeer <= 0 {
		c.MaxConnsPerPeer = 32
	}
	if c.PreAuthTimeout <= 0 {
		c.PreAuthTimeout = 10 * time.Second
	}
	s.ledger = newLedger(c.RefusalBurst, c.RefusalRate)
	s.conns = &conns{max: c.MaxConns, perPeer: c.MaxConnsPerPeer, preAuth: c.PreAuthTimeout, ledger: s.ledger,
		log: s.log.Debug, byPeer: map[string]int{}, open: map[*trackedConn]struct{}{}}
}

// connOptions bound what one connection may hold: its handshake within
// PreAuthTimeout, a few calls at once, and, once idle, its place.
func (s *Server) connOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		// Twice the deadline: a connection that has sent nothing is
		// closed by its own timer first (expire), which counts it; gRPC's
		// at the same deadline raced it and closed some uncounted.
		grpc.ConnectionTimeout(2 * s.cfg.PreAuthTimeout),
		grpc.MaxConcurrentStreams(maxStreamsPerConn),
		grpc.MaxHeaderListSize(maxHeaderList),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: maxConnIdle}),
	}
}

const (
	// maxStreamsPerConn bounds the calls of one connection at once: a
	// client makes one at a time.
	maxStreamsPerConn = 16
	// maxConnIdle closes a connection with no call for that long.
	maxConnIdle = 5 * time.Minute
	// maxHeaderList bounds a call's headers: a token (maxTokenSize)
	// and gRPC's own. gRPC's default, 16 MiB, is held with the call
	// until its request comes, before the token is looked at.
	maxHeaderList = 2*maxTokenSize + 16<<10
)
