package broker

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/recording"
	"github.com/tracebroker/tracebroker/broker/script/compile"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// loopSource hands out the same records, round and round, n in all (0:
// for ever, a storm of events faster than the interpreter): the
// interpreter's side of interpreter mode, without a kernel. After Stop
// it has backlog more, as a ring buffer holds what came before the stop.
type loopSource struct {
	recs    [][]byte
	i, n    int
	backlog int
	stopped bool
}

func (l *loopSource) Attach(context.Context) error { return nil }
func (l *loopSource) Attached() int                { return 1 }
func (l *loopSource) Next(time.Time) ([]byte, error) {
	if l.n > 0 && l.i >= l.n {
		return nil, io.EOF
	}
	if l.stopped {
		if l.backlog == 0 {
			return nil, bpf.ErrTimeout
		}
		l.backlog--
	}
	r := l.recs[l.i%len(l.recs)]
	l.i++
	return r, nil
}
func (l *loopSource) Pending() int {
	if l.stopped && l.backlog == 0 {
		return 0
	}
	return 1
}
func (l *loopSource) Stop() error  { l.stopped = true; return nil }
func (l *loopSource) Lost() uint64 { return 0 }
func (l *loopSource) Detach()      {}
func (l *loopSource) Close()       {}

// BenchmarkInterpEvents is interpreter mode's per-event cost in user
// space: decode a collector record, run the probe's program over it in
// the interpreter, update the user-space maps. The kernel's side
// (collector, ring buffer) is bpf/collector's benchmark.
func BenchmarkInterpEvents(b *testing.B) {
	comms := []string{"bash", "sshd", "systemd", "cat", "ls", "kworker/0:1", "containerd", "go"}
	var recs [][]byte
	for i, c := range comms {
		r := collector.Record{Probe: 1, TGID: uint32(100 + i), PID: uint32(100 + i), CPU: uint32(i % 2), Context: make([]byte, 48)}
		r.Context[16] = byte(i * 37) // dfd: something to hist
		copy(r.Comm[:], c)
		recs = append(recs, collector.Encode(nil, &r))
	}
	h := &recording.Header{Version: recording.Version, CPUs: 2, Probes: []recording.Probe{
		{Name: "tracepoint:syscalls:sys_enter_getcwd", Kind: "tracepoint", Category: "syscalls", Event: "sys_enter_getcwd", CtxLen: 48, Fields: openatFields},
		{Name: "tracepoint:syscalls:sys_enter_openat", Kind: "tracepoint", Category: "syscalls", Event: "sys_enter_openat", CtxLen: 48, Fields: openatFields},
	}}
	for _, tc := range []struct{ name, script string }{
		{"count", `tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }`},
		{"hist", `tracepoint:syscalls:sys_enter_openat { @ = hist(args->dfd); }`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			prog := compileAgainst(b, h, tc.script)
			src := &loopSource{recs: recs, n: b.N}
			s, err := newInterpSession(prog, src, 2)
			if err != nil {
				b.Fatal(err)
			}
			s.routes = [][]int{nil, {0}}
			var rec ringbuf.Record
			b.ReportAllocs()
			b.ResetTimer()
			for {
				if err := s.Read(time.Time{}, &rec); err == io.EOF {
					break
				} else if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if s.failures > 0 {
				b.Fatal(s.firstFailure)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func compileAgainst(tb testing.TB, h *recording.Header, script string) *program.Program {
	tb.Helper()
	f, err := syntax.Parse("bench", []byte(script))
	if err != nil {
		tb.Fatal(err)
	}
	prog, _, err := compile.Compile(f, recordedKernel(h, 0))
	if err != nil {
		tb.Fatal(err)
	}
	return prog
}
