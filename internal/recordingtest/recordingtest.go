// Package recordingtest makes the recordings an attacker would hand
// someone: a real recording with its header changed.
package recordingtest

import (
	"io"
	"os"
	"testing"

	"github.com/tracebroker/tracebroker/broker/recording"
)

// Rewrite writes to dst the recording at src with its header changed by
// edit, every record kept; dst is readable by anyone.
func Rewrite(t testing.TB, src, dst string, edit func(h *recording.Header)) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := recording.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	h := *rd.Header()
	edit(&h)
	w, err := recording.Create(dst, &h, 0)
	if err != nil {
		t.Fatal(err)
	}
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(rd.Lost()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, 0o644); err != nil {
		t.Fatal(err)
	}
}
