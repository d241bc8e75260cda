package bpf

import (
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/broker/program"
)

// TestTpBTFLoadError: a kernel that refuses tp_btf programs, or lacks the
// tracepoint's BTF, gets a one-line reason naming the probe, not a
// verifier log, and the error of another probe keeps its message.
func TestTpBTFLoadError(t *testing.T) {
	p := &program.Program{Probes: []*program.Probe{
		{Kind: program.Tracepoint, Name: "tracepoint:sched:sched_switch"},
		{Kind: program.TpBTF, Name: "tp_btf:sched_switch", Event: "sched_switch"},
	}}
	names := []string{"p0", "p1"}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("program p1: load program: %w", unix.EPERM), "tp_btf:sched_switch: the kernel refuses BTF tracepoint (tp_btf) programs (operation not permitted)"},
		{fmt.Errorf("program p1: attach raw_tp sched_switch: %w", ebpf.ErrNotSupported), "tp_btf:sched_switch: this kernel does not support BTF tracepoint (tp_btf) programs for sched_switch"},
		{fmt.Errorf("program p0: load program: %w", unix.EPERM), NotPermitted("").Error()},
	} {
		if got := loadError(p, names, tc.err).Error(); got != tc.want {
			t.Errorf("loadError(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
