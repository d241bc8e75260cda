package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2}, // the lower middle
		{[]float64{9, 9, 1, 9, 1}, 9},
	} {
		in := slices.Clone(tt.in)
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
		if !slices.Equal(in, tt.in) {
			t.Errorf("median sorted its argument: %v", tt.in)
		}
	}
	if got := median([]time.Duration{3 * time.Second, time.Second, 2 * time.Second}); got != 2*time.Second {
		t.Errorf("median of durations = %v", got)
	}
}

func TestAttachingCount(t *testing.T) {
	for _, tt := range []struct {
		line string
		n    int
		ok   bool
	}{
		{"Attaching 721 probes...", 721, true},
		{"Attaching 1 probe...", 1, true},
		{"  Attaching 3 probes...  ", 3, true},
		{"Attaching probes...", 0, false},
		{"Attaching 3 probes", 0, false},
		{"Attaching -3 probes...", 0, false},
		{"@[Attaching 3 probes...]: 1", 0, false},
		{"", 0, false},
	} {
		n, ok := attachingCount(tt.line)
		if n != tt.n || ok != tt.ok {
			t.Errorf("attachingCount(%q) = %d, %v; want %d, %v", tt.line, n, ok, tt.n, tt.ok)
		}
	}
}

func TestLostCount(t *testing.T) {
	for _, tt := range []struct {
		line string
		n    uint64
		ok   bool
	}{
		{"Lost 1534930 events", 1534930, true},
		{"Lost 1 events", 1, true},
		{"Lost events", 0, false},
		{"Lost -1 events", 0, false},
		{"Lost 3 event", 0, false},
		{"@[Lost 3 events]: 1", 0, false},
	} {
		n, ok := lostCount(tt.line)
		if n != tt.n || ok != tt.ok {
			t.Errorf("lostCount(%q) = %d, %v; want %d, %v", tt.line, n, ok, tt.n, tt.ok)
		}
	}
	att, lost := scanStatus("Attaching 2 probes...\nLost 3 events\n@[1]: 2\nLost 4 events\nAttaching 9 probes...\n")
	if att != 2 || lost != 7 {
		t.Errorf("scanStatus = %d, %d; want 2, 7", att, lost)
	}
	if att, lost := scanStatus(""); att != -1 || lost != 0 {
		t.Errorf("scanStatus of nothing = %d, %d; want -1, 0", att, lost)
	}
}

func TestKeyChecker(t *testing.T) {
	check := func(out string, n int) keysCheck {
		kc := newKeyChecker(n)
		for _, l := range strings.Split(out, "\n") {
			kc.add(l)
		}
		return kc.result()
	}
	good := "Attaching 1 probe...\n\n\n@[2]: 1\n@[3]: 1\n@[1]: 1\n"
	if c := check(good, 3); !c.ok(3) {
		t.Errorf("good output: %v", c)
	}
	bad := "@[2]: 1\n@[2]: 1\n@[7]: 1\n@[3]: 2\nLost 5 events\n"
	want := keysCheck{lines: 4, missing: 1, repeated: 1, outside: 1, wrongCount: 1}
	if c := check(bad, 3); c != want || c.ok(3) {
		t.Errorf("bad output: %+v, want %+v", c, want)
	}
	if c := check("", 2); c.missing != 2 || c.ok(2) {
		t.Errorf("empty output: %v", c)
	}
}

func TestMapLine(t *testing.T) {
	for _, tt := range []struct {
		line string
		k, v int64
		ok   bool
	}{
		{"@[42]: 1", 42, 1, true},
		{"@sizes[7]: 30", 7, 30, true},
		{"@: 3", 0, 0, false},
		{"@[comm]: 3", 0, 0, false},
		{"Attaching 1 probe...", 0, 0, false},
	} {
		k, v, ok := mapLine(tt.line)
		if k != tt.k || v != tt.v || ok != tt.ok {
			t.Errorf("mapLine(%q) = %d, %d, %v", tt.line, k, v, ok)
		}
	}
	if v, ok := mapValue("@[tracepoint:syscalls:sys_enter_getcwd]: 123"); !ok || v != 123 {
		t.Errorf("mapValue = %d, %v", v, ok)
	}
	if _, ok := mapValue("Lost 3 events"); ok {
		t.Error("mapValue read a status line")
	}
}

func TestCompareOutputs(t *testing.T) {
	// bpftrace prints equal counts in hash order, and lost events and
	// blank lines say how a run went, not what it traced.
	tb := strings.Split("Attaching 1 probe...\n\n\n@[1]: 1\n@[2]: 1\n@[3]: 1\n", "\n")
	bt := strings.Split("Attaching 1 probe...\n\n@[3]: 1\n@[1]: 1\nLost 2 events\n@[2]: 1\n\n", "\n")
	if d := compareOutputs(tb, bt); !d.same() {
		t.Errorf("same outputs differ: %+v", d)
	}
	digest := func(lines []string) lineDigest {
		var d lineDigest
		for _, l := range lines {
			d.add(l)
		}
		return d
	}
	if digest(tb) != digest(bt) {
		t.Errorf("digests of the same outputs differ: %+v, %+v", digest(tb), digest(bt))
	}
	other := strings.Split("Attaching 1 probe...\n@[1]: 1\n@[2]: 2\n@[4]: 1\n@[5]: 1\n", "\n")
	d := compareOutputs(tb, other)
	want := outputDiff{onlyA: 2, onlyB: 3, firstA: "@[2]: 1", firstB: "@[2]: 2"}
	if d != want {
		t.Errorf("compareOutputs = %+v, want %+v", d, want)
	}
	if digest(tb) == digest(other) {
		t.Error("digests of different outputs are equal")
	}
	// A line twice is not the same as once.
	if d := compareOutputs([]string{"a", "a"}, []string{"a"}); d.onlyA != 1 || d.onlyB != 0 {
		t.Errorf("repeated line: %+v", d)
	}
	if digest([]string{"a", "a"}) == digest([]string{"a"}) {
		t.Error("repeated line: same digest")
	}
}

func TestRatioGoal(t *testing.T) {
	if got := ratio(1, 4); got != "0.250x" {
		t.Errorf("ratio = %q", got)
	}
	if got := ratio(1, 0); got != "-" {
		t.Errorf("ratio without a reference = %q", got)
	}
	if got := goal(1, 4, 0.5); !strings.HasPrefix(got, "met") {
		t.Errorf("goal(1, 4, 0.5) = %q", got)
	}
	if got := goal(3, 4, 0.5); !strings.HasPrefix(got, "NOT met") {
		t.Errorf("goal(3, 4, 0.5) = %q", got)
	}
}

func TestParseInts(t *testing.T) {
	got, err := parseInts("10^4, 1e5,1000000")
	if err != nil || !slices.Equal(got, []int{10000, 100000, 1000000}) {
		t.Errorf("parseInts = %v, %v", got, err)
	}
	for _, bad := range []string{"0", "-5", "x", "10^x", "1.5"} {
		if _, err := parseInts(bad); err == nil {
			t.Errorf("parseInts(%q) accepted", bad)
		}
	}
}

func TestTable(t *testing.T) {
	got := table([][]string{{"tool", "wall"}, {"tracebroker jit", "1 ms"}, {"bpftrace", "300 ms"}})
	want := "tool             wall\n" +
		"-----------------------\n" +
		"tracebroker jit  1 ms\n" +
		"bpftrace         300 ms\n"
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}
