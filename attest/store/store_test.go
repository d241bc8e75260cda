package store

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// envs is n envelopes of size bytes each.
func envs(n, size int) []Envelope {
	out := make([]Envelope, n)
	for i := range out {
		out[i] = Envelope{Probe: fmt.Sprintf("tracepoint:syscalls:sys_enter_%d", i), Data: bytes.Repeat([]byte{'x'}, size)}
	}
	return out
}

// files lists the store's attestations and sources.
func files(t *testing.T, dir string) (atts, srcs []string) {
	t.Helper()
	atts, _ = filepath.Glob(filepath.Join(dir, "*.dsse.json"))
	srcs, _ = filepath.Glob(filepath.Join(dir, SourcesDir, "*"))
	return atts, srcs
}

// TestSourceOnce: a trace of 20 programs from a 1 MiB script writes the
// script once, however many traces share it; each file is 0640.
func TestSourceOnce(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	src := append(bytes.Repeat([]byte("// comment\n"), 1<<20/11), "BEGIN { exit(); }\n"...)
	for i := range 3 {
		paths, err := s.Add("alice", fmt.Sprintf("trace-%d", i), src, envs(20, 4096))
		if err != nil {
			t.Fatal(err)
		}
		if len(paths) != 20 {
			t.Fatalf("%d paths", len(paths))
		}
	}
	atts, srcs := files(t, dir)
	if len(atts) != 60 || len(srcs) != 1 {
		t.Fatalf("%d attestations, %d sources; want 60 and 1", len(atts), len(srcs))
	}
	var total int64
	for _, f := range append(atts, srcs...) {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v", f, fi.Mode())
		}
		total += fi.Size()
	}
	if want := int64(60*4096 + len(src)); total != want {
		t.Errorf("%d bytes written, want %d", total, want)
	}
	if b, _ := os.ReadFile(srcs[0]); !bytes.Equal(b, src) {
		t.Error("the kept source is not the script")
	}
}

// TestFairRotation: a flood by one subject rotates its own attestations
// out and leaves another's alone, and every removal is reported; a
// subject holding more than its share loses the excess first.
func TestFairRotation(t *testing.T) {
	dir := t.TempDir()
	var rotations []Rotation
	s, err := Open(dir, Options{MaxBytes: 100_000, MaxBytesPerSubject: 60_000, Rotated: func(r Rotation) { rotations = append(rotations, r) }})
	if err != nil {
		t.Fatal(err)
	}
	var bobs []string
	for i := range 4 {
		p, err := s.Add("bob", fmt.Sprintf("bob-%d", i), nil, envs(2, 5_000))
		if err != nil {
			t.Fatal(err)
		}
		bobs = append(bobs, p...)
	}
	for i := range 200 {
		src := []byte(fmt.Sprintf("alice's script %d\n", i))
		if _, err := s.Add("alice", fmt.Sprintf("alice-%d", i), src, envs(3, 3_000)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range bobs {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("bob's attestation is gone: %v", err)
		}
	}
	alice, total, err := s.Usage("alice")
	if err != nil {
		t.Fatal(err)
	}
	if alice > 60_000 || total > 100_000 {
		t.Errorf("alice holds %d bytes (limit 60000), the store %d (limit 100000)", alice, total)
	}
	if len(rotations) == 0 {
		t.Fatal("no rotation reported")
	}
	for _, r := range rotations {
		if r.Subject != "alice" || r.SubjectTag != SubjectTag("alice") || r.Files != 4 || r.Reason != "subject limit" {
			t.Errorf("rotation %+v", r)
		}
	}
	// The accounting is the directory's: a reopened store agrees.
	re, _ := Open(dir, Options{MaxBytes: 100_000})
	a2, t2, _ := re.Usage("alice")
	b1, _, _ := s.Usage("bob")
	b2, _, _ := re.Usage("bob")
	if a2 != alice || t2 != total || b2 != b1 {
		t.Errorf("reopened: alice %d, bob %d, total %d; was %d, %d, %d", a2, b2, t2, alice, b1, total)
	}
	// Each of alice's traces has its own source; the removed ones' went
	// with them.
	atts, srcs := files(t, dir)
	if len(srcs) != (len(atts)-len(bobs))/3 {
		t.Errorf("%d sources for %d of alice's attestations", len(srcs), len(atts)-len(bobs))
	}

	// Carol floods a store that bob fills beyond his share: bob loses
	// the excess, oldest first, never more than down to carol's share.
	dir = t.TempDir()
	rotations = nil
	s, _ = Open(dir, Options{MaxBytes: 100_000, Rotated: func(r Rotation) { rotations = append(rotations, r) }})
	for i := range 9 {
		if _, err := s.Add("bob", fmt.Sprintf("bob-%d", i), nil, envs(1, 10_000)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		if _, err := s.Add("carol", fmt.Sprintf("carol-%d", i), nil, envs(1, 10_000)); err != nil {
			t.Fatal(err)
		}
		bob, total, _ := s.Usage("bob")
		carol, _, _ := s.Usage("carol")
		if total > 100_000 || bob < 50_000 {
			t.Fatalf("after carol's trace %d: bob %d, carol %d, total %d", i, bob, carol, total)
		}
	}
	bob, _, _ := s.Usage("bob")
	if bob != 50_000 {
		t.Errorf("bob holds %d bytes after carol's flood, want his share, 50000", bob)
	}
	atts, _ = files(t, dir)
	for i := range 4 {
		for _, a := range atts {
			if strings.HasPrefix(filepath.Base(a), fmt.Sprintf("bob-%d+", i)) {
				t.Errorf("bob's trace %d, among his oldest, is still there", i)
			}
		}
	}
}

// TestLimits: a trace larger than a limit by itself is refused, with
// nothing written; other files in the directory count, and go first.
func TestLimits(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, Options{MaxBytes: 50_000, MaxBytesPerSubject: 20_000})
	if _, err := s.Add("alice", "big", []byte("x"), envs(3, 10_000)); err == nil || !strings.Contains(err.Error(), "larger than the attestation store allows") {
		t.Fatalf("too large for the subject: %v", err)
	}
	if atts, srcs := files(t, dir); len(atts)+len(srcs) != 0 {
		t.Fatalf("left behind: %v %v", atts, srcs)
	}
	// A file of an older layout, and an orphaned source.
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, "old.dsse.json"), make([]byte, 40_000), 0o644)
	os.MkdirAll(filepath.Join(dir, SourcesDir), 0o750)
	orphan := filepath.Join(dir, SourcesDir, "sha256-"+strings.Repeat("0", 64))
	os.WriteFile(orphan, []byte("lost"), 0o640)
	os.WriteFile(filepath.Join(dir, "host.key"), make([]byte, 40_000), 0o600)
	s, _ = Open(dir, Options{MaxBytes: 50_000})
	if _, err := s.Add("alice", "t", nil, envs(1, 20_000)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "host.key")); err != nil {
		t.Error("a file that is no attestation was removed")
	}
	if _, err := os.Stat(filepath.Join(dir, "old.dsse.json")); err == nil {
		t.Error("the old file was kept past the limit")
	}
	if _, err := os.Stat(orphan); err == nil {
		t.Error("the orphaned source was kept")
	}
	// Long probe names still make file names.
	if _, err := s.Add("alice", "long", nil, []Envelope{{Probe: "uprobe:/" + strings.Repeat("d/", 300) + "x:f", Data: []byte("{}")}}); err != nil {
		t.Fatalf("a long probe name: %v", err)
	}
}

// BenchmarkAdd: one trace's attestations (3 programs, 4 KiB each, and a
// 1 KiB source) into a full store of 1000 traces, so that each Add also
// rotates the oldest out.
func BenchmarkAdd(b *testing.B) {
	s, err := Open(b.TempDir(), Options{MaxBytes: 1000 * (3*4096 + 1024), MaxBytesPerSubject: 400 * (3*4096 + 1024)})
	if err != nil {
		b.Fatal(err)
	}
	add := func(i int) {
		src := fmt.Appendf(bytes.Repeat([]byte{'/'}, 1000), "%d", i)
		if _, err := s.Add(fmt.Sprintf("subject-%d", i%8), fmt.Sprintf("trace-%d", i), src, envs(3, 4096)); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 1000 {
		add(i)
	}
	i := 1000
	for b.Loop() {
		add(i)
		i++
	}
}
