package btsuite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/kprobe"
)

// Features says, for each REQUIRES_FEATURE name, whether this kernel
// has it. The engine asks the bpftrace under test (`bpftrace --info`);
// here the kernel is probed directly, so that a test skips only when
// the kernel lacks what it needs, never because the tool under test
// says it lacks it. dwarf and libpath_resolv are what a tool does with
// the files it reads, not the kernel: true, the tests count. aot is
// bpftrace's ahead-of-time runtime, which the engine runs only when
// asked: false.
func Features() map[string]bool {
	kfunc := bpf.HaveFentry() == nil
	helpers := kernelHelpers()
	_, err := os.Stat("/sys/kernel/btf/vmlinux")
	haveBTF := err == nil
	_, err = os.Stat("/sys/bus/event_source/devices/uprobe/format/ref_ctr_offset")
	refcount := err == nil
	return map[string]bool{
		"loop":              features.HaveBoundedLoops() == nil,
		"btf":               haveBTF,
		"kfunc":             kfunc,
		"probe_read_kernel": features.HaveProgramHelper(ebpf.TracePoint, asm.FnProbeReadKernel) == nil,
		"signal":            features.HaveProgramHelper(ebpf.TracePoint, asm.FnSendSignal) == nil,
		// bpf_d_path and bpf_skb_output are helpers of tracing
		// (fentry) programs only: the kernel has them when it
		// loads those and its BTF names the helper.
		"dpath":           kfunc && helpers["BPF_FUNC_d_path"],
		"skboutput":       kfunc && helpers["BPF_FUNC_skb_output"],
		"uprobe_refcount": refcount,
		"iter:task":       haveIter("task"),
		"iter:task_file":  haveIter("task_file"),
		"kprobe_multi":    kprobe.HaveMulti(),
		"dwarf":           true,
		"libpath_resolv":  true,
		"aot":             false,
	}
}

// kernelHelpers are the helpers the kernel's BTF names in enum
// bpf_func_id.
func kernelHelpers() map[string]bool {
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
		if strings.HasPrefix(v.Name, "BPF_FUNC_") {
			out[v.Name] = true
		}
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

// Lacks names what the kernel lacks that tests need without saying so
// (the engine runs them and they fail, bpftrace's as well): kprobes,
// hardware watchpoints, debugfs's trace buffer. Each is mapped to why.
func Lacks() map[string]string {
	out := map[string]string{}
	if err := kprobe.Supported(); err != nil {
		out[needKprobes] = err.Error()
	}
	if err := watchpointFires(); err != nil {
		out[needWatchpoints] = err.Error()
	}
	if _, err := os.Stat("/sys/kernel/debug/tracing/trace"); err != nil {
		out[needDebugfs] = "debugfs is not mounted at /sys/kernel/debug"
	}
	return out
}

var watched uint32

// watchpointFires sets a hardware watchpoint on a variable of this
// thread and writes it: a kernel (or a hypervisor) may accept the
// watchpoint and never fire it.
func watchpointFires() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	attr := unix.PerfEventAttr{
		Type:    unix.PERF_TYPE_BREAKPOINT,
		Size:    uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Sample:  1,
		Bits:    unix.PerfBitExcludeKernel | unix.PerfBitExcludeHv,
		Bp_type: 2, // HW_BREAKPOINT_W
		Ext1:    uint64(uintptr(unsafe.Pointer(&watched))),
		Ext2:    4,
	}
	fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("hardware watchpoints: perf_event_open: %w", err)
	}
	defer unix.Close(fd)
	for i := 0; i < 3; i++ {
		atomic.AddUint32(&watched, 1)
	}
	var buf [8]byte
	if _, err := unix.Read(fd, buf[:]); err != nil {
		return fmt.Errorf("hardware watchpoints: reading the count: %w", err)
	}
	if n := binary.LittleEndian.Uint64(buf[:]); n == 0 {
		return errors.New("hardware watchpoints do not fire on this machine (a watched write counted 0)")
	}
	return nil
}
