package program

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Everything that judges a probe — a token's probe: scopes, the
// gatekeeper, the attestation, the audit log, the daemon's session list
// — reads its Name, while the executor attaches by its other fields
// (Kind, Category/Event, PeriodNs/Freq, Path/Offset). A generator that
// hands the broker a Program (a plugin's raw eBPF) could name one probe
// and attach another: CheckName is the one place that ties the two.

// NameError is a probe whose name is not where it attaches.
type NameError struct {
	Name string // what the probe is called
	Is   string // where its fields attach it
}

func (e *NameError) Error() string {
	return fmt.Sprintf("probe %q is not what it attaches to: %s", e.Name, e.Is)
}

// CheckName says whether p's Name is the one its attach fields give it,
// as the compiler spells names: BEGIN, END, tracepoint:CAT:EVENT,
// rawtracepoint:EVENT, tp_btf:EVENT, interval|profile:UNIT:COUNT whose
// period (Period) is PeriodNs and Freq, uprobe|uretprobe:PATH:FUNC with
// PATH the Path and FUNC a function or an address without wildcards,
// kprobe|kretprobe:[MODULE:]FUNC[+OFFSET] (kprobe_name.go).
// Whether FUNC is at Offset in the file is for the reader of the file
// to say.
func (p *Probe) CheckName() error {
	var want string
	switch p.Kind {
	case Begin, End:
		want = p.Kind.String()
	case Tracepoint:
		want = "tracepoint:" + p.Category + ":" + p.Event
		if p.Category == "" || p.Event == "" || strings.Contains(p.Category, ":") {
			return &NameError{p.Name, fmt.Sprintf("tracepoint category %q, event %q", p.Category, p.Event)}
		}
	case RawTracepoint, TpBTF:
		want = p.Kind.String() + ":" + p.Event
		if p.Event == "" {
			return &NameError{p.Name, p.Kind.String() + " without an event"}
		}
	case Interval, Profile:
		parts := strings.Split(p.Name, ":")
		if len(parts) == 3 && parts[0] == p.Kind.String() {
			if period, freq, err := Period(p.Kind, parts[1], parts[2]); err == nil && period == p.PeriodNs && freq == p.Freq {
				return nil
			}
		}
		if p.Freq != 0 {
			return &NameError{p.Name, fmt.Sprintf("%s at %d Hz", p.Kind, p.Freq)}
		}
		return &NameError{p.Name, fmt.Sprintf("%s every %d ns", p.Kind, p.PeriodNs)}
	case Fentry, Fexit:
		if err := p.checkFuncName(); err != nil {
			return err
		}
		want = p.Kind.String() + ":" + p.Category + ":" + p.Event
	case Uprobe, Uretprobe:
		if len(p.Funcs) > 0 || len(p.Offsets) > 0 {
			if len(p.Funcs) == 0 {
				return &NameError{p.Name, fmt.Sprintf("%s at %d offsets of %s, without functions", p.Kind, len(p.Offsets), p.Path)}
			}
			return p.checkUprobeMultiName()
		}
		fn, ok := strings.CutPrefix(p.Name, p.Kind.String()+":"+p.Path+":")
		if ok && fn != "" && !strings.ContainsAny(fn, "*?[") {
			return nil
		}
		return &NameError{p.Name, fmt.Sprintf("%s at offset %#x of %s", p.Kind, p.Offset, p.Path)}
	case Kprobe, Kretprobe:
		return p.checkKprobeName()
	case Software:
		return p.checkSoftwareName()
	default:
		return &NameError{p.Name, fmt.Sprintf("a probe of unknown kind %d", p.Kind)}
	}
	if p.Name != want {
		return &NameError{p.Name, want}
	}
	return nil
}

// Period is what interval:UNIT:COUNT and profile:UNIT:COUNT mean: a
// period in nanoseconds, or for profile:hz a frequency (samples per
// second on each CPU) and no period. COUNT may have '_'s and a 0x or 0
// prefix, as the language's integers.
func Period(kind ProbeKind, unit, count string) (periodNs, freq uint64, err error) {
	mult, ok := map[string]uint64{"s": 1e9, "ms": 1e6, "us": 1e3, "hz": 0}[unit]
	if !ok {
		return 0, 0, fmt.Errorf("%s is not an accepted unit for %s probes (s, ms, us, hz)", unit, kind)
	}
	n, err := strconv.ParseUint(strings.ReplaceAll(count, "_", ""), 0, 64)
	if err != nil || n == 0 {
		return 0, 0, fmt.Errorf("%s probe period must be a positive integer, got %q", kind, count)
	}
	switch {
	case kind == Profile && mult == 0:
		// profile:hz samples at a frequency, as bpftrace sets it: the
		// kernel adjusts the period to keep the rate.
		return 0, n, nil
	case mult == 0:
		periodNs = 1e9 / n
	case n > math.MaxUint64/mult:
		return 0, 0, fmt.Errorf("%s period %s%s is too long", kind, count, unit)
	default:
		periodNs = n * mult
	}
	if periodNs == 0 {
		return 0, 0, fmt.Errorf("%s period is too short", kind)
	}
	return periodNs, 0, nil
}
