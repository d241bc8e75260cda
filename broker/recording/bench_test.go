package recording

import (
	"path/filepath"
	"testing"

	"github.com/tracebroker/tracebroker/bpf/collector"
)

// benchWriter is a recording on the test's disk, and an openat event
// with its file name to write to it (the README's record example).
func benchWriter(b *testing.B) (*Writer, []byte) {
	h := &Header{Version: Version, CPUs: 2, Probes: []Probe{{Name: "tracepoint:syscalls:sys_enter_openat", Kind: "tracepoint", Category: "syscalls", Event: "sys_enter_openat", CtxLen: 48}}}
	rec := collector.Encode(nil, &collector.Record{Probe: 0, Context: make([]byte, 48), Strings: []collector.String{{Addr: 1, Data: []byte("/usr/lib/x86_64-linux-gnu/libc.so.6\x00")}}})
	w, err := Create(filepath.Join(b.TempDir(), "bench.tbrec"), h, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	return w, rec
}

// BenchmarkWrite: what keeping an event costs the recorder, closed at
// the end. It reports events/s and bytes/event, the format's framing
// included.
func BenchmarkWrite(b *testing.B) {
	w, rec := benchWriter(b)
	b.SetBytes(int64(len(rec)))
	for i := 0; i < b.N; i++ {
		if err := w.Write(rec); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(0); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(w.Bytes())/float64(b.N), "bytes/event")
}

// BenchmarkFlush: what the flush every second costs a slow recording —
// a chunk of 10 events, framed, checksummed and written.
func BenchmarkFlush(b *testing.B) {
	w, rec := benchWriter(b)
	for i := 0; i < b.N; i++ {
		for j := 0; j < 10; j++ {
			if err := w.Write(rec); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := w.Close(0); err != nil {
		b.Fatal(err)
	}
}
