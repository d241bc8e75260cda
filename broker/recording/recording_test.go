package recording

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tracebroker/tracebroker/bpf/collector"
)

var testHeader = Header{Version: Version, CPUs: 2, StartNs: 1_000_000_000, Probes: []Probe{
	{Name: "tracepoint:syscalls:sys_enter_getcwd", Kind: "tracepoint", Category: "syscalls", Event: "sys_enter_getcwd", CtxLen: 16},
	{Name: "tracepoint:syscalls:sys_enter_getcpu", Kind: "tracepoint", Category: "syscalls", Event: "sys_enter_getcpu", CtxLen: 16},
}}

// writeChunks writes a recording of chunks, each of per records (probe i%2,
// ktime StartNs+i ms), closed or not, and returns its bytes and the
// file offset where each chunk ends.
func writeChunks(t testing.TB, chunks, per int, closed bool) ([]byte, []int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "r.tbrec")
	w, err := Create(path, &testHeader, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ends []int64
	n := 0
	for c := 0; c < chunks; c++ {
		for i := 0; i < per; i++ {
			rec := collector.Encode(nil, &collector.Record{Probe: n % 2, Ktime: testHeader.StartNs + uint64(n)*1e6, Context: make([]byte, 16)})
			if err := w.Write(rec); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, w.Bytes()-endSize)
	}
	if closed {
		if err := w.Close(5); err != nil {
			t.Fatal(err)
		}
	} else {
		w.f.Close()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b, ends
}

// readAll reads every record of b: how many, and how the reader ended.
func readAll(b []byte) (*Reader, int, error) {
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, 0, err
	}
	n := 0
	for {
		_, err := r.Next()
		if err == io.EOF {
			return r, n, nil
		}
		if err != nil {
			return r, n, err
		}
		n++
	}
}

// TestCutAnywhere: a recording cut at any byte reads every record of
// the chunks wholly before the cut, no other, without an error, and says
// it was cut short; only the whole file is complete.
func TestCutAnywhere(t *testing.T) {
	const chunks, per = 4, 3
	b, ends := writeChunks(t, chunks, per, true)
	hdr := int(ends[0]) - chunkHead - chunkFixed - per*len(collector.Encode(nil, &collector.Record{Context: make([]byte, 16)}))
	for cut := hdr; cut <= len(b); cut++ {
		r, n, err := readAll(b[:cut])
		if err != nil {
			t.Fatalf("cut at %d of %d: %v", cut, len(b), err)
		}
		want := 0
		for _, e := range ends {
			if int64(cut) >= e {
				want += per
			}
		}
		complete := cut == len(b)
		if n != want || r.Complete() != complete || (r.Cut() == "") != complete {
			t.Fatalf("cut at %d of %d: %d records, complete %v, cut %q; want %d, complete %v", cut, len(b), n, r.Complete(), r.Cut(), want, complete)
		}
		if complete && r.Lost() != 5 {
			t.Errorf("lost %d, want 5", r.Lost())
		}
	}
	// Inside the header: an error that says so.
	for _, cut := range []int{len(Magic) + 3, hdr - 1} {
		if _, err := NewReader(bytes.NewReader(b[:cut])); err == nil || !strings.Contains(err.Error(), "ends inside the recording's header") {
			t.Errorf("cut at %d, inside the header: %v", cut, err)
		}
	}
}

// TestCutShortSays: where a cut-short recording ends, in events and time.
func TestCutShortSays(t *testing.T) {
	b, ends := writeChunks(t, 3, 4, false)
	r, n, err := readAll(b[:ends[2]-1])
	if err != nil {
		t.Fatal(err)
	}
	want := "cut short after event 8, 7ms after it started: the file ends inside chunk 3 at byte " // 8 events, the last at StartNs+7ms
	if got := r.CutShort(); n != 8 || !strings.HasPrefix(got, want) {
		t.Errorf("%d events, %q; want 8, %q...", n, got, want)
	}
	r, _, _ = readAll(b)
	if got := r.CutShort(); got != "cut short after event 12, 11ms after it started: the file ends after chunk 3, without its end: its recorder was killed, or is still writing it" {
		t.Errorf("unclosed: %q", got)
	}
}

// reframe rewrites chunk i's body with edit and a checksum that holds:
// what a crafter, not a crash, makes.
func reframe(t *testing.T, b []byte, start int64, edit func(body []byte) []byte) []byte {
	t.Helper()
	n := int64(binary.LittleEndian.Uint32(b[start:]))
	body := edit(append([]byte(nil), b[start+chunkHead:start+chunkHead+n]...))
	out := append([]byte(nil), b[:start]...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(body)))
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(body, castagnoli()))
	out = append(out, body...)
	return append(out, b[start+chunkHead+n:]...)
}

// TestAttacksRecording: a recording is a file from anyone, and -o a path
// anyone may have prepared. A reader never returns a record of a chunk
// whose checksum fails, nor of a whole chunk that lies; a recorder never
// writes through what was planted at its path.
func TestAttacksRecording(t *testing.T) {
	b, ends := writeChunks(t, 3, 2, true)
	second := ends[0] // where chunk 2 starts
	for _, tt := range []struct {
		name    string
		file    []byte
		records int
		err     string // "" : no error
		cut     string // what Cut says; "" : complete
	}{
		{"item6/torn_chunk", func() []byte { c := bytes.Clone(b); c[second+chunkHead+chunkFixed+20] ^= 1; return c }(), 2, "", "chunk 2 at byte"},
		{"item6/chunk_claims_huge_length", func() []byte {
			c := bytes.Clone(b)
			binary.LittleEndian.PutUint32(c[second:], MaxChunk+1)
			return c
		}(), 2, "", fmt.Sprintf("claims %d bytes: it is damaged", MaxChunk+1)},
		{"item6/chunk_claims_more_records", reframe(t, b, second, func(body []byte) []byte { binary.LittleEndian.PutUint32(body[4:], 3); return body }), 3, "chunk 2", ""},
		{"item6/chunk_claims_fewer_records", reframe(t, b, second, func(body []byte) []byte { binary.LittleEndian.PutUint32(body[4:], 1); return body }), 2, "bytes after its last record", ""},
		{"item6/record_of_no_probe", reframe(t, b, second, func(body []byte) []byte {
			binary.LittleEndian.PutUint16(body[chunkFixed+4:], 7) // the first record's probe
			return body
		}), 2, "of probe 7", ""},
		{"item6/chunk_of_unknown_kind", reframe(t, b, second, func(body []byte) []byte { binary.LittleEndian.PutUint32(body, 9); return body }), 2, "kind 9", ""},
		{"item6/end_counts_more", reframe(t, b, ends[2], func(body []byte) []byte { binary.LittleEndian.PutUint32(body[4:], 7); return body }), 6, "counts 7 records", ""},
		{"item6/bytes_after_end", append(bytes.Clone(b), 0), 6, "bytes after the end", ""},
		{"item6/header_damaged", func() []byte { c := bytes.Clone(b); c[len(Magic)+8+3] ^= 1; return c }(), 0, "header fails its checksum", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, n, err := readAll(tt.file)
			switch {
			case tt.err == "" && err != nil, tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("error %v, want %q", err, tt.err)
			case n > tt.records:
				t.Errorf("%d records, at most %d", n, tt.records)
			case tt.err == "" && n != tt.records:
				t.Errorf("%d records, want %d", n, tt.records)
			case tt.err == "" && !strings.Contains(r.Cut(), tt.cut):
				t.Errorf("cut %q, want %q", r.Cut(), tt.cut)
			}
		})
	}
}

// TestAttacksOutput: what -o refuses, and what it does to a file of the
// recorder's own (truncates it, as bpftrace -o does, and makes it 0600).
func TestAttacksOutput(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		plant func(path string) error
		err   string // "" : created
		root  bool
	}{
		{"item6/symlink_at_output", func(p string) error { return os.Symlink(secret, p) }, "is a symbolic link", false},
		{"item6/dangling_symlink_at_output", func(p string) error { return os.Symlink(filepath.Join(dir, "nosuch"), p) }, "is a symbolic link", false},
		{"item6/fifo_at_output", func(p string) error { return syscall.Mkfifo(p, 0o666) }, "is not a regular file", false},
		{"item6/directory_at_output", func(p string) error { return os.Mkdir(p, 0o755) }, "is not a regular file", false},
		{"item6/hard_link_at_output", func(p string) error { return os.Link(secret, p) }, "has 2 hard links", false},
		{"item6/other_users_file", func(p string) error {
			if err := os.WriteFile(p, []byte("theirs"), 0o666); err != nil {
				return err
			}
			return os.Chown(p, 65534, 65534)
		}, "belongs to uid 65534", true},
		{"own file truncated", func(p string) error { return os.WriteFile(p, bytes.Repeat([]byte("x"), 100000), 0o644) }, "", false},
		{"new file", func(string) error { return nil }, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root && os.Geteuid() != 0 {
				t.Skip("needs root to plant another user's file")
			}
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, "/", "_"))
			if err := tt.plant(path); err != nil {
				t.Fatal(err)
			}
			before, _ := os.Lstat(path)
			w, err := Create(path, &testHeader, 0)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				if after, err := os.Lstat(path); err != nil || after.Size() != before.Size() || after.Mode() != before.Mode() {
					t.Errorf("what was at the path changed: %v", err)
				}
				if s, _ := os.ReadFile(secret); string(s) != "keep" {
					t.Errorf("the link's target now holds %q", s)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Close(0); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != w.Bytes() {
				t.Fatalf("%v, %v %d bytes; want 0600, %d bytes", err, fi.Mode(), fi.Size(), w.Bytes())
			}
			if _, n, err := readAll(must(os.ReadFile(path))); err != nil || n != 0 {
				t.Errorf("%d records, %v", n, err)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestAbort: a recording that never started leaves nothing at its path.
func TestAbort(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.tbrec")
	w, err := Create(path, &testHeader, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Abort()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Abort: %v", err)
	}
}

// TestFlushBound: a chunk never holds more than FlushSize of records
// (but one), so a killed recorder loses at most that much besides
// FlushInterval's worth.
func TestFlushBound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.tbrec")
	w, err := Create(path, &testHeader, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec := collector.Encode(nil, &collector.Record{Context: make([]byte, 16), Strings: []collector.String{{Addr: 1, Data: make([]byte, 200)}}})
	const n = 1000
	for i := 0; i < n; i++ {
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	fi, _ := os.Stat(path)
	held := w.Bytes() - endSize - fi.Size()
	if held <= 0 || held > chunkHead+chunkFixed+FlushSize {
		t.Errorf("%d bytes held unwritten after %d records of %d bytes; want some, at most %d", held, n, len(rec), chunkHead+chunkFixed+FlushSize)
	}
	if !w.FlushBy().After(w.since) {
		t.Errorf("FlushBy %v", w.FlushBy())
	}
	w.Close(0)
}
