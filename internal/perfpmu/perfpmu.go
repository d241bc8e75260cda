// Package perfpmu reads what the kernel's dynamic probe PMUs (uprobe,
// kprobe) tell perf_event_open callers through sysfs: the PMU's event
// type and the config bit that asks for a return probe.
package perfpmu

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
