package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBoundString(t *testing.T) {
	long := strings.Repeat("n", 61440)
	sum := sha256.Sum256([]byte(long))
	// A multi-byte character across the cut is not split.
	wide := strings.Repeat("a", MaxField-1) + "é" + strings.Repeat("b", 10)
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"short", "short"},
		{strings.Repeat("x", MaxField), strings.Repeat("x", MaxField)},
		{long, strings.Repeat("n", MaxField) + "…(sha256:" + hex.EncodeToString(sum[:]) + ", 61440 bytes)"},
		{wide, strings.Repeat("a", MaxField-1) + "…(sha256:" + sha(wide) + ", 1035 bytes)"},
	} {
		if got := BoundString(tt.in); got != tt.want {
			t.Errorf("BoundString(%d bytes) = %.80q…, want %.80q…", len(tt.in), got, tt.want)
		}
	}
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestAppendBoundsFields: every string of a record, keys and values at
// any depth, is bounded, and the rest of the record is as it was, in
// order.
func TestAppendBoundsFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := open(t, path)
	defer l.Close()
	name := strings.Repeat("N", 60<<10)
	key := strings.Repeat("k", 5000)
	appendOK(t, l, EventTraceRequest, struct {
		Session string            `json:"session"`
		Name    string            `json:"name"`
		Params  map[string]string `json:"params"`
		Args    []any             `json:"args"`
	}{"s1", name, map[string]string{key: name, "small": "v"}, []any{1, name, true, nil}})
	ls := lines(t, path)
	if len(ls[0]) > 6<<10 {
		t.Errorf("record of %d bytes for 5 strings", len(ls[0]))
	}
	var rec struct {
		Data json.RawMessage
	}
	if err := json.Unmarshal(ls[0], &rec); err != nil {
		t.Fatal(err)
	}
	bn, bk := BoundString(name), BoundString(key)
	want := fmt.Sprintf(`{"session":"s1","name":%q,"params":{%q:%q,"small":"v"},"args":[1,%q,true,null]}`, bn, bk, bn, bn)
	if string(rec.Data) != want {
		t.Errorf("data =\n%s\nwant\n%s", rec.Data, want)
	}
	if !strings.Contains(string(rec.Data), "sha256:"+sha(name)+", 61440 bytes)") {
		t.Errorf("the bounded name does not carry the whole one's hash")
	}
	verifyFile(t, path)
}

// TestAppendTruncatesLargeRecord (issue 15, item 13): a record whose
// data is over MaxData is cut to fit, never dropped: its first keys
// survive, the values after the cut are left out, and audit.truncated
// says how long the whole was and its hash.
func TestAppendTruncatesLargeRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := open(t, path)
	defer l.Close()
	decisions := make([]map[string]any, 1000)
	for i := range decisions {
		decisions[i] = map[string]any{"probe": fmt.Sprintf("tracepoint:syscalls:sys_enter_%04d", i), "verdict": "jit", "reason": strings.Repeat("r", 300)}
	}
	data := map[string]any{"session": "s2", "mode": "jit", "decisions": decisions}
	whole, _ := json.Marshal(data)
	if len(whole) <= MaxData {
		t.Fatalf("test data of %d bytes is not over MaxData", len(whole))
	}
	appendOK(t, l, EventTraceAdmitted, data)
	appendOK(t, l, EventTraceEnd, map[string]any{"session": "s2"})
	if res := verifyFile(t, path); res.Records != 2 {
		t.Fatalf("%d records", res.Records)
	}
	line := lines(t, path)[0]
	var rec struct {
		Data struct {
			Session   string           `json:"session"`
			Mode      string           `json:"mode"`
			Decisions []map[string]any `json:"decisions"`
			Truncated struct {
				Bytes   int    `json:"bytes"`
				SHA256  string `json:"sha256"`
				Dropped int    `json:"values_dropped"`
			} `json:"audit.truncated"`
		}
	}
	if err := json.Unmarshal(line, &rec); err != nil {
		t.Fatalf("%v: %.200s", err, line)
	}
	d := rec.Data
	sum := sha256.Sum256(whole)
	if d.Session != "s2" || d.Mode != "jit" || len(d.Decisions) == 0 || len(d.Decisions) == 1000 ||
		d.Truncated.Bytes != len(whole) || d.Truncated.SHA256 != hex.EncodeToString(sum[:]) || d.Truncated.Dropped != 1000-len(d.Decisions) {
		t.Errorf("truncated record: session %q mode %q, %d decisions, truncated %+v", d.Session, d.Mode, len(d.Decisions), d.Truncated)
	}
	if i := bytes.Index(line, []byte(`"data":`)); len(line)-i > MaxData+8 {
		t.Errorf("data of %d bytes", len(line)-i)
	}
	t.Logf("%d bytes of data kept as %d, %d of 1000 decisions", len(whole), len(line), len(d.Decisions))
}

// FuzzBoundData: whatever the data, the record is valid JSON of at most
// MaxData bytes, every string in it is bounded, and data that needed no
// bounding is written unchanged.
func FuzzBoundData(f *testing.F) {
	f.Add("name", "value", uint16(1), uint8(0))
	f.Add(strings.Repeat("k", 2000), strings.Repeat("\x00<é", 900), uint16(300), uint8(3))
	f.Add("", "\xff\xfe", uint16(5000), uint8(1))
	f.Fuzz(func(t *testing.T, key, value string, n uint16, depth uint8) {
		var v any = value
		for i := 0; i < int(depth%8); i++ {
			if i%2 == 0 {
				v = map[string]any{key: v, "i": i}
			} else {
				v = []any{v, i, nil}
			}
		}
		data := map[string]any{}
		for i := 0; i < int(n%600); i++ {
			data[fmt.Sprintf("%s%d", key, i)] = v
		}
		whole, err := json.Marshal(data)
		if err != nil {
			t.Skip()
		}
		b, err := marshalData(data)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(b) || len(b) > MaxData || b[0] != '{' {
			t.Fatalf("bounded data of %d bytes is not a JSON object under MaxData", len(b))
		}
		// (Invalid UTF-8 reads back as U+FFFD, which is then written as
		// itself rather than escaped.)
		if len(whole) <= MaxData && len(key)+4 <= MaxField && len(value) <= MaxField && utf8.ValidString(key) && utf8.ValidString(value) && !bytes.Equal(b, whole) {
			t.Fatalf("small data changed:\n%s\n%s", whole, b)
		}
		var check func(any)
		check = func(x any) {
			switch x := x.(type) {
			case string:
				if !utf8.ValidString(x) || len(x) > MaxField+100 {
					t.Fatalf("string of %d bytes", len(x))
				}
			case map[string]any:
				for k, e := range x {
					check(k)
					check(e)
				}
			case []any:
				for _, e := range x {
					check(e)
				}
			}
		}
		var back any
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		check(back)
	})
}

// BenchmarkMarshalData is the cost of bounding a record's data, beside
// the fsync (about a millisecond here) that each record costs anyway.
func BenchmarkMarshalData(b *testing.B) {
	decisions := make([]map[string]any, 1000)
	for i := range decisions {
		decisions[i] = map[string]any{"probe": fmt.Sprintf("tracepoint:syscalls:sys_enter_%04d", i), "verdict": "jit", "reason": strings.Repeat("r", 300)}
	}
	for _, tc := range []struct {
		name string
		data any
	}{
		{"refusal", map[string]any{"session": "0123456789ab", "caller": map[string]any{"unix": true, "uid": 1000}, "stage": "token", "code": "Unauthenticated", "reason": strings.Repeat("r", 200), "name": "stdin"}},
		{"refusal_60KiB_name", map[string]any{"session": "0123456789ab", "stage": "token", "name": strings.Repeat("N", 60<<10)}},
		{"admission_1000_probes", map[string]any{"session": "0123456789ab", "mode": "jit", "decisions": decisions}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := marshalData(tc.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
