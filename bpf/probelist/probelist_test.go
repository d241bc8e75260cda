package probelist_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf/btftp"
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
		if strings.HasPrefix(line, "iter:") {
			continue
		}
		if mod, fn, ok := moduleFuncOfImage(t, line); ok {
			// bpftrace 0.17's bug: it lists a module's traceable
			// function that the module's BTF does not describe (a
			// static function whose name the kernel image's BTF has,
			// which pahole leaves out of the module's), typed as the
			// image's function of that name: on 6.1, virtio's
			// device_show and four more.
			t.Logf("bpftrace 0.17 bug: it lists %s:%s, which %s's BTF does not describe, with the kernel image's prototype", mod, fn, mod)
			continue
		}
		want.WriteString(line)
	}
	var got bytes.Buffer
	if err := probelist.Write(&got, "", false); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("list differs from bpftrace -l: %s", kerneltest.ListDiff(got.String(), want.String()))
	}
}

// moduleFuncOfImage reports whether line is "kfunc:MOD:FN" for a module
// whose BTF lacks FN, where the kernel image's BTF has a function FN.
func moduleFuncOfImage(t *testing.T, line string) (mod, fn string, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "kfunc:")
	if !found {
		return "", "", false
	}
	mod, fn, _ = strings.Cut(rest, ":")
	if mod == "vmlinux" {
		return "", "", false
	}
	inMod, err := btftp.Funcs(mod, fn)
	if err != nil {
		t.Fatal(err)
	}
	inImage, err := btftp.Funcs("vmlinux", fn)
	if err != nil {
		t.Fatal(err)
	}
	return mod, fn, len(inMod) == 0 && len(inImage) > 0
}
