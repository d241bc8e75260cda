package program

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SoftwareEvent is a perf software event as bpftrace 0.17 names it
// (src/probe_matcher.h, SW_PROBE_LIST), with its default period.
type SoftwareEvent struct {
	Name, Alias   string
	Config        uint64 // PERF_COUNT_SW_*
	DefaultPeriod uint64
}

// SoftwareEvents are bpftrace 0.17's, in its order.
var SoftwareEvents = []SoftwareEvent{
	{"alignment-faults", "", unix.PERF_COUNT_SW_ALIGNMENT_FAULTS, 1},
	{"bpf-output", "", unix.PERF_COUNT_SW_BPF_OUTPUT, 1},
	{"context-switches", "cs", unix.PERF_COUNT_SW_CONTEXT_SWITCHES, 1000},
	{"cpu-clock", "cpu", unix.PERF_COUNT_SW_CPU_CLOCK, 1000000},
	{"cpu-migrations", "", unix.PERF_COUNT_SW_CPU_MIGRATIONS, 1},
	{"dummy", "", unix.PERF_COUNT_SW_DUMMY, 1},
	{"emulation-faults", "", unix.PERF_COUNT_SW_EMULATION_FAULTS, 1},
	{"major-faults", "", unix.PERF_COUNT_SW_PAGE_FAULTS_MAJ, 1},
	{"minor-faults", "", unix.PERF_COUNT_SW_PAGE_FAULTS_MIN, 100},
	{"page-faults", "faults", unix.PERF_COUNT_SW_PAGE_FAULTS, 100},
	{"task-clock", "", unix.PERF_COUNT_SW_TASK_CLOCK, 1},
}

// LookupSoftware finds a software event by its name or alias.
func LookupSoftware(name string) (SoftwareEvent, bool) {
	for _, e := range SoftwareEvents {
		if name == e.Name || e.Alias != "" && name == e.Alias {
			return e, true
		}
	}
	return SoftwareEvent{}, false
}

// SoftwareSample is what software:EVENT[:COUNT] means: the event, and
// the events per sample (COUNT, or the event's default as bpftrace's).
func SoftwareSample(event, count string) (SoftwareEvent, uint64, error) {
	e, ok := LookupSoftware(event)
	if !ok {
		return e, 0, fmt.Errorf("%s is not a software probe", event)
	}
	if count == "" {
		return e, e.DefaultPeriod, nil
	}
	n, err := strconv.ParseUint(strings.ReplaceAll(count, "_", ""), 0, 64)
	if err != nil || n == 0 {
		return e, 0, fmt.Errorf("software probe count must be a positive integer, got %q", count)
	}
	return e, n, nil
}

// checkSoftwareName checks that a software probe's name says its event
// and period: the name is what scopes and the gatekeeper judge.
func (p *Probe) checkSoftwareName() error {
	parts := strings.Split(p.Name, ":")
	if (len(parts) == 2 || len(parts) == 3) && parts[0] == "software" {
		count := ""
		if len(parts) == 3 {
			count = parts[2]
		}
		if e, n, err := SoftwareSample(parts[1], count); err == nil && e.Name == p.Event && n == p.Sample {
			return nil
		}
	}
	return &NameError{p.Name, fmt.Sprintf("software event %q every %d events", p.Event, p.Sample)}
}

// PerfAttr is the perf event a profile or software probe samples on
// each CPU: cpu-clock every periodNs (or freq times a second), or the
// software event every sample events.
func PerfAttr(kind ProbeKind, event string, periodNs, freq, sample uint64) unix.PerfEventAttr {
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_CPU_CLOCK, Sample: periodNs}
	if kind == Software {
		e, _ := LookupSoftware(event)
		attr.Config, attr.Sample = e.Config, sample
	} else if freq != 0 {
		attr.Sample, attr.Bits = freq, unix.PerfBitFreq
	}
	return attr
}
