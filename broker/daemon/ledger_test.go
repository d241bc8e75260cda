package daemon

import (
	"fmt"
	"strings"
	"testing"
	"time"
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
