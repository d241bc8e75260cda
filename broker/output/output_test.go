package output

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"

	p "github.com/tracebroker/tracebroker/broker/program"
)

func TestParseFormat(t *testing.T) {
	for _, c := range []struct {
		format string
		verbs  []string
	}{
		{"%d %s", []string{"d", "s"}},
		{"%%d", []string{"d"}},      // "%%" is not special to the regex
		{"%i %+d % d %#x %*d", nil}, // not conversions for bpftrace 0.17
		{"%ls %lc %e %f %.d", nil},  // likewise
		{"%-05.3lld|%hhX", []string{"lld", "hhX"}},
		{"%rx %r", []string{"rx", "r"}},
		{"%5%", nil},
		{"%", nil},
		{"%-", nil},
		{"%5.", nil},
	} {
		var verbs []string
		for _, s := range ParseFormat(c.format) {
			verbs = append(verbs, s.Verb)
		}
		if !reflect.DeepEqual(verbs, c.verbs) {
			t.Errorf("ParseFormat(%q) = %q, want %q", c.format, verbs, c.verbs)
		}
	}
}

func TestSprintfExtra(t *testing.T) {
	for _, c := range []struct {
		format string
		args   []p.Value
		want   string
	}{
		// Too few arguments: the rest of the format is copied.
		{"%d %d\n", []p.Value{I(1)}, "1 %d\n"},
		// Too many: ignored.
		{"%d\n", []p.Value{I(1), I(2)}, "1\n"},
		// Wrong kinds, which the compiler rejects: still no panic.
		{"%s|%d|%c", []p.Value{I(-3), S("x"), Tup(I(1))}, "-3|0|"},
		{"%s", []p.Value{Tup(I(1), S("a"))}, "(1, a)"},
		// Stray conversions before a real one read the argument first.
		// (bpftrace prints garbage for the second).
		{"%i %d", []p.Value{I(5)}, "5 0"},
		{"%*d %d|", []p.Value{I(4)}, "   0 0|"},
		{"%.3f %e %g %m %n%ld", []p.Value{I(1)}, "0.000 0.000000e+00 0 Success 0"},
		{"%y%d", []p.Value{I(1)}, "%y1"},
		{"%5r|", []p.Value{S("ab")}, "%5r|"},
	} {
		if got := Sprintf(c.format, c.args); got != c.want {
			t.Errorf("Sprintf(%q) = %q, want %q", c.format, got, c.want)
		}
	}
}

// TestCFormat checks the C formatter on flags bpftrace's regex never lets
// through as conversions but which text before a conversion can hold.
func TestCFormat(t *testing.T) {
	for _, c := range []struct {
		format string
		args   []p.Value
		want   string
	}{
		{"%#o %#x %#X %+d % d", []p.Value{I(8), I(255), I(0), I(3), I(3)}, "010 0xff 0 +3  3"},
		{"%#.0o|%#.3o|%#5o|%-#6x|%#08x", []p.Value{I(0), I(8), I(8), I(255), I(255)}, "0|010|  010|0xff  |0x0000ff"},
		{"%+05d|% 05d|%+.3d|%+d", []p.Value{I(42), I(42), I(-4), I(0)}, "+0042| 0042|-004|+0"},
		{"%*d|%-*d|%.*d|%*d", []p.Value{I(4), I(1), I(3), I(2), I(2), I(5), I(-3), I(9)}, "   1|2  |05|9  "},
		{"%hhi %li %Lu %qd %Zd", []p.Value{I(-1), I(-1), I(-1), I(-1), I(-1)}, "-1 -1 18446744073709551615 -1 -1"},
		{"%#p|%+p", []p.Value{I(1), I(1)}, "0x1|+0x1"},
		{"100%", nil, "100%"},
		// print(TUPLE)'s %s: a struct in it is printed as a map's value
		// is, as bpftrace 0.17 prints (1, *((struct Foo *)arg0)).
		{"%s|", []p.Value{Tup(I(1), record(I(2), I(3)), array(I(1), I(2)), Tup(I(4), S("x")))}, "(1, { .m = 2, .n = 3 }, [1,2], (4, x))|"},
	} {
		if got := string(appendC(nil, c.format, c.args)); got != c.want {
			t.Errorf("appendC(%q) = %q, want %q", c.format, got, c.want)
		}
	}
}

func FuzzSprintf(f *testing.F) {
	for _, c := range printfCases {
		f.Add(c.format, int64(-1), uint64(255), "abc", uint8(3))
	}
	f.Add("%*.*d%-*s", int64(-1<<62), uint64(1<<63), "", uint8(0xff))
	f.Add("%99999999999d%.99999999999s", int64(0), uint64(0), "x", uint8(1))
	f.Fuzz(func(t *testing.T, format string, a int64, b uint64, s string, kinds uint8) {
		if got := Sprintf(format, nil); got != format {
			t.Fatalf("no arguments: got %q", got)
		}
		pick := []p.Value{I(a), U(b), S(s), N(tI8, a), Tup(I(a), S(s)), N(tU32, int64(b))}
		var args []p.Value
		for i := 0; i < int(kinds%8); i++ {
			args = append(args, pick[(int(kinds)>>i+i)%len(pick)])
		}
		out := Sprintf(format, args)
		if len(out) > len(format)+len(args)*(2*maxPad+len(s)+64) {
			t.Fatalf("output of %d bytes for %q", len(out), format)
		}
	})
}

func TestValueTiesByKey(t *testing.T) {
	st := newState()
	c := st.mp("@c", p.Count, tI64, tStr)
	for _, k := range []int64{5, -1, 3, 0} {
		c.count(I(k), S("b"))
		c.count(I(k), S("a"))
	}
	c.count(I(7), S("z"))
	c.count(I(7), S("z"))
	var out bytes.Buffer
	pr := NewText(&out)
	pr.Map(c.snap(), 0, 1)
	want := "@c[0, a]: 1\n@c[0, b]: 1\n@c[3, a]: 1\n@c[3, b]: 1\n@c[5, a]: 1\n@c[5, b]: 1\n" +
		"@c[-1, a]: 1\n@c[-1, b]: 1\n@c[7, z]: 2\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestSortByName(t *testing.T) {
	var maps []*p.MapSnapshot
	for _, n := range []string{"@b", "@a", "@", "@M", "@_", "@a2", "@aa"} {
		maps = append(maps, &p.MapSnapshot{Map: &p.Map{Name: n}})
	}
	maps = append(maps, nil)
	var names []string
	for _, m := range SortByName(maps) {
		names = append(names, m.Map.Name)
	}
	if want := []string{"@", "@M", "@_", "@a", "@a2", "@aa", "@b"}; !reflect.DeepEqual(names, want) {
		t.Errorf("got %q, want %q", names, want)
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(b []byte) (int, error) {
	if w.n == 0 {
		return 0, errors.New("broken pipe")
	}
	w.n--
	return len(b), nil
}

func TestFlushErrorIsSticky(t *testing.T) {
	pr := NewText(&failWriter{n: 1})
	pr.Printf("one\n")
	pr.Printf("two\n")
	pr.Printf("three\n")
	if err := pr.Flush(); err == nil || err.Error() != "broken pipe" {
		t.Fatalf("Flush() = %v", err)
	}
}

// countingWriter records each Write, to see what reaches the file when.
type countingWriter struct{ writes []string }

func (w *countingWriter) Write(b []byte) (int, error) {
	w.writes = append(w.writes, string(b))
	return len(b), nil
}

func TestEachMessageIsFlushed(t *testing.T) {
	w := &countingWriter{}
	pr := NewJSON(w)
	pr.AttachedProbes(2)
	pr.Printf("a\n")
	pr.Lost(3)
	want := []string{
		`{"type": "attached_probes", "data": {"probes": 2}}` + "\n",
		`{"type": "printf", "data": "a\n"}` + "\n",
		`{"type": "lost_events", "data": {"events": 3}}` + "\n",
	}
	if !reflect.DeepEqual(w.writes, want) {
		t.Errorf("writes %q, want %q", w.writes, want)
	}
}

func TestBatchedWritesOnFlush(t *testing.T) {
	w := &countingWriter{}
	pr := NewText(w, Batched())
	pr.AttachedProbes(1)
	pr.Printf("a\n")
	if len(w.writes) != 0 {
		t.Fatalf("batched printer wrote before Flush: %q", w.writes)
	}
	if err := pr.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"Attaching 1 probe...\na\n"}; !reflect.DeepEqual(w.writes, want) {
		t.Errorf("writes %q, want %q", w.writes, want)
	}
}

// TestConsole: with -o, bpftrace 0.17 writes the blank lines before the
// maps at exit to stdout (std::cout), in both formats, and the rest to
// the file.
func TestConsole(t *testing.T) {
	m := &p.MapSnapshot{Map: &p.Map{Name: "@x", Value: tI64}, Entries: []p.MapEntry{{Value: N(tI64, 1)}}}
	for _, tt := range []struct {
		name string
		new  func(io.Writer, ...Option) Printer
		file string
	}{
		{"text", NewText, "hi\n@x: 1\n"},
		{"json", NewJSON, `{"type": "printf", "data": "hi\n"}` + "\n" + `{"type": "map", "data": {"@x": 1}}` + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var file, console bytes.Buffer
			pr := tt.new(&file, Console(&console), Batched())
			pr.Printf("hi\n")
			pr.Exit([]*p.MapSnapshot{m})
			if err := pr.Flush(); err != nil {
				t.Fatal(err)
			}
			if file.String() != tt.file || console.String() != "\n\n" {
				t.Errorf("file %q, console %q; want %q and two newlines", file.String(), console.String(), tt.file)
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	var out bytes.Buffer
	pr := NewText(&out)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				pr.Printf("line\n")
			}
		}()
	}
	wg.Wait()
	if got := strings.Count(out.String(), "line\n"); got != 800 {
		t.Errorf("%d lines", got)
	}
}

// FuzzMap feeds malformed snapshots (short or long bucket slices, odd lhist
// parameters, mismatched keys): printing must not panic.
func FuzzMap(f *testing.F) {
	f.Add(uint8(7), []byte{1, 2, 3, 250, 0, 9}, int64(0), int64(10), int64(1), 2, 1)
	f.Add(uint8(8), []byte{}, int64(5), int64(-5), int64(0), 0, 0)
	f.Add(uint8(6), []byte{0xff, 0xff, 0xff, 0xff}, int64(-1<<63), int64(1<<62), int64(-1), -1, -7)
	f.Fuzz(func(t *testing.T, agg uint8, data []byte, min, max, step int64, top, div int) {
		m := &p.Map{Name: "@m", Agg: p.Agg(agg % 9), Min: min, Max: max, Step: step, Value: tI64}
		if len(data) > 0 && data[0]&1 == 1 {
			m.Keys = []p.Type{tI64}
		}
		snap := &p.MapSnapshot{Map: m}
		for i := 0; i+1 < len(data) && i < 40; i += 2 {
			e := p.MapEntry{
				Value: N(tI64, int64(data[i])<<56>>int(data[i+1]%64)),
				Count: uint64(data[i+1]) << (data[i] % 64),
				Total: int64(data[i]) - 128,
			}
			if data[i]%3 == 0 {
				e.Keys = []p.Value{I(int64(data[i+1]))}
			}
			if data[i]%5 == 0 {
				e.Value = S(string(data[i:]))
			}
			for j := 0; j < int(data[i+1]%80); j++ {
				e.Buckets = append(e.Buckets, uint64(data[(i+j)%len(data)])<<(j%64))
			}
			snap.Entries = append(snap.Entries, e)
		}
		var out bytes.Buffer
		for _, pr := range []Printer{NewText(&out), NewJSON(&out)} {
			pr.Map(snap, top, div)
			pr.Exit([]*p.MapSnapshot{snap, nil, {}})
		}
	})
}

// TestStackIndent: a stack is indented by 4 spaces as a map key but by 8
// as a map value or a tuple element, in text and JSON (recorded from
// bpftrace 0.17: @k[ustack] = count(); @v = ustack; @t = (1, ustack)).
func TestStackIndent(t *testing.T) {
	stack := p.Value{Type: p.Type{Kind: p.UStack, Size: 8}, Lines: []string{"leaf+0", "mid+21"}}
	one := p.Value{Type: p.Type{Kind: p.Int, Size: 8}, Int: 1}
	tuple := p.Value{Type: p.Type{Kind: p.Tuple, Elems: []p.Type{one.Type, stack.Type}}, Elems: []p.Value{one, stack}}
	snaps := []*p.MapSnapshot{
		{Map: &p.Map{Name: "@k", Agg: p.Count, Keys: []p.Type{stack.Type}}, Entries: []p.MapEntry{{Keys: []p.Value{stack}, Value: one}}},
		{Map: &p.Map{Name: "@t", Value: tuple.Type}, Entries: []p.MapEntry{{Value: tuple}}},
		{Map: &p.Map{Name: "@v", Value: stack.Type}, Entries: []p.MapEntry{{Value: stack}}},
	}
	var text, js bytes.Buffer
	tp, jp := NewText(&text), NewJSON(&js)
	for _, s := range snaps {
		tp.Map(s, 0, 1)
		jp.Map(s, 0, 1)
	}
	tp.Flush()
	jp.Flush()
	wantText := "@k[\n    leaf+0\n    mid+21\n]: 1\n" +
		"@t: (1, \n        leaf+0\n        mid+21\n)\n" +
		"@v: \n        leaf+0\n        mid+21\n\n"
	if text.String() != wantText {
		t.Errorf("text:\n%q\nwant\n%q", text.String(), wantText)
	}
	wantJSON := `{"type": "map", "data": {"@k": {"\n    leaf+0\n    mid+21\n": 1}}}` + "\n" +
		`{"type": "map", "data": {"@t": [1,"\n        leaf+0\n        mid+21\n"]}}` + "\n" +
		`{"type": "map", "data": {"@v": "\n        leaf+0\n        mid+21\n"}}` + "\n"
	if js.String() != wantJSON {
		t.Errorf("json:\n%q\nwant\n%q", js.String(), wantJSON)
	}
}

// record is a struct { m; n; ... } value of the given fields.
func record(fields ...p.Value) p.Value {
	v := Tup(fields...)
	v.Type.Kind = p.Record
	for i := range fields {
		v.Type.Names = append(v.Type.Names, string(rune('m'+i)))
	}
	return v
}

// array is an array value of the given elements.
func array(elems ...p.Value) p.Value {
	v := Tup(elems...)
	v.Type.Kind = p.Array
	return v
}
