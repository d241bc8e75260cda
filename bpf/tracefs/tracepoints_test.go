package tracefs

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fakeEvents builds a small events/ tree shaped like the kernel's,
// including the quirks the listing has to handle: control files at both
// levels, the "ftrace" category without an enable file, and category names
// whose sort order depends on the ':' separator.
func fakeEvents(t testing.TB) string {
	t.Helper()
	events := filepath.Join(t.TempDir(), "events")
	write := func(rel, data string) {
		p := filepath.Join(events, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testdata := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	minimal := "name: ev\nID: 7\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\n\tfield:int x;\toffset:8;\tsize:4;\tsigned:1;\n\nprint fmt: \"x=%d\", REC->x\n"
	for _, f := range []string{"enable", "header_page", "header_event"} {
		write(f, "")
	}
	for cat, evs := range map[string][]string{
		"sched":    {"sched_switch", "sched_process_exec", "sched_wakeup"},
		"syscalls": {"sys_enter_openat", "sys_exit_openat", "sys_enter_open", "sys_enter_openat2", "sys_exit_exit", "sys_enter_exit"},
		"x":        {"a"},
		"x86":      {"a"},
		"a":        {"e"},
		"a-b":      {"e"},
		"noid":     {"ev"},
	} {
		write(cat+"/enable", "0\n")
		write(cat+"/filter", "none\n")
		for _, ev := range evs {
			format := minimal
			switch ev {
			case "sched_switch":
				format = testdata("sched_sched_switch.format")
			case "sched_process_exec":
				format = testdata("sched_sched_process_exec.format")
			case "sys_enter_openat":
				format = testdata("syscalls_sys_enter_openat.format")
			}
			if cat == "noid" {
				format = strings.Replace(minimal, "ID: 7\n", "", 1)
				write(cat+"/"+ev+"/id", "99\n")
			}
			write(cat+"/"+ev+"/format", format)
			write(cat+"/"+ev+"/enable", "0\n")
		}
	}
	write("ftrace/function/format", testdata("ftrace_function.format"))
	write("ftrace/function/id", "1\n")
	return events
}

func names(tps []Tracepoint) []string {
	out := make([]string, len(tps))
	for i, tp := range tps {
		out[i] = tp.String()
	}
	return out
}

func TestListTracepointsFake(t *testing.T) {
	events := fakeEvents(t)
	all := []string{
		"a-b:e", "a:e", "noid:ev",
		"sched:sched_process_exec", "sched:sched_switch", "sched:sched_wakeup",
		"syscalls:sys_enter_exit", "syscalls:sys_enter_open", "syscalls:sys_enter_openat", "syscalls:sys_enter_openat2",
		"syscalls:sys_exit_exit", "syscalls:sys_exit_openat",
		"x86:a", "x:a",
	}
	tests := []struct {
		pattern string
		want    []string
	}{
		{"", all},
		{"*:*", all},
		{"*", all},
		{"syscalls:sys_enter_open*", []string{"syscalls:sys_enter_open", "syscalls:sys_enter_openat", "syscalls:sys_enter_openat2"}},
		{"syscalls:sys_enter_openat", []string{"syscalls:sys_enter_openat"}},
		{"sys*:sys_enter_openat", []string{"syscalls:sys_enter_openat"}},
		// No colon: a name in any category, as bpftrace reads it.
		{"sys_enter_open*", []string{"syscalls:sys_enter_open", "syscalls:sys_enter_openat", "syscalls:sys_enter_openat2"}},
		{"*openat", []string{"syscalls:sys_enter_openat", "syscalls:sys_exit_openat"}},
		{"sched", nil},
		// bpftrace 0.17 misses sys_exit_exit here (its matcher takes the
		// first "exit"); a real glob does not.
		{"syscalls:*exit", []string{"syscalls:sys_enter_exit", "syscalls:sys_exit_exit"}},
		{"syscalls:sys_enter_open?t", []string{"syscalls:sys_enter_openat"}},
		{"syscalls:sys_e[nx]*_openat", []string{"syscalls:sys_enter_openat", "syscalls:sys_exit_openat"}},
		{"syscalls:sys_[^e]*", nil},
		{"[sx]*:*a", []string{"x86:a", "x:a"}},
		{"SCHED:*", nil},
		{"nosuch:*", nil},
		{"*:nosuch", nil},
		{"sched:sched_switch:extra", nil},
		// The ftrace category cannot be attached to, so it is not listed,
		// not even by exact name.
		{"ftrace:*", nil},
		{"ftrace:function", nil},
		{"*:function", nil},
		// Control files are not events.
		{"sched:enable", nil},
		{"*:filter", nil},
		{"enable:*", nil},
		{"header_page:*", nil},
		{"../events/sched:*", nil},
		{"..:*", nil},
		// Literal names are looked up, not listed: the same answers.
		{"x:a", []string{"x:a"}},
		{"a-b:e", []string{"a-b:e"}},
		{"noid:ev", []string{"noid:ev"}},
		{"syscalls:sys_enter_openat2", []string{"syscalls:sys_enter_openat2"}},
		{"sched:..", nil},
		{"sched:.", nil},
		{"..:sched", nil},
		{"sched:sched_switch/format", nil},
		{"sched:", nil},
		{":sched_switch", nil},
	}
	for _, tt := range tests {
		tps, err := listTracepoints(events, tt.pattern)
		if err != nil {
			t.Errorf("%q: %v", tt.pattern, err)
			continue
		}
		if got := names(tps); !slices.Equal(got, tt.want) {
			t.Errorf("%q:\n got %q\nwant %q", tt.pattern, got, tt.want)
		}
	}
	if _, err := listTracepoints(events, "sched:[a"); err == nil {
		t.Error("malformed glob accepted")
	}
}

func TestCompareCategories(t *testing.T) {
	cats := []string{"x", "x86", "a", "a-b", "a.b", "a0", "ab", "a_b", "b"}
	slices.SortFunc(cats, compareCategories)
	// The reference order: sorting the strings as bpftrace prints them.
	ref := []string{"x", "x86", "a", "a-b", "a.b", "a0", "ab", "a_b", "b"}
	slices.SortFunc(ref, func(a, b string) int { return strings.Compare(a+":", b+":") })
	if !slices.Equal(cats, ref) {
		t.Errorf("got %q, want %q", cats, ref)
	}
}

func TestParseDirentsTruncated(t *testing.T) {
	// A reclen pointing past the buffer must stop parsing, not panic.
	b := make([]byte, 24)
	b[16], b[17] = 0xff, 0x00
	if got := parseDirents(b, nil); len(got) != 0 {
		t.Errorf("got %v", got)
	}
}

func TestFindRoot(t *testing.T) {
	dir := t.TempDir()
	tracing := filepath.Join(dir, "tracing")
	debug := filepath.Join(dir, "debug", "tracing")
	if err := os.MkdirAll(tracing, 0o755); err != nil {
		t.Fatal(err)
	}
	candidates := []string{tracing, debug}
	noMount := func(string) error { t.Error("unexpected mount"); return nil }

	// Only the debugfs path has tracefs: use it, do not mount.
	if err := os.MkdirAll(filepath.Join(debug, "events"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := findRoot(candidates, noMount); err != nil || got != debug {
		t.Errorf("findRoot = %q, %v; want %q", got, err, debug)
	}

	// Both: the canonical one wins.
	if err := os.MkdirAll(filepath.Join(tracing, "events"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := findRoot(candidates, noMount); err != nil || got != tracing {
		t.Errorf("findRoot = %q, %v; want %q", got, err, tracing)
	}

	// Neither: mount at the first candidate.
	os.RemoveAll(filepath.Join(tracing, "events"))
	os.RemoveAll(filepath.Join(debug, "events"))
	var mounted []string
	mount := func(target string) error {
		mounted = append(mounted, target)
		return os.Mkdir(filepath.Join(target, "events"), 0o755)
	}
	if got, err := findRoot(candidates, mount); err != nil || got != tracing || !slices.Equal(mounted, []string{tracing}) {
		t.Errorf("findRoot = %q, %v after mounting %q", got, err, mounted)
	}

	// Mount fails: say so, and say what to do.
	os.RemoveAll(filepath.Join(tracing, "events"))
	_, err := findRoot(candidates, func(string) error { return os.ErrPermission })
	if err == nil || !strings.Contains(err.Error(), "tracefs is not mounted at "+tracing+" and mounting it failed: permission denied; run as root or mount it") {
		t.Errorf("err = %v", err)
	}
	if !errors.Is(err, os.ErrPermission) {
		t.Errorf("err %v does not wrap the mount error", err)
	}

	// Mount "succeeds" but leaves nothing usable.
	if _, err := findRoot(candidates, func(string) error { return nil }); err == nil || !strings.Contains(err.Error(), "unusable") {
		t.Errorf("err = %v", err)
	}
}

func TestListFake(t *testing.T) {
	events := fakeEvents(t)
	dir := func() (string, error) { return events, nil }
	tests := []struct {
		pattern string
		verbose bool
		want    string
	}{
		{"tracepoint:syscalls:sys_enter_open*", false, "tracepoint:syscalls:sys_enter_open\ntracepoint:syscalls:sys_enter_openat\ntracepoint:syscalls:sys_enter_openat2\n"},
		{"t:syscalls:sys_enter_openat", false, "tracepoint:syscalls:sys_enter_openat\n"},
		{"tracepoint:*openat", false, "tracepoint:syscalls:sys_enter_openat\ntracepoint:syscalls:sys_exit_openat\n"},
		{"tracepoint:sched*", false, "tracepoint:sched:sched_process_exec\ntracepoint:sched:sched_switch\ntracepoint:sched:sched_wakeup\n"},
		{"tracepoint:syscalls:sys_enter_openat", true, "tracepoint:syscalls:sys_enter_openat\n    int __syscall_nr\n    int dfd\n    const char * filename\n    int flags\n    umode_t mode\n"},
		{"tracepoint:sched:sched_switch", true, "tracepoint:sched:sched_switch\n    char prev_comm[16]\n    pid_t prev_pid\n    int prev_prio\n    long prev_state\n    char next_comm[16]\n    pid_t next_pid\n    int next_prio\n"},
		{"tracepoint:sched:sched_process_exec", true, "tracepoint:sched:sched_process_exec\n    __data_loc char[] filename\n    pid_t pid\n    pid_t old_pid\n"},
		// Each spec is listed in turn; duplicates are kept, as bpftrace does.
		{"t:sched:sched_wakeup, t:sched:sched_switch,t:sched:sched_wakeup", false, "tracepoint:sched:sched_wakeup\ntracepoint:sched:sched_switch\ntracepoint:sched:sched_wakeup\n"},
		{"t:x*:a", false, "tracepoint:x86:a\ntracepoint:x:a\n"},
		{"tracepoint:nosuch:x", false, ""},
		{"tracepoint:ftrace:*", true, ""},
		{"kprobe:*", false, ""},
		{"k:vfs_read", false, ""},
		{"iter:*", false, ""},
		{"software:*", false, "software:*:\n"},
		{"s:cs", false, "software:cs:\n"},
		{"software:*:100", false, "software:*:\n"},
		{"hardware:cache-misses", false, "hardware:cache-misses:\n"},
		{"*ware:*", false, "hardware:*:\nsoftware:*:\n"},
		{"t*:sched:sched_switch", false, "tracepoint:sched:sched_switch\n"},
		{"*openat", false, "hardware:*openat:\nsoftware:*openat:\ntracepoint:syscalls:sys_enter_openat\ntracepoint:syscalls:sys_exit_openat\n"},
	}
	for _, tt := range tests {
		var b strings.Builder
		if err := list(&b, dir, tt.pattern, tt.verbose); err != nil {
			t.Errorf("List(%q): %v", tt.pattern, err)
			continue
		}
		if b.String() != tt.want {
			t.Errorf("List(%q, %v):\n got %q\nwant %q", tt.pattern, tt.verbose, b.String(), tt.want)
		}
	}

	var b strings.Builder
	if err := list(&b, dir, "", false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 16 || lines[0] != "hardware:*:" || lines[1] != "software:*:" || lines[2] != "tracepoint:a-b:e" {
		t.Errorf("List(\"\") = %q", lines)
	}
}

func TestListErrors(t *testing.T) {
	dir := func() (string, error) { t.Error("tracefs consulted for a bad pattern"); return "", errors.New("no") }
	tests := []struct{ pattern, wantErr string }{
		{"syscalls:*", `invalid probe type "syscalls"`},
		{"sys_enter_openat", `invalid probe type "sys_enter_openat"`},
		{"bogus:*", `invalid probe type "bogus"`},
		{"tracepoint", "tracepoint probe type requires arguments"},
		{"tracepoint:", "tracepoint probe type requires 2 arguments"},
		{"tracepoint:syscalls", "tracepoint probe type requires 2 arguments"},
		{"tracepoint:syscalls:", "tracepoint probe must have a target"},
		{"tracepoint::sched_switch", "tracepoint probe must have a target"},
		{"tracepoint:sched:sched_switch:extra", "tracepoint probe type requires 2 arguments"},
		{"tracepoint:sched:[a", "syntax error in pattern"},
		{"software:", "software probe must have a software event name"},
		{"software:nosuch", "nosuch is not a software probe"},
		{"hardware:cpu-clock", "cpu-clock is not a hardware probe"},
		{"software:a:b:c", "requires 1 or 2 arguments"},
		{"t:sched:sched_switch,", "empty probe"},
		// One bad spec fails the whole pattern before anything is printed.
		{"t:sched:*,bogus:*", `invalid probe type "bogus"`},
	}
	for _, tt := range tests {
		var b strings.Builder
		err := list(&b, dir, tt.pattern, false)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("List(%q) = %v, want error containing %q", tt.pattern, err, tt.wantErr)
		}
		if b.Len() != 0 {
			t.Errorf("List(%q) printed %q before failing", tt.pattern, b.String())
		}
	}
}

func TestTracepointString(t *testing.T) {
	if got := (Tracepoint{"sched", "sched_switch"}).String(); got != "sched:sched_switch" {
		t.Errorf("got %q", got)
	}
	if !reflect.DeepEqual(names(nil), []string{}) {
		t.Error("names(nil)")
	}
}
