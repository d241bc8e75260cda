package kerneltest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// CC builds the C program src with gcc into the executable name in a
// temporary directory of the test's, and returns its path; the name is
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
	dir := t.TempDir()
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
