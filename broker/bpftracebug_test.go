package broker

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/internal/kerneltest"
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
//	NAME.bpftrace.re              or, where what it prints varies (with
//	                              timing, say), a regular expression that
//	                              matches all of it and not the right answer
//
// The side-by-side tests then check both programs against their
// records: tracebroker against the right answer, bpftrace against its
// wrong one (or, for a bug that shows only sometimes, either). A change in
// either fails, a bug fixed upstream included.
type bpftraceBug struct {
	why       string
	sometimes string         // why it shows only on some runs; "" if on every run
	out       string         // NAME.bpftrace.out
	re        *regexp.Regexp // NAME.bpftrace.re, instead
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
	if re, err := os.ReadFile(strings.TrimSuffix(path, ".bt") + ".bpftrace.re"); err == nil {
		bug.path = strings.TrimSuffix(path, ".bt") + ".bpftrace.re"
		if bug.re, err = regexp.Compile(`\A(?:` + strings.TrimSuffix(string(re), "\n") + `)\z`); err != nil {
			t.Fatalf("%s: %v", bug.path, err)
		}
		return
	}
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
			if ref == want || bug.re != nil {
				t.Logf("bpftrace printed the right answer, or its bug is recorded as a pattern: nothing recorded")
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
	case bug.re == nil && ref == expand(bug.out), bug.re != nil && bug.re.MatchString(unexpand(ref)) && ref != want:
		t.Logf("bpftrace 0.17's known bug: %s", bug.why)
	case ref == want && bug.sometimes != "":
		t.Logf("bpftrace 0.17 printed the right answer this time; its bug (%s) shows on some runs only: %s", bug.why, bug.sometimes)
	case ref == want:
		t.Errorf("bpftrace printed the right answer: its recorded bug is gone (remove %s and the script's bpftrace-bug directive): %s", filepath.Base(bug.path), bug.why)
	default:
		t.Errorf("bpftrace printed neither the right answer nor its recorded bug's output (%s):\n%q", filepath.Base(bug.path), unexpand(ref))
	}
}

// bpftraceRun is one run of the reference bpftrace, started ahead of the
// case that compares with it.
type bpftraceRun struct {
	stdout, stderr bytes.Buffer
	err            error
	done           chan struct{}
}

// bpftraceSlots bounds the runs of bpftrace at once.
var bpftraceSlots = make(chan struct{}, 3)

// startBpftrace runs bpftrace with args, and env if not nil, in the
// background, a few at a time: a run of bpftrace waits (for its start,
// for its probes to go) far longer than it computes, so a table's
// reference runs side by side take a fraction of the time one after the
// other would. A table whose scripts trace only their own workload (by
// cpid), or none, may start its runs ahead: what a run prints does not
// depend on what else runs. The run is killed if it is still going when
// the test ends.
func startBpftrace(t *testing.T, bt string, args, env []string) *bpftraceRun {
	t.Helper()
	parent, cancel := context.WithCancel(context.Background())
	r := &bpftraceRun{done: make(chan struct{})}
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	go func() {
		defer close(r.done)
		select {
		case bpftraceSlots <- struct{}{}:
		case <-parent.Done():
			r.err = parent.Err()
			return
		}
		defer func() { <-bpftraceSlots }()
		// A minute from its start, not from the queue's: a hang guard,
		// stretched where everything is slower (TCG).
		ctx, stop := context.WithTimeout(parent, kerneltest.Slow(time.Minute))
		defer stop()
		cmd := exec.CommandContext(ctx, bt, args...)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = &r.stdout, &r.stderr
		r.err = cmd.Run()
	}()
	return r
}

// output waits for the run and returns what bpftrace printed; a failed
// run fails the test.
func (r *bpftraceRun) output(t *testing.T) string {
	t.Helper()
	<-r.done
	if r.err != nil {
		t.Fatalf("bpftrace: %v\nstdout: %s\nstderr: %s", r.err, r.stdout.String(), r.stderr.String())
	}
	return r.stdout.String()
}
