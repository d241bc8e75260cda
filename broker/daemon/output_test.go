package daemon

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
)

// fakeStream is a client's end of a Trace stream: each Send waits until
// the client reads (gate), as gRPC's flow control makes it wait.
type fakeStream struct {
	pb.Broker_TraceServer
	gate chan struct{} // a token per Send; closed: the client reads everything

	mu  sync.Mutex
	got []*pb.TraceEvent
}

func (f *fakeStream) Send(ev *pb.TraceEvent) error {
	<-f.gate
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, ev)
	return nil
}

func (f *fakeStream) text() (stdout, stderr string, last *pb.TraceEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var o, e strings.Builder
	for _, ev := range f.got {
		o.Write(ev.GetStdout())
		e.Write(ev.GetStderr())
	}
	if len(f.got) > 0 {
		last = f.got[len(f.got)-1]
	}
	return o.String(), e.String(), last
}

// TestOutputQueue: a client that does not read never holds up the
// writer; what does not fit is dropped in whole lines and counted; the
// client is told, the end of the trace is never dropped, and the exit
// message comes last.
func TestOutputQueue(t *testing.T) {
	for _, tt := range []struct {
		name    string
		reads   bool // the client reads all along
		limit   int
		chunk   int // bytes per write (writes cut lines anywhere)
		dropped bool
	}{
		{"client keeps up", true, 4 << 20, 4096, false},
		{"client stalls, whole lines", false, 16 << 10, 100 * 64, true},
		{"client stalls, writes cut lines", false, 16 << 10, 1000, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeStream{gate: make(chan struct{})}
			if tt.reads {
				close(f.gate)
			}
			o := newOutput(f, tt.limit)
			// 20,000 numbered lines of 100 bytes: 2 MB, 122 times the
			// stalled client's bound, written as the printer does, in
			// buffers that cut lines anywhere.
			var all bytes.Buffer
			for i := range 20000 {
				fmt.Fprintf(&all, "line %06d %s\n", i, strings.Repeat("x", 100-13))
			}
			w := o.writer(stdout)
			start := time.Now()
			// The probes stop in the middle of the last line: its tail
			// is written after.
			head, tail := all.Bytes()[:all.Len()-50], all.Bytes()[all.Len()-50:]
			for b := head; len(b) > 0; {
				n := min(len(b), tt.chunk)
				if _, err := w.Write(b[:n]); err != nil {
					t.Fatal(err)
				}
				b = b[n:]
			}
			t.Logf("2 MB written in %v", time.Since(start))
			if !tt.reads {
				close(f.gate) // the client reads again, for the end
			}
			o.finalize()
			w.Write(tail)
			final := "\n\n@: " + strings.Repeat("9", 200<<10) + "\n" // maps larger than the bound
			w.Write([]byte(final))
			o.send(&pb.TraceEvent{Event: &pb.TraceEvent_Exit{Exit: &pb.Exit{}}})
			o.close(context.Background())

			out, errs, last := f.text()
			if last.GetExit() == nil {
				t.Errorf("last event %v, want the exit", last)
			}
			body, ok := strings.CutSuffix(out, final)
			if !ok {
				t.Fatalf("the end of the trace was not delivered whole")
			}
			// Every line delivered is a line written, whole, in order.
			lineRE := regexp.MustCompile(`^line (\d{6}) x{87}$`)
			lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
			prev := -1
			for _, l := range lines {
				m := lineRE.FindStringSubmatch(l)
				if m == nil {
					t.Fatalf("line %q is not one that was written", l)
				}
				n, _ := strconv.Atoi(m[1])
				if n <= prev {
					t.Fatalf("line %d after %d", n, prev)
				}
				prev = n
			}
			d := o.drops()
			if got, want := uint64(len(lines))+d.lines, uint64(20000); got != want {
				t.Errorf("%d lines delivered + %d dropped = %d, want %d", len(lines), d.lines, got, want)
			}
			if got, want := uint64(len(body))+d.bytes, uint64(all.Len()); got != want {
				t.Errorf("%d bytes delivered + %d dropped = %d, want %d", len(body), d.bytes, got, want)
			}
			if (d.lines > 0) != tt.dropped {
				t.Errorf("dropped %+v, want dropping %v", d, tt.dropped)
			}
			// Told as soon as there was room, and of the last drops last.
			warnRE := regexp.MustCompile(`^WARNING: this client reads more slowly than the trace prints: \d+ lines of output \(\d+ bytes\) dropped so far$`)
			warns := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
			for _, w := range warns {
				if !warnRE.MatchString(w) && tt.dropped {
					t.Errorf("stderr line %q", w)
				}
			}
			lastWarn := fmt.Sprintf("WARNING: this client reads more slowly than the trace prints: %d lines of output (%d bytes) dropped so far", d.lines, d.bytes)
			if tt.dropped && warns[len(warns)-1] != lastWarn || !tt.dropped && errs != "" {
				t.Errorf("stderr %q, want its last line %q", errs, lastWarn)
			}
		})
	}
}

// TestOutputCloseGivesUp: the end of a session waits for a client that
// takes none of its output only flushStall, and the sender then sends no
// more.
func TestOutputCloseGivesUp(t *testing.T) {
	defer func(d time.Duration) { flushStall = d }(flushStall)
	flushStall = 50 * time.Millisecond
	f := &fakeStream{gate: make(chan struct{})}
	o := newOutput(f, 1<<10)
	o.writer(stdout).Write([]byte("a line\n"))
	o.send(&pb.TraceEvent{Event: &pb.TraceEvent_Exit{Exit: &pb.Exit{}}})
	start := time.Now()
	o.close(context.Background())
	t.Logf("gave up after %v", time.Since(start))
	f.gate <- struct{}{} // the Send under way ends
	<-o.done
	if out, _, last := f.text(); out != "a line\n" || last.GetExit() != nil {
		t.Errorf("after giving up: sent %q, last %v; want the one Send under way and nothing more", out, last)
	}
}

// BenchmarkOutputDropped is what a client that does not read costs the
// run loop per 64 KiB write of output (the printer's batch): the write
// is dropped and counted, and the loop goes on.
func BenchmarkOutputDropped(b *testing.B) {
	line := []byte(strings.Repeat("x", 99) + "\n")
	batch := bytes.Repeat(line, 64<<10/len(line))
	f := &fakeStream{gate: make(chan struct{})}
	o := newOutput(f, defaultOutputQueue)
	w := o.writer(stdout)
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		w.Write(batch)
	}
	b.StopTimer()
	close(f.gate)
	o.close(context.Background())
}
