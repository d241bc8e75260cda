package probelist

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tracebroker/tracebroker/bpf/uprobe"
)

const argsC = `struct Foo { int a; };
typedef unsigned long ul;
int function1(int *n, char c) { return *n + c; }
struct Foo *function2(struct Foo *foo1, const struct Foo *const foo2) { return foo1; }
ul noargs(void) { return 0; }
int main(int argc, char **argv) { int n = 1; function1(&n, 'x'); function2(0, 0); return noargs(); }
`

// TestListUprobeArgs: -v lists each function's parameters as bpftrace
// 0.17 -lv does (its output for the same program), and a binary without
// DWARF is listed without them, after bpftrace's warning.
func TestListUprobeArgs(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("the listed program is built with gcc, which is not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "args.c")
	if err := os.WriteFile(src, []byte(argsC), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"debug", "plain"} {
		args := []string{"-O0", "-o", filepath.Join(dir, name), src}
		if name == "debug" {
			args = append(args, "-g")
		}
		if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
			t.Fatalf("gcc: %v\n%s", err, out)
		}
	}
	debug, plain := filepath.Join(dir, "debug"), filepath.Join(dir, "plain")
	tests := []struct {
		path, pattern, want, warning string
	}{
		{debug, "function*", "uprobe:" + debug + ":function1\n    int* n\n    char c\n" +
			"uprobe:" + debug + ":function2\n    struct Foo* foo1\n    const struct Foo* const foo2\n", ""},
		{debug, "main", "uprobe:" + debug + ":main\n    int argc\n    char** argv\n", ""},
		{debug, "noargs", "uprobe:" + debug + ":noargs\n", ""},
		{debug, "_start", "uprobe:" + debug + ":_start\n", ""},
		{plain, "function1", "uprobe:" + plain + ":function1\n", "WARNING: No DWARF found for \"" + plain + "\", cannot show parameter info\n"},
	}
	for _, tt := range tests {
		var out, stderr bytes.Buffer
		if err := listUprobeArgs(&out, &stderr, tt.path, tt.pattern); err != nil {
			t.Fatalf("%s:%s: %v", tt.path, tt.pattern, err)
		}
		if out.String() != tt.want || stderr.String() != tt.warning {
			t.Errorf("%s:%s:\n%s%s\nwant:\n%s%s", tt.path, tt.pattern, out.String(), stderr.String(), tt.want, tt.warning)
		}
	}
}

// TestListUprobeArgsNotELF: a file that is not ELF is the listing's
// error, as without -v, with no warning about its DWARF.
func TestListUprobeArgsNotELF(t *testing.T) {
	path := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out, stderr, plainOut bytes.Buffer
	err := listUprobeArgs(&out, &stderr, path, "*")
	plainErr := uprobe.List(&plainOut, path, "*")
	if err == nil || plainErr == nil || err.Error() != plainErr.Error() || out.Len() != 0 || stderr.Len() != 0 {
		t.Errorf("-v: %v, %q, %q; without: %v", err, out.String(), stderr.String(), plainErr)
	}
}
