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

func seedRecording(tb testing.TB) []byte {
	h := Header{Version: Version, CPUs: 2, Probes: []Probe{{Name: "tracepoint:syscalls:sys_enter_getcwd", Kind: "tracepoint", Category: "syscalls", Event: "sys_enter_getcwd", CtxLen: 16}}}
	hb, err := json.Marshal(h)
	if err != nil {
		tb.Fatal(err)
	}
	b := []byte(Magic)
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
// error; never a panic, never an endless read.
func FuzzReader(f *testing.F) {
	good := seedRecording(f)
	f.Add(good)
	f.Add(good[:len(good)-20])
	f.Add([]byte(Magic))
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
			if errors.Is(err, io.EOF) || err != nil {
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
