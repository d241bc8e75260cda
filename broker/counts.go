package broker

// Counter is what Request.Events and Request.Lost add to: a
// prometheus.Counter is one.
type Counter interface{ Add(float64) }

// eventCounts is a run's events, counted by a plain increment per event
// and handed to Request.Events in batches, when the output is flushed:
// an atomic add per batch instead of per event (BenchmarkPrintfEvent).
type eventCounts struct {
	events, added uint64
}

// flushCounts adds the events read since the last call to
// Request.Events.
func (r *runner) flushCounts() {
	c := &r.counts
	if c.events == c.added || r.req == nil || r.req.Events == nil {
		return
	}
	r.req.Events.Add(float64(c.events - c.added))
	c.added = c.events
}
