package probelist_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf/probelist"
	"github.com/tracebroker/tracebroker/bpf/tracefs"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// TestAllSideBySide: the listing of everything is bpftrace 0.17's -l
// with no pattern, line for line, on whatever kernel runs the test (its
// kprobes and kfuncs where it has them), but for bpftrace's iter probes,
// a probe type tracebroker does not offer.
func TestAllSideBySide(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: listing kernel probes needs root")
	}
	if _, err := tracefs.Root(); err != nil {
		t.Skipf("skipping: no tracefs: %v", err)
	}
	bt := kerneltest.Bpftrace017(t)
	var stderr bytes.Buffer
	cmd := exec.Command(bt, "-l")
	cmd.Stderr = &stderr
	ref, err := cmd.Output()
	if err != nil || len(ref) == 0 {
		t.Fatalf("bpftrace -l: %v, %d bytes\n%s", err, len(ref), stderr.String())
	}
	var want strings.Builder
	for _, line := range strings.SplitAfter(string(ref), "\n") {
		if !strings.HasPrefix(line, "iter:") {
			want.WriteString(line)
		}
	}
	var got bytes.Buffer
	if err := probelist.Write(&got, "", false); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("list differs from bpftrace -l: %s", kerneltest.ListDiff(got.String(), want.String()))
	}
}
