package program

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckName: a name is accepted exactly when it is where the probe's
// fields attach it.
func TestCheckName(t *testing.T) {
	for _, tt := range []struct {
		p  Probe
		ok bool
	}{
		{Probe{Kind: Begin, Name: "BEGIN"}, true},
		{Probe{Kind: Begin, Name: "END"}, false},
		{Probe{Kind: Tracepoint, Name: "tracepoint:syscalls:sys_enter_getcwd", Category: "syscalls", Event: "sys_enter_getcwd"}, true},
		{Probe{Kind: Tracepoint, Name: "tracepoint:syscalls:sys_enter_getcwd", Category: "syscalls", Event: "sys_enter_getppid"}, false},
		{Probe{Kind: Tracepoint, Name: "tracepoint:a:b:c", Category: "a:b", Event: "c"}, false},
		{Probe{Kind: Tracepoint, Name: "tracepoint::", Category: "", Event: ""}, false},
		{Probe{Kind: RawTracepoint, Name: "rawtracepoint:sys_enter", Event: "sys_enter"}, true},
		{Probe{Kind: RawTracepoint, Name: "rawtracepoint:sys_enter", Event: "sys_exit"}, false},
		{Probe{Kind: TpBTF, Name: "tp_btf:sched_switch", Event: "sched_switch"}, true},
		{Probe{Kind: TpBTF, Name: "rawtracepoint:sched_switch", Event: "sched_switch"}, false},
		{Probe{Kind: Interval, Name: "interval:s:1", PeriodNs: 1e9}, true},
		{Probe{Kind: Interval, Name: "interval:ms:1_000", PeriodNs: 1e9}, true},
		{Probe{Kind: Interval, Name: "interval:hz:4", PeriodNs: 250e6}, true},
		{Probe{Kind: Interval, Name: "interval:s:1", PeriodNs: 1000}, false},
		{Probe{Kind: Interval, Name: "profile:s:1", PeriodNs: 1e9}, false},
		{Probe{Kind: Profile, Name: "profile:hz:99", Freq: 99}, true},
		{Probe{Kind: Profile, Name: "profile:hz:99", PeriodNs: 99}, false},
		{Probe{Kind: Profile, Name: "profile:s:18446744073709551615", PeriodNs: 18446744072709551616}, false}, // the period that wraps
		{Probe{Kind: Uprobe, Name: "uprobe:/bin/x:main", Path: "/bin/x", Offset: 0x1000}, true},
		{Probe{Kind: Uprobe, Name: "uprobe:/bin/x:0x1139", Path: "/bin/x", Offset: 0x1000}, true},
		{Probe{Kind: Uretprobe, Name: "uprobe:/bin/x:main", Path: "/bin/x"}, false},
		{Probe{Kind: Uprobe, Name: "uprobe:/bin/x:main", Path: "/bin/y"}, false},
		{Probe{Kind: Uprobe, Name: "uprobe:/bin/x:ma*", Path: "/bin/x"}, false},
		{Probe{Kind: Uprobe, Name: "uprobe:/bin/x:", Path: "/bin/x"}, false},
		{Probe{Kind: Gatekeeper, Name: "gatekeeper"}, false},
		{Probe{Kind: 200, Name: "unknown"}, false},
	} {
		err := tt.p.CheckName()
		var ne *NameError
		if (err == nil) != tt.ok || (err != nil && !errors.As(err, &ne)) {
			t.Errorf("%+v: %v, want ok=%v", tt.p, err, tt.ok)
		}
	}
}

// FuzzCheckName: whatever a generator sends, a name CheckName accepts
// spells the fields the executor attaches by.
func FuzzCheckName(f *testing.F) {
	f.Add(uint8(Tracepoint), "tracepoint:syscalls:sys_enter_getcwd", "syscalls", "sys_enter_getcwd", "", uint64(0), uint64(0))
	f.Add(uint8(Interval), "interval:ms:10", "", "", "", uint64(10e6), uint64(0))
	f.Add(uint8(Profile), "profile:hz:99", "", "", "", uint64(0), uint64(99))
	f.Add(uint8(Uprobe), "uprobe:/bin/x:main", "", "", "/bin/x", uint64(0), uint64(0))
	f.Add(uint8(RawTracepoint), "rawtracepoint:sys_enter", "", "sys_enter", "", uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, kind uint8, name, cat, event, path string, period, freq uint64) {
		p := Probe{Kind: ProbeKind(kind), Name: name, Category: cat, Event: event, Path: path, PeriodNs: period, Freq: freq}
		if p.CheckName() != nil {
			return
		}
		switch p.Kind {
		case Begin, End:
			if name != p.Kind.String() {
				t.Fatalf("%q accepted for %s", name, p.Kind)
			}
		case Tracepoint:
			if name != "tracepoint:"+cat+":"+event || strings.Contains(cat, ":") {
				t.Fatalf("%q accepted for tracepoint %q %q", name, cat, event)
			}
		case RawTracepoint, TpBTF:
			if name != p.Kind.String()+":"+event {
				t.Fatalf("%q accepted for %s %q", name, p.Kind, event)
			}
		case Interval, Profile:
			parts := strings.Split(name, ":")
			got, gotFreq, err := Period(p.Kind, parts[1], parts[2])
			if err != nil || got != period || gotFreq != freq || period == 0 && freq == 0 {
				t.Fatalf("%q accepted for period %d, freq %d", name, period, freq)
			}
		case Uprobe, Uretprobe:
			fn, ok := strings.CutPrefix(name, p.Kind.String()+":"+path+":")
			if !ok || fn == "" || strings.ContainsAny(fn, "*?[") {
				t.Fatalf("%q accepted for %s on %q", name, p.Kind, path)
			}
		default:
			t.Fatalf("kind %d accepted", kind)
		}
	})
}
