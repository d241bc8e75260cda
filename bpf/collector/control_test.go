package collector_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// openOpts is open with the session's options: its probes, then drain's
// sentinel.
func openOpts(t testing.TB, o collector.Options) *collector.Session {
	t.Helper()
	_, ctxLen := recordSize(t, "syscalls", sentinelEvent)
	o.Probes = append(slices.Clone(o.Probes), collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: sentinelEvent, CtxLen: ctxLen})
	o.Trust = collector.Trust{Unsigned: true}
	s, err := collector.Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	if err := s.Attach(context.Background()); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	sentinels.Store(s, len(o.Probes)-1)
	t.Cleanup(func() { sentinels.Delete(s) })
	return s
}

// TestIgnoreTGID: the events of the process the session ignores (the
// broker's own, in use) are not collected; another's running the same
// code are, every one.
func TestIgnoreTGID(t *testing.T) {
	needKernel(t)
	bin := buildWorkload(t)
	syms, err := uprobe.Match(bin, "mark")
	if err != nil {
		t.Fatal(err)
	}
	const n = 9
	ignored := startWorkload(t, bin, strconv.Itoa(n), "ignored")
	kept := startWorkload(t, bin, strconv.Itoa(n), "kept")
	s := openOpts(t, collector.Options{
		Probes:     []collector.Probe{{Kind: program.Uprobe, Path: bin, Offset: syms[0].Offset}},
		IgnoreTGID: uint32(ignored.cmd.Process.Pid),
	})
	ignored.run(t)
	kept.run(t)
	counts := map[int]int{}
	for _, r := range drain(t, s, func(r *collector.Record) bool { return r.Probe == 0 }) {
		counts[int(r.TGID)]++
	}
	if counts[ignored.cmd.Process.Pid] != 0 || counts[kept.cmd.Process.Pid] != n {
		t.Errorf("records by process %v; want none of the ignored %d and %d of %d", counts, ignored.cmd.Process.Pid, n, kept.cmd.Process.Pid)
	}
}

// TestReadPolls: the collectors write without waking the reader until a
// batch waits, so a lone record is found by Read's polling: well before
// a deadline far off, which a reader waiting to be woken would reach
// first.
func TestReadPolls(t *testing.T) {
	needKernel(t)
	_, size := recordSize(t, "syscalls", "sys_enter_getcpu")
	s := openOpts(t, collector.Options{Probes: []collector.Probe{{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_getcpu", CtxLen: size}}})
	// What is there already goes first.
	drain(t, s, func(*collector.Record) bool { return false })
	start := time.Now()
	kerneltest.Syscalls(0, 1)
	far := start.Add(20 * time.Second)
	for {
		r, ok := read(t, s, far)
		if !ok {
			t.Fatal("the record was never read")
		}
		if r.Probe == 0 && mine(r) {
			break
		}
	}
	// Generous against a loaded machine; a reader waiting for a wake-up
	// would take the 20 s.
	if d := time.Since(start); d > 10*collector.ReadPoll+2*time.Second {
		t.Errorf("the record took %v to read, polling every %v", d, collector.ReadPoll)
	}
}
