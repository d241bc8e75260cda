package kprobe

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/internal/perfpmu"
)

const (
	eventSources = "/sys/bus/event_source/devices"
	pmuDir       = eventSources + "/kprobe"
)

var pmu = &perfpmu.PMU{Name: "kprobe", Dir: pmuDir, Missing: "kernel without CONFIG_KPROBE_EVENTS, or sysfs not mounted"}

// ErrNoKprobes is the answer of Supported on a kernel built without
// kprobes.
var ErrNoKprobes = errors.New("this kernel was built without kprobes (CONFIG_KPROBES is not set)")

// Supported reports why this kernel cannot attach kprobes, or nil: it
// looks for the kprobe PMU, which every kernel with kprobe events
// registers at boot, next to the other PMUs of sysfs.
func Supported() error {
	return supported(eventSources, pmu.Lookup)
}

func supported(sources string, lookup func() (uint32, uint, error)) error {
	_, _, err := lookup()
	if err == nil {
		return nil
	}
	if _, serr := os.Stat(sources); serr != nil {
		return fmt.Errorf("cannot tell whether this kernel has kprobes: %w", serr)
	}
	if errors.Is(err, os.ErrNotExist) {
		return ErrNoKprobes
	}
	return err
}

// HaveMulti reports whether the kernel attaches one program to many
// functions with a kprobe.multi link (BPF_TRACE_KPROBE_MULTI, since 5.18
// with CONFIG_FPROBE).
func HaveMulti() bool {
	return Supported() == nil && features.HaveBPFLinkKprobeMulti() == nil
}

// Symbol is the name the kprobe PMU resolves to module's fn: MODULE:FN
// for a module's (the kernel's kallsyms lookup takes that form), so that
// a name the kernel image has too reaches the module's function; the
// bare name for the image's.
func Symbol(module, fn string) string {
	if module == "" || module == "vmlinux" {
		return fn
	}
	return module + ":" + fn
}

// Open opens a kprobe (or kretprobe when ret) perf event on fn at
// offset through the kprobe PMU (perfpmu.PMU.Open) and returns its fd:
// on CPU 0 for every process, as bpftrace 0.17 opens kprobes (a kprobe
// fires on whichever CPU runs the function).
func Open(fn string, offset uint64, ret bool) (int, error) {
	if _, _, err := pmu.Lookup(); err != nil {
		if serr := Supported(); serr != nil {
			err = serr
		}
		return -1, err
	}
	fd, err := pmu.Open(fn, offset, ret, -1, 0)
	switch {
	case errors.Is(err, perfpmu.ErrName):
		return -1, fmt.Errorf("kprobe %s: invalid function name", fn)
	case err != nil:
		return -1, openError(fn, offset, ret, err)
	}
	return fd, nil
}

func openError(fn string, offset uint64, ret bool, err error) error {
	kind := "kprobe"
	if ret {
		kind = "kretprobe"
	}
	var why string
	switch {
	case errors.Is(err, unix.EILSEQ):
		// bpftrace's words for it.
		why = "Possible attachment attempt in the middle of an instruction, try a different offset."
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		why = "needs root (CAP_PERFMON or CAP_SYS_ADMIN)"
	case errors.Is(err, unix.ENOENT):
		why = "no such kernel function (or its module is not loaded)"
	case errors.Is(err, unix.EADDRNOTAVAIL):
		// Since 6.6 (and 6.1's later stable releases) the kernel
		// refuses a name that several functions have.
		why = "no such kernel function, or more than one of that name (the kernel image's and a module's: name the module, kprobe:MODULE:FUNC)"
	case errors.Is(err, unix.EINVAL):
		why = "the kernel refuses to probe it (notrace, on the kprobe blacklist, or the offset is not in the function)"
	case errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENFILE):
		why = "too many open files"
	default:
		why = "perf_event_open"
	}
	name := fn
	if offset != 0 {
		name = fmt.Sprintf("%s+%d", fn, offset)
	}
	return fmt.Errorf("open %s %s: %s: %w", kind, name, why, err)
}
