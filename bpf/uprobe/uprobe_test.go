package uprobe

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/tracebroker/tracebroker/internal/elfdebug"
	"github.com/tracebroker/tracebroker/internal/elfsym"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
	"hash/crc32"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// testProgram is the C program the tests probe. add_one is called exactly
// N times (argv[1]) with 0, 1, ..., N-1; with a second argument the
// program first waits for a byte on stdin, so that a test can attach to
// its pid before it calls anything. twice is static: it is only in
// .symtab (or a debug file), never in .dynsym.
const testProgram = `#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) int add_one(int x) { __asm__ volatile(""); return x + 1; }

static __attribute__((noinline)) int twice(int x) { __asm__ volatile(""); return 2 * x; }

int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 1;
	if (argc > 2) {
		char c;
		if (read(0, &c, 1) != 1)
			return 2;
	}
	int s = 0;
	for (int i = 0; i < n; i++)
		s = add_one(s);
	printf("%d\n", twice(s) / 2);
	return 0;
}
`

// needGCC skips unless gcc is on PATH.
func needGCC(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("skipping: gcc is not installed")
	}
}

// buildC compiles testProgram with gcc and flags into dir/name.
func buildC(t testing.TB, dir, name string, flags ...string) string {
	t.Helper()
	needGCC(t)
	src := filepath.Join(dir, "prog.c")
	if err := os.WriteFile(src, []byte(testProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	args := append([]string{"-O0", "-o", out, src}, flags...)
	if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}

// readelfOffsets computes, from readelf's text output alone, the file
// offset of every defined function symbol of bin: st_value - sh_addr +
// sh_offset of the section the symbol belongs to (its Ndx), which is
// independent of the program-header arithmetic under test. The second
// map has the symbols' values.
func readelfOffsets(t *testing.T, bin string) (offsets, values map[string]uint64) {
	t.Helper()
	type section struct{ addr, off uint64 }
	secs := map[int]section{}
	for _, line := range strings.Split(run(t, "readelf", "-SW", bin), "\n") {
		// "  [16] .text  PROGBITS  0000000000001050 001050 000151 00  AX  0   0 16"
		open, close := strings.Index(line, "["), strings.Index(line, "]")
		if open < 0 || close < open {
			continue
		}
		idx, err := strconv.Atoi(strings.TrimSpace(line[open+1 : close]))
		if err != nil {
			continue
		}
		f := strings.Fields(line[close+1:])
		if len(f) < 4 {
			continue
		}
		addr, err1 := strconv.ParseUint(f[2], 16, 64)
		off, err2 := strconv.ParseUint(f[3], 16, 64)
		if err1 == nil && err2 == nil {
			secs[idx] = section{addr, off}
		}
	}
	offsets, values = map[string]uint64{}, map[string]uint64{}
	table := ""
	for _, line := range strings.Split(run(t, "readelf", "-sW", bin), "\n") {
		// "Symbol table '.dynsym' contains 12 entries:"
		if rest, ok := strings.CutPrefix(line, "Symbol table '"); ok {
			table, _, _ = strings.Cut(rest, "'")
			continue
		}
		// "    18: 0000000000001139    11 FUNC    GLOBAL DEFAULT   14 add_one"
		f := strings.Fields(line)
		if len(f) < 8 || !strings.HasSuffix(f[0], ":") || (f[3] != "FUNC" && f[3] != "IFUNC") {
			continue
		}
		value, err := strconv.ParseUint(f[1], 16, 64)
		ndx, err2 := strconv.Atoi(f[6])
		if err != nil || err2 != nil || value == 0 {
			continue
		}
		name := f[7]
		if table == ".dynsym" {
			// readelf shows .dynsym names with their version
			// ("malloc@@GLIBC_2.2.5"); the string table has "malloc".
			name, _, _ = strings.Cut(name, "@")
		}
		if _, ok := offsets[name]; ok {
			continue
		}
		s, ok := secs[ndx]
		if !ok {
			t.Fatalf("%s: no section %d for %s", bin, ndx, name)
		}
		offsets[name] = value - s.addr + s.off
		values[name] = value
	}
	return offsets, values
}

func names(syms []Symbol) []string {
	out := make([]string, len(syms))
	for i, s := range syms {
		out[i] = s.Name
	}
	return out
}

func find(syms []Symbol, name string) (Symbol, bool) {
	for _, s := range syms {
		if s.Name == name {
			return s, true
		}
	}
	return Symbol{}, false
}

func TestFunctionsCProgram(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		flags []string
		typ   elf.Type
	}{
		{"pie", nil, elf.ET_DYN},
		{"nopie", []string{"-no-pie"}, elf.ET_EXEC},
		{"pie-O2", []string{"-O2"}, elf.ET_DYN},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bin := buildC(t, dir, tc.name, tc.flags...)
			if f, err := elf.Open(bin); err != nil || f.Type != tc.typ {
				t.Fatalf("%s: type %v, %v; want %v", bin, f.Type, err, tc.typ)
			}
			syms, err := Functions(bin)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.IsSortedFunc(syms, func(a, b Symbol) int { return strings.Compare(a.Name, b.Name) }) {
				t.Errorf("not sorted: %v", names(syms))
			}
			wantOff, wantAddr := readelfOffsets(t, bin)
			for _, name := range []string{"add_one", "main", "twice"} {
				s, ok := find(syms, name)
				if !ok {
					t.Fatalf("%s not in %v", name, names(syms))
				}
				if s.Addr != wantAddr[name] || s.Offset != wantOff[name] || s.Offset == 0 || s.Size == 0 {
					t.Errorf("%s = %+v, want addr 0x%x offset 0x%x", name, s, wantAddr[name], wantOff[name])
				}
				off, err := AddressOffset(bin, s.Addr)
				if err != nil || off != wantOff[name] {
					t.Errorf("AddressOffset(0x%x) = 0x%x, %v; want 0x%x", s.Addr, off, err, wantOff[name])
				}
				// Inside the function too.
				if off, err := AddressOffset(bin, s.Addr+1); err != nil || off != wantOff[name]+1 {
					t.Errorf("AddressOffset(0x%x) = 0x%x, %v; want 0x%x", s.Addr+1, off, err, wantOff[name]+1)
				}
			}
			// Every function readelf shows, and nothing else.
			if got := len(syms); got != len(wantOff) {
				t.Errorf("%d functions, readelf shows %d: %v", got, len(wantOff), names(syms))
			}
			for _, s := range syms {
				if s.Offset != wantOff[s.Name] {
					t.Errorf("%s: offset 0x%x, readelf gives 0x%x", s.Name, s.Offset, wantOff[s.Name])
				}
			}
			got, err := Match(bin, "add_one")
			if err != nil || len(got) != 1 || got[0].Offset != wantOff["add_one"] {
				t.Errorf("Match add_one = %+v, %v", got, err)
			}
		})
	}
}

func TestLibc(t *testing.T) {
	libc := "/lib/x86_64-linux-gnu/libc.so.6"
	if _, err := os.Stat(libc); err != nil {
		matches, _ := filepath.Glob("/lib/*/libc.so.6")
		if len(matches) == 0 {
			t.Skip("skipping: no libc.so.6 found")
		}
		libc = matches[0]
	}
	got, err := Match(libc, "malloc")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "malloc" || got[0].Offset == 0 {
		t.Fatalf("Match malloc = %+v", got)
	}
	wantOff, _ := readelfOffsets(t, libc)
	if got[0].Offset != wantOff["malloc"] {
		t.Errorf("malloc offset 0x%x, readelf gives 0x%x", got[0].Offset, wantOff["malloc"])
	}
	if off, err := AddressOffset(libc, got[0].Addr); err != nil || off != got[0].Offset {
		t.Errorf("AddressOffset(malloc) = 0x%x, %v", off, err)
	}
	ms, err := Match(libc, "mallo*")
	if err != nil {
		t.Fatal(err)
	}
	n := names(ms)
	if !slices.IsSorted(n) || !slices.Contains(n, "malloc") || !slices.Contains(n, "mallopt") {
		t.Errorf("Match mallo* = %v", n)
	}
	for _, s := range ms {
		if !strings.HasPrefix(s.Name, "mallo") || s.Offset == 0 {
			t.Errorf("Match mallo*: %+v", s)
		}
	}
}

func TestWildcard(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"*", "anything", true},
		{"**", "x", true},
		{"read", "read", true},
		{"read", "readline", false},
		{"read", "xread", false},
		{"read*", "read", true},
		{"read*", "readline", true},
		{"read*", "xread", false},
		{"*line", "readline", true},
		{"*line", "readline_x", false},
		{"*line*", "readline_x", true},
		{"*line*char", "readline_internal_char", true},
		{"r*d*e", "readline", true},
		{"re**ne", "readline", true},
		{"a*b", "ab", true},
		{"a*b", "axb", true},
		// bpftrace's matcher finds each piece leftmost and then wants the
		// end: "abab" is not matched by "a*b", "a*b*" matches it.
		{"a*b", "abab", false},
		{"a*b*", "abab", true},
		{"*b", "abab", false},
		{"*e", "readline", false},
		{"*e", "dispose", true},
		{"malloc", "malloc@@GLIBC_2.2.5", false},
		{"malloc*", "malloc@@GLIBC_2.2.5", true},
	}
	for _, tc := range tests {
		if got := newWildcard(tc.pattern).match(tc.name); got != tc.want {
			t.Errorf("match(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
	if newWildcard("*").listed("foo.part.0") {
		t.Error(".part. function listed")
	}
}

func TestFindBinary(t *testing.T) {
	want, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("skipping: no bash on PATH")
	}
	if got, err := FindBinary("bash"); err != nil || got != want {
		t.Errorf("FindBinary(bash) = %q, %v; exec.LookPath gives %q", got, err, want)
	}

	// $PATH order, passing over what bpftrace passes over.
	needGCC(t)
	root := t.TempDir()
	dirs := map[string]string{}
	for _, d := range []string{"script", "noexec", "elf", "later"} {
		dirs[d] = filepath.Join(root, d)
		if err := os.Mkdir(dirs[d], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := buildC(t, dirs["elf"], "prog")
	if err := os.WriteFile(filepath.Join(dirs["script"], "prog"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	// A PIE executable is ET_DYN: bpftrace takes it even when it is not
	// executable; an ET_EXEC one it does not.
	nopie := buildC(t, dirs["later"], "nopie", "-no-pie")
	ndata, _ := os.ReadFile(nopie)
	os.WriteFile(filepath.Join(dirs["noexec"], "nopie"), ndata, 0o644)
	os.WriteFile(filepath.Join(dirs["later"], "prog"), data, 0o755)
	os.Mkdir(filepath.Join(dirs["script"], "adir"), 0o755)
	os.WriteFile(filepath.Join(dirs["noexec"], "pie"), data, 0o644)
	t.Setenv("PATH", strings.Join([]string{"", "relative", dirs["script"], dirs["noexec"], dirs["elf"], dirs["later"]}, ":"))

	tests := []struct {
		target, want, err string
	}{
		{"prog", filepath.Join(dirs["elf"], "prog"), ""},
		{"nopie", filepath.Join(dirs["later"], "nopie"), ""},
		{"pie", filepath.Join(dirs["noexec"], "pie"), ""},
		{bin, bin, ""},
		{"./" + filepath.Base(bin), "./prog", ""}, // relative, with a '/': as is
		{"nosuch", "", `uprobe target file "nosuch" not found in $PATH or the loader's cache`},
		{"adir", "", `uprobe target file "adir" not found in $PATH`},
		{filepath.Join(root, "nosuch"), "", "does not exist"},
		{dirs["elf"], "", "is not a regular file (a directory)"},
		{"", "", "empty"},
		{"/usr/lib/*/libc.so.6", "", "wildcards"},
	}
	t.Chdir(dirs["elf"])
	for _, tc := range tests {
		got, err := FindBinary(tc.target)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("FindBinary(%q) = %q, %v; want %q", tc.target, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("FindBinary(%q) = %q, %v; want error containing %q", tc.target, got, err, tc.err)
		}
	}
	for target, want := range map[string]string{
		"nosuch":                      `uprobe target file "nosuch" not found in $PATH or the loader's cache`,
		filepath.Join(root, "nosuch"): fmt.Sprintf("uprobe target file %q does not exist", filepath.Join(root, "nosuch")),
	} {
		if _, err := FindBinary(target); !errors.Is(err, fs.ErrNotExist) || err.Error() != want {
			t.Errorf("FindBinary(%q): %v; want %q, fs.ErrNotExist", target, err, want)
		}
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	bin := buildC(t, dir, "prog")
	text := filepath.Join(dir, "text")
	os.WriteFile(text, []byte("#!/bin/sh\necho not an ELF file\n"), 0o755)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	trunc := filepath.Join(dir, "trunc")
	data, _ := os.ReadFile(bin)
	os.WriteFile(trunc, data[:100], 0o644)

	var stripped string
	if out, err := exec.Command("gcc", "-static", "-s", "-O0", "-o", filepath.Join(dir, "static"), filepath.Join(dir, "prog.c")).CombinedOutput(); err == nil {
		stripped = filepath.Join(dir, "static")
	} else {
		t.Logf("no static stripped case: gcc -static: %v\n%s", err, out)
	}

	tests := []struct {
		name, path, pattern, want string
	}{
		{"missing file", filepath.Join(dir, "nosuch"), "main", "no such file or directory"},
		{"directory", dir, "main", dir + ": not a regular file (a directory)"},
		{"not ELF", text, "main", text + ": not an ELF file"},
		{"empty file", empty, "main", empty + ": not an ELF file"},
		{"truncated", trunc, "main", trunc + ": malformed ELF file"},
		{"missing symbol", bin, "nosuch", "Could not resolve symbol: " + bin + ":nosuch"},
		{"prefix is not a match", bin, "add_on", "Could not resolve symbol: " + bin + ":add_on"},
		{"empty pattern", bin, "", bin + ": empty function name"},
		{"stripped", stripped, "main", "no symbols: " + stripped + " is stripped"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.path == "" {
				t.Skip("skipping: static linking does not work here")
			}
			syms, err := Match(tc.path, tc.pattern)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Match(%s, %q) = %v, %v; want error containing %q", tc.path, tc.pattern, names(syms), err, tc.want)
			}
			if tc.name == "missing symbol" && err.Error() != tc.want {
				t.Errorf("error %q, want exactly %q", err, tc.want)
			}
		})
	}
	if _, err := Functions(filepath.Join(dir, "nosuch")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file does not wrap fs.ErrNotExist: %v", err)
	}
	if _, err := AddressOffset(bin, 0x7fff_0000_0000); err == nil || !strings.Contains(err.Error(), "not in a loadable segment") {
		t.Errorf("AddressOffset outside the file: %v", err)
	}
	if _, err := AddressOffset(text, 0x1000); err == nil || !strings.Contains(err.Error(), "not an ELF file") {
		t.Errorf("AddressOffset of a text file: %v", err)
	}
	// A wildcard matching nothing is no error.
	if syms, err := Match(bin, "nosuch*"); err != nil || len(syms) != 0 {
		t.Errorf("Match nosuch* = %v, %v", syms, err)
	}
	// Listing a stripped file prints nothing, as bpftrace does.
	if stripped != "" {
		var b bytes.Buffer
		if err := List(&b, stripped, "*"); err != nil || b.Len() != 0 {
			t.Errorf("List stripped = %q, %v", b.String(), err)
		}
	}
	var b bytes.Buffer
	if err := List(&b, text, "*"); err == nil || !strings.Contains(err.Error(), "not an ELF file") {
		t.Errorf("List of a text file: %v", err)
	}
}

// TestDebugFile: a stripped binary whose static function is only in its
// separate debug file, found by .gnu_debuglink (with a CRC check) or by
// build ID, lists it with the offset of the original binary.
func TestDebugFile(t *testing.T) {
	for _, tool := range []string{"objcopy", "strip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s is not installed", tool)
		}
	}
	dir := t.TempDir()
	full := buildC(t, dir, "full", "-Wl,--build-id")
	want, err := Functions(full)
	if err != nil {
		t.Fatal(err)
	}
	wantTwice, ok := find(want, "twice")
	if !ok {
		t.Fatal("no twice in the unstripped binary")
	}

	// bin (stripped) + bin.debug next to it, linked.
	// No build-ID lookup may find it: the debug root is an empty dir.
	bin, dbg := splitDebug(t, dir, full)

	check := func(t *testing.T, wantFound bool) {
		t.Helper()
		syms, err := Functions(bin)
		var stripped *strippedError
		if !wantFound && errors.As(err, &stripped) {
			return // a PIE exports nothing: no symbols at all without the debug file
		}
		if err != nil {
			t.Fatal(err)
		}
		s, ok := find(syms, "twice")
		if ok != wantFound {
			t.Fatalf("twice listed: %v, want %v (%v)", ok, wantFound, names(syms))
		}
		if ok && s != wantTwice {
			t.Errorf("twice = %+v, unstripped binary gives %+v", s, wantTwice)
		}
		if !ok {
			return
		}
		if !slices.Equal(names(syms), names(want)) {
			t.Errorf("stripped + debug file lists %v, unstripped %v", names(syms), names(want))
		}
	}
	t.Run("stripped alone", func(t *testing.T) {
		os.Rename(dbg, dbg+".away")
		defer os.Rename(dbg+".away", dbg)
		check(t, false)
	})
	t.Run("debuglink next to the binary", func(t *testing.T) { check(t, true) })
	t.Run("debuglink in .debug", func(t *testing.T) {
		os.Mkdir(filepath.Join(dir, ".debug"), 0o755)
		os.Rename(dbg, filepath.Join(dir, ".debug", "bin.debug"))
		defer os.Rename(filepath.Join(dir, ".debug", "bin.debug"), dbg)
		check(t, true)
	})
	t.Run("debuglink CRC mismatch", func(t *testing.T) {
		orig, _ := os.ReadFile(dbg)
		defer os.WriteFile(dbg, orig, 0o644)
		os.WriteFile(dbg, append(slices.Clone(orig), 0), 0o644)
		check(t, false)
	})
	t.Run("build id", func(t *testing.T) {
		p := buildIDPath(t, bin)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.Rename(dbg, p)
		defer os.Rename(p, dbg)
		check(t, true)
	})
}

func TestSynthetic(t *testing.T) {
	progs := []testProg{
		{typ: elf.PT_LOAD, flags: elf.PF_R, off: 0, vaddr: 0, filesz: 0x1000, memsz: 0x1000},
		// Code: file 0x1000-0x2000 at 0x401000.
		{typ: elf.PT_LOAD, flags: elf.PF_R | elf.PF_X, off: 0x1000, vaddr: 0x401000, filesz: 0x1000, memsz: 0x1000},
		// Data: file 0x1800-0x1c00 at 0x602800, then 0x400 of bss.
		{typ: elf.PT_LOAD, flags: elf.PF_R | elf.PF_W, off: 0x1800, vaddr: 0x602800, filesz: 0x400, memsz: 0x800},
	}
	dyn := []testSym{
		{name: "dup", typ: elf.STT_FUNC, bind: elf.STB_GLOBAL, shndx: 1, value: 0x401030, size: 8},
		{name: "imported", typ: elf.STT_FUNC, bind: elf.STB_GLOBAL, shndx: elf.SHN_UNDEF, value: 0x401040}, // canonical PLT entry
		{name: "undef0", typ: elf.STT_FUNC, bind: elf.STB_GLOBAL, shndx: elf.SHN_UNDEF},
	}
	sym := []testSym{
		{name: "f", typ: elf.STT_FUNC, bind: elf.STB_GLOBAL, shndx: 1, value: 0x401010, size: 16},
		{name: "dup", typ: elf.STT_FUNC, bind: elf.STB_LOCAL, shndx: 1, value: 0x401050, size: 8},
		{name: "dup", typ: elf.STT_FUNC, bind: elf.STB_LOCAL, shndx: 1, value: 0x401060, size: 8},
		{name: "ifn", typ: elf.STT_GNU_IFUNC, bind: elf.STB_GLOBAL, shndx: 1, value: 0x401070, size: 4},
		{name: "obj", typ: elf.STT_OBJECT, bind: elf.STB_GLOBAL, shndx: 1, value: 0x602800, size: 4},
		{name: "zero", typ: elf.STT_FUNC, bind: elf.STB_GLOBAL, shndx: 1, size: 4},
		{name: "", typ: elf.STT_FUNC, bind: elf.STB_LOCAL, shndx: 1, value: 0x401080},
		{name: "badname", typ: elf.STT_FUNC, bind: elf.STB_LOCAL, shndx: 1, value: 0x401090, nameOff: 0xffff},
		{name: "g.part.0", typ: elf.STT_FUNC, bind: elf.STB_LOCAL, shndx: 1, value: 0x4010a0, size: 4},
		{name: "indata", typ: elf.STT_FUNC, bind: elf.STB_LOCAL, shndx: 1, value: 0x602900, size: 4},
		{name: "inbss", typ: elf.STT_FUNC, bind: elf.STB_LOCAL, shndx: 1, value: 0x602d00, size: 4},
		{name: "nowhere", typ: elf.STT_FUNC, bind: elf.STB_LOCAL, shndx: 1, value: 0x900000, size: 4},
	}
	want := []Symbol{
		{"dup", 0x401030, 8, 0x1030}, // .dynsym comes first in section order
		{"f", 0x401010, 16, 0x1010},
		{"g.part.0", 0x4010a0, 4, 0x10a0},
		{"ifn", 0x401070, 4, 0x1070},
		{"imported", 0x401040, 0, 0x1040},
		{"inbss", 0x602d00, 4, 0},       // bss: no file contents
		{"indata", 0x602900, 4, 0x1900}, // through the non-executable segment
		{"nowhere", 0x900000, 4, 0},
	}
	tests := []struct {
		name  string
		class elf.Class
		order binary.ByteOrder
	}{
		{"64-bit little-endian", elf.ELFCLASS64, binary.LittleEndian},
		{"64-bit big-endian", elf.ELFCLASS64, binary.BigEndian},
		{"32-bit little-endian", elf.ELFCLASS32, binary.LittleEndian},
		{"32-bit big-endian", elf.ELFCLASS32, binary.BigEndian},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := testELF{class: tc.class, order: tc.order, typ: elf.ET_EXEC, progs: progs, dynsym: dyn, symtab: sym}.bytes()
			got, err := functionsFrom(bytes.NewReader(img), int64(len(img)))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("functions:\n got %+v\nwant %+v", got, want)
			}
			path := filepath.Join(t.TempDir(), "img")
			if err := os.WriteFile(path, img, 0o755); err != nil {
				t.Fatal(err)
			}
			ms, err := Match(path, "*")
			if err != nil {
				t.Fatal(err)
			}
			// No .part., nothing without a file offset.
			if n := names(ms); !slices.Equal(n, []string{"dup", "f", "ifn", "imported", "indata"}) {
				t.Errorf("Match * = %v", n)
			}
			for _, p := range []string{"nowhere", "inbss", "g.part.0", "obj", "zero"} {
				if _, err := Match(path, p); err == nil || err.Error() != "Could not resolve symbol: "+path+":"+p {
					t.Errorf("Match %s: %v", p, err)
				}
			}
			var b bytes.Buffer
			if err := List(&b, path, ""); err != nil {
				t.Fatal(err)
			}
			wantList := ""
			for _, n := range []string{"dup", "f", "ifn", "imported", "inbss", "indata", "nowhere"} {
				wantList += "uprobe:" + path + ":" + n + "\n"
			}
			if b.String() != wantList {
				t.Errorf("List:\n%s\nwant:\n%s", b.String(), wantList)
			}
			for _, c := range []struct{ addr, off uint64 }{{0x401000, 0x1000}, {0x401fff, 0x1fff}, {0x602800, 0x1800}, {0x500, 0x500}} {
				if off, err := AddressOffset(path, c.addr); err != nil || off != c.off {
					t.Errorf("AddressOffset(0x%x) = 0x%x, %v; want 0x%x", c.addr, off, err, c.off)
				}
			}
			for _, addr := range []uint64{0x402000, 0x602c00, 0x900000} {
				if off, err := AddressOffset(path, addr); err == nil {
					t.Errorf("AddressOffset(0x%x) = 0x%x, want an error", addr, off)
				}
			}
		})
	}

	t.Run("no symbols", func(t *testing.T) {
		img := testELF{class: elf.ELFCLASS64, progs: progs, dynsym: dyn[2:]}.bytes()
		if syms, err := functionsFrom(bytes.NewReader(img), int64(len(img))); err == nil || !strings.Contains(err.Error(), "stripped") {
			t.Errorf("functions = %v, %v; want the stripped error", syms, err)
		}
	})
	t.Run("malformed symbol table", func(t *testing.T) {
		img := testELF{class: elf.ELFCLASS64, progs: progs, symtab: sym, symtabPad: 5}.bytes()
		if syms, err := functionsFrom(bytes.NewReader(img), int64(len(img))); err == nil || !errors.Is(err, errMalformed) {
			t.Errorf("functions = %v, %v; want a malformed error", syms, err)
		}
	})
	t.Run("debuglink", func(t *testing.T) {
		dir := t.TempDir()
		dbg := testELF{class: elf.ELFCLASS64, progs: progs, symtab: []testSym{
			{name: "static_fn", typ: elf.STT_FUNC, shndx: 1, value: 0x401200, size: 4},
			{name: "f", typ: elf.STT_FUNC, shndx: 1, value: 0x401300, size: 4}, // the binary's own f wins
		}}.bytes()
		os.WriteFile(filepath.Join(dir, "img.dbg"), dbg, 0o644)
		link := []byte("img.dbg\x00\x00\x00\x00\x00")
		binary.LittleEndian.PutUint32(link[len(link)-4:], crc32.ChecksumIEEE(dbg))
		img := testELF{class: elf.ELFCLASS64, progs: progs, symtab: sym[:1],
			extra: []testSection{{".gnu_debuglink", elf.SHT_PROGBITS, link}}}.bytes()
		path := filepath.Join(dir, "img")
		os.WriteFile(path, img, 0o755)
		got, err := Functions(path)
		if err != nil {
			t.Fatal(err)
		}
		want := []Symbol{{"f", 0x401010, 16, 0x1010}, {"static_fn", 0x401200, 4, 0x1200}}
		if !slices.Equal(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
}

// requireBpftrace017 returns the reference bpftrace, or skips.
func requireBpftrace017(t *testing.T) string {
	t.Helper()
	bt := kerneltest.Bpftrace017(t)
	if os.Geteuid() != 0 {
		t.Skip("skipping: bpftrace -l needs root")
	}
	return bt
}

// TestListBpftrace compares List with `bpftrace -l` byte for byte.
func TestListBpftrace(t *testing.T) {
	bt := requireBpftrace017(t)
	dir := t.TempDir()
	nopie := buildC(t, dir, "nopie", "-no-pie")
	// A non-PIE program taking an imported function's address: its
	// canonical PLT entry is an undefined symbol with a value, which
	// bpftrace lists (twice: .dynsym's "puts", .symtab's versioned name).
	plt := filepath.Join(dir, "plt")
	src := filepath.Join(dir, "plt.c")
	os.WriteFile(src, []byte("#include <stdio.h>\nint main(void) { int (*volatile p)(const char *) = puts; p(\"x\"); return 0; }\n"), 0o644)
	if out, err := exec.Command("gcc", "-O2", "-no-pie", "-fno-pic", "-o", plt, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	libc := "/lib/x86_64-linux-gnu/libc.so.6"
	tests := []struct{ path, pattern string }{
		{"/bin/bash", "read*"},
		{"/bin/bash", "*"},
		{"/bin/bash", "readline"},
		{"/bin/bash", "nosuch"},
		{"/bin/bash", "*line*char"},
		{"/bin/bash", "r*d*e"},
		// The leftmost-piece quirk: names whose first "e" is not their
		// last character do not match "*e" (91 of bash's 322 names ending
		// in "e" do).
		{"/bin/bash", "*e"},
		{"/bin/bash", "_rl*e"},
		{"bash", "read*"},
		{libc, "mallo*"},
		{libc, "*"},
		{libc, "_IO_f*"}, // versioned names from the debug file's .symtab
		{nopie, "*"},
		{plt, "*"},
	}
	for _, tc := range tests {
		t.Run(tc.path+":"+tc.pattern, func(t *testing.T) {
			if _, err := os.Stat(tc.path); tc.path != "bash" && err != nil {
				t.Skipf("skipping: %v", err)
			}
			want, err := exec.Command(bt, "-l", "uprobe:"+tc.path+":"+tc.pattern).Output()
			if err != nil {
				t.Fatalf("bpftrace -l: %v", err)
			}
			var got bytes.Buffer
			if err := List(&got, tc.path, tc.pattern); err != nil {
				t.Fatal(err)
			}
			if got.String() != string(want) {
				g, w := strings.Split(got.String(), "\n"), strings.Split(string(want), "\n")
				for _, l := range w {
					if !slices.Contains(g, l) {
						t.Errorf("bpftrace lists, List does not: %s", l)
					}
				}
				for _, l := range g {
					if !slices.Contains(w, l) {
						t.Errorf("List lists, bpftrace does not: %s", l)
					}
				}
				t.Fatalf("List: %d lines, bpftrace: %d", len(g), len(w))
			}
			if len(want) == 0 && tc.pattern != "nosuch" {
				t.Errorf("bpftrace lists nothing for %s:%s", tc.path, tc.pattern)
			}
		})
	}
}

func TestReadPMU(t *testing.T) {
	tests := []struct {
		typ, retprobe string
		wantTyp       uint32
		wantBit       uint
		err           string
	}{
		{"8\n", "config:0\n", 8, 0, ""},
		{"42", "config:63", 42, 63, ""},
		{"x", "config:0", 0, 0, "uprobe PMU type"},
		{"8", "config:64", 0, 0, "is not config:BIT"},
		{"8", "config1:0", 0, 0, "is not config:BIT"},
		{"8", "", 0, 0, "is not config:BIT"},
		{"", "-", 0, 0, "not available"},
	}
	for i, tc := range tests {
		dir := filepath.Join(t.TempDir(), fmt.Sprint(i))
		os.MkdirAll(filepath.Join(dir, "format"), 0o755)
		if tc.typ != "" {
			os.WriteFile(filepath.Join(dir, "type"), []byte(tc.typ), 0o644)
		}
		if tc.retprobe != "-" {
			os.WriteFile(filepath.Join(dir, "format", "retprobe"), []byte(tc.retprobe), 0o644)
		}
		typ, bit, err := readPMU(dir)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%d: readPMU = %d, %d, %v; want error containing %q", i, typ, bit, err, tc.err)
			}
			continue
		}
		if err != nil || typ != tc.wantTyp || bit != tc.wantBit {
			t.Errorf("%d: readPMU = %d, %d, %v; want %d, %d", i, typ, bit, err, tc.wantTyp, tc.wantBit)
		}
	}
}

func FuzzFunctions(f *testing.F) {
	// Small seeds: the fuzzer mutates and minimizes them byte by byte.
	progs := []testProg{{typ: elf.PT_LOAD, flags: elf.PF_R | elf.PF_X, off: 0x100, vaddr: 0x1100, filesz: 0x20, memsz: 0x20}}
	syms := []testSym{
		{name: "f", typ: elf.STT_FUNC, shndx: 1, value: 0x1100, size: 4},
		{name: "g", typ: elf.STT_GNU_IFUNC, shndx: 1, value: 0x1110, size: 4},
	}
	f.Add(testELF{class: elf.ELFCLASS64, progs: progs, dynsym: syms, symtab: syms, codeOff: 0x100, codeSize: 0x20}.bytes())
	f.Add(testELF{class: elf.ELFCLASS32, order: binary.BigEndian, progs: progs, symtab: syms, codeOff: 0x100, codeSize: 0x20}.bytes())
	f.Add([]byte("\x7fELF"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		syms, err := functionsFrom(r, r.Size())
		if ef, err := elfsym.NewFile(r); err == nil {
			elfdebug.BuildID(ef)
			elfdebug.DebugLink(ef)
		}
		if err != nil {
			return
		}
		for i, s := range syms {
			if s.Name == "" || s.Addr == 0 {
				t.Fatalf("symbol without a name or value: %+v", s)
			}
			if i > 0 && syms[i-1].Name >= s.Name {
				t.Fatalf("not sorted and unique: %q, %q", syms[i-1].Name, s.Name)
			}
		}
	})
}
