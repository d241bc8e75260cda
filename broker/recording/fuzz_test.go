package recording

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/tracebroker/tracebroker/bpf/collector"
)

// seedV1 is a version 1 recording, as tracebroker wrote them before
// chunks.
func seedV1(tb testing.TB) []byte {
	h := Header{Version: 1, CPUs: 2, Probes: []Probe{{Name: "tracepoint:syscalls:sys_enter_getcwd", Kind: "tracepoint", Category: "syscalls", Event: "sys_enter_getcwd", CtxLen: 16}}}
	hb, err := json.Marshal(h)
	if err != nil {
		tb.Fatal(err)
	}
	b := []byte(MagicV1)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(hb)))
	b = append(b, hb...)
	b = collector.Encode(b, &collector.Record{Probe: 0, Context: make([]byte, 16)})
	b = collector.Encode(b, &collector.Record{Probe: 0, Context: make([]byte, 16), Strings: []collector.String{{Addr: 1, Data: []byte("x\x00")}}})
	var t [16]byte
	binary.LittleEndian.PutUint32(t[0:], 16)
	binary.LittleEndian.PutUint16(t[4:], 0xffff)
	binary.LittleEndian.PutUint64(t[8:], 3)
	return append(b, t[:]...)
}

// FuzzReader: a recording is a file from anywhere. Any bytes give a
// reader that yields bounded records naming recorded probes, or an
// error; never a panic, never an endless read. The seeds are whole,
// truncated and torn files of both versions.
func FuzzReader(f *testing.F) {
	good := seedV1(f)
	f.Add(good)
	f.Add(good[:len(good)-20])
	f.Add([]byte(MagicV1))
	f.Add([]byte(Magic))
	v2, ends := writeChunks(f, 3, 2, true)
	f.Add(v2)
	f.Add(v2[:ends[1]])   // killed between chunks
	f.Add(v2[:ends[1]+5]) // killed in a chunk's head
	f.Add(v2[:ends[2]-3]) // killed in a chunk's records
	torn := bytes.Clone(v2)
	torn[ends[1]-3] ^= 0x80 // a crash's damage in a chunk
	f.Add(torn)
	// Headers claiming more CPUs than Linux has, and as many.
	for _, cpus := range []string{`"cpus":8192`, `"cpus":9999`} {
		f.Add(bytes.Replace(good, []byte(`"cpus":2`), []byte(cpus), 1))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for n := 0; ; n++ {
			if n > len(b) {
				t.Fatal("more records than bytes")
			}
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				if r.Complete() == (r.Cut() != "") {
					t.Fatalf("complete %v, cut %q", r.Complete(), r.Cut())
				}
				if r.Events() != n {
					t.Fatalf("%d events counted, %d returned", r.Events(), n)
				}
				return
			}
			if err != nil {
				return
			}
			var d collector.Record
			if err := collector.Decode(rec, &d); err != nil {
				t.Fatalf("Next returned a record that does not decode: %v", err)
			}
			if d.Probe >= len(r.Header().Probes) {
				t.Fatalf("record of probe %d of %d", d.Probe, len(r.Header().Probes))
			}
		}
	})
}
