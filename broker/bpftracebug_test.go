package broker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bpftraceBug is a bug of bpftrace 0.17 that makes it print something
// other than the right answer for a script of a side-by-side table
// (testdata/scripts, testdata/uprobe). The script's expectation, NAME.out,
// stays the right answer, which tracebroker must print; the bug is
// recorded beside it:
//
//	// bpftrace-bug: WHY          a directive of the script: what bpftrace
//	                              gets wrong and why, with a link to the
//	                              upstream report or fix
//	// bpftrace-bug-sometimes: WHY  the bug shows on some runs only (it
//	                              depends on what the stack held, say)
//	NAME.bpftrace.out             exactly what bpftrace prints when it shows
//
// The side-by-side tests then check both programs against their
// records: tracebroker against the right answer, bpftrace against its
// wrong one (or, for a bug that shows only sometimes, either). A change in
// either fails, a bug fixed upstream included.
type bpftraceBug struct {
	why       string
	sometimes string // why it shows only on some runs; "" if on every run
	out       string // NAME.bpftrace.out
	path      string
}

// bugDirective takes the bug directives of a script's header, and
// reports whether key was one.
func bugDirective(bug **bpftraceBug, key, val string) bool {
	switch key {
	case "bpftrace-bug", "bpftrace-bug-sometimes":
	default:
		return false
	}
	if *bug == nil {
		*bug = &bpftraceBug{}
	}
	if key == "bpftrace-bug" {
		(*bug).why = strings.TrimSpace(val)
	} else {
		(*bug).sometimes = strings.TrimSpace(val)
	}
	return true
}

// loadBug reads the bug's record of what bpftrace prints, beside the
// script at path.
func loadBug(t testing.TB, bug *bpftraceBug, path string) {
	t.Helper()
	if bug == nil {
		return
	}
	if bug.why == "" {
		t.Fatalf("%s: a bpftrace-bug-sometimes directive without the bpftrace-bug directive that says what the bug is", path)
	}
	bug.path = strings.TrimSuffix(path, ".bt") + ".bpftrace.out"
	b, err := os.ReadFile(bug.path)
	switch {
	case err == nil:
		bug.out = string(b)
	case os.IsNotExist(err) && os.Getenv("TB_RECORD") != "":
		// Recorded by the side-by-side test.
	default:
		t.Fatalf("%s: its bpftrace-bug directive needs what bpftrace prints: %v", path, err)
	}
}

// checkReference checks what bpftrace printed, ref, against the
// table's record of it: the right answer, want, or, for a script with a
// known bug, the bug's output (expand fills in the run's paths). With
// TB_RECORD set it records ref instead: as the expectation, rec, of a
// script without a bug, or as the bug's output when it differs from the
// right answer.
func checkReference(t *testing.T, ref, want string, bug *bpftraceBug, expand, unexpand func(string) string, rec string) {
	t.Helper()
	if os.Getenv("TB_RECORD") != "" {
		path := rec
		if bug != nil {
			if ref == want {
				t.Logf("bpftrace printed the right answer: nothing to record for its bug")
				return
			}
			path = bug.path
		}
		if err := os.WriteFile(path, []byte(unexpand(ref)), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	switch {
	case bug == nil && ref != want:
		t.Errorf("bpftrace's output differs from the recorded expectation, %s (a bug of bpftrace's is recorded as such: see bpftraceBug):\n%q", filepath.Base(rec), unexpand(ref))
	case bug == nil:
	case ref == expand(bug.out):
		t.Logf("bpftrace 0.17's known bug: %s", bug.why)
	case ref == want && bug.sometimes != "":
		t.Logf("bpftrace 0.17 printed the right answer this time; its bug (%s) shows on some runs only: %s", bug.why, bug.sometimes)
	case ref == want:
		t.Errorf("bpftrace printed the right answer: its recorded bug is gone (remove %s and the script's bpftrace-bug directive): %s", filepath.Base(bug.path), bug.why)
	default:
		t.Errorf("bpftrace printed neither the right answer nor its recorded bug's output (%s):\n%q", filepath.Base(bug.path), unexpand(ref))
	}
}
