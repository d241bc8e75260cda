package daemon

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/broker/audit"
	"github.com/tracebroker/tracebroker/gatekeeper/lsmgate"
)

// TestLedger: each peer gets its burst of records, then one per 1/rate
// seconds; what is held back comes out, once, with the next record.
func TestLedger(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l := newLedger(3, 1)
	l.now = func() time.Time { return now }
	var got []string
	try := func(peer string) {
		rec, before := l.refusal(peer)
		got = append(got, fmt.Sprintf("%s:%v/%d", peer, rec, before.refusals))
	}
	for i := 0; i < 5; i++ {
		try("uid:1")
	}
	try("uid:2") // another peer has its own bucket
	now = now.Add(1500 * time.Millisecond)
	try("uid:1") // one token back: recorded, with the 2 held before
	try("uid:1")
	want := "uid:1:true/0 uid:1:true/0 uid:1:true/0 uid:1:false/0 uid:1:false/0 uid:2:true/0 uid:1:true/2 uid:1:false/0"
	if s := strings.Join(got, " "); s != want {
		t.Errorf("got  %s\nwant %s", s, want)
	}
	l.count("uid:3", func(h *held) { h.connRefused += 4 })
	d := l.drain()
	if len(d) != 2 || d["uid:1"].refusals != 1 || d["uid:3"].connRefused != 4 || !d["uid:3"].since.Equal(now) {
		t.Errorf("drain = %+v", d)
	}
	if d := l.drain(); len(d) != 0 {
		t.Errorf("second drain = %+v", d)
	}

	// Unlimited: every refusal is recorded.
	u := newLedger(1, -1)
	for i := 0; i < 10; i++ {
		if rec, _ := u.refusal("uid:1"); !rec {
			t.Fatal("a refusal held back without a limit")
		}
	}
}

// TestLedgerBounded: however many peers come, the ledger stays bounded;
// peers with something held are not forgotten, newcomers then share.
func TestLedgerBounded(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l := newLedger(1, 1)
	l.now = func() time.Time { return now }
	for i := 0; i < maxPeers; i++ {
		l.refusal(fmt.Sprintf("ip:10.0.%d.%d", i/256, i%256))
		l.refusal(fmt.Sprintf("ip:10.0.%d.%d", i/256, i%256)) // held
	}
	for i := 0; i < 3*maxPeers; i++ {
		l.refusal(fmt.Sprintf("ip:10.1.%d.%d", i/256, i%256))
	}
	if n := len(l.peers); n > maxPeers+1 {
		t.Errorf("%d peers in the ledger", n)
	}
	d := l.drain()
	if d["ip:10.0.0.0"].refusals != 1 || d[otherPeers].refusals == 0 {
		t.Errorf("held: first peer %+v, others %+v", d["ip:10.0.0.0"], d[otherPeers])
	}
	// Once nothing is held and the buckets are full, they make room.
	now = now.Add(time.Minute)
	l.refusal("ip:192.0.2.1")
	if _, ok := l.peers["ip:192.0.2.1"]; !ok || len(l.peers) > maxPeers {
		t.Errorf("a new peer after the others refilled: %d peers", len(l.peers))
	}
}

// TestPeers: a peer over TCP is what one party cannot multiply: every
// loopback address is one, an IPv6 address its /64.
func TestPeers(t *testing.T) {
	for _, tt := range []struct{ addr, want string }{
		{"127.0.0.1:5", "ip:loopback"},
		{"127.3.2.1:5", "ip:loopback"},
		{"[::1]:5", "ip:loopback"},
		{"[::ffff:127.0.0.2]:5", "ip:loopback"},
		{"192.0.2.7:5", "ip:192.0.2.7"},
		{"[::ffff:192.0.2.7]:5", "ip:192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:5", "ip:2001:db8:1:2::/64"},
		{"[2001:db8:1:2::9]:5", "ip:2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:5", "ip:fe80::/64"},
	} {
		if got := (Caller{Addr: tt.addr}).peer(); got != tt.want {
			t.Errorf("peer of %s = %s, want %s", tt.addr, got, tt.want)
		}
	}
}

// TestLedgerAllPeers: however many peers refuse at once, all of them
// together are recorded at allPeersScale peers' rate.
func TestLedgerAllPeers(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l := newLedger(2, 0.01)
	l.now = func() time.Time { return now }
	recorded := 0
	for i := range 1000 {
		if rec, _ := l.refusal(fmt.Sprintf("ip:10.0.%d.%d", i/256, i%256)); rec {
			recorded++
		}
	}
	if want := 2 * allPeersScale; recorded != want {
		t.Errorf("%d refusals of 1000 peers recorded, want %d", recorded, want)
	}
}

// TestFlushHeldBounded: one flush writes at most maxHeldRecords + 1
// peer.limited records, the peers with the most held back each their
// own, the rest one between them that counts them.
func TestFlushHeldBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	al, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	s := &Server{cfg: Config{Audit: al}, log: slog.New(slog.DiscardHandler), ledger: newLedger(1, 0.01)}
	want := 0
	for i := range 100 {
		for range 1 + i%7 {
			s.ledger.count(fmt.Sprintf("ip:10.0.0.%d", i), func(h *held) { h.connRefused++ })
			want++
		}
	}
	s.flushHeld()
	recs := auditRecords(t, path)
	if len(recs) != maxHeldRecords+1 {
		t.Fatalf("%d records, want %d", len(recs), maxHeldRecords+1)
	}
	total := 0
	for _, r := range recs {
		total += int(r.Data["connections_refused"].(float64))
	}
	if last := recs[len(recs)-1].Data; last["peer"] != otherPeers || last["peers"] != float64(100-maxHeldRecords) {
		t.Errorf("last record %v, want the other %d peers", last, 100-maxHeldRecords)
	}
	if total != want {
		t.Errorf("%d connections refused in the records, want all %d", total, want)
	}
	if first := recs[0].Data["connections_refused"]; first != float64(7) {
		t.Errorf("first record counts %v, want the largest, 7", first)
	}
}

// TestGateRefusalsBounded: the kernel gate's refusals of a user are
// recorded up to the user's bucket, then counted in its peer.limited
// record; root's are all recorded.
func TestGateRefusalsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	al, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	s := &Server{cfg: Config{Audit: al}, log: slog.New(slog.DiscardHandler), ledger: newLedger(2, 0.001)}
	for i := 0; i < 5; i++ {
		s.recordGateRefusal(lsmgate.Record{Reason: lsmgate.ReasonPtrace, UID: 1000, Cmd: 1004})
		s.recordGateRefusal(lsmgate.Record{Reason: lsmgate.ReasonLoad, UID: 0, Cmd: 5})
	}
	s.flushHeld()
	counts := map[string]int{}
	var limited string
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r struct {
			Event string         `json:"event"`
			Data  map[string]any `json:"data"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		counts[fmt.Sprintf("%s uid %v", r.Event, r.Data["uid"])]++
		if r.Event == audit.EventPeerLimited {
			limited = fmt.Sprint(r.Data["peer"], " ", r.Data["refusals_unrecorded"])
		}
	}
	want := map[string]int{"gate.refused uid 1000": 2, "gate.refused uid 0": 5, "peer.limited uid <nil>": 1}
	if fmt.Sprint(counts) != fmt.Sprint(want) || limited != "uid:1000 3" {
		t.Errorf("records %v (limited %q), want %v (uid:1000 3)", counts, limited, want)
	}
}
