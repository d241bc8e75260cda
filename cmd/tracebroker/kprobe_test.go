package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf/kprobe"
)

// The README's kprobe commands, as written there.
var (
	readmeKprobeList = []string{"list", "kprobe:vfs_read*"}
	readmeKprobeRun  = []string{"run", "-e", "kretprobe:__x64_sys_getcwd /pid == cpid/ { @calls = count(); @ret[retval > 0] = count(); }", "-c", "/usr/bin/pwd -P"}
)

// TestKprobeCLI runs the README's kprobe commands: on a kernel without
// kprobes both fail with the reason, probed from the kernel; elsewhere
// list prints bpftrace's lines and run counts the command's one getcwd.
func TestKprobeCLI(t *testing.T) {
	require(t, needTracefs)
	err := kprobe.Supported()
	if err != nil && !errors.Is(err, kprobe.ErrNoKprobes) {
		t.Skipf("cannot tell whether the kernel has kprobes: %v", err)
	}
	const reason = "kprobe probes are not available: this kernel was built without kprobes (CONFIG_KPROBES is not set)"
	r := tracebroker(t, readmeKprobeList...)
	if err != nil {
		if r.code == 0 || r.stdout != "" || r.stderr != "ERROR: "+reason+"\n" {
			t.Errorf("list without kprobes: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
		}
	} else {
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if r.code != 0 || !strings.Contains(r.stdout, "kprobe:vfs_read\n") {
			t.Errorf("list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		for _, l := range lines {
			if !strings.HasPrefix(l, "kprobe:vfs_read") {
				t.Errorf("list printed %q", l)
			}
		}
	}
	require(t, needKernel)
	r = tracebroker(t, readmeKprobeRun...)
	if err != nil {
		if r.code == 0 || !strings.Contains(r.stderr, "ERROR: kret"+reason[1:]) {
			t.Errorf("run without kprobes: exit %d\n%s", r.code, r.stderr)
		}
		return
	}
	if r.code != 0 || !strings.HasPrefix(r.stdout, "Attaching 1 probe...\n") || !strings.HasSuffix(r.stdout, "\n\n@calls: 1\n@ret[1]: 1\n") {
		t.Errorf("run: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}
