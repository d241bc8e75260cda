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
	// The stacks after the strings, as the collector writes them.
	frames := make([]byte, 8*MaxStackFrames)
	for i := range frames {
		frames[i] = byte(i)
	}
	r.Strings = append(r.Strings, String{Addr: KStackAddr, Data: frames[:24]}, String{Addr: UStackAddr, Data: frames})
	f.Add(Encode(nil, &r))
	f.Add(Encode(nil, &Record{Strings: []String{{Addr: UStackAddr, Data: frames[:8]}}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var rec Record
		if err := Decode(b, &rec); err != nil {
			return
		}
		if len(rec.Context) > MaxContext || len(rec.Strings) > MaxEntries {
			t.Fatalf("decoded past the bounds: %d bytes of context, %d entries", len(rec.Context), len(rec.Strings))
		}
		// Past MaxString bytes, or past MaxStrings entries, only the
		// stacks at the end: a kernel stack, then a user stack.
		n := len(rec.Strings)
		isStack := func(s String, addr uint64) bool {
			return s.Addr == addr && len(s.Data)%8 == 0 && len(s.Data) <= 8*MaxStackFrames
		}
		for i, s := range rec.Strings {
			stack := (i == n-1 && (isStack(s, KStackAddr) || isStack(s, UStackAddr))) ||
				(i == n-2 && isStack(s, KStackAddr) && isStack(rec.Strings[n-1], UStackAddr))
			switch {
			case !stack && len(s.Data) > MaxString:
				t.Fatalf("string %d of %d bytes", i, len(s.Data))
			case !stack && i >= MaxStrings:
				t.Fatalf("entry %d at %#x is no stack", i, s.Addr)
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
