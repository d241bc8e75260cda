package daemon

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/broker/token"
)

// argsC is the traced program of the uprobe args scope tests, built with
// -g: function1 and function2 are called once per run.
const argsC = `struct Foo { int a; char b[10]; };
__attribute__((noinline)) int function1(int *n, char c) { return *n + c; }
__attribute__((noinline)) int function2(struct Foo *foo) { return foo->a; }
int main(void) {
	int n = 13;
	struct Foo foo = { .a = 123, .b = "hello" };
	return function1(&n, 'x') + function2(&foo) == 0;
}
`

// TestUprobeArgsScopes: a token holder reads a uprobe's parameters with
// the probe's scope alone, as it reads arg0; a struct a parameter points
// to is the traced process's memory, which needs read:user, as through
// (struct Foo *)arg0; and a binary the token may not probe gives nothing
// of its debug info away.
func TestUprobeArgsScopes(t *testing.T) {
	needKernel(t)
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("the traced program is built with gcc, which is not installed")
	}
	dir, err := os.MkdirTemp("", "tbua")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	src, bin := filepath.Join(dir, "args.c"), filepath.Join(dir, "args")
	if err := os.WriteFile(src, []byte(argsC), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-g", "-O0", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	d := startDaemon(t, daemonOpts{})
	work := func(t *testing.T) {
		if err := exec.Command(bin).Run(); err != nil {
			t.Fatalf("%s: %v", bin, err)
		}
	}
	run := func(t *testing.T, scope, script string, work func(*testing.T)) *traceRun {
		t.Helper()
		return d.trace(t, d.token(t, token.IssueOptions{Scope: scope}), script, work)
	}
	probe1 := "trace probe:uprobe:" + bin + ":function1"
	probe2 := "trace probe:uprobe:" + bin + ":function2"

	t.Run("parameter_with_probe_scope", func(t *testing.T) {
		r := run(t, probe1, "uprobe:"+bin+`:function1 { printf("%c %d\n", args->c, args.n != 0); }`, work)
		if r.err != nil {
			t.Fatalf("%v\n%s", r.err, r.stderr.String())
		}
		if got, want := r.stdout.String(), "Attaching 1 probe...\nx 1\n\n\n"; got != want {
			t.Errorf("stdout %q, want %q", got, want)
		}
	})

	structScript := "uprobe:" + bin + `:function2 { printf("%d\n", args->foo->a); }`
	castScript := "uprobe:" + bin + `:function2 { printf("%d\n", ((struct Foo *)arg0)->a); }`
	for name, script := range map[string]string{"struct_by_name": structScript, "struct_by_cast": castScript} {
		t.Run(name+"_needs_read_user", func(t *testing.T) {
			r := run(t, probe2, script, nil)
			var ce *CallError
			if !errors.As(r.err, &ce) || ce.Code != "PermissionDenied" || !ce.Script || !strings.Contains(ce.Message, "needs scope read:user") {
				t.Fatalf("err = %v, want a PermissionDenied refusal needing read:user", r.err)
			}
			r = run(t, probe2+" read:user", script, work)
			if r.err != nil {
				t.Fatalf("with read:user: %v\n%s", r.err, r.stderr.String())
			}
			if got := r.stdout.String(); got != "Attaching 1 probe...\n123\n\n\n" {
				t.Errorf("stdout %q", got)
			}
		})
	}

	t.Run("binary_not_in_scope", func(t *testing.T) {
		// A token for another file learns nothing of this one's
		// parameters: the open is refused before its DWARF is read.
		r := run(t, "trace probe:uprobe:/usr/bin/true:main", "uprobe:"+bin+`:function1 { @ = args->nosuch; }`, nil)
		if r.err == nil || strings.Contains(r.err.Error(), "function parameter") || strings.Contains(r.err.Error(), "debuginfo") {
			t.Fatalf("err = %v, want a refusal of the file", r.err)
		}
	})
}
