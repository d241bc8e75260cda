package kerneltest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// CC builds the C program src with gcc into the executable name in a
// new temporary directory, removed when the test ends, and returns its
// path; the name is
// the process's comm, which tests print. flags are gcc's besides -o (-O0
// when none). what names the program in messages ("the uprobe
// workload"). The test is skipped when gcc is not installed, or when src
// includes <sys/sdt.h> and the machine lacks it (systemtap-sdt-dev).
func CC(t testing.TB, what, name, src string, flags ...string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skipf("%s is built with gcc, which is not installed", what)
	}
	// A short directory: uprobe probe names hold the path, and bpftrace
	// bounds a probe name.
	dir, err := os.MkdirTemp("", "tbcc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	file, bin := filepath.Join(dir, name+".c"), filepath.Join(dir, name)
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if len(flags) == 0 {
		flags = []string{"-O0"}
	}
	args := append(slices.Clone(flags), "-o", bin, file)
	if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		if strings.Contains(src, "sys/sdt.h") && strings.Contains(string(out), "sys/sdt.h") {
			t.Skipf("no sys/sdt.h (systemtap-sdt-dev) to build %s", what)
		}
		t.Fatalf("gcc, building %s: %v\n%s", what, err, out)
	}
	return bin
}

// CFuncs is C source for n functions named prefix and a number of width
// digits, each int f(int x) returning x plus its number and kept out of
// line (noinline, and an empty asm the compiler cannot drop), so that
// every one is a symbol of its own for a uprobe; then fns, a table of
// them in order, of type fn (int (*)(int)).
func CFuncs(prefix string, width, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "__attribute__((noinline)) int %s%0*d(int x) { __asm__ volatile(\"\"); return x + %d; }\n", prefix, width, i, i)
	}
	b.WriteString("typedef int (*fn)(int);\nstatic fn fns[] = {")
	for i := range n {
		fmt.Fprintf(&b, "%s%0*d, ", prefix, width, i)
	}
	b.WriteString("};\n")
	return b.String()
}
