package uprobe

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/internal/perfpmu"
)

// pmu is the uprobe PMU.
var pmu = &perfpmu.PMU{Name: "uprobe", Dir: "/sys/bus/event_source/devices/uprobe", Missing: "kernel without CONFIG_UPROBE_EVENTS, or sysfs not mounted"}

func uprobePMU() (typ uint32, retBit uint, err error) { return pmu.Lookup() }

func readPMU(dir string) (uint32, uint, error) { return perfpmu.Read(dir, pmu.Name, pmu.Missing) }

// Open opens a uprobe (or uretprobe when ret) perf event at offset in
// path, for process pid (pid <= 0: every process), through the uprobe PMU
// (/sys/bus/event_source/devices/uprobe/type, retprobe bit from
// .../format/retprobe), and returns its fd (O_CLOEXEC). The caller sets
// the BPF program with PERF_EVENT_IOC_SET_BPF and enables it; closing the
// fd removes the probe.
//
// The attributes are bcc's, as bpftrace 0.17 opens uprobes: config1 the
// path, config2 the offset, sample_period and wakeup_events 1. For every
// process the event is opened on CPU 0 with pid -1 (a BPF program on a
// uprobe trace event runs on whichever CPU hits it); for one process on
// any CPU with that pid, and the kernel then fires the probe only in that
// process (every thread of it, as it filters by address space).
func Open(path string, offset uint64, ret bool, pid int) (int, error) {
	return OpenRef(path, offset, 0, ret, pid)
}

// refCtrFormat is where the uprobe PMU says it takes a semaphore: Linux
// 4.20's "config:32-63".
const refCtrFormat = "/sys/bus/event_source/devices/uprobe/format/ref_ctr_offset"

// OpenRef is Open for a USDT probe with a semaphore at file offset
// refCtr (0: none): the kernel increments it in every process the probe
// is in while the probe is attached, and decrements it after.
func OpenRef(path string, offset, refCtr uint64, ret bool, pid int) (int, error) {
	if _, _, err := uprobePMU(); err != nil {
		return -1, err
	}
	var config uint64
	if refCtr != 0 {
		b, err := os.ReadFile(refCtrFormat)
		if err != nil || strings.TrimSpace(string(b)) != "config:32-63" {
			return -1, fmt.Errorf("uprobe %s:0x%x has a USDT semaphore, which needs the kernel's uprobe ref_ctr_offset (Linux 4.20): %s is %q", path, offset, refCtrFormat, strings.TrimSpace(string(b)))
		}
		if refCtr >= 1<<32 {
			return -1, fmt.Errorf("uprobe %s:0x%x: semaphore offset %#x does not fit the kernel's 32 bits", path, offset, refCtr)
		}
		config = refCtr << 32
	}
	cpu := 0
	if pid > 0 {
		cpu = -1
	} else {
		pid = -1
	}
	fd, err := pmu.OpenConfig(path, offset, ret, pid, cpu, config)
	switch {
	case errors.Is(err, perfpmu.ErrName):
		return -1, fmt.Errorf("uprobe %s: invalid path: %w", path, err)
	case err != nil:
		return -1, openError(path, offset, ret, pid, err)
	}
	return fd, nil
}

func openError(path string, offset uint64, ret bool, pid int, err error) error {
	kind := "uprobe"
	if ret {
		kind = "uretprobe"
	}
	var why string
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		why = "needs root (CAP_PERFMON or CAP_SYS_ADMIN)"
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		why = "file not found"
	case errors.Is(err, unix.EINVAL):
		why = "offset beyond the end of the file, or not a regular file"
	case errors.Is(err, unix.ESRCH):
		why = fmt.Sprintf("no process %d", pid)
	case errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENFILE):
		why = "too many open files"
	case errors.Is(err, errNotSupp):
		why = WhyNot(err)
	default:
		why = "perf_event_open"
	}
	return fmt.Errorf("open %s %s:0x%x: %s: %w", kind, path, offset, why, err)
}
