package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
)

// A session's output reaches its client through a bounded queue, so that
// a client that reads slowly, or not at all, never holds up the trace:
// the run loop writes into the queue and goes on at once, and one
// goroutine per session sends what is queued.
//
// When the queue is full, output is dropped, as the kernel's ring buffer
// drops events that a slow reader has no room for: whole lines (a line
// begun is finished, the rest of a line dropped goes too), counted. The
// client is told on its stderr as soon as there is room again, and the
// count is in the session's trace.end audit record. Dropping, rather than
// disconnecting a slow reader, keeps a trace going for a client on a slow
// link, whose maps (kept in the kernel, not in the queue) are whole at
// the end; a client that stops reading entirely costs the daemon the
// queue's bytes until its session ends (its -d, max_duration, token
// expiry, sessions stop, or its leaving).
//
// Once the probes have stopped (final), nothing more is dropped: what is
// printed from then on — the rest of the ring buffer, END's output and
// the maps — is bounded by the ring buffer and the maps, and is the part
// of a trace a client most needs.

// defaultOutputQueue is each session's queue unless Config says.
const defaultOutputQueue = 1 << 20

// flushStall is how long a session's end waits for a client that takes
// none of its remaining output before giving up on it.
var flushStall = 5 * time.Second

// output is a session's stream of events to its client.
type output struct {
	stream pb.Broker_TraceServer
	limit  int

	mu        sync.Mutex
	q         []*pb.TraceEvent
	queued    int  // bytes of stdout and stderr in q and in the Send under way
	final     bool // the probes have stopped: no more dropping
	closed    bool // nothing more comes: the sender ends when q is empty
	abandoned bool // the session ended without its client: send no more
	err       error
	lines     [2]lineState // stdout, stderr
	dropped   drops
	told      drops // what the client has been told of

	wake     chan struct{} // the sender has something to do
	progress chan struct{} // a Send finished
	done     chan struct{} // the sender has ended
}

type lineState struct {
	open bool // the last byte queued ends no line
	skip bool // the rest of a line being dropped is dropped too
}

// drops counts dropped output: lines (the newlines dropped) and bytes.
type drops struct{ lines, bytes uint64 }

const (
	stdout = 0
	stderr = 1
)

// newOutput starts a session's sender; close ends it.
func newOutput(stream pb.Broker_TraceServer, limit int) *output {
	if limit <= 0 {
		limit = defaultOutputQueue
	}
	o := &output{stream: stream, limit: limit,
		wake: make(chan struct{}, 1), progress: make(chan struct{}, 1), done: make(chan struct{})}
	go o.run()
	return o
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// run sends what is queued, in order, until the queue is closed and
// empty, the stream fails or the session gives up on its client.
func (o *output) run() {
	defer close(o.done)
	for {
		o.mu.Lock()
		for len(o.q) == 0 && !o.closed && !o.abandoned && o.err == nil {
			o.mu.Unlock()
			<-o.wake
			o.mu.Lock()
		}
		if len(o.q) == 0 || o.abandoned || o.err != nil {
			o.mu.Unlock()
			return
		}
		ev := o.q[0]
		o.q[0] = nil
		o.q = o.q[1:]
		o.mu.Unlock()
		err := o.stream.Send(ev)
		o.mu.Lock()
		o.queued -= payloadSize(ev)
		if err != nil {
			o.err, o.q, o.queued = err, nil, 0
		}
		o.mu.Unlock()
		poke(o.progress)
	}
}

func payloadSize(ev *pb.TraceEvent) int { return len(ev.GetStdout()) + len(ev.GetStderr()) }

// send queues a message of the session's own (started, exit): never
// dropped. Its error is the stream's, once the client is gone.
func (o *output) send(ev *pb.TraceEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return o.err
	}
	o.q = append(o.q, ev)
	poke(o.wake)
	return nil
}

// writer is the trace's stdout or stderr.
func (o *output) writer(stream int) io.Writer {
	return writerFunc(func(p []byte) (int, error) { return o.write(stream, p) })
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// write queues p, or as much of it as the queue's bound allows in whole
// lines; it never waits for the client.
func (o *output) write(stream int, p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return 0, fmt.Errorf("client gone: %w", o.err)
	}
	ls := &o.lines[stream]
	keep := p
	if ls.skip {
		i := bytes.IndexByte(keep, '\n')
		if i < 0 {
			o.drop(keep)
			return len(p), nil
		}
		o.drop(keep[:i+1])
		keep, ls.skip = keep[i+1:], false
	}
	if !o.final && o.queued >= o.limit {
		// Full: finish the line the client has the start of, and drop
		// the rest.
		cut := 0
		if ls.open {
			if cut = bytes.IndexByte(keep, '\n') + 1; cut == 0 {
				cut = len(keep)
			}
		}
		o.enqueue(stream, keep[:cut])
		if rest := keep[cut:]; len(rest) > 0 {
			o.drop(rest)
			ls.skip = rest[len(rest)-1] != '\n'
		}
		return len(p), nil
	}
	o.tell()
	o.enqueue(stream, keep)
	return len(p), nil
}

func (o *output) drop(b []byte) {
	o.dropped.bytes += uint64(len(b))
	o.dropped.lines += uint64(bytes.Count(b, []byte{'\n'}))
}

// enqueue queues b in chunks well under gRPC's 4 MiB message limit.
func (o *output) enqueue(stream int, b []byte) {
	if len(b) == 0 {
		return
	}
	for n := 0; n < len(b); {
		c := append([]byte(nil), b[n:min(len(b), n+maxChunk)]...)
		ev := &pb.TraceEvent{Event: &pb.TraceEvent_Stdout{Stdout: c}}
		if stream == stderr {
			ev = &pb.TraceEvent{Event: &pb.TraceEvent_Stderr{Stderr: c}}
		}
		o.q = append(o.q, ev)
		n += len(c)
	}
	o.queued += len(b)
	o.lines[stream].open = b[len(b)-1] != '\n'
	poke(o.wake)
}

// tell queues on stderr how much was dropped, when more was since the
// client was last told, unless stderr has a line open.
func (o *output) tell() {
	if o.dropped == o.told || o.lines[stderr].open {
		return
	}
	o.told = o.dropped
	o.enqueue(stderr, fmt.Appendf(nil, "WARNING: this client reads more slowly than the trace prints: %d lines of output (%d bytes) dropped so far\n",
		o.dropped.lines, o.dropped.bytes))
}

// finalize lifts the bound: the probes have stopped, and what is printed
// from now on is the end of the trace. The client hears of what was
// dropped first.
// (The rest of a line being dropped is still dropped: the client never
// gets part of a line.)
func (o *output) finalize() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.final = true
	o.tell()
}

// drops is what was dropped, for the audit record.
func (o *output) drops() drops {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.dropped
}

// close queues nothing more and waits until the client has taken the
// rest, has gone, or has taken nothing for flushStall; then the sender
// sends no more. It must be called before the handler returns: a stream
// is not to be written once its handler has.
func (o *output) close(ctx context.Context) {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	poke(o.wake)
	stall := time.NewTimer(flushStall)
	defer stall.Stop()
	for {
		select {
		case <-o.done:
			return
		case <-o.progress:
			stall.Reset(flushStall)
			continue
		case <-ctx.Done():
		case <-stall.C:
		}
		o.mu.Lock()
		o.abandoned = true
		o.mu.Unlock()
		poke(o.wake)
		return
	}
}
