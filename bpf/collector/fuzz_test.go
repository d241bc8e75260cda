package collector

import (
	"bytes"
	"testing"
)

// FuzzDecode: records come from the kernel and from recording files,
// which are anyone's: any bytes decode to a record within bounds or to an
// error, and a decoded record encodes back to the bytes it came from.
func FuzzDecode(f *testing.F) {
	r := Record{Probe: 3, Ktime: 7, TGID: 9, PID: 10, CPU: 1, Context: []byte("0123456789abcdef"),
		Strings: []String{{Addr: 0x1000, Data: []byte("/etc/hostname\x00")}, {Addr: 0x2000}}}
	f.Add(Encode(nil, &r))
	f.Add(Encode(nil, &Record{}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var rec Record
		if err := Decode(b, &rec); err != nil {
			return
		}
		if len(rec.Context) > MaxContext || len(rec.Strings) > MaxStrings {
			t.Fatalf("decoded past the bounds: %d bytes of context, %d strings", len(rec.Context), len(rec.Strings))
		}
		for _, s := range rec.Strings {
			if len(s.Data) > MaxString {
				t.Fatalf("string of %d bytes", len(s.Data))
			}
		}
		// What Decode accepts is exactly what Encode writes, padding
		// aside: encoding it again decodes to the same record.
		again := Encode(nil, &rec)
		var rec2 Record
		if err := Decode(again, &rec2); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !bytes.Equal(rec2.Context, rec.Context) || len(rec2.Strings) != len(rec.Strings) || rec2.Probe != rec.Probe {
			t.Fatalf("round trip changed the record")
		}
	})
}
