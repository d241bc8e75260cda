package audit

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func openRotating(t testing.TB, path string, keep int) *Log {
	t.Helper()
	l, err := Open(path, Options{Now: clock(), Logger: quiet, MaxSize: MinMaxSize, Keep: keep})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// fill appends records of about size bytes until the log has rotated n
// more times, and returns how many it appended.
func fill(t testing.TB, l *Log, path string, rotations int, size int) int {
	t.Helper()
	pad := strings.Repeat("p", min(size, MaxField))
	start := rotationsSoFar(t, l)
	n := 0
	for rotationsSoFar(t, l) < start+rotations {
		appendOK(t, l, EventTraceRefused, map[string]any{"n": n, "pad": pad})
		n++
	}
	return n
}

func rotationsSoFar(t testing.TB, l *Log) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rot.rotations
}

// logFiles lists the current file and the rotated ones.
func logFiles(t testing.TB, path string) []string {
	t.Helper()
	segs, err := listSegments(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range segs {
		out = append(out, s.path)
	}
	return append(out, path)
}

func firstRecord(t testing.TB, path string) (seq uint64, event string, data map[string]any) {
	t.Helper()
	ls := lines(t, path)
	var rec struct {
		Seq   uint64
		Event string
		Data  map[string]any
	}
	if err := json.Unmarshal(ls[0], &rec); err != nil {
		t.Fatal(err)
	}
	return rec.Seq, rec.Event, rec.Data
}

// TestRotation (issue 15, item 6): the log's growth is bounded: no file
// is larger than MaxSize, no more than Keep rotated files stay, each
// file continues the chain of the one before it from an audit.rotated
// record, the deletion of the oldest is on the record, and the kept
// files verify as one chain up to the head.
func TestRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openRotating(t, path, 2)
	total := 0
	for round := 0; round < 6; round++ {
		total += fill(t, l, path, 1, 700)
	}
	head := l.Head()
	l.Close()
	files := logFiles(t, path)
	if len(files) != 3 {
		t.Fatalf("%d files, want 2 rotated and the current: %v", len(files), files)
	}
	var size int64
	for i, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > MinMaxSize {
			t.Errorf("%s is %d bytes, more than MaxSize", f, fi.Size())
		}
		size += fi.Size()
		seq, event, data := firstRecord(t, f)
		if event != EventRotated || seq < 2 {
			t.Errorf("%s begins with %s at seq %d", f, event, seq)
		}
		if i > 0 && filepath.Base(files[i-1]) != data["previous"] {
			t.Errorf("%s continues %v, want %s", f, data["previous"], filepath.Base(files[i-1]))
		}
		if i < len(files)-1 && f != segmentName(path, seq) {
			t.Errorf("%s holds seq %d on", f, seq)
		}
	}
	// The newest audit.rotated record deleted the file before the
	// oldest kept one, and says where the kept ones begin.
	first, _, _ := firstRecord(t, files[0])
	_, _, data := firstRecord(t, path)
	if data["deleted_through"] != float64(first-1) || len(data["deleted"].([]any)) != 1 {
		t.Errorf("the current file's audit.rotated record: %v; the kept files begin at seq %d", data, first)
	}
	res, err := VerifyFiles(files)
	if err != nil {
		t.Fatalf("VerifyFiles: %v", err)
	}
	// Every record appended (plus one audit.rotated per rotation) is
	// there from the first kept one to the head.
	if res.Head != head || uint64(res.Records) != head.Seq-first+1 || head.Seq != uint64(total+6) {
		t.Errorf("VerifyFiles = %+v; head %v, first kept seq %d, %d appended", res, head, first, total)
	}
	// Reversed order is the same set.
	rev := []string{files[2], files[0], files[1]}
	if res2, err := VerifyFiles(rev); err != nil || res2 != res {
		t.Errorf("VerifyFiles(reversed) = %+v, %v", res2, err)
	}
	t.Logf("%d records, %d bytes in %d files", res.Records, size, len(files))
}

// TestVerifyFilesAttacks: a set of rotated files that does not hold
// the whole kept chain is refused, naming the file and line.
func TestVerifyFilesAttacks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openRotating(t, path, 3)
	fill(t, l, path, 5, 900)
	appendOK(t, l, EventDaemonStop, nil)
	l.Close()
	files := logFiles(t, path) // 3 rotated and the current
	if len(files) != 4 {
		t.Fatalf("files %v", files)
	}
	edited := filepath.Join(t.TempDir(), "edited")
	ls := lines(t, files[1])
	if err := os.WriteFile(edited, join(append([][]byte{ls[0], replace(t, ls[1], `"n":`, `"n": `)}, ls[2:]...)...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		files []string
		file  string
		line  int
		want  string
	}{
		{"current_alone", files[3:], "", 1, "continues rotated files"},
		{"oldest_kept_missing", files[1:], files[1], 1, "no audit.rotated record among these files deletes the records before it"},
		{"middle_missing", []string{files[0], files[2], files[3]}, files[2], 1, "seq"},
		{"edited_record", []string{files[0], edited, files[2], files[3]}, edited, 3, "prev hash does not match"},
		{"twice", []string{files[0], files[1], files[1], files[2], files[3]}, "", 0, "same file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if len(tt.files) == 1 {
				_, err = VerifyFile(tt.files[0])
			} else {
				_, err = VerifyFiles(tt.files)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			var ve *VerifyError
			if tt.line > 0 && (!errors.As(err, &ve) || ve.File != tt.file || ve.Line != tt.line) {
				t.Errorf("err = %v, want %s line %d", err, tt.file, tt.line)
			}
		})
	}
}

// TestRotationReopen: a reopened log goes on rotating where it was, and
// the chain holds across.
func TestRotationReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openRotating(t, path, 2)
	fill(t, l, path, 2, 900)
	l.Close()
	l = openRotating(t, path, 2)
	fill(t, l, path, 2, 900)
	h := l.Head()
	l.Close()
	if res, err := VerifyFiles(logFiles(t, path)); err != nil || res.Head != h {
		t.Fatalf("VerifyFiles = %+v, %v; want head %v", res, err, h)
	}
}

// TestRotationCrash: what a crash in the middle of a rotation leaves is
// made whole by the next Open.
func TestRotationCrash(t *testing.T) {
	t.Run("after_link", func(t *testing.T) {
		// The current file has its rotated name too, and a new file was
		// being made: the rotation did not happen.
		path := filepath.Join(t.TempDir(), "audit.log")
		writeLog(t, path, 4)
		if err := os.Link(path, segmentName(path, 1)); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(path+".rotating", nil, 0o600)
		l := openRotating(t, path, 2)
		h := appendOK(t, l, EventDaemonStart, nil)
		l.Close()
		if files := logFiles(t, path); len(files) != 1 || h.Seq != 5 {
			t.Fatalf("files %v, head %v", files, h)
		}
		if _, err := os.Stat(path + ".rotating"); !os.IsNotExist(err) {
			t.Errorf("the half-made file stays: %v", err)
		}
		verifyFile(t, path)
	})
	t.Run("current_missing", func(t *testing.T) {
		// Rotated files and no current one: a new one continues them.
		path := filepath.Join(t.TempDir(), "audit.log")
		l := openRotating(t, path, 2)
		fill(t, l, path, 1, 900)
		l.Close()
		os.Remove(path)
		before, err := readLastHead(logFiles(t, path)[0])
		if err != nil {
			t.Fatal(err)
		}
		l = openRotating(t, path, 2)
		h := appendOK(t, l, EventDaemonStart, nil)
		l.Close()
		if h.Seq != before.Seq+2 {
			t.Errorf("head %v after the rotated file's %v: want an audit.rotated record and the new one", h, before)
		}
		if _, event, _ := firstRecord(t, path); event != EventRotated {
			t.Errorf("the new file begins with %s", event)
		}
		if _, err := VerifyFiles(logFiles(t, path)); err != nil {
			t.Error(err)
		}
	})
	t.Run("another_chain", func(t *testing.T) {
		// A log that starts at seq 1 beside rotated files of another:
		// refused rather than mixed with them.
		path := filepath.Join(t.TempDir(), "audit.log")
		writeLog(t, path, 3)
		writeLog(t, segmentName(path, 1), 2)
		if _, err := Open(path, Options{Logger: quiet}); err == nil || !strings.Contains(err.Error(), "rotated files of another log") {
			t.Fatalf("Open = %v", err)
		}
	})
	t.Run("not_following", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		l := openRotating(t, path, 2)
		fill(t, l, path, 1, 900)
		l.Close()
		// The newest rotated file loses its last record.
		seg := logFiles(t, path)[0]
		ls := lines(t, seg)
		os.WriteFile(seg, join(ls[:len(ls)-1]...), 0o600)
		if _, err := Open(path, Options{Logger: quiet}); err == nil || !strings.Contains(err.Error(), "does not follow") {
			t.Fatalf("Open = %v", err)
		}
	})
}

// TestRotationFails: a rotation that cannot be done leaves the log
// working, in its current file.
func TestRotationFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	// A directory where the new file would be made.
	if err := os.MkdirAll(filepath.Join(path+".rotating", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	l := openRotating(t, path, 2)
	os.MkdirAll(filepath.Join(path+".rotating", "x"), 0o700) // Open removed nothing it could not
	n := 0
	for fi, _ := os.Stat(path); fi.Size() < 2*MinMaxSize; fi, _ = os.Stat(path) {
		appendOK(t, l, EventTraceRefused, map[string]any{"pad": strings.Repeat("p", 900), "n": n})
		n++
	}
	l.Close()
	if files := logFiles(t, path); len(files) != 1 {
		t.Errorf("files %v", files)
	}
	if res := verifyFile(t, path); res.Records != n {
		t.Errorf("%d records, want %d", res.Records, n)
	}
}

func BenchmarkAppendRotating(b *testing.B) {
	path := filepath.Join(b.TempDir(), "audit.log")
	l := openRotating(b, path, 2)
	defer l.Close()
	d := map[string]any{"session": "0123456789ab", "stage": "token", "code": "Unauthenticated", "reason": strings.Repeat("r", 200)}
	for b.Loop() {
		if _, err := l.Append(EventTraceRefused, d); err != nil {
			b.Fatal(err)
		}
	}
	var total int64
	for _, f := range logFiles(b, path) {
		fi, _ := os.Stat(f)
		total += fi.Size()
	}
	b.ReportMetric(float64(total), "bytes_on_disk")
}
