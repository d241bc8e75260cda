package broker

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/bpf/kprobe"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// kprobeScripts is the kprobe table: testdata/scripts' format, kept
// apart because a kernel without kprobes (the development host) runs
// none of it.
const kprobeScripts = "../testdata/kprobe-scripts"

// needKprobes skips a test on a kernel without kprobes, saying so from
// a probe of the kernel.
func needKprobes(t testing.TB) {
	t.Helper()
	needKernel(t)
	if err := kprobe.Supported(); err != nil {
		t.Skipf("kernel built without kprobes: %v", err)
	}
}

// TestKprobeEndToEnd runs the kprobe table against workloads the test
// starts, exact counts.
func TestKprobeEndToEnd(t *testing.T) {
	needKprobes(t)
	lockKernel(t)
	for _, mode := range kprobeModes {
		t.Run(string(mode), func(t *testing.T) {
			for _, tc := range loadCasesFrom(t, kprobeScripts) {
				t.Run(tc.name, func(t *testing.T) {
					f := newFixture(t)
					req := Request{Source: []byte(f.expand(tc.script)), Command: f.expand(tc.cmd), Format: tc.format, Mode: mode, Collectors: testCollectors(t)}
					out, stderr, err := runScript(t, req)
					if err != nil {
						t.Fatalf("run: %v\n%s", err, stderr)
					}
					if want := f.expand(tc.want); out != want {
						t.Errorf("output:\n%q\nwant:\n%q\nstderr: %s", out, want, stderr)
					}
				})
			}
		})
	}
}

// kprobeRunTime bounds a run that attaches kprobe.multi links: on 6.12
// under TCG, on a busy machine, registering them has taken over 30 s.
const kprobeRunTime = 2 * time.Minute

// kprobeModes are the modes that run kprobes: both.
var kprobeModes = modes

// TestKprobeSideBySide runs the kprobe table through bpftrace 0.17 too.
func TestKprobeSideBySide(t *testing.T) {
	needKprobes(t)
	lockKernel(t)
	sideBySide(t, loadCasesFrom(t, kprobeScripts))
}

// TestKprobeWildcard: a wildcard is one kprobe.multi probe where the
// kernel has them (6.12) and one probe per function where it does not
// (6.1), with the same counts; naming the attach point (probe) splits
// it on every kernel.
func TestKprobeWildcard(t *testing.T) {
	needKprobes(t)
	lockKernel(t)
	multi := kprobe.HaveMulti()
	t.Logf("kprobe.multi: %v", multi)
	for _, tt := range []struct {
		name, script string
		multiProbes  int // probes attached with kprobe.multi (else 2)
		want         string
	}{
		{"count", `kprobe:__x64_sys_getc[pw]* /pid == cpid/ { @ = count(); }`, 1, "@: 7\n"},
		{"kretprobe", `kretprobe:__x64_sys_getc[pw]* /pid == cpid/ { @[retval > 1] = count(); }`, 1, "@[1]: 3\n@[0]: 4\n"},
		{"probe", `kprobe:__x64_sys_getc[pw]* /pid == cpid/ { @[probe] = count(); }`, 2, "@[kprobe:__x64_sys_getcwd]: 3\n@[kprobe:__x64_sys_getcpu]: 4\n"},
	} {
		for _, mode := range kprobeModes {
			t.Run(string(mode)+"/"+tt.name, func(t *testing.T) {
				f := newFixture(t)
				lc := newLeakCheck(t)
				out, stderr, err := runScriptWithin(t, Request{Source: []byte(tt.script), Command: f.expand("EXE get 3 4"), Mode: mode, Collectors: testCollectors(t)}, kprobeRunTime)
				if err != nil {
					t.Fatalf("run: %v\n%s", err, stderr)
				}
				lc.expectReleased(t, true) // the kprobe.multi link too
				probes := 2
				if multi {
					probes = tt.multiProbes
				}
				want := map[bool]string{true: "Attaching 1 probe...", false: "Attaching 2 probes..."}[probes == 1] + "\n\n\n" + tt.want
				if out != want {
					t.Errorf("output:\n%s\nwant:\n%s\nstderr: %s", out, want, stderr)
				}
			})
		}
	}
}

// TestKprobeListed: `list` prints the traceable functions (the
// blacklisted ones too, which a wildcard leaves out when it attaches),
// as bpftrace 0.17's -l prints them.
func TestKprobeListed(t *testing.T) {
	needKprobes(t)
	for _, tt := range []struct{ provider, target, want string }{
		{"kprobe", "__x64_sys_getc[pw]*", "kprobe:__x64_sys_getcpu\nkprobe:__x64_sys_getcwd\n"},
		{"kretprobe", "__x64_sys_getcw?", "kretprobe:__x64_sys_getcwd\n"},
	} {
		var b strings.Builder
		if err := kprobe.List(&b, tt.provider, tt.target); err != nil {
			t.Fatal(err)
		}
		if b.String() != tt.want {
			t.Errorf("list:\n%s\nwant:\n%s", b.String(), tt.want)
		}
	}
	bt := kerneltest.Bpftrace017(t)
	for _, pattern := range []string{"kprobe:vfs_*", "kretprobe:vfs_*", "kprobe:*_sys_getc*", "kprobe:*"} {
		var stderr strings.Builder
		cmd := exec.Command(bt, "-l", pattern)
		cmd.Stderr = &stderr
		ref, err := cmd.Output()
		if err != nil || len(ref) == 0 {
			t.Fatalf("bpftrace -l %s: %v, %d bytes\n%s", pattern, err, len(ref), stderr.String())
		}
		provider, target, _ := strings.Cut(pattern, ":")
		var b strings.Builder
		if err := kprobe.List(&b, provider, target); err != nil {
			t.Fatal(err)
		}
		if b.String() != string(ref) {
			t.Errorf("list %s differs from bpftrace -l: %s", pattern, kerneltest.ListDiff(b.String(), string(ref)))
		}
	}
}

// TestKprobeRecordReplay: kprobe events recorded (by the kprobe
// collector) replay to the live trace's output, without the kernel.
func TestKprobeRecordReplay(t *testing.T) {
	needKprobes(t)
	lockKernel(t)
	recordReplay(t, loadCasesFrom(t, kprobeScripts))
}

// TestKprobeOffsetErrors: an offset outside the function, or inside one
// of its instructions, is refused with bpftrace's words, and nothing is
// left attached.
func TestKprobeOffsetErrors(t *testing.T) {
	needKprobes(t)
	lockKernel(t)
	for _, tt := range []struct{ script, want, out string }{
		{`kprobe:vfs_read+1000000 { @ = count(); }`, "Offset outside the function bounds ('vfs_read' size is ", ""},
		// The kernel says so when asked to attach, after bpftrace's
		// "Attaching" line, as bpftrace does.
		{`kprobe:vfs_read+1 { @ = count(); }`, "Possible attachment attempt in the middle of an instruction, try a different offset.", "Attaching 1 probe...\n"},
		{`kprobe:vfs_read_no_such_function { @ = count(); }`, `vfs_read_no_such_function is not traceable (either non-existing, inlined, or marked as "notrace")`, ""},
		{`kretprobe:_raw_spin_lock { @ = count(); }`, "kretprobe:_raw_spin_lock can't be used as it might lock up your system.", ""},
	} {
		t.Run(tt.script, func(t *testing.T) {
			lc := newLeakCheck(t)
			out, stderr, err := runScript(t, Request{Source: []byte(tt.script)})
			if err == nil || !strings.Contains(err.Error(), tt.want) || out != tt.out {
				t.Errorf("err %v, output %q, stderr %s; want an error with %q", err, out, stderr, tt.want)
			}
			lc.expectReleased(t, false)
		})
	}
}

// TestKprobeModuleFunction: kprobe:MODULE:FUNC for a name the kernel
// image has too attaches to the module's function, which the workload
// calls — the virtio module's device_show, which `cat` of a virtio
// device's device file runs (the image's device_show is PCI's) — in
// both modes.
func TestKprobeModuleFunction(t *testing.T) {
	needKprobes(t)
	lockKernel(t)
	const file = "/sys/bus/virtio/devices/virtio0/device"
	if _, err := os.Stat(file); err != nil {
		t.Skipf("skipping: no virtio device here (%v)", err)
	}
	syms, err := os.ReadFile("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m) t device_show\t\[virtio\]$`).Match(syms) || !regexp.MustCompile(`(?m) t device_show$`).Match(syms) {
		t.Skip("skipping: device_show is not in both the kernel image and the virtio module here")
	}
	trust := testCollectors(t)
	for _, mode := range kprobeModes {
		out, stderr, err := runScript(t, Request{Source: []byte(`kprobe:virtio:device_show /pid == cpid/ { @ = count(); }`), Command: "/bin/cat " + file, Mode: mode, Collectors: trust})
		if err != nil {
			t.Fatalf("%s: %v\n%s", mode, err, stderr)
		}
		if !strings.HasSuffix(out, "\n@: 1\n") {
			t.Errorf("%s: output %q, want the module's device_show counted once", mode, out)
		}
	}
}
