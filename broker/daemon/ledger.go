package daemon

import (
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/tracebroker/tracebroker/broker/audit"
)

// Peers are who the daemon bounds, each by what the transport proves:
// a uid on the unix socket (the kernel's SO_PEERCRED), an IP address
// over TCP (ports are the caller's to choose).
func unixPeer(uid uint32) string { return fmt.Sprintf("uid:%d", uid) }

func tcpPeer(addr net.Addr) string {
	if a, ok := addr.(*net.TCPAddr); ok {
		return "ip:" + a.IP.String()
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "ip:" + addr.String()
	}
	return "ip:" + host
}

func (c Caller) peer() string {
	if c.Unix {
		return unixPeer(c.UID)
	}
	if host, _, err := net.SplitHostPort(c.Addr); err == nil {
		return "ip:" + host
	}
	return "ip:" + c.Addr
}

// held counts what was kept out of the audit log for one peer since the
// last peer.limited record, so that a flood shows in the log as a count
// without costing a record per request.
type held struct {
	since                 time.Time
	refusals              uint64 // requests refused without a record
	connRefused, timedOut uint64 // connections refused for a limit, closed before authenticating
}

func (h held) zero() bool { return h.refusals == 0 && h.connRefused == 0 && h.timedOut == 0 }

// ledger is, per peer, a token bucket for the records of its refused
// requests, and what was held back.
type ledger struct {
	rate, burst float64 // rate < 0: no bucket
	now         func() time.Time

	mu    sync.Mutex
	peers map[string]*peerEntry
}

type peerEntry struct {
	tokens float64
	last   time.Time
	held   held
}

// maxPeers bounds the ledger; past it, peers whose buckets are full and
// who have nothing held are forgotten, and if none are, newcomers share
// one entry.
const (
	maxPeers   = 4096
	otherPeers = "other"
)

func newLedger(burst int, rate float64) *ledger {
	return &ledger{rate: rate, burst: float64(burst), now: time.Now, peers: map[string]*peerEntry{}}
}

// entry is peer's entry, its bucket refilled to now; l.mu is held.
func (l *ledger) entry(peer string, now time.Time) *peerEntry {
	e := l.peers[peer]
	if e == nil && len(l.peers) >= maxPeers {
		for p, o := range l.peers {
			if o.held.zero() && (l.rate < 0 || o.tokens+now.Sub(o.last).Seconds()*l.rate >= l.burst) {
				delete(l.peers, p)
			}
		}
		if len(l.peers) >= maxPeers {
			peer = otherPeers
			e = l.peers[peer]
		}
	}
	if e == nil {
		e = &peerEntry{tokens: l.burst, last: now}
		l.peers[peer] = e
	}
	if l.rate >= 0 {
		e.tokens = min(l.burst, e.tokens+now.Sub(e.last).Seconds()*l.rate)
	}
	e.last = now
	return e
}

// refusal says whether a refusal of peer's is recorded. If it is, what
// was held back for the peer until now is returned (and reset), to be
// recorded first.
func (l *ledger) refusal(peer string) (record bool, before held) {
	if l.rate < 0 {
		return true, held{}
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(peer, now)
	if e.tokens < 1 {
		if e.held.zero() {
			e.held.since = now
		}
		e.held.refusals++
		return false, held{}
	}
	e.tokens--
	before, e.held = e.held, held{}
	return true, before
}

// count adds to what was held back for peer.
func (l *ledger) count(peer string, f func(*held)) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(peer, now)
	if e.held.zero() {
		e.held.since = now
	}
	f(&e.held)
}

// drain returns what was held back for every peer, and resets it.
func (l *ledger) drain() map[string]held {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]held{}
	for p, e := range l.peers {
		if !e.held.zero() {
			out[p], e.held = e.held, held{}
		}
	}
	return out
}

// recordHeld writes a peer.limited record of what was held back for
// peer.
func (s *Server) recordHeld(peer string, h held) error {
	if h.zero() {
		return nil
	}
	s.log.Warn("peer limited", "peer", peer, "refusals_unrecorded", h.refusals, "connections_refused", h.connRefused, "connections_timed_out", h.timedOut, "since", h.since)
	return s.record(audit.EventPeerLimited, map[string]any{
		"peer": peer, "since": h.since.UTC(), "until": s.ledger.now().UTC(),
		"refusals_unrecorded": h.refusals, "connections_refused": h.connRefused, "connections_timed_out": h.timedOut,
	})
}

// flushHeld records what was held back for every peer.
func (s *Server) flushHeld() {
	all := s.ledger.drain()
	peers := make([]string, 0, len(all))
	for p := range all {
		peers = append(peers, p)
	}
	sort.Strings(peers)
	for _, p := range peers {
		if err := s.recordHeld(p, all[p]); err != nil {
			s.log.Error("audit log", "err", err)
		}
	}
}

// summarize flushes the ledger every SummaryInterval until done.
func (s *Server) summarize(done <-chan struct{}) {
	t := time.NewTicker(s.cfg.SummaryInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.flushHeld()
		case <-done:
			return
		}
	}
}
