package btsuite_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/internal/btsuite"
	"github.com/tracebroker/tracebroker/internal/golden"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

const (
	suiteDir = "../../testdata/bpftrace-0.17"
	// passList is the suite's tests tracebroker passes on the
	// development kernel: each must go on passing wherever it
	// applies. go test -update runs the whole suite and rewrites it.
	passList = "../../testdata/bpftrace-0.17.pass"
	// differList names the tests failed on purpose (ReadDiffers).
	differList = "../../testdata/bpftrace-0.17.differ"
)

// TestSuite runs bpftrace 0.17's runtime tests against the tracebroker
// command, as bpftrace's engine runs them against bpftrace: those on the
// pass list, or with -update all of them.
func TestSuite(t *testing.T) {
	if err := bpf.Supported(); err != nil {
		t.Skip("skipping: ", err)
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("skipping: the suite's test programs need gcc")
	}
	all, err := btsuite.Load(suiteDir, btsuite.Machine())
	if err != nil {
		t.Fatal(err)
	}
	tests := all
	if !golden.Updating() {
		tests = listed(t, all)
	}
	work := t.TempDir()
	bin := filepath.Join(work, "tracebroker")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/tracebroker").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env, err := btsuite.Setup(suiteDir, work, bin)
	if err != nil {
		t.Fatal(err)
	}
	// make test runs beside every other package's tests: the engine's
	// 5 s to attach is bpftrace's on an idle machine.
	env.AttachTimeout = kerneltest.Slow(30 * time.Second)
	var shared, alone []btsuite.Test
	for _, tt := range tests {
		if btsuite.Alone(tt) {
			alone = append(alone, tt)
		} else {
			shared = append(shared, tt)
		}
	}
	var results []btsuite.Result
	// Alone tests signal every process named bpftrace: no other
	// package's kernel test (bpftrace side by side) runs meanwhile.
	t.Run("shared", func(t *testing.T) {
		kerneltest.Lock(t)
		results = append(results, env.RunAll(context.Background(), shared, 2*runtime.NumCPU(), nil)...)
	})
	t.Run("alone", func(t *testing.T) {
		kerneltest.Exclusive(t)
		results = append(results, env.RunAll(context.Background(), alone, 1, nil)...)
	})
	var pass []string
	counts := map[btsuite.Status]int{}
	for _, r := range results {
		counts[r.Status]++
		switch {
		case r.Status == btsuite.Pass:
			pass = append(pass, r.Test.ID())
		case r.Status == btsuite.Skip:
			t.Logf("%s: skipped: %s", r.Test.ID(), r.Reason)
		case !golden.Updating():
			t.Errorf("%s (%s:%d) %s: %s\n\tcommand: %s\n\toutput:\n%s", r.Test.ID(), r.Test.Suite, r.Test.Line, r.Status, r.Reason, r.Command, indent(r.Output))
		}
	}
	t.Logf("%d tests: %d pass, %d fail, %d time out, %d skip", len(results), counts[btsuite.Pass], counts[btsuite.Fail], counts[btsuite.Timeout], counts[btsuite.Skip])
	if golden.Updating() {
		sort.Strings(pass)
		golden.Check(t, passList, []byte(strings.Join(pass, "\n")+"\n"))
	}
}

// listed are the tests of the pass list; a name the suite does not
// have is an error.
func listed(t *testing.T, all []btsuite.Test) []btsuite.Test {
	data, err := os.ReadFile(passList)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]btsuite.Test{}
	for _, tt := range all {
		byID[tt.ID()] = tt
	}
	var out []btsuite.Test
	for _, id := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		tt, ok := byID[id]
		if !ok {
			t.Errorf("%s: no test %q in the suite", passList, id)
			continue
		}
		out = append(out, tt)
	}
	return out
}

// TestDiffers: the list of tests tracebroker fails on purpose names
// tests of the suite, each once, each with why, and none of them is on
// the pass list.
func TestDiffers(t *testing.T) {
	differ, err := btsuite.ReadDiffers(differList)
	if err != nil {
		t.Fatal(err)
	}
	all, err := btsuite.Load(suiteDir, btsuite.Machine())
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, tt := range all {
		ids[tt.ID()] = true
	}
	passing := map[string]bool{}
	for _, tt := range listed(t, all) {
		passing[tt.ID()] = true
	}
	for id := range differ {
		if !ids[id] {
			t.Errorf("%s: no test %q in the suite", differList, id)
		}
		if passing[id] {
			t.Errorf("%s: %q is on the pass list too", differList, id)
		}
	}
}

func indent(s string) string {
	return "\t\t" + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n\t\t")
}
