package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf"
)

// TestFentryCLI runs the README's kfunc commands: the listing with a
// signature, as bpftrace -lv prints it, and, where the kernel refuses
// fentry programs (this project's hosts), the refusal of a kfunc probe
// naming what was refused, with nothing run.
func TestFentryCLI(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skipf("kernel BTF unavailable: %v", err)
	}
	t.Run("list -v kretfunc:vfs_read", func(t *testing.T) {
		r := tracebroker(t, "list", "-v", "kretfunc:vfs_read")
		want := "kretfunc:vmlinux:vfs_read\n    struct file * file\n    char * buf\n    size_t count\n    loff_t * pos\n    ssize_t retval\n"
		if r.code != 0 || r.stdout != want {
			t.Errorf("exit %d, stdout\n%s\nwant\n%s\nstderr %s", r.code, r.stdout, want, r.stderr)
		}
	})
	t.Run("list kfunc:vfs_rea*", func(t *testing.T) {
		r := tracebroker(t, "list", "kfunc:vfs_rea*")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "kfunc:vmlinux:vfs_read\n") {
			t.Errorf("exit %d, stdout\n%s\nstderr %s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("run refused", func(t *testing.T) {
		if err := bpf.Supported(); err != nil {
			t.Skipf("kernel tracing unavailable: %v", err)
		}
		herr := bpf.HaveFentry()
		if herr == nil {
			t.Skip("skipping: this kernel loads fentry programs")
		}
		r := tracebroker(t, "run", "-e", "fentry:vfs_read { @ = count(); }")
		want := fmt.Sprintf("stdin:1:1-16: ERROR: kfunc probes are not available: %v\n", herr)
		if r.code != 1 || !strings.HasPrefix(r.stderr, want) || r.stdout != "" {
			t.Errorf("exit %d, stdout %q, stderr\n%s\nwant it to start\n%s", r.code, r.stdout, r.stderr, want)
		}
	})
}
