package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var quiet = slog.New(slog.DiscardHandler)

// clock is a deterministic Options.Now: 1 ms per reading.
func clock() func() time.Time {
	t := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(time.Millisecond); return t }
}

func open(t testing.TB, path string) *Log {
	t.Helper()
	l, err := Open(path, Options{Now: clock(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func appendOK(t testing.TB, l *Log, event string, data any) Head {
	t.Helper()
	h, err := l.Append(event, data)
	if err != nil {
		t.Fatalf("Append(%s): %v", event, err)
	}
	return h
}

func verifyFile(t testing.TB, path string) Result {
	t.Helper()
	res, err := VerifyFile(path)
	if err != nil {
		t.Fatalf("VerifyFile: %v", err)
	}
	return res
}

// lines reads a log of complete records back as its lines, each with
// its newline.
func lines(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ls := bytes.SplitAfter(b, []byte("\n"))
	return ls[:len(ls)-1]
}

type verdict struct {
	Program string `json:"program"`
	Mode    string `json:"mode"`
	UID     int    `json:"uid"`
	Reasons []string
}

// data is a spread of what the daemon might record, including strings
// that JSON must escape and a RawMessage with newlines in it.
var data = []struct {
	event string
	data  any
	want  string // the data as written
}{
	{EventDaemonStart, nil, `{}`},
	{EventTraceRequest, map[string]any{"sub": "alice", "scopes": []string{"trace"}}, `{"scopes":["trace"],"sub":"alice"}`},
	{EventTraceRefused, map[string]string{"why": "expired <at> 09:00 & \"quoted\"\nnext line\u2028"}, `{"why":"expired \u003cat\u003e 09:00 \u0026 \"quoted\"\nnext line\u2028"}`},
	{EventTraceAdmitted, verdict{"opensnoop", "interp", 1000, []string{"hvci"}}, `{"program":"opensnoop","mode":"interp","uid":1000,"Reasons":["hvci"]}`},
	{EventTraceEnd, &verdict{Program: "ü✓"}, `{"program":"ü✓","mode":"","uid":0,"Reasons":null}`},
	{EventTraceEnd, json.RawMessage("{\n  \"id\": 7\n}"), `{"id":7}`},
	{EventSessionStop, map[string]any{}, `{}`},
	{"daemon.reload", (*verdict)(nil), `{}`},
	{"plugin.x-y_z.9", map[string]any{"nested": map[string]any{"a": []any{1.5, nil, true}}}, `{"nested":{"a":[1.5,null,true]}}`},
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := open(t, path)
	var heads []Head
	for _, d := range data {
		heads = append(heads, appendOK(t, l, d.event, d.data))
	}
	if got := l.Head(); got != heads[len(heads)-1] {
		t.Fatalf("Head() = %v, last Append returned %v", got, heads[len(heads)-1])
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}

	ls := lines(t, path)
	prev := ZeroHash
	for i, line := range ls {
		line = bytes.TrimSuffix(line, []byte("\n"))
		want := fmt.Sprintf(`{"v":1,"seq":%d,"time":"2026-03-01T09:30:00.%03dZ","prev":"%s","event":"%s","data":%s}`,
			i+1, i+1, prev, data[i].event, data[i].want)
		if string(line) != want {
			t.Errorf("line %d:\n got %s\nwant %s", i+1, line, want)
		}
		prev = hashLine(line)
		if heads[i] != (Head{uint64(i + 1), prev}) {
			t.Errorf("Append %d returned %v, want %d:%s", i+1, heads[i], i+1, prev)
		}
	}
	res := verifyFile(t, path)
	if want := (Result{Records: len(data), Head: heads[len(heads)-1]}); res != want {
		t.Fatalf("Verify = %+v, want %+v", res, want)
	}

	// Reopened, the chain goes on from the head.
	l = open(t, path)
	if l.Head() != res.Head {
		t.Fatalf("reopened head %v, want %v", l.Head(), res.Head)
	}
	h := appendOK(t, l, EventDaemonStop, map[string]int{"pid": 1})
	l.Close()
	ls = lines(t, path)
	var rec struct {
		Seq  uint64
		Prev string
	}
	if err := json.Unmarshal(ls[len(ls)-1], &rec); err != nil {
		t.Fatal(err)
	}
	if h.Seq != uint64(len(data)+1) || rec.Seq != h.Seq || rec.Prev != res.Head.Hash {
		t.Fatalf("after reopen: head %v, record seq %d prev %s; want seq %d prev %s", h, rec.Seq, rec.Prev, len(data)+1, res.Head.Hash)
	}
	if res := verifyFile(t, path); res.Records != len(data)+1 || res.Head != h {
		t.Fatalf("Verify after reopen = %+v, want head %v", res, h)
	}
}

func TestEmptyLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := open(t, path)
	if l.Head() != (Head{0, ZeroHash}) {
		t.Fatalf("new log head %v", l.Head())
	}
	l.Close()
	if res := verifyFile(t, path); res != (Result{Head: Head{0, ZeroHash}}) {
		t.Fatalf("Verify(empty) = %+v", res)
	}
}

func TestAppendRejects(t *testing.T) {
	l := open(t, filepath.Join(t.TempDir(), "audit.log"))
	defer l.Close()
	cases := []struct {
		event string
		data  any
		want  string
	}{
		{"", nil, "want 1 to 64"},
		{strings.Repeat("a", 65), nil, "want 1 to 64"},
		{"Daemon.start", nil, "want [a-z0-9]"},
		{".start", nil, "want [a-z0-9]"},
		{`a"b`, nil, "want [a-z0-9]"},
		{"a b", nil, "want [a-z0-9]"},
		{"a\nb", nil, "want [a-z0-9]"},
		{EventRecovered, nil, "reserved"},
		{"session.start", []int{1}, "JSON object"},
		{"session.start", "s", "JSON object"},
		{"session.start", 3, "JSON object"},
		{"session.start", map[string]any{"c": make(chan int)}, "unsupported type"},
	}
	for _, c := range cases {
		if _, err := l.Append(c.event, c.data); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Append(%q, %T) = %v, want an error containing %q", c.event, c.data, err, c.want)
		}
	}
	// A refused record is not a failed write: the log goes on.
	if h := appendOK(t, l, "session.start", nil); h.Seq != 1 {
		t.Fatalf("after refusals, seq %d", h.Seq)
	}
}

// writeLog makes a log of n records and returns its lines, each with
// its newline.
func writeLog(t testing.TB, path string, n int) [][]byte {
	t.Helper()
	l := open(t, path)
	for i := 0; i < n; i++ {
		appendOK(t, l, EventTraceAdmitted, map[string]any{"n": i, "mode": "jit"})
	}
	l.Close()
	return lines(t, path)
}

func join(ls ...[]byte) []byte { return bytes.Join(ls, nil) }

// except returns ls without line k (1-based).
func except(ls [][]byte, k int) [][]byte {
	return append(append([][]byte{}, ls[:k-1]...), ls[k:]...)
}

func replace(t *testing.T, line []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(line, []byte(old)) {
		t.Fatalf("%q not in %s", old, line)
	}
	return bytes.Replace(line, []byte(old), []byte(new), 1)
}

// forge writes a record as the log would, with the given seq and prev.
func forge(seq uint64, prev string) []byte {
	return appendRecord(nil, seq, time.Now().UTC(), prev, EventTraceRequest, []byte(`{"sub":"mallory"}`))
}

func TestTamper(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	ls := writeLog(t, path, 10)
	hash := func(k int) string { return hashLine(bytes.TrimSuffix(ls[k-1], []byte("\n"))) }
	at := func(k int, line []byte) [][]byte {
		c := append([][]byte{}, ls...)
		c[k-1] = line
		return c
	}
	insert := func(k int, line []byte) [][]byte {
		c := append([][]byte{}, ls[:k-1]...)
		c = append(c, line)
		return append(c, ls[k-1:]...)
	}
	swapped := append(append(append([][]byte{}, ls[:2]...), ls[3], ls[2]), ls[4:]...)
	renumbered := except(ls, 5)
	for i := 4; i < len(renumbered); i++ {
		renumbered[i] = replace(t, renumbered[i], fmt.Sprintf(`"seq":%d,`, i+2), fmt.Sprintf(`"seq":%d,`, i+1))
	}

	cases := []struct {
		name   string
		file   []byte
		line   int
		reason string
	}{
		{"edit data", join(at(4, replace(t, ls[3], `"jit"`, `"interp"`))...), 5, "prev hash does not match line 4 (record edited, inserted or deleted)"},
		{"edit event", join(at(4, replace(t, ls[3], `trace.admitted`, `trace.admittex`))...), 5, "prev hash does not match line 4"},
		{"edit time", join(at(9, replace(t, ls[8], `09:30:00.`, `09:31:00.`))...), 10, "prev hash does not match line 9"},
		{"whitespace only", join(at(4, replace(t, ls[3], `,"data"`, `, "data"`))...), 5, "prev hash does not match line 4"},
		{"trailing space", join(at(4, replace(t, ls[3], "}}\n", "}} \n"))...), 5, "prev hash does not match line 4"},
		{"edit seq", join(at(4, replace(t, ls[3], `"seq":4,`, `"seq":40,`))...), 4, "seq 40 after 3 (record deleted or reordered)"},
		{"edit prev", join(at(4, replace(t, ls[3], `"prev":"`+hash(3)[:4], `"prev":"ffff`))...), 4, "prev hash does not match line 3"},
		{"delete first", join(ls[1:]...), 1, "seq 2: the log does not start at seq 1 (records deleted from the start)"},
		{"delete first two", join(ls[2:]...), 1, "seq 3: the log does not start at seq 1"},
		{"delete middle", join(except(ls, 5)...), 5, "seq 6 after 4 (record deleted or reordered)"},
		{"delete and renumber", join(renumbered...), 5, "prev hash does not match line 4"},
		{"insert forged, right seq and prev", join(insert(5, forge(5, hash(4)))...), 6, "seq 5 after 5 (record duplicated, reordered or inserted)"},
		{"insert forged, next seq", join(insert(5, forge(6, hash(4)))...), 5, "seq 6 after 4"},
		{"insert forged, wrong prev", join(insert(5, forge(5, hash(3)))...), 5, "prev hash does not match line 4"},
		{"insert forged first", join(insert(1, forge(1, ZeroHash))...), 2, "seq 1 after 1"},
		{"replace first with forged", join(at(1, forge(1, ZeroHash))...), 2, "prev hash does not match line 1"},
		{"forged first, prev not zeros", join(at(1, forge(1, hash(2)))...), 1, "prev of seq 1 is not 64 zeros"},
		{"swap", join(swapped...), 3, "seq 4 after 2 (record deleted or reordered)"},
		{"duplicate", join(insert(7, ls[5])...), 7, "seq 6 after 6 (record duplicated, reordered or inserted)"},
		{"duplicate last", join(append(append([][]byte{}, ls...), ls[9])...), 11, "seq 10 after 10"},
		{"cut mid-line, newline kept", join(at(5, append(ls[4][:len(ls[4])/2:len(ls[4])/2], '\n'))...), 5, "not a JSON object (a torn or edited record)"},
		{"cut mid-line through the next", join(append(append([][]byte{}, ls[:4]...), append(ls[4][:len(ls[4])/2:len(ls[4])/2], ls[5][len(ls[5])/2:]...))...), 5, "prev hash does not match line 4"},
		{"torn record then more", join(append(append(append([][]byte{}, ls[:4]...), ls[4][:40:40]), ls[5:]...)...), 5, "not a JSON object"},
		{"empty line", join(insert(3, []byte("\n"))...), 3, "not a JSON object"},
		{"garbage", join(at(1, []byte("hello\n"))...), 1, "not a JSON object"},
		{"array", join(at(2, []byte("[1,2]\n"))...), 2, "not a JSON object"},
		{"two objects", join(at(2, []byte("{} {}\n"))...), 2, "not a JSON object"},
		{"version 2", join(at(3, replace(t, ls[2], `"v":1,`, `"v":2,`))...), 3, "unsupported format version v=2"},
		{"version 1.0", join(at(3, replace(t, ls[2], `"v":1,`, `"v":1.0,`))...), 3, "unsupported format version v=1.0"},
		{"unknown field", join(at(3, replace(t, ls[2], `"v":1,`, `"v":1,"x":0,`))...), 3, `unknown field "x"`},
		{"field case", join(at(3, replace(t, ls[2], `"seq":`, `"Seq":`))...), 3, `unknown field "Seq"`},
		{"missing data", join(at(3, replace(t, ls[2], `,"data":{"mode":"jit","n":2}`, ``))...), 3, `no "data" field`},
		{"data not object", join(at(3, replace(t, ls[2], `"data":{"mode":"jit","n":2}`, `"data":[]`))...), 3, `field "data" is not valid`},
		{"bad time", join(at(3, replace(t, ls[2], `"time":"2026`, `"time":"x2026`))...), 3, `field "time" is not valid`},
		{"negative seq", join(at(3, replace(t, ls[2], `"seq":3`, `"seq":-3`))...), 3, `field "seq" is not valid`},
		{"uppercase prev", join(at(3, replace(t, ls[2], `"prev":"`+hash(2), `"prev":"`+strings.ToUpper(hash(2))))...), 3, `field "prev" is not valid`},
		{"CRLF", bytes.ReplaceAll(join(ls...), []byte("\n"), []byte("\r\n")), 2, "prev hash does not match line 1"},
		{"too long", join(insert(2, append(bytes.Repeat([]byte(" "), MaxLine+1), '\n'))...), 2, "longer than 1048576 bytes"},
		{"too long torn tail", append(join(ls...), bytes.Repeat([]byte("x"), MaxLine+5)...), 11, "longer than 1048576 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := Verify(bytes.NewReader(c.file))
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Verify = %+v, %v; want a *VerifyError", res, err)
			}
			if ve.Line != c.line || !strings.Contains(ve.Reason, c.reason) {
				t.Fatalf("Verify: %v\nwant line %d: ...%s...", err, c.line, c.reason)
			}
			if want := fmt.Sprintf("line %d: %s", ve.Line, ve.Reason); err.Error() != want {
				t.Fatalf("Error() = %q", err)
			}
			if res.Records != c.line-1 {
				t.Fatalf("Result.Records = %d before line %d", res.Records, c.line)
			}
		})
	}
}

// TestTail: what a chain can and cannot tell at the end of the file.
func TestTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	ls := writeLog(t, path, 10)
	full := join(ls...)
	head := verifyFile(t, path).Head
	head9 := Head{9, hashLine(bytes.TrimSuffix(ls[8], []byte("\n")))}

	cases := []struct {
		name string
		file []byte
		want Result
	}{
		{"whole", full, Result{Records: 10, Head: head}},
		{"torn mid-line", full[:len(full)-len(ls[9])/2], Result{Records: 9, Head: head9, TornTail: true, TornBytes: len(ls[9]) - len(ls[9])/2, TornLine: 10}},
		{"torn, only the newline missing", full[:len(full)-1], Result{Records: 9, Head: head9, TornTail: true, TornBytes: len(ls[9]) - 1, TornLine: 10}},
		{"torn after one byte", full[:len(full)-len(ls[9])+1], Result{Records: 9, Head: head9, TornTail: true, TornBytes: 1, TornLine: 10}},
		{"torn first record", ls[0][:20], Result{Head: Head{0, ZeroHash}, TornTail: true, TornBytes: 20, TornLine: 1}},
		// Not detectable by the chain: the head differs, which is what
		// the anchor (--expect-head) is for.
		{"last record deleted", full[:len(full)-len(ls[9])], Result{Records: 9, Head: head9}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := Verify(bytes.NewReader(c.file))
			if err != nil || res != c.want {
				t.Fatalf("Verify = %+v, %v\nwant %+v", res, err, c.want)
			}
		})
	}
}

func TestParseHead(t *testing.T) {
	h := Head{42, hashLine([]byte("x"))}
	if got, err := ParseHead(h.String()); err != nil || got != h {
		t.Fatalf("ParseHead(%s) = %v, %v", h, got, err)
	}
	if got, err := ParseHead("0:" + ZeroHash); err != nil || got != (Head{0, ZeroHash}) {
		t.Fatalf("ParseHead(empty head) = %v, %v", got, err)
	}
	for _, s := range []string{"", "42", "x:" + h.Hash, "-1:" + h.Hash, "42:" + h.Hash[1:], "42:" + strings.ToUpper(h.Hash), "0:" + h.Hash} {
		if _, err := ParseHead(s); err == nil {
			t.Errorf("ParseHead(%q) succeeded", s)
		}
	}
}

func TestOpenRefusesBrokenChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	ls := writeLog(t, path, 6)
	tampered := join(except(ls, 3)...)
	if err := os.WriteFile(path, tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path, Options{Logger: quiet})
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Line != 3 || !strings.Contains(err.Error(), "refusing to extend") {
		t.Fatalf("Open(broken) = %v, %v; want a refusal at line 3", l, err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, tampered) {
		t.Fatal("Open changed a broken log")
	}
}

func TestOpenRecoversTornTail(t *testing.T) {
	for _, complete := range []int{0, 1, 5} {
		t.Run(fmt.Sprint(complete, " records"), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			writeLog(t, path, complete)
			before := verifyFile(t, path)
			// What a crash in the middle of write(2) leaves: the first
			// half of the next record.
			rec := appendRecord(nil, uint64(complete+1), time.Now().UTC(), before.Head.Hash, EventTraceEnd, []byte(`{"id":1}`))
			torn := rec[:len(rec)/2]
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(torn)
			f.Close()
			if res := verifyFile(t, path); !res.TornTail || res.TornBytes != len(torn) || res.TornLine != complete+1 || res.Head != before.Head {
				t.Fatalf("Verify(torn) = %+v", res)
			}

			l := open(t, path)
			recovered := l.Head()
			h := appendOK(t, l, EventTraceEnd, nil)
			l.Close()
			if recovered.Seq != uint64(complete+1) || h.Seq != recovered.Seq+1 {
				t.Fatalf("after recovery head %v, then %v", recovered, h)
			}
			res := verifyFile(t, path)
			if res.TornTail || res.Records != complete+2 || res.Head != h {
				t.Fatalf("Verify(recovered) = %+v, want %d records head %v", res, complete+2, h)
			}
			ls := lines(t, path)
			var rec2 struct {
				Event string
				Data  map[string]int
			}
			if err := json.Unmarshal(ls[complete], &rec2); err != nil {
				t.Fatal(err)
			}
			if rec2.Event != EventRecovered || rec2.Data["torn_bytes"] != len(torn) || rec2.Data["line"] != complete+1 || len(rec2.Data) != 2 {
				t.Fatalf("recovery record %s", ls[complete])
			}
		})
	}
}

func TestOpenNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := Open(fifo, Options{Logger: quiet}); err == nil {
			t.Error("Open(FIFO) succeeded")
		}
		if _, err := VerifyFile(fifo); err == nil {
			t.Error("VerifyFile(FIFO) succeeded")
		}
		if _, err := Open(dir, Options{Logger: quiet}); err == nil {
			t.Error("Open(directory) succeeded")
		}
		if _, err := Open(filepath.Join(dir, "missing", "audit.log"), Options{Logger: quiet}); err == nil {
			t.Error("Open in a missing directory succeeded")
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("blocked on a FIFO")
	}
}

func TestSecondOpenFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := open(t, path)
	appendOK(t, l, EventDaemonStart, nil)
	if l2, err := Open(path, Options{Logger: quiet}); err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second Open = %v, %v", l2, err)
	}
	// The refused Open must not have disturbed the first.
	appendOK(t, l, EventDaemonStop, nil)
	l.Close()
	l = open(t, path)
	defer l.Close()
	if l.Head().Seq != 2 {
		t.Fatalf("head after reopen %v", l.Head())
	}
}

func TestConcurrentAppend(t *testing.T) {
	const writers, each = 8, 200
	path := filepath.Join(t.TempDir(), "audit.log")
	l := open(t, path)
	seqs := make([][]uint64, writers)
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Go(func() {
			for i := 0; i < each; i++ {
				h, err := l.Append(EventTraceEnd, map[string]int{"writer": w, "i": i})
				if err != nil {
					t.Error(err)
					return
				}
				seqs[w] = append(seqs[w], h.Seq)
			}
		})
	}
	wg.Wait()
	last := l.Head()
	l.Close()
	res := verifyFile(t, path)
	if res.Records != writers*each || res.Head != last || last.Seq != writers*each {
		t.Fatalf("Verify = %+v, head %v; want %d records", res, last, writers*each)
	}
	seen := make(map[uint64]bool)
	for w, s := range seqs {
		for i, seq := range s {
			if seen[seq] || i > 0 && seq <= s[i-1] {
				t.Fatalf("writer %d got seq %d twice or out of order", w, seq)
			}
			seen[seq] = true
		}
	}
	if len(seen) != writers*each {
		t.Fatalf("%d distinct seqs", len(seen))
	}
}

// TestFailClosed: once a record could not be written, nothing more is.
func TestFailClosed(t *testing.T) {
	cases := []struct {
		name    string
		breakIt func(t *testing.T, l *Log)
		want    string
	}{
		{"write fails", func(t *testing.T, l *Log) {
			// A real write(2) failure: the log's descriptor now reads
			// only, as a file on a failed device might.
			ro, err := unix.Open(l.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(ro)
			if err := control(l.f, func(fd int) error { return unix.Dup3(ro, fd, unix.O_CLOEXEC) }); err != nil {
				t.Fatal(err)
			}
		}, "bad file descriptor"},
		{"short write", func(t *testing.T, l *Log) {
			l.write = func(b []byte) (int, error) { return l.writeOnce(b[:len(b)/2]) }
		}, "short write"},
		{"fsync fails", func(t *testing.T, l *Log) {
			l.sync = func() error { return unix.EIO }
		}, "fsync: input/output error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			l := open(t, path)
			defer l.Close()
			h := appendOK(t, l, EventDaemonStart, nil)
			appendOK(t, l, EventTraceEnd, nil)
			h = l.Head()
			c.breakIt(t, l)
			if _, err := l.Append(EventTraceEnd, nil); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Append on a failing file = %v, want %q", err, c.want)
			}
			// Failing is permanent, even once the cause is gone.
			l.write, l.sync = l.writeOnce, l.f.Sync
			for i := 0; i < 3; i++ {
				if _, err := l.Append(EventTraceEnd, nil); err == nil || !strings.Contains(err.Error(), "is broken") {
					t.Fatalf("Append after a failure = %v, want the log broken", err)
				}
			}
			if l.Head() != h {
				t.Fatalf("head moved to %v after failures", l.Head())
			}
			// The file ends at the last acknowledged record, whole.
			if res := verifyFile(t, path); res.Records != 2 || res.Head != h || res.TornTail {
				t.Fatalf("Verify after failure = %+v, want head %v and no torn tail", res, h)
			}
		})
	}
}

func TestClosed(t *testing.T) {
	l := open(t, filepath.Join(t.TempDir(), "audit.log"))
	l.Close()
	if _, err := l.Append(EventDaemonStop, nil); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Append after Close = %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

func BenchmarkAppend(b *testing.B) {
	l := open(b, filepath.Join(b.TempDir(), "audit.log"))
	defer l.Close()
	d := map[string]any{"program": "opensnoop", "mode": "jit", "uid": 1000}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := l.Append(EventTraceAdmitted, d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkVerify(b *testing.B) {
	var buf bytes.Buffer
	l := memLog(&buf)
	for i := 0; i < 10000; i++ {
		appendOK(b, l, EventTraceAdmitted, map[string]any{"program": "opensnoop", "mode": "jit", "uid": 1000})
	}
	b.SetBytes(int64(buf.Len()))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Verify(bytes.NewReader(buf.Bytes())); err != nil {
			b.Fatal(err)
		}
	}
}

// memLog is a Log that writes to memory, for fuzzing Append's output
// without a file and an fsync per record.
func memLog(w *bytes.Buffer) *Log {
	return &Log{
		path: "memory", now: clock(), log: quiet,
		head:  Head{Hash: ZeroHash},
		write: w.Write,
		sync:  func() error { return nil },
	}
}
