package btftp

import (
	"bytes"
	"os"
	"os/exec"
	"testing"

	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// TestSystemListFuncsMatchesBpftrace: `tracebroker list [-v]` of
// kfunc/kretfunc patterns prints what `bpftrace -l[v]` 0.17 prints, byte
// for byte. bpftrace lists from available_filter_functions, which this
// project's hosts (lockdown) do not let root read: there it is skipped,
// and it runs under `make vmtest`.
func TestSystemListFuncsMatchesBpftrace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: available_filter_functions is only readable by root")
	}
	bt := kerneltest.Bpftrace017(t)
	if m, _ := readTraceable(); m == nil {
		t.Skip("skipping: available_filter_functions is unreadable here, and bpftrace lists kfuncs from it")
	}
	for _, tc := range []struct {
		provider, pattern string
		verbose           bool
	}{
		{"kfunc", "vfs_rea*", false},
		{"kretfunc", "vmlinux:vfs_read", true},
		{"kfunc", "do_sys_openat2", true},
		{"kfunc", "kmem_cache_free", true}, // void: no retval line
		{"kfunc", "schedule", true},        // no parameters
		// tcp_v4_send_ack and others have more than 6 parameters:
		// bpftrace lists none of them.
		{"kfunc", "*:tcp_v4_*", true},
		{"kfunc", "nosuch_fn", true},
	} {
		spec := tc.provider + ":" + tc.pattern
		flag := "-l"
		if tc.verbose {
			flag = "-lv"
		}
		want, err := exec.Command(bt, flag, spec).Output()
		if err != nil {
			t.Fatalf("bpftrace %s %s: %v", flag, spec, err)
		}
		var got bytes.Buffer
		if err := ListFuncs(&got, tc.provider, tc.pattern, tc.verbose); err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("list %s %s:\n%s\nbpftrace:\n%s", flag, spec, got.Bytes(), want)
		}
	}
}
