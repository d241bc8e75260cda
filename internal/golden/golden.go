// Package golden compares a test's output with a file kept in the
// repository, and rewrites the file when the test runs with -update:
// the one golden-file helper and the one -update flag of the tests.
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files with what the tests produce (review the diff)")

// Check fails t unless got is the content of path; with -update it
// writes got to path first.
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if string(got) != string(want) {
		t.Errorf("output differs from %s (run go test -update and review the diff):\n%s", path, got)
	}
}

// Updating says whether the tests run with -update: a test whose golden
// file is costly to produce (it runs everything) produces it only then.
func Updating() bool { return *update }
