package btsuite

import (
	"os"
	"path/filepath"
	"testing"
)

func TestKernelSeries(t *testing.T) {
	for _, tc := range []struct{ release, want string }{
		{"6.1.0-57-amd64", "6.1"},
		{"6.12.118+deb12-amd64", "6.12"},
		{"6.18.44-fc-v1272", "6.18"},
		{"5.15", "5.15"},
		{"6", "6"},                 // no minor: the release whole
		{"weird-1.2", "weird-1.2"}, // not numbers: the release whole
		{"", ""},
	} {
		if got := KernelSeries(tc.release); got != tc.want {
			t.Errorf("KernelSeries(%q) = %q, want %q", tc.release, got, tc.want)
		}
	}
}

// TestForVM: a test is the guests' by what it needs (its probes, its
// scripts', its REQUIRES_FEATURE), never by a name; needing a feature
// absent chooses no kernel.
func TestForVM(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "runtime", "scripts"), 0o755)
	os.WriteFile(filepath.Join(dir, "runtime", "scripts", "k.bt"), []byte("kretprobe:vfs_read { exit(); }\n"), 0o644)
	e := &Env{Dir: dir}
	for _, tc := range []struct {
		name string
		t    Test
		want bool
	}{
		{"kprobe program", Test{Prog: "kprobe:vfs_read { exit(); }"}, true},
		{"short kretprobe", Test{Prog: "kr:vfs_read { exit(); }"}, true},
		{"kfunc", Test{Prog: "kfunc:vfs_read { exit(); }"}, true},
		{"fentry in a run line", Test{Run: "{{BPFTRACE}} -e 'fentry:vfs_read { exit(); }'"}, true},
		{"a script file with a kretprobe", Test{Run: "{{BPFTRACE}} runtime/scripts/k.bt"}, true},
		{"watchpoint", Test{Run: "{{BPFTRACE}} -e 'watchpoint:0x1:4:w { exit(); }'"}, true},
		{"debugfs", Test{Prog: "BEGIN { debugf(\"x\"); }", After: "", Run: "{{BPFTRACE}} -e 'BEGIN { debugf(1) }' & cat /sys/kernel/debug/tracing/trace_pipe"}, true},
		{"REQUIRES_FEATURE kfunc", Test{Prog: "BEGIN { exit(); }", Features: []string{"kfunc"}}, true},
		{"REQUIRES_FEATURE dpath", Test{Prog: "BEGIN { exit(); }", Features: []string{"dpath"}}, true},
		{"REQUIRES_FEATURE kprobe_multi", Test{Prog: "BEGIN { exit(); }", Features: []string{"kprobe_multi"}}, true},
		{"a listing expected to show kprobes", Test{Run: "{{BPFTRACE}} -l 'kprobe:vfs_*'", Expect: "kprobe:vfs_read"}, true},
		{"tracepoint", Test{Prog: "tracepoint:syscalls:sys_enter_read { exit(); }"}, false},
		{"uprobe", Test{Prog: "uprobe:./testprogs/simple:main { exit(); }"}, false},
		{"REQUIRES_FEATURE !kfunc", Test{Prog: "BEGIN { exit(); }", NotFeatures: []string{"kfunc"}}, false},
		{"REQUIRES_FEATURE btf", Test{Prog: "BEGIN { exit(); }", Features: []string{"btf"}}, false},
		{"iter:task", Test{Prog: "iter:task { exit(); }"}, false},
		{"a map named k", Test{Prog: "BEGIN { @k[1] = 1; $x.k = 1; exit(); }"}, false},
	} {
		if got := e.ForVM(tc.t); got != tc.want {
			t.Errorf("%s: ForVM = %v, want %v (needs %v)", tc.name, got, tc.want, e.Needs(tc.t))
		}
	}
}
