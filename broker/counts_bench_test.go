package broker

import (
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tracebroker/tracebroker/broker/output"
	"github.com/tracebroker/tracebroker/broker/program"
)

// BenchmarkEventMetrics is what counting events for the daemon's
// metrics adds to each event: the runner's handling of one printf event
// without a counter, and with a Prometheus counter flushed after every
// event (the worst case: the runner flushes once the buffer is empty,
// so under load one add covers many events).
func BenchmarkEventMetrics(b *testing.B) {
	f := &program.Format{Fmt: "%d\n", Args: []program.Arg{{Type: program.Type{Kind: program.Int, Size: 8}, Offset: 16}}, Size: 24}
	rec := make([]byte, f.Size)
	rec[0] = byte(program.EventPrintf)
	for _, tc := range []struct {
		name   string
		events Counter
	}{{"none", nil}, {"prometheus", prometheus.NewCounter(prometheus.CounterOpts{Name: "events"})}} {
		b.Run(tc.name, func(b *testing.B) {
			r := &runner{req: &Request{Events: tc.events}, prog: &program.Program{Schema: program.Schema{Formats: []*program.Format{f}}}, out: output.NewText(io.Discard)}
			b.ReportAllocs()
			for b.Loop() {
				if err := r.handle(rec); err != nil {
					b.Fatal(err)
				}
				r.flushCounts()
			}
		})
		// The counting alone, apart from the printing it is lost in.
		b.Run(tc.name+"/count-only", func(b *testing.B) {
			r := &runner{req: &Request{Events: tc.events}}
			for b.Loop() {
				r.counts.events++
				r.flushCounts()
			}
		})
	}
}
