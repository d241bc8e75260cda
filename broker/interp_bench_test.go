package broker

import (
	"context"
	"encoding/binary"
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
	// vary, if set, rewrites each record before it is handed out (the
	// i-th): many keys from one record.
	vary func(rec []byte, i int)
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
	if l.vary != nil {
		l.vary(r, l.i)
	}
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
	// keyed counts as many distinct keys as the map's size: its flags
	// (context offset 32) are the event's number modulo keys, as the
	// maps case of make bench counts a million getcwd sizes.
	keyed := func(keys int) func([]byte, int) {
		return func(r []byte, i int) {
			binary.LittleEndian.PutUint64(r[len(r)-48+32:], uint64(i%keys))
		}
	}
	for _, tc := range []struct {
		name, script string
		vary         func([]byte, int)
		keys         int
	}{
		{"count", `tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }`, nil, 0},
		{"hist", `tracepoint:syscalls:sys_enter_openat { @ = hist(args->dfd); }`, nil, 0},
		{"keys=1e3", `tracepoint:syscalls:sys_enter_openat { @[args->flags] = count(); }`, keyed(1e3), 1e3},
		{"keys=1e6", `tracepoint:syscalls:sys_enter_openat { @[args->flags] = count(); }`, keyed(1e6), 1e6},
	} {
		b.Run(tc.name, func(b *testing.B) {
			prog := compileKeys(b, h, tc.script, tc.keys)
			src := &loopSource{recs: recs, n: b.N, vary: tc.vary}
			s, err := newInterpSession(prog, src, 2)
			if err != nil {
				b.Fatal(err)
			}
			s.routes = [][]route{nil, {{probe: 0}}}
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
	return compileKeys(tb, h, script, 0)
}

// compileKeys compiles script with room for maxKeys keys per map (0:
// bpftrace's 4096).
func compileKeys(tb testing.TB, h *recording.Header, script string, maxKeys int) *program.Program {
	tb.Helper()
	f, err := syntax.Parse("bench", []byte(script))
	if err != nil {
		tb.Fatal(err)
	}
	prog, _, err := compile.Compile(f, recordedKernel(h, maxKeys))
	if err != nil {
		tb.Fatal(err)
	}
	return prog
}
