package symbols

import (
	"bufio"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/internal/elfdebug"
)

// userProgram prints the addresses of add_one, outer, twice (static: in
// .symtab only) and libc's getpid, then blocks reading stdin; each line it
// reads is a shared library to dlopen, and it answers with the address of
// the library's lib_fn. With -DPAD, a 4 KiB function comes first, so that
// the others move.
const userProgram = `#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#ifdef PAD
__attribute__((noinline)) void pad(void) { __asm__ volatile(".skip 4096"); }
#endif
__attribute__((noinline)) int add_one(int x) { __asm__ volatile(""); return x + 1; }
__attribute__((noinline)) int outer(int x) { __asm__ volatile(""); return add_one(x) * 2; }
static __attribute__((noinline)) int twice(int x) { __asm__ volatile(""); return 2 * x; }

int main(void) {
	char line[4096];
	printf("%p %p %p %p\n", (void *)add_one, (void *)outer, (void *)twice, dlsym(RTLD_DEFAULT, "getpid"));
	fflush(stdout);
	while (fgets(line, sizeof line, stdin)) {
		line[strcspn(line, "\n")] = 0;
		void *h = dlopen(line, RTLD_NOW);
		printf("%p\n", h ? dlsym(h, "lib_fn") : NULL);
		fflush(stdout);
	}
	return twice(outer(0)) == 0;
}
`

const libProgram = `__attribute__((noinline)) int lib_fn(int x) { __asm__ volatile(""); return x * 3; }
`

// build compiles src with gcc into dir/name (its real path is returned, as
// /proc/PID/maps shows it).
func build(t testing.TB, dir, name, src string, flags ...string) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("skipping: gcc is not installed")
	}
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := filepath.Join(dir, name+".c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	args := append([]string{"-O0", "-o", out, c}, flags...)
	if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

type testProc struct {
	pid   int
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	addrs map[string]uint64 // what the program printed
}

// start runs a userProgram binary and waits for it to print its addresses
// (by then libc is mapped). The process is ended with the test.
func start(t testing.TB, bin string) *testProc {
	t.Helper()
	cmd := exec.Command(bin)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &testProc{pid: cmd.Process.Pid, cmd: cmd, in: in, out: bufio.NewReader(out)}
	t.Cleanup(p.stop)
	f := strings.Fields(p.readLine(t))
	if len(f) != 4 {
		t.Fatalf("%s printed %q", bin, f)
	}
	p.addrs = map[string]uint64{}
	for i, name := range []string{"add_one", "outer", "twice", "getpid"} {
		p.addrs[name] = parsePointer(t, f[i])
	}
	return p
}

func (p *testProc) readLine(t testing.TB) string {
	t.Helper()
	line, err := p.out.ReadString('\n')
	if err != nil {
		t.Fatalf("reading from pid %d: %v", p.pid, err)
	}
	return strings.TrimSuffix(line, "\n")
}

// dlopen has the process load lib and returns the address of its lib_fn.
func (p *testProc) dlopen(t testing.TB, lib string) uint64 {
	t.Helper()
	if _, err := fmt.Fprintln(p.in, lib); err != nil {
		t.Fatal(err)
	}
	return parsePointer(t, p.readLine(t))
}

// stop ends the process (it exits at the end of its input) and reaps it.
func (p *testProc) stop() {
	p.in.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

func parsePointer(t testing.TB, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	if err != nil || v == 0 {
		t.Fatalf("bad pointer %q", s)
	}
	return v
}

// elfSym is the value and size of the function name in the ELF file path,
// from .symtab, else .dynsym.
func elfSym(t testing.TB, path, name string) (value, size uint64) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, _ := f.Symbols()
	dyn, _ := f.DynamicSymbols()
	for _, s := range append(syms, dyn...) {
		if s.Name == name && elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 {
			return s.Value, s.Size
		}
	}
	t.Fatalf("%s: no function %s", path, name)
	return 0, 0
}

// loadedAddr is where the function name of the file path is in process
// pid: its st_value turned into a file offset by the file's PT_LOAD
// headers, then into an address by the mapping of that offset in
// /proc/PID/maps.
func loadedAddr(t testing.TB, pid int, path, name string) uint64 {
	t.Helper()
	value, _ := elfSym(t, path, name)
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var off uint64
	found := false
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && value >= p.Vaddr && value < p.Vaddr+p.Filesz {
			off, found = value-p.Vaddr+p.Off, true
			break
		}
	}
	if !found {
		t.Fatalf("%s: %s at %#x is in no PT_LOAD", path, name, value)
	}
	for _, l := range mapsLines(t, pid) {
		if l.path == path && off >= l.off && off-l.off < l.end-l.start {
			return l.start + off - l.off
		}
	}
	t.Fatalf("pid %d: offset %#x of %s is not mapped", pid, off, path)
	return 0
}

type mapsLine struct {
	start, end, off uint64
	perm, path      string
}

func mapsLines(t testing.TB, pid int) []mapsLine {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []mapsLine
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		var l mapsLine
		fmt.Sscanf(f[0], "%x-%x", &l.start, &l.end)
		fmt.Sscanf(f[2], "%x", &l.off)
		l.perm = f[1]
		if len(f) > 5 {
			l.path = strings.Join(f[5:], " ")
		}
		out = append(out, l)
	}
	return out
}

func mappedPath(t testing.TB, pid int, suffix string) string {
	t.Helper()
	for _, l := range mapsLines(t, pid) {
		if strings.HasSuffix(l.path, suffix) {
			return l.path
		}
	}
	t.Fatalf("pid %d maps no %s", pid, suffix)
	return ""
}

func TestUserResolve(t *testing.T) {
	for _, mode := range []struct {
		name  string
		flags []string
		typ   elf.Type
	}{
		{"pie", []string{"-pie", "-fPIE"}, elf.ET_DYN},
		{"no-pie", []string{"-no-pie", "-fno-PIE"}, elf.ET_EXEC},
	} {
		t.Run(mode.name, func(t *testing.T) {
			bin := build(t, t.TempDir(), "prog", userProgram, append(mode.flags, "-ldl")...)
			if f, err := elf.Open(bin); err != nil || f.Type != mode.typ {
				t.Fatalf("%s: not %v (%v)", bin, mode.typ, err)
			}
			p := start(t, bin)
			// The addresses computed from the ELF file and the maps are
			// the ones the program sees.
			for _, fn := range []string{"add_one", "outer", "twice"} {
				if got := loadedAddr(t, p.pid, bin, fn); got != p.addrs[fn] {
					t.Fatalf("%s: computed %#x, program says %#x", fn, got, p.addrs[fn])
				}
			}
			libc := mappedPath(t, p.pid, "/libc.so.6")
			getpid := loadedAddr(t, p.pid, libc, "getpid")
			if getpid != p.addrs["getpid"] {
				t.Fatalf("getpid: computed %#x, dlsym says %#x", getpid, p.addrs["getpid"])
			}
			_, outerSize := elfSym(t, bin, "outer")

			u := NewUser()
			for _, tc := range []struct {
				addr uint64
				want Symbol
			}{
				{p.addrs["add_one"], Symbol{"add_one", 0, bin}},
				{p.addrs["add_one"] + 2, Symbol{"add_one", 2, bin}},
				{p.addrs["outer"] + outerSize - 1, Symbol{"outer", outerSize - 1, bin}},
				{p.addrs["twice"] + 1, Symbol{"twice", 1, bin}},
			} {
				if got, ok := u.Resolve(p.pid, tc.addr); !ok || got != tc.want {
					t.Errorf("Resolve(%#x) = %+v, %v; want %+v", tc.addr, got, ok, tc.want)
				}
			}
			// getpid has aliases in libc (and its debug file): any of
			// them may be the one bcc's sort leaves.
			aliases := libcAliases(t, libc, mustValue(t, libc, "getpid"))
			for _, off := range []uint64{0, 3} {
				got, ok := u.Resolve(p.pid, getpid+off)
				if !ok || got.Offset != off || got.Module != libc || !slices.Contains(aliases, got.Name) {
					t.Errorf("Resolve(getpid+%d) = %+v, %v; want one of %q+%d in %s", off, got, ok, aliases, off, libc)
				}
			}
			// Nothing resolves outside executable file mappings.
			for _, l := range mapsLines(t, p.pid) {
				if l.path == "[stack]" || l.path == "[vdso]" || l.path == "[heap]" || l.perm == "rw-p" && l.path == bin {
					if got, ok := u.Resolve(p.pid, l.start+8); ok {
						t.Errorf("Resolve(%s+8) = %+v", l.path, got)
					}
				}
			}
			if got, ok := u.Resolve(p.pid, 1); ok {
				t.Errorf("Resolve(1) = %+v", got)
			}
		})
	}
}

func mustValue(t testing.TB, path, name string) uint64 {
	v, _ := elfSym(t, path, name)
	return v
}

// libcAliases are the names of the symbols at value in libc and in its
// debug file.
func libcAliases(t testing.TB, libc string, value uint64) []string {
	t.Helper()
	f, err := elf.Open(libc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	syms, _ := f.DynamicSymbols()
	if dbg := elfdebug.File(debugRoot, libc, f); dbg != "" {
		if d, err := elf.Open(dbg); err == nil {
			ds, _ := d.Symbols()
			syms = append(syms, ds...)
			d.Close()
		}
	}
	for _, s := range syms {
		if s.Value == value && s.Name != "" {
			names = append(names, s.Name)
		}
	}
	return names
}

func TestUserFormat(t *testing.T) {
	bin := build(t, t.TempDir(), "prog", userProgram, "-ldl")
	p := start(t, bin)
	u := NewUser()
	a := p.addrs["add_one"]
	for _, tc := range []struct{ got, want string }{
		{u.Name(p.pid, a+2), "add_one"},
		{u.Name(p.pid, 0x1000), "0x1000"},
		{u.Frame(p.pid, a+2, false), "add_one+2"},
		{u.Frame(p.pid, a+2, true), fmt.Sprintf("%x add_one+2 (%s)", a+2, bin)},
		{u.Frame(p.pid, 0x1000, false), "0x1000"},
		{u.Frame(p.pid, 0x1000, true), "1000 0x1000 ([unknown])"},
		{u.Stack(p.pid, []uint64{a + 2, p.addrs["outer"] + 1, 0x1000, 0, a}, false, 4),
			"\n    add_one+2\n    outer+1\n    0x1000\n"},
		{u.Stack(p.pid, []uint64{a, 0x1000}, true, 4),
			fmt.Sprintf("\n\t%x add_one+0 (%s)\n\t1000 0x1000 ([unknown])\n", a, bin)},
		{u.Stack(-1, []uint64{a}, false, 0), fmt.Sprintf("\n%#x\n", a)},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestUserExited checks that a process that was never alive does not
// resolve, and that one resolved once still does after it exits.
func TestUserExited(t *testing.T) {
	u := NewUser()
	max, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	never, err := strconv.Atoi(strings.TrimSpace(string(max)))
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{never + 1, 0, -1} {
		if got, ok := u.Resolve(pid, 0x401000); ok {
			t.Errorf("Resolve(pid %d) = %+v", pid, got)
		}
		if got := u.Name(pid, 0x401000); got != "0x401000" {
			t.Errorf("Name(pid %d) = %q", pid, got)
		}
	}

	bin := build(t, t.TempDir(), "prog", userProgram, "-ldl")
	p := start(t, bin)
	a := p.addrs["add_one"] + 1
	if got, ok := u.Resolve(p.pid, a); !ok || got.Name != "add_one" {
		t.Fatalf("Resolve(add_one+1) = %+v, %v", got, ok)
	}
	p.stop()
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", p.pid)); err == nil {
		t.Fatalf("pid %d is still there", p.pid)
	}
	for _, addr := range []uint64{a, p.addrs["outer"]} {
		if got, ok := u.Resolve(p.pid, addr); !ok || got.Module != bin {
			t.Errorf("after exit: Resolve(%#x) = %+v, %v", addr, got, ok)
		}
	}
	if got, ok := NewUser().Resolve(p.pid, a); ok {
		t.Errorf("after exit, uncached: Resolve = %+v", got)
	}
}

// TestUserRebuilt checks that a binary rebuilt at the same path is read
// again: its add_one is elsewhere.
func TestUserRebuilt(t *testing.T) {
	dir := t.TempDir()
	u := NewUser()
	var last uint64
	for _, flags := range [][]string{{"-DPAD"}, nil} {
		bin := build(t, dir, "prog", userProgram, append(flags, "-ldl")...)
		v, _ := elfSym(t, bin, "add_one")
		if v == last {
			t.Fatalf("add_one is at %#x in both builds", v)
		}
		last = v
		p := start(t, bin)
		if got, ok := u.Resolve(p.pid, p.addrs["add_one"]); !ok || got != (Symbol{"add_one", 0, bin}) {
			t.Errorf("%v: Resolve(add_one) = %+v, %v", flags, got, ok)
		}
		p.stop()
	}
}

// TestUserDebugLink resolves a static function of a stripped binary
// through its .gnu_debuglink file, which must match the link's CRC.
func TestUserDebugLink(t *testing.T) {
	dir := t.TempDir()
	full := build(t, dir, "full", userProgram, "-ldl")
	dir = filepath.Dir(full)
	bin, dbg := filepath.Join(dir, "bin"), filepath.Join(dir, "bin.debug")
	for _, args := range [][]string{
		{"--only-keep-debug", full, dbg},
		{"--strip-all", "--add-gnu-debuglink=" + dbg, full, bin},
	} {
		if out, err := exec.Command("objcopy", args...).CombinedOutput(); err != nil {
			t.Skipf("skipping: objcopy %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// No build-ID look-up may find the debug file.
	old := debugRoot
	debugRoot = t.TempDir()
	t.Cleanup(func() { debugRoot = old })

	p := start(t, bin)
	twice := p.addrs["twice"] + 1
	if got, ok := NewUser().Resolve(p.pid, twice); !ok || got != (Symbol{"twice", 1, bin}) {
		t.Errorf("with debug file: Resolve(twice+1) = %+v, %v", got, ok)
	}
	// A debug file that does not match the CRC is not used.
	f, err := os.OpenFile(dbg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0})
	f.Close()
	if got, ok := NewUser().Resolve(p.pid, twice); ok {
		t.Errorf("with a corrupt debug file: Resolve(twice+1) = %+v", got)
	}
}

// TestUserPerfMap resolves JIT addresses through /tmp/perf-PID.map, read
// again when it grows.
func TestUserPerfMap(t *testing.T) {
	bin := build(t, t.TempDir(), "prog", userProgram, "-ldl")
	p := start(t, bin)
	path := fmt.Sprintf("/tmp/perf-%d.map", p.pid)
	write := func(s string) {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	write("1000 10 jit_a\n2000 8 LazyCompile: foo bar.js:1\ngarbage\n0 10 zero\n3000 nosize\n")
	t.Cleanup(func() { os.Remove(path) })

	u := NewUser()
	check := func(addr uint64, want Symbol, wantOK bool) {
		t.Helper()
		if got, ok := u.Resolve(p.pid, addr); ok != wantOK || got != want {
			t.Errorf("Resolve(%#x) = %+v, %v; want %+v, %v", addr, got, ok, want, wantOK)
		}
	}
	check(0x1004, Symbol{"jit_a", 4, path}, true)
	check(0x2007, Symbol{"LazyCompile: foo bar.js:1", 7, path}, true)
	check(0x2008, Symbol{}, false)
	check(0x5, Symbol{}, false)
	check(p.addrs["add_one"], Symbol{"add_one", 0, bin}, true)
	time.Sleep(10 * time.Millisecond) // a new mtime, whatever the clock's grain
	write("4000 4 later\n")
	check(0x4001, Symbol{"later", 1, path}, true)
}

// TestUserDlopen resolves an address in a library loaded after the
// process's mappings were read.
func TestUserDlopen(t *testing.T) {
	dir := t.TempDir()
	bin := build(t, dir, "prog", userProgram, "-ldl")
	lib := build(t, dir, "lib.so", libProgram, "-shared", "-fPIC")
	old := refreshInterval
	refreshInterval = 0
	t.Cleanup(func() { refreshInterval = old })

	p := start(t, bin)
	u := NewUser()
	if _, ok := u.Resolve(p.pid, p.addrs["add_one"]); !ok {
		t.Fatal("add_one does not resolve")
	}
	fn := p.dlopen(t, lib)
	if got, ok := u.Resolve(p.pid, fn+1); !ok || got != (Symbol{"lib_fn", 1, lib}) {
		t.Errorf("Resolve(lib_fn+1) = %+v, %v", got, ok)
	}
}

// TestFind checks bcc's walk over nested symbols.
func TestFind(t *testing.T) {
	syms := []usym{ // bcc's own example, in find_addr
		{0x0, 0x6, "goo"},
		{0x6, 0x10, "foo"},
		{0x8, 0x4, "bar"},
		{0x16, 0x10, "baz"},
	}
	labels := []usym{ // zero-size labels inside a function
		{0x10, 0x20, "fn"},
		{0x18, 0, "label1"},
		{0x1c, 0, "label2"},
	}
	for _, tc := range []struct {
		syms []usym
		off  uint64
		want string
	}{
		{syms, 0x12, "foo"},
		{syms, 0x9, "bar"},
		{syms, 0xc, "foo"},
		{syms, 0x5, "goo"},
		{syms, 0x16, "baz"},
		{syms, 0x25, "baz"},
		{syms, 0x26, ""},
		{labels, 0x11, "fn"},
		{labels, 0x19, "fn"},
		// Two labels back, the walk stops before reaching fn, as bcc's.
		{labels, 0x1d, ""},
		{labels, 0x40, ""},
		{labels, 0x5, ""},
		{nil, 0x5, ""},
	} {
		got := ""
		if s, ok := find(tc.syms, tc.off); ok {
			got = s.name
		}
		if got != tc.want {
			t.Errorf("find(%#x) = %q, want %q", tc.off, got, tc.want)
		}
	}
}

func TestParseMaps(t *testing.T) {
	const maps = `55ac4ddde000-55ac4dddf000 r--p 00000000 fe:00 9978036                    /tmp/bt/w
55ac4dddf000-55ac4dde0000 r-xp 00001000 fe:00 9978036                    /tmp/bt/w
55ac4fbe5000-55ac4fc06000 rw-p 00000000 00:00 0                          [heap]
7f45c03df000-7f45c03e2000 rw-p 00000000 00:00 0 
7f45c0408000-7f45c055e000 r-xp 00026000 fe:00 326269                     /usr/lib/x86_64-linux-gnu/libc.so.6
7f45c0500000-7f45c0501000 rwxp 00000000 00:00 0 
7f45c0600000-7f45c0601000 r-xp 00000000 00:01 77                         /memfd:jit (deleted)
7f45c0700000-7f45c0701000 r-xp 00002000 fe:00 12                         /opt/a b/lib.so (deleted)
7f45c05d5000-7f45c05d7000 r-xp 00000000 00:00 0                          [vdso]
7fff92570000-7fff92591000 rwxp 00000000 00:00 0                          [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
garbage
7f0000000000-7f0000001000 r-xp 00000000 fe:00 1 /after/garbage
`
	want := []mapping{
		{0x55ac4dddf000, 0x55ac4dde0000, 0x1000, 9978036, "/tmp/bt/w"},
		{0x7f45c0408000, 0x7f45c055e000, 0x26000, 326269, "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		{0x7f45c0600000, 0x7f45c0601000, 0, 77, "/memfd:jit (deleted)"},
		{0x7f45c0700000, 0x7f45c0701000, 0x2000, 12, "/opt/a b/lib.so (deleted)"},
		{0x7f45c05d5000, 0x7f45c05d7000, 0, 0, "[vdso]"},
	}
	if got := parseMaps(maps); !slices.Equal(got, want) {
		t.Errorf("parseMaps:\n got %+v\nwant %+v", got, want)
	}
}

// TestUserCaughtInExec: mappings read while a process was in execve —
// its new executable set, not yet mapped — are not kept as its own: the
// next look-up reads them again. (The -c child is watched from before
// its exec, and a record read in that window left every frame of a
// trace [unknown] for a second.) A whole record is kept.
func TestUserCaughtInExec(t *testing.T) {
	bin := build(t, t.TempDir(), "prog", userProgram, "-ldl")
	p := start(t, bin)
	defer p.stop()
	read, err := readProc(p.pid)
	if err != nil {
		t.Fatal(err)
	}
	if !read.whole {
		t.Fatalf("the mappings of a running process are not whole: %+v", read)
	}
	for _, tc := range []struct {
		name    string
		whole   bool
		partial int
		ok      bool
	}{
		{"caught_in_exec", false, 0, true},
		{"whole_record_kept", true, 0, false},
		{"partial_too_often_kept", false, maxPartialReads, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := NewUser()
			// What readProc returns in the window: the new executable,
			// none of its mappings; read a moment ago, within
			// refreshInterval.
			planted := &proc{pid: p.pid, exePath: read.exePath, exe: read.exe, whole: tc.whole, partial: tc.partial}
			planted.read.Store(time.Now().Add(-time.Millisecond).UnixNano())
			u.procs.put(p.pid, planted)
			if got, ok := u.Resolve(p.pid, p.addrs["add_one"]); ok != tc.ok || (ok && got.Name != "add_one") {
				t.Errorf("Resolve(add_one) = %+v, %v; want resolved: %v", got, ok, tc.ok)
			}
		})
	}
}
