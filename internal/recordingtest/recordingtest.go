// Package recordingtest makes the recordings an attacker would hand
// someone: a real recording with its header changed.
package recordingtest

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"os"
	"testing"

	"github.com/tracebroker/tracebroker/bpf/collector"
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

// ReplaceInHeader writes to dst the recording at src (of version 2)
// with old replaced by new, of the same length, in its header's JSON,
// and the header's checksum made to match, as a crafter makes it: what
// Rewrite cannot write, a header Create refuses.
func ReplaceInHeader(t testing.TB, src, dst, old, new string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	const at = len(recording.Magic) + 8
	if len(b) < at || string(b[:len(recording.Magic)]) != recording.Magic {
		t.Fatalf("%s is no recording of version %d", src, recording.Version)
	}
	end := at + int(binary.LittleEndian.Uint32(b[len(recording.Magic):]))
	if len(new) != len(old) || end > len(b) || !bytes.Contains(b[at:end], []byte(old)) {
		t.Fatalf("cannot put %q for %q", new, old)
	}
	b = bytes.Clone(b)
	copy(b[at:end], bytes.Replace(b[at:end], []byte(old), []byte(new), 1))
	binary.LittleEndian.PutUint32(b[at-4:], crc32.Checksum(b[at:end], crc32.MakeTable(crc32.Castagnoli)))
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Count counts the records of the recording at path, as far as it
// reads (a recording being written, or cut short), that match.
func Count(t testing.TB, path string, match func(*collector.Record) bool) int {
	t.Helper()
	rd, c, err := recording.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n := 0
	var r collector.Record
	for {
		b, err := rd.Next()
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := collector.Decode(b, &r); err != nil {
			t.Fatal(err)
		}
		if match(&r) {
			n++
		}
	}
}
