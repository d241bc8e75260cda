package detach

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestAll: every index is closed exactly once, never more than Workers
// at once in one call, nor more than the process-wide bound across many
// calls at once.
func TestAll(t *testing.T) {
	for _, tt := range []struct {
		name         string
		calls, n     int
		maxInOneCall int
	}{
		{"none", 1, 0, 0},
		{"fewer than workers", 1, 3, 3},
		{"360 tracepoints", 1, 360, Workers},
		{"many sessions at once", 16, 50, Workers},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var now, most atomic.Int64
			var wg sync.WaitGroup
			seen := make([][]atomic.Int32, tt.calls)
			for c := range tt.calls {
				seen[c] = make([]atomic.Int32, tt.n)
				wg.Add(1)
				go func() {
					defer wg.Done()
					var inCall, mostInCall atomic.Int64
					All(tt.n, func(i int) {
						seen[c][i].Add(1)
						k, all := inCall.Add(1), now.Add(1)
						for m := mostInCall.Load(); k > m && !mostInCall.CompareAndSwap(m, k); m = mostInCall.Load() {
						}
						for m := most.Load(); all > m && !most.CompareAndSwap(m, all); m = most.Load() {
						}
						time.Sleep(100 * time.Microsecond) // a close that blocks
						inCall.Add(-1)
						now.Add(-1)
					})
					if got := mostInCall.Load(); got > int64(tt.maxInOneCall) {
						t.Errorf("%d closes at once in one call, want at most %d", got, tt.maxInOneCall)
					}
				}()
			}
			wg.Wait()
			for c := range seen {
				for i := range seen[c] {
					if n := seen[c][i].Load(); n != 1 {
						t.Fatalf("call %d closed %d %d times", c, i, n)
					}
				}
			}
			if got := most.Load(); got > int64(cap(inFlight)) {
				t.Errorf("%d closes in flight in the process, want at most %d", got, cap(inFlight))
			}
		})
	}
}
