package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/bpf"
	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// needKernelAlone is needKernel for a test that storms tracepoints with
// events: no other kernel test runs meanwhile (kerneltest.Exclusive), as
// the storm would fill the ring buffers of those whose collectors see it
// too.
func needKernelAlone(t testing.TB) {
	t.Helper()
	if err := bpf.Supported(); err != nil {
		t.Skipf("kernel tracing unavailable: %v", err)
	}
	kerneltest.Exclusive(t)
}

// attachedOrEnded waits until r's session runs with its probes attached,
// and returns the sessions; false if r ended first.
func (d *testDaemon) attachedOrEnded(t *testing.T, r *traceRun) ([]*pb.Session, bool) {
	t.Helper()
	c := d.client(t, "")
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-r.done:
			return nil, false
		default:
		}
		ss, err := c.Sessions(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(ss) == 1 && ss[0].Mode != "" {
			return ss, true
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session did not attach in 30s: %v", ss)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// inTime reports whether a session that ends by time (its deadline,
// from -d or the token's max_duration, or its token's expiry) was still
// attached when the test's workload was done, so that the workload was
// traced: it had attached (attached), and the workload ended before the
// earliest end the session could have. The daemon sets the deadline
// before the run starts its clock, and ends a session at its token's
// expiry, not before. On a busy machine, compiling, loading and
// attaching can take longer than the limits of a quick test: the test
// then runs again with limits scale times longer, rather than judge a
// session by a workload it never saw. It gives up at 16 times.
func inTime(t *testing.T, attached bool, ss []*pb.Session, expires time.Time, scale time.Duration) bool {
	t.Helper()
	now := time.Now()
	end := expires
	if attached && ss[0].DeadlineUnixMs != 0 {
		if dl := time.UnixMilli(ss[0].DeadlineUnixMs); end.IsZero() || dl.Before(end) {
			end = dl
		}
	}
	switch {
	case attached && (end.IsZero() || now.Before(end)):
		return true
	case scale >= 16:
		t.Fatalf("the session ended before the workload was done, with limits %d times the test's: the machine is too busy for this test", scale)
	}
	t.Logf("the session may have ended before the workload was done (attached %v, ends %v, done %v): again with limits %d times as long",
		attached, end.Format(time.StampMilli), now.Format(time.StampMilli), 2*scale)
	return false
}
