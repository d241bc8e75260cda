package tracefs

import (
	"bytes"
	"errors"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// requireTracefs skips tests that need the running kernel's tracefs.
func requireTracefs(tb testing.TB) string {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("skipping: tracefs is only readable by root")
	}
	r, err := Root()
	if err != nil {
		tb.Skipf("skipping: no tracefs: %v", err)
	}
	return r
}

// requireBpftrace017 skips unless the reference bpftrace is on PATH. The
// expected output is 0.17's; later releases list software events and
// print fields differently, so they are not a reference.
func requireBpftrace017(t *testing.T) string {
	t.Helper()
	bt := kerneltest.Bpftrace017(t)
	return bt
}

func TestSystemTracepointsMatchAvailableEvents(t *testing.T) {
	root := requireTracefs(t)
	// available_events is what bpftrace lists from; the events/ directory
	// walk must agree with it exactly.
	data, err := os.ReadFile(filepath.Join(root, "available_events"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(data))
	slices.Sort(want)
	want = slices.Compact(want)
	tps, err := Tracepoints("*:*")
	if err != nil {
		t.Fatal(err)
	}
	got := names(tps)
	if !slices.Equal(got, want) {
		for _, s := range got {
			if _, found := slices.BinarySearch(want, s); !found {
				t.Errorf("listed but not in available_events: %s", s)
			}
		}
		for _, s := range want {
			if _, found := slices.BinarySearch(got, s); !found {
				t.Errorf("in available_events but not listed: %s", s)
			}
		}
		t.Fatalf("listed %d tracepoints, available_events has %d", len(got), len(want))
	}
}

func TestSystemReadFormat(t *testing.T) {
	root := requireTracefs(t)
	f, err := ReadFormat("sched", "sched_switch")
	if err != nil {
		t.Fatal(err)
	}
	id, err := os.ReadFile(filepath.Join(root, "events/sched/sched_switch/id"))
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := strconv.ParseUint(strings.TrimSpace(string(id)), 10, 64); f.ID != want {
		t.Errorf("ID = %d, id file says %d", f.ID, want)
	}
	if fld, ok := f.Field("prev_comm"); !ok || fld.Kind != KindString || fld.ArrayLen != 16 {
		t.Errorf("prev_comm = %+v", fld)
	}
	if len(f.Common) == 0 || f.Common[0].Name != "common_type" {
		t.Errorf("Common = %+v", f.Common)
	}

	_, err = ReadFormat("syscalls", "sys_enter_nosuch")
	if !errors.Is(err, ErrNotFound) || err.Error() != "tracepoint not found: syscalls:sys_enter_nosuch" {
		t.Errorf("err = %v", err)
	}

	// Every format on this kernel must parse.
	tps, err := Tracepoints("*:*")
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range tps {
		if _, err := ReadFormat(tp.Category, tp.Name); err != nil {
			t.Error(err)
		}
	}
}

func TestSystemListMatchesBpftrace(t *testing.T) {
	requireTracefs(t)
	bt := requireBpftrace017(t)
	tests := []struct {
		pattern string
		verbose bool
	}{
		{"tracepoint:syscalls:sys_enter_open*", false},
		{"t:sched:*", false},
		{"tracepoint:*openat", false},
		{"tracepoint:sched*", false},
		{"tracepoint:*:*", false},
		{"tracepoint:sched:sched_switch,tracepoint:sched:sched_wakeup", false},
		{"tracepoint:ftrace:*", false},
		{"software:*", false},
		{"*ware:*", false},
		// kprobe: patterns are bpf/kprobe's (broker's TestKprobeListed
		// compares them with bpftrace -l where the kernel has kprobes).
		{"tracepoint:syscalls:sys_enter_openat", true},
		{"tracepoint:sched:sched_switch", true},
		{"tracepoint:sched:sched_process_exec", true},
		{"tracepoint:raw_syscalls:*", true},
		{"tracepoint:*:*", true},
		// No pattern: bpftrace also lists iter, kprobe, kfunc... probes,
		// which are filtered out of its output below.
		{"", false},
	}
	for _, tt := range tests {
		flag := "-l"
		if tt.verbose {
			flag = "-lv"
		}
		args := []string{flag}
		if tt.pattern != "" {
			args = append(args, tt.pattern)
		}
		if strings.HasPrefix(tt.pattern, "kprobe:") && haveKprobes(t) {
			// TODO(issue 17 item 3, k2-kprobe): list kprobes as bpftrace
			// -l does, and drop this skip.
			t.Logf("List(%q) not compared: this kernel has kprobes (kprobe_events in tracefs), whose listing is issue 17 item 3", tt.pattern)
			continue
		}
		cmd := exec.Command(bt, args...)
		cmd.Stderr = nil // kprobe listing warns on kernels without kprobes
		want, err := cmd.Output()
		if err != nil {
			t.Errorf("bpftrace %s %q: %v", flag, tt.pattern, err)
			continue
		}
		if tt.pattern == "" {
			want = keepProviders(want, "hardware:", "software:", "tracepoint:")
		}
		var got bytes.Buffer
		if err := List(&got, tt.pattern, tt.verbose); err != nil {
			t.Errorf("List(%q, %v): %v", tt.pattern, tt.verbose, err)
			continue
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("List(%q, %v) differs from bpftrace %s:\n%s", tt.pattern, tt.verbose, flag, firstDiff(got.String(), string(want)))
		}
	}
}

// haveKprobes reports whether the kernel has kprobes: tracefs has
// kprobe_events only with CONFIG_KPROBE_EVENTS.
func haveKprobes(t *testing.T) bool {
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	_, err = os.Stat(filepath.Join(root, "kprobe_events"))
	return err == nil
}

func TestSystemListErrorsWhereBpftraceDoes(t *testing.T) {
	requireTracefs(t)
	bt := requireBpftrace017(t)
	for _, p := range []string{"tracepoint:syscalls", "tracepoint:syscalls:", "software:nosuch", "tracepoint:sched:sched_switch:extra"} {
		if err := exec.Command(bt, "-l", p).Run(); err == nil {
			t.Errorf("bpftrace -l %q succeeded; the expectation is stale", p)
		}
		if err := List(&bytes.Buffer{}, p, false); err == nil {
			t.Errorf("List(%q) succeeded, bpftrace fails", p)
		}
	}
}

func keepProviders(out []byte, prefixes ...string) []byte {
	var b bytes.Buffer
	keep := false
	for _, line := range strings.SplitAfter(string(out), "\n") {
		if !strings.HasPrefix(line, " ") {
			keep = false
			for _, p := range prefixes {
				keep = keep || strings.HasPrefix(line, p)
			}
		}
		if keep {
			b.WriteString(line)
		}
	}
	return b.Bytes()
}

func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + strconv.Itoa(i+1) + ":\n got " + strconv.Quote(gl) + "\nwant " + strconv.Quote(wl)
		}
	}
	return "(identical lines; lengths differ)"
}

func BenchmarkTracepoints(b *testing.B) {
	requireTracefs(b)
	for _, pattern := range []string{"*:*", "syscalls:sys_enter_open*", "*openat"} {
		b.Run(pattern, func(b *testing.B) {
			for b.Loop() {
				if _, err := Tracepoints(pattern); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReadFormat(b *testing.B) {
	requireTracefs(b)
	for b.Loop() {
		if _, err := ReadFormat("sched", "sched_switch"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseFormat(b *testing.B) {
	data, err := os.ReadFile("testdata/sched_sched_switch.format")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseFormat(data); err != nil {
			b.Fatal(err)
		}
	}
}
