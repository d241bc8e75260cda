package bpf_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf"
)

// TestHaveV4ISA: the probe says yes from Linux 6.6 on, no before, and no
// whatever the kernel with TRACEBROKER_NO_V4ISA=1 (the hook the kernel
// tests use to run the older spellings here).
func TestHaveV4ISA(t *testing.T) {
	needKernel(t)
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	rel := unix.ByteSliceToString(u.Release[:])
	major, rest, _ := strings.Cut(rel, ".")
	minor, _, _ := strings.Cut(rest, ".")
	maj, err1 := strconv.Atoi(major)
	mnr, err2 := strconv.Atoi(strings.TrimRightFunc(minor, func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		t.Skipf("kernel release %q: no version to compare with", rel)
	}
	want := maj > 6 || maj == 6 && mnr >= 6
	if os.Getenv(bpf.NoV4ISAEnv) == "1" {
		want = false
	}
	if got := bpf.HaveV4ISA(); got != want {
		t.Errorf("HaveV4ISA() on %s (%s=%q) = %v, want %v", rel, bpf.NoV4ISAEnv, os.Getenv(bpf.NoV4ISAEnv), got, want)
	}
	t.Setenv(bpf.NoV4ISAEnv, "1")
	if bpf.HaveV4ISA() {
		t.Errorf("HaveV4ISA() with %s=1 = true, want false", bpf.NoV4ISAEnv)
	}
}
