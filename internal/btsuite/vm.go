package btsuite

import (
	"slices"
	"strings"
)

// VMNeeds are what the development host lacks of what the suite's tests
// need (KERNEL.md: 6.18 built without kprobes, fentry refused with EPERM
// and so the helpers only tracing programs have, no kprobe.multi links,
// hardware watchpoints that never fire in its VM, debugfs not mounted).
// The tests that need any of them skip in make test, so they run in the
// kernel matrix's guests instead (TestSuiteKernel, vmtest's CI
// selection). They are names of what the runner computes (Lacks' and
// Features' keys), not of tests: a test is in by what it needs.
// TestVMNeedsCoverHost fails when the machine it runs on lacks
// something not named here, so a new gap cannot leave tests run nowhere.
var VMNeeds = []string{
	needKprobes, "kfunc", "kprobe_multi", "dpath", "skboutput",
	needWatchpoints, needDebugfs,
}

// Needs are what t needs of the kernel, as Skipped weighs them: the
// probe kinds its program and scripts use, and its REQUIRES_FEATURE
// names. A feature a test needs absent (REQUIRES_FEATURE !name) is not
// among them: no kernel is chosen for lacking something.
func (e *Env) Needs(t Test) []string {
	out := e.needs(t)
	for _, f := range t.Features {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// ForVM says whether t needs something in VMNeeds: whether it belongs
// to the suite's kernel matrix run rather than make test's.
func (e *Env) ForVM(t Test) bool {
	for _, n := range e.Needs(t) {
		if slices.Contains(VMNeeds, n) {
			return true
		}
	}
	return false
}

// Missing are the names, of Lacks' and Features', that this machine
// does not have: what its tests skip for. aot is not the kernel's (the
// engine never runs it) and is left out.
func (e *Env) Missing() []string {
	var out []string
	for n := range e.Lacks {
		out = append(out, n)
	}
	for f, have := range e.Features {
		if !have && f != "aot" {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

// KernelSeries is a release's major.minor (6.1.0-28-amd64: 6.1;
// 6.12.57+deb12-amd64: 6.12), what a kernel's pass list is named by:
// Debian's stable updates of one series keep its BPF features, so one
// list holds across them, and a new series gets its own.
func KernelSeries(release string) string {
	parts := strings.FieldsFunc(release, func(r rune) bool { return r == '.' || r == '-' || r == '+' })
	if len(parts) < 2 {
		return release
	}
	for _, p := range parts[:2] {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return release
		}
	}
	return parts[0] + "." + parts[1]
}
