package broker

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestDebugf: debugf() writes to the kernel's trace buffer as bpftrace's
// does ("bpf_trace_printk: TEXT"), once per call, and nothing to the
// trace's output; interpreter mode refuses it by name. The buffer is the
// host's: the test finds its own lines by a nonce and clears nothing.
func TestDebugf(t *testing.T) {
	needKernel(t)
	const trace = "/sys/kernel/tracing/trace"
	if _, err := os.Stat(trace); err != nil {
		t.Skipf("no tracefs trace buffer: %v", err)
	}
	nonce := fmt.Sprintf("tb%d", time.Now().UnixNano())
	f := newFixture(t)
	script := `tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { debugf("` + nonce + ` %s %d %x", "a", 1, 16); }`
	out, stderr, err := runScript(t, Request{Source: []byte(script), Command: f.expand("EXE get 3 0")})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr)
	}
	if strings.Contains(out, nonce) {
		t.Errorf("debugf's text in the output: %q", out)
	}
	if !strings.Contains(stderr, "WARNING: The debugf() builtin is not recommended for production use") {
		t.Errorf("no warning: %q", stderr)
	}
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "bpf_trace_printk: "+nonce+" a 1 10"); n != 3 {
		t.Errorf("%d lines of the trace buffer, want 3", n)
	}
	_, _, err = runScript(t, Request{Source: []byte(script), Command: f.expand("EXE get 3 0"), Mode: ModeInterp, Collectors: testCollectors(t)})
	if err == nil || !strings.Contains(err.Error(), "debugf() cannot run in interpreter mode") {
		t.Errorf("interpreter mode: %v", err)
	}
}
