package broker

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestProfile samples a child that spins for 400 ms on one CPU: at 99 Hz
// per CPU that is about 40 samples of the child's comm (bpftrace 0.17
// counts 39-40 on the same workload). Sampling is not exact, so the count
// has bounds; a probe that does not fire, or fires on one CPU only while
// the child runs on another, fails them.
func TestProfile(t *testing.T) {
	needKernel(t)
	bin := buildWorkload(t)
	comm := filepath.Base(bin)
	for _, tc := range []struct{ probe string }{{"profile:hz:99"}, {"profile:ms:10"}} {
		t.Run(tc.probe, func(t *testing.T) {
			lockKernel(t)
			script := tc.probe + ` /pid == cpid/ { @[comm, probe] = count(); }`
			out, stderr, err := runScript(t, Request{Source: []byte(script), Command: bin + " spin 400"})
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, stderr)
			}
			re := regexp.MustCompile(`(?m)^@\[` + regexp.QuoteMeta(comm) + `, ` + regexp.QuoteMeta(tc.probe) + `\]: (\d+)$`)
			m := re.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no samples of %s in:\n%s", comm, out)
			}
			if n, _ := strconv.Atoi(m[1]); n < 30 || n > 50 {
				t.Fatalf("%d samples in 400 ms at 100 Hz, want about 40\n%s", n, out)
			}
		})
	}
}

// TestUnboundedLoop: a loop the verifier cannot bound is reported in the
// script's terms, with the verifier's reason, and nothing runs.
func TestUnboundedLoop(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	for _, src := range []string{
		`BEGIN { $i = 0; while ($i >= 0) { $i++; } printf("never\n"); }`,
		`BEGIN { while (1) { @x++; } }`,
	} {
		out, _, err := runScript(t, Request{Source: []byte(src)})
		if err == nil || !strings.Contains(err.Error(), "BEGIN: the kernel's verifier cannot prove that a while loop ends (") || out != "" {
			t.Errorf("%s: err %v, output %q", src, err, out)
		}
	}
}

// TestRawTracepoint: raw_syscalls' sys_enter has the syscall number in
// arg1; the child calls getcwd exactly 5 times, which the Go runtime
// never does itself.
func TestRawTracepoint(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	f := newFixture(t)
	script := `rawtracepoint:sys_enter /pid == cpid && arg1 == 79/ { @[probe] = count(); }`
	out, stderr, err := runScript(t, Request{Source: []byte(script), Command: f.expand("EXE get 5 0")})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, stderr)
	}
	if want := "Attaching 1 probe...\n\n\n@[rawtracepoint:sys_enter]: 5\n"; out != want {
		t.Fatalf("output %q, want %q", out, want)
	}
}
