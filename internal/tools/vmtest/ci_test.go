package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// TestCISelection: every test CI names exists in its package, so that a
// renamed test cannot drop out of CI unnoticed, and each package's
// pattern reaches its own binary alone.
func TestCISelection(t *testing.T) {
	pkgs, runs := ciPackages()
	if len(pkgs) != len(ciSelection) {
		t.Fatalf("%d packages from %d entries", len(pkgs), len(ciSelection))
	}
	for _, s := range ciSelection {
		files, _ := filepath.Glob(filepath.Join("..", "..", "..", s.pkg, "*_test.go"))
		if len(files) == 0 {
			t.Errorf("%s: no test files", s.pkg)
			continue
		}
		var src bytes.Buffer
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			src.Write(b)
		}
		re, err := regexp.Compile(runs[s.pkg])
		if err != nil {
			t.Fatalf("%s: %v", s.pkg, err)
		}
		for _, name := range s.tests {
			if !strings.Contains(src.String(), "\nfunc "+name+"(t *testing.T)") {
				t.Errorf("%s: no test %s", s.pkg, name)
			}
			if !re.MatchString(name) || re.MatchString(name+"X") {
				t.Errorf("%s: pattern %s does not select %s alone", s.pkg, re, name)
			}
		}
	}
	s := guestScript("/repo", "/out/bin", "/out/6.1", pkgs, runs, time.Minute, "/bin")
	if !strings.Contains(s, "'/out/bin/bpf_collector.test' '-test.v=test2json' '-test.timeout=1m0s' '-test.count=1' >") {
		t.Errorf("the collector's tests are not all run:\n%s", s)
	}
	if !strings.Contains(s, "'/out/bin/broker.test' '-test.v=test2json' '-test.timeout=1m0s' '-test.count=1' '-test.run=^(TestEndToEnd|") {
		t.Errorf("the broker's selection is not run:\n%s", s)
	}
}

// TestKernelPassLists: every kernel the matrix boots has its list of
// the suite's kernel tests, without which TestSuiteKernel skips there
// and checks nothing; and the guest learns where the host's build of
// the command is under the name the tests read.
func TestKernelPassLists(t *testing.T) {
	for name := range flavours {
		list := filepath.Join("..", "..", "..", "testdata", "bpftrace-0.17.vm-"+name+".pass")
		if _, err := os.Stat(list); err != nil {
			t.Errorf("kernel %s: %v (run TestSuiteKernel with -update in its guest: README, Other kernels)", name, err)
		}
	}
	if testBinEnv != kerneltest.BinaryEnv {
		t.Errorf("the guest is given %s, the tests read %s", testBinEnv, kerneltest.BinaryEnv)
	}
	s := guestScript("/repo", "/out/bin", "/out/6.1", []string{"./bpf"}, nil, time.Minute, "/bin")
	if !strings.Contains(s, "export "+kerneltest.BinaryEnv+"='/out/bin/tracebroker'\n") {
		t.Errorf("the guest is not told where the command is:\n%s", s)
	}
}

// TestPrintTails: after a failure, the tail of each failing package's
// log and of a failed guest's console, and nothing of what passed.
func TestPrintTails(t *testing.T) {
	out := t.TempDir()
	for _, k := range []string{"6.1", "6.12"} {
		os.MkdirAll(filepath.Join(out, k), 0o755)
	}
	var lines []string
	for i := range 50 {
		lines = append(lines, "line "+strings.Repeat("x", i%3)+string(rune('a'+i%26)))
	}
	os.WriteFile(filepath.Join(out, "6.1", "broker.log"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	os.WriteFile(filepath.Join(out, "6.1", "bpf.log"), []byte("PASS-LOG\n"), 0o644)
	os.WriteFile(filepath.Join(out, "6.12", "console.log"), []byte("boot\nKernel panic - not syncing\n"), 0o644)
	vms := []*vmResult{
		{kernel: &kernel{name: "6.1"}, pkgs: map[string]pkgResult{"./bpf": {Status: "ok"}, "./broker": {Status: "FAIL"}}},
		{kernel: &kernel{name: "6.12"}, guest: "the guest stopped without an exit status", pkgs: map[string]pkgResult{"./bpf": {Status: "ok"}, "./broker": {Status: "ok"}}},
	}
	var b strings.Builder
	printTails(&b, out, []string{"./bpf", "./broker"}, vms, 3)
	got := b.String()
	for _, want := range []string{
		"==== 6.1 ./broker: FAIL (" + filepath.Join(out, "6.1", "broker.log") + "), last 3 lines\n" + strings.Join(lines[47:], "\n") + "\n",
		"==== 6.12 guest: the guest stopped without an exit status (" + filepath.Join(out, "6.12", "console.log") + "), last 2 lines\nboot\nKernel panic - not syncing\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("tails lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "PASS-LOG") || strings.Contains(got, lines[46]) {
		t.Errorf("tails show what passed, or more than 3 lines:\n%s", got)
	}
}
