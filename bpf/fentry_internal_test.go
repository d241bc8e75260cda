package bpf

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/broker/program"
)

// TestFentryErrors: a kernel that refuses kfunc/kretfunc programs, or
// cannot attach them where the probe says, gets a one-line reason naming
// the probe; other probes' errors keep their messages.
func TestFentryErrors(t *testing.T) {
	p := &program.Program{Probes: []*program.Probe{
		{Kind: program.Tracepoint, Name: "tracepoint:sched:sched_switch"},
		{Kind: program.Fentry, Name: "kfunc:vmlinux:vfs_read", Category: "vmlinux", Event: "vfs_read"},
		{Kind: program.Fexit, Name: "kretfunc:vmlinux:vfs_read", Category: "vmlinux", Event: "vfs_read"},
	}}
	names := []string{"p0", "p1", "p2"}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("program p1: load program: %w", unix.EPERM), "kfunc:vmlinux:vfs_read: the kernel refuses fentry programs (operation not permitted)"},
		{fmt.Errorf("program p2: load program: %w", unix.EPERM), "kretfunc:vmlinux:vfs_read: the kernel refuses fexit programs (operation not permitted)"},
		{fmt.Errorf("program p2: fexit vfs_read: %w", ebpf.ErrNotSupported), "kretfunc:vmlinux:vfs_read: this kernel can not attach an fexit program to vfs_read: program p2: fexit vfs_read: not supported"},
		{fmt.Errorf("program p0: load program: %w", unix.EPERM), NotPermitted("").Error()},
	} {
		if got := loadError(p, names, tc.err).Error(); got != tc.want {
			t.Errorf("loadError(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{unix.EPERM, "the kernel refuses fentry/fexit programs (loading an fentry program on vfs_read: operation not permitted)"},
		{fmt.Errorf("detect: %w", ebpf.ErrNotSupported), "this kernel does not support fentry/fexit programs (they need Linux 5.5 and the kernel's BTF): detect: not supported"},
		{errors.New("odd"), "loading an fentry program: odd"},
	} {
		if got := fentryError(tc.err).Error(); got != tc.want {
			t.Errorf("fentryError(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if err := FentryAttachError(unix.EBUSY); !errors.Is(err, unix.EBUSY) || err.Error() != "the function's BPF trampoline is full or busy (device or resource busy)" {
		t.Errorf("FentryAttachError(EBUSY) = %v", err)
	}
}
