package collector_test

import (
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/bpf/tracefs"
	"github.com/tracebroker/tracebroker/bpf/uprobe"
)

// TestKernelFeatures logs what the kernel has of what tracebroker probes
// for, one Markdown row each: the README's table of what each kernel
// lacks is this test's log on each (make vmtest VMTEST_FLAGS='-pkgs
// ./bpf/collector -run TestKernelFeatures', then
// vmtest-out/KERNEL/bpf_collector.log). A probe that cannot put its
// question fails it.
func TestKernelFeatures(t *testing.T) {
	needTracing(t)
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	t.Logf("| kernel | %s |", b[:len(b)-1])
	row := func(name string, have bool, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		t.Logf("| %s | %v |", name, have)
	}
	row("v4 instructions: sign-extending loads, sdiv (bpf.HaveV4ISA)", bpf.HaveV4ISA(), nil)
	row("raw tracepoint attach cookies (collector.RawTracepointCookies)", collector.RawTracepointCookies(), nil)
	ks, err := bpf.HaveSyscallKernelStacks()
	row("kernel stacks at syscall tracepoints (bpf.HaveSyscallKernelStacks)", ks, err)
	root, err := tracefs.Root()
	if err != nil {
		t.Fatal(err)
	}
	_, err = os.Stat(root + "/kprobe_events")
	row("kprobes (tracefs kprobe_events)", err == nil, nil)
	row("kprobe.multi links (features.HaveBPFLinkKprobeMulti)", features.HaveBPFLinkKprobeMulti() == nil, nil)
	row("uprobe.multi links (uprobe.HaveMulti)", uprobe.HaveMulti(), nil)
	row("fentry/fexit (features.HaveProgramType(Tracing) loads an fentry program)", features.HaveProgramType(ebpf.Tracing) == nil, nil)

}
