package bpf

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf/kprobe"
)

// InfoBuild is what --info's Build section says of this binary.
type InfoBuild struct {
	Version string
}

// WriteInfo writes bpftrace's --info report, in its layout, of this
// kernel: every "yes" or "no" is a probe of the running kernel (a
// program or map loaded, a file looked up), never an assumption.
func WriteInfo(w io.Writer, b InfoBuild) error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	str := func(b []byte) string { return strings.TrimRight(string(b), "\x00") }
	yn := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "no"
	}
	helper := func(h asm.BuiltinFunc) string {
		// bpftrace probes its helpers in a kprobe program.
		return yn(features.HaveProgramHelper(ebpf.Kprobe, h) == nil)
	}
	kfunc := HaveFentry() == nil
	named := btfHelpers()
	_, err := os.Stat("/sys/kernel/btf/vmlinux")
	haveBTF := err == nil
	limit := 4096
	if features.HaveLargeInstructions() == nil {
		limit = 1000000
	}
	_, err = os.Stat("/sys/bus/event_source/devices/uprobe/format/ref_ctr_offset")
	refcount := err == nil
	mapType := func(t ebpf.MapType) string { return yn(features.HaveMapType(t) == nil) }
	progType := func(t ebpf.ProgramType) bool { return features.HaveProgramType(t) == nil }

	var s strings.Builder
	fmt.Fprintf(&s, "System\n  OS: %s %s %s\n  Arch: %s\n\n", str(u.Sysname[:]), str(u.Release[:]), str(u.Version[:]), str(u.Machine[:]))
	// tracebroker generates eBPF itself and reads no DWARF: what
	// bpftrace's build has, this one has not.
	fmt.Fprintf(&s, "Build\n  version: %s\n  LLVM: no\n  unsafe uprobe: no\n  bfd: no\n  libdw (DWARF support): no\n\n", b.Version)
	fmt.Fprintf(&s, "Kernel helpers\n")
	for _, h := range []struct {
		name string
		fn   asm.BuiltinFunc
	}{
		{"probe_read", asm.FnProbeRead}, {"probe_read_str", asm.FnProbeReadStr},
		{"probe_read_user", asm.FnProbeReadUser}, {"probe_read_user_str", asm.FnProbeReadUserStr},
		{"probe_read_kernel", asm.FnProbeReadKernel}, {"probe_read_kernel_str", asm.FnProbeReadKernelStr},
		{"get_current_cgroup_id", asm.FnGetCurrentCgroupId}, {"send_signal", asm.FnSendSignal},
		{"override_return", asm.FnOverrideReturn}, {"get_boot_ns", asm.FnKtimeGetBootNs},
	} {
		fmt.Fprintf(&s, "  %s: %s\n", h.name, helper(h.fn))
	}
	// d_path and skb_output are helpers of tracing (fentry) programs
	// only: the kernel has them when it loads those and names them.
	fmt.Fprintf(&s, "  dpath: %s\n  skboutput: %s\n\n", yn(kfunc && named["BPF_FUNC_d_path"]), yn(kfunc && named["BPF_FUNC_skb_output"]))
	fmt.Fprintf(&s, "Kernel features\n  Instruction limit: %d\n  Loop support: %s\n  btf: %s\n  map batch: %s\n  uprobe refcount (depends on Build:bcc bpf_attach_uprobe refcount): %s\n\n",
		limit, yn(features.HaveBoundedLoops() == nil), yn(haveBTF), yn(haveMapBatch()), yn(refcount))
	fmt.Fprintf(&s, "Map types\n  hash: %s\n  percpu hash: %s\n  array: %s\n  percpu array: %s\n  stack_trace: %s\n  perf_event_array: %s\n\n",
		mapType(ebpf.Hash), mapType(ebpf.PerCPUHash), mapType(ebpf.Array), mapType(ebpf.PerCPUArray), mapType(ebpf.StackTrace), mapType(ebpf.PerfEventArray))
	// kprobe says whether kprobes attach, not only whether the program
	// type loads: a kernel without kprobe events loads kprobe programs
	// and attaches none.
	fmt.Fprintf(&s, "Probe types\n  kprobe: %s\n  tracepoint: %s\n  perf_event: %s\n  kfunc: %s\n  iter:task: %s\n  iter:task_file: %s\n  kprobe_multi: %s\n  raw_tp_special: %s\n",
		yn(progType(ebpf.Kprobe) && kprobe.Supported() == nil), yn(progType(ebpf.TracePoint)), yn(progType(ebpf.PerfEvent)),
		yn(kfunc && haveBTF), yn(haveIter("task")), yn(haveIter("task_file")), yn(kprobe.HaveMulti()), yn(haveRawTpSpecial()))
	_, err = io.WriteString(w, s.String())
	return err
}

// btfHelpers are the helpers the kernel's BTF names in enum bpf_func_id.
func btfHelpers() map[string]bool {
	out := map[string]bool{}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return out
	}
	var e *btf.Enum
	if err := spec.TypeByName("bpf_func_id", &e); err != nil {
		return out
	}
	for _, v := range e.Values {
		out[v.Name] = true
	}
	return out
}

// haveIter loads a task iterator program (loading attaches nothing).
func haveIter(target string) bool {
	prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Type:         ebpf.Tracing,
		AttachType:   ebpf.AttachTraceIter,
		AttachTo:     target,
		License:      "GPL",
		Instructions: asm.Instructions{asm.LoadImm(asm.R0, 0, asm.DWord), asm.Return()},
	}, ebpf.ProgramOptions{LogDisabled: true})
	if err != nil {
		return false
	}
	prog.Close()
	return true
}

// haveMapBatch looks up a batch of an empty hash map: a kernel with
// the batch commands says there is nothing, one without refuses.
func haveMapBatch() bool {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		return false
	}
	defer m.Close()
	keys, vals := make([]uint32, 1), make([]uint32, 1)
	var cursor ebpf.MapBatchCursor
	_, err = m.BatchLookup(&cursor, keys, vals, nil)
	return err == nil || errors.Is(err, ebpf.ErrKeyNotExist)
}

// haveRawTpSpecial runs a raw tracepoint program with
// BPF_PROG_TEST_RUN, which is how BEGIN and END run.
func haveRawTpSpecial() bool {
	prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Type:         ebpf.RawTracepoint,
		License:      "GPL",
		Instructions: asm.Instructions{asm.LoadImm(asm.R0, 0, asm.DWord), asm.Return()},
	}, ebpf.ProgramOptions{LogDisabled: true})
	if err != nil {
		return false
	}
	defer prog.Close()
	_, err = prog.Run(&ebpf.RunOptions{})
	return err == nil
}
