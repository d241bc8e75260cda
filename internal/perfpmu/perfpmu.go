// Package perfpmu reads what the kernel's dynamic probe PMUs (uprobe,
// kprobe) tell perf_event_open callers through sysfs: the PMU's event
// type and the config bit that asks for a return probe.
package perfpmu

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PMU is one PMU, found under /sys/bus/event_source/devices/NAME. A
// successful lookup is cached (a PMU is registered at boot and stays); a
// failure is not.
type PMU struct {
	Name    string // "uprobe", "kprobe"
	Dir     string // its sysfs directory
	Missing string // why the PMU may be missing, for the error

	mu     sync.Mutex
	ok     bool
	typ    uint32
	retBit uint
}

// Lookup returns the PMU's perf event type and return-probe bit.
func (p *PMU) Lookup() (typ uint32, retBit uint, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ok {
		return p.typ, p.retBit, nil
	}
	typ, retBit, err = Read(p.Dir, p.Name, p.Missing)
	if err != nil {
		return 0, 0, err
	}
	p.ok, p.typ, p.retBit = true, typ, retBit
	return typ, retBit, nil
}

// Read reads dir/type (a decimal number) and dir/format/retprobe
// ("config:N", the bit of perf_event_attr.config that asks for a return
// probe) of the PMU name; missing says why dir may not exist.
func Read(dir, name, missing string) (uint32, uint, error) {
	data, err := os.ReadFile(filepath.Join(dir, "type"))
	if err != nil {
		return 0, 0, fmt.Errorf("%s PMU not available (%s): %w", name, missing, err)
	}
	typ, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("%s PMU type %q: %w", name, strings.TrimSpace(string(data)), err)
	}
	data, err = os.ReadFile(filepath.Join(dir, "format", "retprobe"))
	if err != nil {
		return 0, 0, fmt.Errorf("%s PMU without return probes: %w", name, err)
	}
	f := strings.TrimSpace(string(data))
	bit, ok := strings.CutPrefix(f, "config:")
	n, err := strconv.ParseUint(bit, 10, 6) // 0..63
	if !ok || err != nil {
		return 0, 0, fmt.Errorf("%s PMU retprobe format %q is not config:BIT", name, f)
	}
	return uint32(typ), uint(n), nil
}

// ErrName is a probe's name (a function, a file) that holds a NUL, which
// the kernel can not be given.
var ErrName = errors.New("the name holds a NUL byte")

// Open opens one of the PMU's probes as bcc, and so bpftrace 0.17, opens
// them: config1 names what is probed (a kernel function, a file),
// config2 is the offset in it, the return-probe bit asks for a return
// probe, sample_period and wakeup_events 1; for process pid (-1: every
// process) on cpu (-1: any), O_CLOEXEC. The caller sets the BPF program
// on the returned fd (PERF_EVENT_IOC_SET_BPF, or a perf link); closing it
// removes the probe. The PMU is looked up first (Lookup's errors); what
// perf_event_open answers is returned bare, for the caller to word.
func (p *PMU) Open(name string, offset uint64, ret bool, pid, cpu int) (int, error) {
	return p.OpenConfig(name, offset, ret, pid, cpu, 0)
}

// OpenConfig is Open with config's bits set in the event's config: a
// uprobe's ref_ctr_offset (RefCtrShift).
func (p *PMU) OpenConfig(name string, offset uint64, ret bool, pid, cpu int, config uint64) (int, error) {
	typ, retBit, err := p.Lookup()
	if err != nil {
		return -1, err
	}
	cname, err := unix.BytePtrFromString(name)
	if err != nil {
		return -1, fmt.Errorf("%w: %w", ErrName, err)
	}
	attr := unix.PerfEventAttr{
		Type:   typ,
		Size:   uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Sample: 1,
		Wakeup: 1,
		Ext1:   uint64(uintptr(unsafe.Pointer(cname))), // kprobe_func, uprobe_path
		Ext2:   offset,                                 // probe_offset
	}
	attr.Config = config
	if ret {
		attr.Config |= 1 << retBit
	}
	fd, err := unix.PerfEventOpen(&attr, pid, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
	// The kernel reads the name during the call; the pointer in Ext1 is
	// invisible to the garbage collector.
	runtime.KeepAlive(cname)
	return fd, err
}
