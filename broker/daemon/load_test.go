package daemon

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/token"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// TestConcurrentSessions: 60 sessions, of 16 token subjects and of root,
// all attached at once, each counting the same workload exactly; then a
// shutdown ends them all with their maps printed and nothing left.
//
// The kernel lets 64 programs share a tracepoint (BPF_TRACE_MAX_PROGS):
// the test takes the kernel tests' lock alone, since every other test
// traces the same getcwd calls, and leaves 4 places for other tracers on
// the machine.
func TestConcurrentSessions(t *testing.T) {
	needKernelAlone(t)
	const n = 60
	d := startDaemon(t, daemonOpts{perSubject: 4})
	before, _ := kerneltest.LoadedIDs(t)
	runs := make([]*traceRun, n)
	var wg sync.WaitGroup
	for i := range runs {
		tok := ""
		if i%4 != 0 {
			tok = d.token(t, token.IssueOptions{Subject: fmt.Sprintf("responder-%d", i%16), Scope: "trace probe:tracepoint:syscalls:sys_enter_getcwd"})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[i] = d.start(t, tok, &pb.TraceRequest{Source: getcwdScript()})
		}()
	}
	wg.Wait()
	t0 := time.Now()
	ss := d.attached(t, n, runs...)
	t.Logf("%d sessions attached in %v", n, time.Since(t0).Round(time.Millisecond))
	if len(ss) != n {
		t.Fatalf("%d sessions listed, want %d", len(ss), n)
	}
	kerneltest.Syscalls(11, 0)
	// A fifth session of responder-1, at its limit of 4, is refused.
	extra := d.start(t, d.token(t, token.IssueOptions{Subject: "responder-1", Scope: "trace probe:**"}), &pb.TraceRequest{Source: getcwdScript()})
	extra.wait(t)
	if extra.err == nil || !strings.Contains(extra.err.Error(), "responder-1 already runs 4 sessions") {
		t.Errorf("fifth session of one subject: %v", extra.err)
	}
	t1 := time.Now()
	d.stop(t)
	t.Logf("shutdown of %d sessions took %v", n, time.Since(t1).Round(time.Millisecond))
	for i, r := range runs {
		r.wait(t)
		if r.err != nil {
			t.Errorf("session %d: %v", i, r.err)
			continue
		}
		if got, want := r.stdout.String(), "Attaching 1 probe...\n\n\n@: 11\n"; got != want {
			t.Errorf("session %d: stdout %q, want %q", i, got, want)
		}
		if r.res.Reason != "shutdown" {
			t.Errorf("session %d: reason %q, want shutdown", i, r.res.Reason)
		}
	}
	if left := newSince(t, before); len(left) > 0 {
		t.Errorf("programs left loaded after shutdown: %v", left)
	}
}
