package main

import (
	"fmt"
	"strings"
)

// ciSelection is what CI runs in each guest (-ci, make vmtest-ci): the
// kernel end-to-end tables and the probe-type tests, each package with
// the tests of its own that need another kernel than the host's. It is
// the one list to extend: a package and a -test.run pattern, one test
// name per entry, anchored whole. Left out: what the host's make test
// already runs the same way on every kernel (parsers, the compiler's
// own tables) and what only TCG makes slow without telling a kernel
// from another (TestUnboundedLoop walks the verifier to its limit:
// five minutes under TCG).
var ciSelection = []struct {
	pkg   string
	tests []string // empty: every test of the package
}{
	// The JIT loader: every probe type's program loaded and attached,
	// maps, BEGIN/END, tp_btf, v4-less code.
	{"./bpf", nil},
	// Interpreter mode's signed collectors, each probe type, records,
	// strings, stacks.
	{"./bpf/collector", nil},
	// The events ring buffer's reader: batches, wake-ups, a flood from
	// another CPU (2 s).
	{"./bpf/ring", nil},
	{"./broker", []string{
		// The end-to-end tables, both modes, and side by side with
		// bpftrace 0.17 on the guest's kernel.
		"TestEndToEnd", "TestSideBySide", "TestUprobeScripts",
		// The probe types end to end.
		"TestRawTracepoint", "TestTpBTF", "TestProfile", "TestUprobes", "TestStacks", "TestStacksJSON",
		// USDT probes: sites, arguments and the kernel's semaphores
		// (uprobe ref_ctr_offset), both modes (issue 18).
		"TestUSDTProbes",
		// Uprobe wildcards: one uprobe.multi link where the kernel has
		// them (6.6: 6.12), one uprobe per function where it has not
		// (6.1), the same output and nothing left (issue 21).
		"TestUprobeMulti", "TestUprobeMultiDetached",
		// What the kernel's answers decide: a full map, a run's end.
		"TestMapFull", "TestRunEnds",
		// kprobes and fentry, which this host lacks (issue 17 items 3
		// and 4): end to end, side by side, recorded, listed as
		// bpftrace -l lists them.
		"TestKprobeEndToEnd", "TestKprobeSideBySide", "TestKprobeWildcard", "TestKprobeRecordReplay", "TestKprobeListed", "TestKprobeModuleFunction",
		"TestFentryEndToEnd", "TestFentrySideBySide",
		// What a token holder or a plugin's raw program can make of
		// kernel functions on a kernel that has them: reach, bounds,
		// nothing left attached.
		"TestAttacksKernelFuncs",
		// A clang-built object's kprobe and fentry programs, and its
		// tracepoint, uprobe and raw tracepoint ones in both modes
		// (issue 19).
		"TestObjectKernelFunctions", "TestObjectTracepoint", "TestObjectUprobeRawTracepoint", "TestObjectMapsOnly",
		// bpftrace 0.17's stock tools compile against the guest's
		// kernel, the kprobe ones whole (the host stops at their
		// first kprobe).
		"TestStockTools",
	}},
	// kprobe listing and attachment against the guest's kernel.
	{"./bpf/kprobe", nil},
	// The listing of everything, kprobes and kfuncs included, against
	// bpftrace -l on the guest's kernel.
	{"./bpf/probelist", nil},
	// The interpreter against the kernel's own, on random programs.
	{"./interp", []string{"TestDifferentialKernel"}},
	// bpftrace 0.17's own runtime tests that need what the host lacks
	// (kprobes, kfuncs, watchpoints, debugfs: btsuite.VMNeeds, chosen
	// by what each test needs), against each kernel's list of those
	// tracebroker passes there (testdata/bpftrace-0.17.vm-SERIES.pass).
	{"./internal/btsuite", []string{"TestSuiteKernel"}},
	// The kernel gate (BPF LSM, issue 20): enforced, attacked, released.
	// Last, so that a gate a failed test left behind stops no other
	// package's tests.
	{"./gatekeeper/lsmgate", nil},
}

// ciPackages are the packages and -test.run patterns of ciSelection.
func ciPackages() (pkgs []string, runs map[string]string) {
	runs = map[string]string{}
	for _, s := range ciSelection {
		pkgs = append(pkgs, s.pkg)
		if len(s.tests) > 0 {
			runs[s.pkg] = fmt.Sprintf("^(%s)$", strings.Join(s.tests, "|"))
		}
	}
	return pkgs, runs
}
