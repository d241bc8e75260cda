package probelist

import (
	"strings"
	"testing"
)

// TestMergeBare: a wildcard without a probe type lists the kprobes and
// kfuncs whose whole name it matches, merged in sort order with
// tracefs's probes, as bpftrace 0.17 prints -l '*do_nanosleep*' on 6.12.
func TestMergeBare(t *testing.T) {
	funcs := "kprobe:do_nanosleep\nkprobe:hrtimer_nanosleep\nkprobe:vfs_read\n" +
		"kfunc:vmlinux:do_nanosleep\n    struct hrtimer_sleeper * t\n    enum hrtimer_mode mode\n" +
		"kfunc:vmlinux:vfs_read\n    struct file * file\n"
	for _, tc := range []struct {
		pattern, tracefs, want string
	}{
		{"*do_nanosleep*", "hardware:*do_nanosleep*:\nsoftware:*do_nanosleep*:\n",
			"hardware:*do_nanosleep*:\nkfunc:vmlinux:do_nanosleep\n    struct hrtimer_sleeper * t\n    enum hrtimer_mode mode\nkprobe:do_nanosleep\nsoftware:*do_nanosleep*:\n"},
		{"*nanosleep", "", "kfunc:vmlinux:do_nanosleep\n    struct hrtimer_sleeper * t\n    enum hrtimer_mode mode\nkprobe:do_nanosleep\nkprobe:hrtimer_nanosleep\n"},
		// The pattern is matched against the whole name: a function's
		// name alone is not enough.
		{"do_nanosleep*", "", ""},
		{"*sched_switch*", "tracepoint:sched:sched_switch\n", "tracepoint:sched:sched_switch\n"},
	} {
		var b strings.Builder
		if err := writeSorted(&b, mergeBare(tc.tracefs, funcs, tc.pattern)); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.pattern, b.String(), tc.want)
		}
	}
}
