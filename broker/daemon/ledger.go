package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/tracebroker/tracebroker/broker/audit"
)

// Peers are who the daemon bounds, each by what the transport proves:
// a uid on the unix socket (the kernel's SO_PEERCRED), an address over
// TCP (ports are the caller's to choose). An address is what one party
// cannot multiply at will: every loopback address is one peer (any local
// user may connect from any of 127.0.0.0/8), an IPv6 address is its /64
// (the least a site is given, and a host picks addresses in it freely),
// an IPv4 address is itself.
func unixPeer(uid uint32) string { return fmt.Sprintf("uid:%d", uid) }

func tcpPeer(addr net.Addr) string {
	if a, ok := addr.(*net.TCPAddr); ok {
		return ipPeer(a.AddrPort().Addr(), a.IP.String())
	}
	return hostPeer(addr.String())
}

// hostPeer is the peer of a "host:port" address.
func hostPeer(hostport string) string {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return "ip:" + host
	}
	return ipPeer(a, host)
}

// ipPeer is the peer of address a (written as text when it is not
// valid).
func ipPeer(a netip.Addr, text string) string {
	if !a.IsValid() {
		return "ip:" + text
	}
	a = a.Unmap().WithZone("")
	switch {
	case a.IsLoopback():
		return "ip:loopback"
	case a.Is4():
		return "ip:" + a.String()
	}
	p, _ := a.Prefix(64)
	return "ip:" + p.String()
}

func (c Caller) peer() string {
	if c.Unix {
		return unixPeer(c.UID)
	}
	return hostPeer(c.Addr)
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

func (h held) total() uint64 { return h.refusals + h.connRefused + h.timedOut }

// add adds o to h, since the earlier of the two.
func (h *held) add(o held) {
	if h.zero() || o.since.Before(h.since) {
		h.since = o.since
	}
	h.refusals += o.refusals
	h.connRefused += o.connRefused
	h.timedOut += o.timedOut
}

// ledger is, per peer, a token bucket for the records of its refused
// requests, and what was held back. One more bucket, allPeersScale
// times a peer's, bounds the records of all peers together: peers over
// TCP are addresses, of which a party may have many.
type ledger struct {
	rate, burst float64 // rate < 0: no bucket
	now         func() time.Time

	mu    sync.Mutex
	peers map[string]*peerEntry
	all   peerEntry
}

// allPeersScale is how many peers' worth of records the ledger lets all
// peers together write: a few local users refused at once are each
// recorded, and a flood from many addresses costs the log no more than
// ten peers would (0.5 records a second by default, with a burst of
// 200).
const allPeersScale = 10

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
	l := &ledger{rate: rate, burst: float64(burst), now: time.Now, peers: map[string]*peerEntry{}}
	l.all.tokens = l.burst * allPeersScale
	return l
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

// refillAll refills the bucket of all peers to now; l.mu is held.
func (l *ledger) refillAll(now time.Time) {
	if !l.all.last.IsZero() {
		l.all.tokens = min(l.burst*allPeersScale, l.all.tokens+max(0, now.Sub(l.all.last).Seconds())*l.rate*allPeersScale)
	}
	l.all.last = now
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
	l.refillAll(now)
	if e.tokens < 1 || l.all.tokens < 1 {
		if e.held.zero() {
			e.held.since = now
		}
		e.held.refusals++
		return false, held{}
	}
	e.tokens--
	l.all.tokens--
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
// peer, or for peers of them together (peer "other").
func (s *Server) recordHeld(peer string, h held, peers int) error {
	if h.zero() {
		return nil
	}
	s.log.Warn("peer limited", "peer", peer, "refusals_unrecorded", h.refusals, "connections_refused", h.connRefused, "connections_timed_out", h.timedOut, "since", h.since)
	rec := map[string]any{
		"peer": peer, "since": h.since.UTC(), "until": s.ledger.now().UTC(),
		"refusals_unrecorded": h.refusals, "connections_refused": h.connRefused, "connections_timed_out": h.timedOut,
	}
	if peers > 1 {
		rec["peers"] = peers
	}
	return s.record(audit.EventPeerLimited, rec)
}

// maxHeldRecords bounds the peer.limited records one flush writes: the
// peers that had the most held back get one each, and the rest one
// between them, so that a flood from many addresses costs the log a few
// records a minute, however many addresses it comes from.
const maxHeldRecords = 16

// flushHeld records what was held back for every peer.
func (s *Server) flushHeld() {
	all := s.ledger.drain()
	peers := make([]string, 0, len(all))
	for p := range all {
		peers = append(peers, p)
	}
	sort.Slice(peers, func(i, j int) bool {
		a, b := all[peers[i]], all[peers[j]]
		if a.total() != b.total() {
			return a.total() > b.total()
		}
		return peers[i] < peers[j]
	})
	rest, n := held{}, 0
	for i, p := range peers {
		if i < maxHeldRecords && p != otherPeers {
			if err := s.recordHeld(p, all[p], 1); err != nil {
				s.log.Error("audit log", "err", err)
			}
			continue
		}
		rest.add(all[p])
		n++
	}
	if n > 0 {
		if err := s.recordHeld(otherPeers, rest, n); err != nil {
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
