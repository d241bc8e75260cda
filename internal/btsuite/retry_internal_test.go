package btsuite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTracePrintkRetry: a test of the kernel's trace buffer that fails
// runs once more, and its result is the second run's with the first's
// failure kept; any other test that fails is not run again alone.
func TestTracePrintkRetry(t *testing.T) {
	dir := t.TempDir()
	e := &Env{Dir: dir, Bpftrace: "/bin/true"}
	// Fails the first time it runs, passes from then on; what it
	// counts is how often it ran.
	failOnce := func(name string) string {
		mark := filepath.Join(dir, name)
		return fmt.Sprintf(`echo run >> %[1]s.runs; test -e %[1]s || { touch %[1]s; exit 1; }; echo ok`, mark)
	}
	trace := Test{Suite: "call", Name: "debugf", Run: failOnce("tracing/trace") + " # cat /sys/kernel/debug/tracing/trace", Expect: "ok", Timeout: 5}
	other := Test{Suite: "call", Name: "other", Run: failOnce("other"), Expect: "ok", Timeout: 5}
	if err := mkdirAll(filepath.Join(dir, "tracing")); err != nil {
		t.Fatal(err)
	}
	rs := e.RunAll(context.Background(), []Test{trace, other}, 1, nil)
	if r := rs[0]; r.Status != Pass || r.Flaked == "" {
		t.Errorf("trace buffer test: %v, first failure %q; want a pass on the second run, the first's failure kept (%s)", r.Status, r.Flaked, r.Reason)
	}
	if r := rs[1]; r.Status != Fail || r.Flaked != "" {
		t.Errorf("other test: %v, flaked %q; want its one failure", r.Status, r.Flaked)
	}
	for name, want := range map[string]int{"tracing/trace": 2, "other": 1} {
		if got := lines(t, filepath.Join(dir, name+".runs")); got != want {
			t.Errorf("%s ran %d times, want %d", name, got, want)
		}
	}
}

func mkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }

func lines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}
