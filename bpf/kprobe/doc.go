// Package kprobe is what tracebroker knows about the running kernel's
// kprobes: whether it has them at all (Supported, a probe of the kprobe
// PMU), which functions a kprobe may attach to (available_filter_functions
// minus the kprobe blacklist, as bpftrace's probe matcher reads them),
// how long a function is (for kprobe:FUNC+OFFSET), whether one
// kprobe.multi link can attach many functions (HaveMulti), and how to
// open one kprobe (Open).
package kprobe
