package collector

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// TestWakeUp: once a batch of records (WakeFraction of the buffer)
// waits unread, a write wakes a reader that waits for nothing else (no
// polling, no deadline), though each CPU looks at what waits only once
// it has written controlCheck bytes.
func TestWakeUp(t *testing.T) {
	if err := bpf.Supported(); err != nil {
		t.Skipf("kernel tracing unavailable: %v", err)
	}
	kerneltest.Lock(t)
	const size = 64 << 10
	s, err := Open(Options{
		Probes:     []Probe{{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_getcpu", CtxLen: 16}},
		BufferSize: size,
		Trust:      Trust{Unsigned: true},
		IgnoreTGID: 0,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A reader of its own that only waits to be woken.
	rd, err := ringbuf.NewReader(s.coll.Maps[eventsMap])
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if err := s.Attach(context.Background()); err != nil {
		t.Fatal(err)
	}
	woken := make(chan error, 1)
	go func() {
		_, err := rd.Read()
		woken <- err
	}()
	kerneltest.Syscalls(0, 1)
	select {
	case err := <-woken:
		// Another process's getcpu may have come with a batch of others.
		t.Logf("woken by a lone record or others' (%v): %d bytes unread", err, rd.AvailableBytes())
	case <-time.After(200 * time.Millisecond):
	}
	// Two batches' worth (each record is more than 64 bytes): however
	// the calls fall on the CPUs, one of them looks when a batch waits.
	kerneltest.Syscalls(0, 2*size/WakeFraction/64+1)
	select {
	case err := <-woken:
		if err != nil && !errors.Is(err, os.ErrClosed) {
			t.Fatalf("Read: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no wake-up 10 s after a batch was written: %d bytes unread", rd.AvailableBytes())
	}
}
