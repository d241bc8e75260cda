package uprobe

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// globFixture makes dir/bin with what bpftrace's glob keeps and drops:
// an executable ELF (a), a non-executable one (b), a shared object that
// is not executable (c.so), an executable script (s), a hidden ELF (.h),
// a FIFO, and a directory with an ELF (sub/x).
func globFixture(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(filepath.Join(bin, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	exe := testELF{class: elf.ELFCLASS64, order: binary.LittleEndian, typ: elf.ET_EXEC}.bytes()
	so := testELF{class: elf.ELFCLASS64, order: binary.LittleEndian, typ: elf.ET_DYN}.bytes()
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"a", exe, 0o755}, {"b", exe, 0o644}, {"c.so", so, 0o644}, {"s", []byte("#!/bin/sh\n"), 0o755},
		{".h", exe, 0o755}, {"sub/x", exe, 0o755},
	} {
		if err := os.WriteFile(filepath.Join(bin, f.name), f.data, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mkfifo(filepath.Join(bin, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestGlob(t *testing.T) {
	dir := globFixture(t)
	t.Chdir(dir)
	tests := []struct {
		pattern string
		want    []string // relative to dir unless they start with '.'
		err     string
	}{
		{pattern: "D/bin/*", want: []string{"bin/a", "bin/b", "bin/c.so", "bin/fifo", "bin/s", "bin/sub"}},
		{pattern: "D/bin/.*", want: []string{"bin/.h"}},
		{pattern: "D/bin/?", want: []string{"bin/a", "bin/b", "bin/s"}},
		{pattern: "D/bin/[ab]*", want: []string{"bin/a", "bin/b"}},
		{pattern: "D/*/x"},
		{pattern: "D/*/*/x", want: []string{"bin/sub/x"}},
		{pattern: "D/b*/s*/?", want: []string{"bin/sub/x"}},
		{pattern: "D/bin//a*", want: []string{"bin/a"}},
		{pattern: "D/nosuch/*"},
		{pattern: "D/bin/a/*"},
		{pattern: "D/bin/fifo/*"},
		{pattern: `D/bin/\a*`, want: []string{"bin/a"}},
		{pattern: "./bin/c*", want: []string{"./bin/c.so"}},
		{pattern: "bin/sub/*", want: []string{"bin/sub/x"}},
		{pattern: "D/bin/[*", err: "syntax error in pattern"},
		{pattern: ""},
	}
	for _, tt := range tests {
		pattern := strings.Replace(tt.pattern, "D", dir, 1)
		got, err := Glob(pattern)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Glob(%q) = %q, %v; want an error with %q", tt.pattern, got, err, tt.err)
			}
			continue
		}
		var want []string
		for _, w := range tt.want {
			if strings.HasPrefix(tt.pattern, "D") {
				w = filepath.Join(dir, w)
			}
			want = append(want, w)
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Glob(%q) = %q, %v; want %q", tt.pattern, got, err, want)
		}
	}
}

func TestGlobBinaries(t *testing.T) {
	dir := globFixture(t)
	t.Chdir(dir)
	t.Setenv("PATH", filepath.Join(dir, "bin", "sub")+":relative:")
	tests := []struct {
		pattern string
		want    []string
		err     string
	}{
		// The FIFO is passed over without an open that waits.
		{pattern: dir + "/bin/*", want: []string{dir + "/bin/a", dir + "/bin/c.so"}},
		{pattern: "./bin/*", want: []string{"./bin/a", "./bin/c.so"}},
		// A bare name is globbed here, then in $PATH's absolute entries.
		{pattern: "*", want: []string{dir + "/bin/sub/x"}},
		{pattern: dir + "/bin/s*", err: "does not exist or is not executable"},
		{pattern: dir + "/bin/[*", err: "syntax error in pattern"},
	}
	for _, tt := range tests {
		done := make(chan struct{})
		var got []string
		var err error
		go func() {
			defer close(done)
			got, err = GlobBinaries(tt.pattern)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("GlobBinaries(%q) hangs", tt.pattern)
		}
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("GlobBinaries(%q) = %q, %v; want an error with %q", tt.pattern, got, err, tt.err)
			}
			if strings.Contains(tt.err, "not exist") && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("GlobBinaries(%q): %v is not fs.ErrNotExist", tt.pattern, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("GlobBinaries(%q) = %q, %v; want %q", tt.pattern, got, err, tt.want)
		}
	}
}

// TestGlobBounds: a pattern naming more than MaxGlobFiles files, or
// reading more than maxGlobEntries entries, is refused, not expanded.
func TestGlobBounds(t *testing.T) {
	dir := t.TempDir()
	for i := range MaxGlobFiles + 1 {
		if err := os.WriteFile(filepath.Join(dir, "f"+strconv.Itoa(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := Glob(dir + "/f*"); !errors.Is(err, ErrGlobTooBig) {
		t.Errorf("Glob over %d files: %d files, %v; want ErrGlobTooBig", MaxGlobFiles+1, len(got), err)
	}
	if got, err := Glob(dir + "/f1*"); err != nil || len(got) != 1111 {
		t.Errorf("Glob of f1*: %d files, %v; want 1111", len(got), err)
	}
	defer func(n int) { maxGlobEntries = n }(maxGlobEntries)
	maxGlobEntries = MaxGlobFiles
	if got, err := Glob(dir + "/f1*"); !errors.Is(err, ErrGlobTooBig) {
		t.Errorf("Glob reading %d entries with a bound of %d: %d files, %v; want ErrGlobTooBig", MaxGlobFiles+1, maxGlobEntries, len(got), err)
	}
}

// FuzzGlob: whatever the pattern, Glob ends, within its bounds, without
// a panic, and what it returns exists and is spelled from the pattern.
func FuzzGlob(f *testing.F) {
	for _, s := range []string{"bin/*", "bin/.*", "*/*/x", "bin/[ab]*", `bin/\*`, "bin/[*", "bin//?", "../*", "bin/sub/../*", "[]", "*[!a-]"} {
		f.Add(s)
	}
	dir := globFixture(f)
	maxGlobEntries = 1000
	f.Fuzz(func(t *testing.T, pattern string) {
		if strings.Contains(pattern, "..") {
			return // out of the fixture: the host's files are no fixture
		}
		got, err := Glob(dir + "/" + pattern)
		if err != nil {
			return
		}
		if len(got) > MaxGlobFiles {
			t.Fatalf("Glob(%q): %d files", pattern, len(got))
		}
		for _, p := range got {
			if _, err := os.Lstat(p); err != nil {
				t.Fatalf("Glob(%q) = %q: %v", pattern, p, err)
			}
			if p != dir && !strings.HasPrefix(p, dir+"/") {
				t.Fatalf("Glob(%q) = %q, outside %s", pattern, p, dir)
			}
		}
	})
}
