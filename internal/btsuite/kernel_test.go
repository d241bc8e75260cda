package btsuite_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/internal/btsuite"
	"github.com/tracebroker/tracebroker/internal/golden"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// kernelPassList is the suite's tests that need what the development
// host lacks (btsuite.VMNeeds) and that tracebroker passes on a kernel
// series, written by go test -update in that series' guest (README,
// "Other kernels").
func kernelPassList(series string) string {
	return "../../testdata/bpftrace-0.17.vm-" + series + ".pass"
}

// TestSuiteKernel runs, on the kernel it finds, the suite's tests that
// make test cannot run on the development host (btsuite.VMNeeds):
// kprobes, kfuncs, watchpoints, debugfs. The kernel matrix's guests run
// it (vmtest's CI selection). Each tracebroker passes there is on the
// list of the kernel's series, and must go on passing; a listed test
// that fails or skips fails the run, because the list was written on
// the same series where it ran. Unlisted tests are not run (they failed
// or skipped when the list was written): each says why it skips, or
// that it is not on the list.
//
// A kernel with no list (the development host, a series the matrix
// does not boot) skips the test rather than fail it: there is nothing
// said of what should pass there, and on the host every selected test
// skips anyway. vmtest's TestKernelPassLists makes sure each kernel the
// matrix boots has its list, so a kernel of the matrix cannot skip.
// -update runs every selected test and writes the list (in the guest,
// copy it out to the results directory: the guest's checkout is an
// overlay that goes away with it).
func TestSuiteKernel(t *testing.T) {
	if err := bpf.Supported(); err != nil {
		t.Skip("skipping: ", err)
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("skipping: the suite's test programs need gcc")
	}
	release := kernelRelease(t)
	series := btsuite.KernelSeries(release)
	list := kernelPassList(series)
	var want []string
	if !golden.Updating() {
		data, err := os.ReadFile(list)
		if errors.Is(err, fs.ErrNotExist) {
			t.Skipf("skipping: no list of the suite's kernel tests for %s (%s): the kernel matrix's guests run them (go test -update there writes one)", series, release)
		}
		if err != nil {
			t.Fatal(err)
		}
		if s := strings.TrimSpace(string(data)); s != "" {
			want = strings.Split(s, "\n")
		}
	}
	all, err := btsuite.Load(suiteDir, btsuite.Machine())
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	env, err := btsuite.Setup(suiteDir, work, kerneltest.Binary(t, "../../cmd/tracebroker"))
	if err != nil {
		t.Fatal(err)
	}
	// Under qemu's TCG a compile and attach takes seconds where the
	// host takes milliseconds: the attach bound is only a hang guard.
	env.AttachTimeout = kerneltest.Slow(30 * time.Second)

	ctx := context.Background()
	var run []btsuite.Test
	selected := map[string]bool{}
	for _, tt := range all {
		if !env.ForVM(tt) {
			continue
		}
		selected[tt.ID()] = true
		switch {
		case golden.Updating() || slices.Contains(want, tt.ID()):
			run = append(run, tt)
		default:
			if why := env.Skipped(ctx, tt); why != "" {
				t.Logf("%s: skips: %s", tt.ID(), why)
			} else {
				t.Logf("%s: not run: not on %s", tt.ID(), list)
			}
		}
	}
	for _, id := range want {
		if !selected[id] {
			t.Errorf("%s: %q is not a test of the suite that needs what the host lacks (%s)", list, id, strings.Join(btsuite.VMNeeds, ", "))
		}
	}
	var shared, alone []btsuite.Test
	for _, tt := range run {
		if btsuite.Alone(tt) {
			alone = append(alone, tt)
		} else {
			shared = append(shared, tt)
		}
	}
	start := time.Now()
	var results []btsuite.Result
	t.Run("shared", func(t *testing.T) {
		kerneltest.Lock(t)
		results = append(results, env.RunAll(ctx, shared, 2*runtime.NumCPU(), nil)...)
	})
	t.Run("alone", func(t *testing.T) {
		kerneltest.Exclusive(t)
		results = append(results, env.RunAll(ctx, alone, 1, nil)...)
	})
	var pass []string
	counts := map[btsuite.Status]int{}
	for _, r := range results {
		counts[r.Status]++
		// Each test's time under TCG is what the CI budget is made of.
		t.Logf("%s: %s (%v)", r.Test.ID(), r.Status, r.Elapsed.Round(100*time.Millisecond))
		if r.Flaked != "" {
			t.Logf("%s: %s on a second run; the first failed: %s", r.Test.ID(), r.Status, r.Flaked)
		}
		switch {
		case r.Status == btsuite.Pass:
			pass = append(pass, r.Test.ID())
		case golden.Updating():
			t.Logf("%s: %s: %s", r.Test.ID(), r.Status, r.Reason)
		default:
			t.Errorf("%s (%s:%d) on %s: %s: %s\n\tcommand: %s\n\toutput:\n%s", r.Test.ID(), r.Test.Suite, r.Test.Line, release, r.Status, r.Reason, r.Command, indent(r.Output))
		}
	}
	t.Logf("%s: %d tests need what the host lacks, %d run: %d pass, %d fail, %d time out, %d skip (%v)",
		release, len(selected), len(results), counts[btsuite.Pass], counts[btsuite.Fail], counts[btsuite.Timeout], counts[btsuite.Skip], time.Since(start).Round(time.Second))
	if golden.Updating() {
		sort.Strings(pass)
		golden.Check(t, list, []byte(strings.Join(pass, "\n")+"\n"))
	}
}

// TestVMNeedsCoverHost checks that what this machine lacks is among
// btsuite.VMNeeds: a test that skips here for something else runs in
// no guest either, and nothing would say so.
func TestVMNeedsCoverHost(t *testing.T) {
	if err := bpf.Supported(); err != nil {
		t.Skip("skipping: ", err)
	}
	env := &btsuite.Env{Features: btsuite.Features(), Lacks: btsuite.Lacks()}
	for _, n := range env.Missing() {
		if !slices.Contains(btsuite.VMNeeds, n) {
			t.Errorf("this kernel lacks %s, which btsuite.VMNeeds does not name: the suite's tests that need it run nowhere", n)
		}
	}
}

func kernelRelease(t *testing.T) string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
