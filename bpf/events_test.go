package bpf_test

import (
	"os"
	"testing"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/broker/program"
)

// TestEventsSize: the option sizes the ring buffer of a program that
// prints and leaves a quiet program its page; every size is a page at
// least, and a size the kernel would refuse is an error.
func TestEventsSize(t *testing.T) {
	page := uint32(os.Getpagesize())
	for _, tc := range []struct {
		size uint32
		n    int
		want uint32
	}{
		{program.EventBuffer, 0, program.EventBuffer},
		{program.EventBuffer, 1 << 20, 1 << 20},
		{program.EventBuffer, 64 << 20, 64 << 20},
		{program.QuietEventBuffer, 0, max(program.QuietEventBuffer, page)},
		{program.QuietEventBuffer, 1 << 20, max(program.QuietEventBuffer, page)},
	} {
		got, err := bpf.EventsSize(tc.size, tc.n)
		if err != nil || got != tc.want {
			t.Errorf("EventsSize(%d, %d) = %d, %v; want %d", tc.size, tc.n, got, err, tc.want)
		}
	}
	for _, n := range []int{3000, 3 << 20, 2 << 30} {
		if got, err := bpf.EventsSize(program.EventBuffer, n); err == nil {
			t.Errorf("EventsSize(%d) = %d, want an error", n, got)
		}
	}
}
