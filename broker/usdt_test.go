package broker

import (
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// usdtWorkloadC declares USDT probes with sys/sdt.h: work:step with
// three arguments at each of N steps, and work:gated behind a
// semaphore, which fires only while a tracer has activated it.
const usdtWorkloadC = `#define _SDT_HAS_SEMAPHORES 1
#include <stdlib.h>
#include <sys/sdt.h>
unsigned short work_step_semaphore __attribute__((unused, section(".probes")));
unsigned short work_gated_semaphore __attribute__((unused, section(".probes")));
int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 5;
	char msg[] = "hello usdt";
	for (int i = 0; i < n; i++) {
		DTRACE_PROBE3(work, step, i, (long)i * 1000, msg);
		if (work_gated_semaphore)
			DTRACE_PROBE1(work, gated, i);
	}
	return 0;
}
`

// buildUSDTWorkload compiles usdtWorkloadC, or skips without gcc or
// sys/sdt.h (systemtap-sdt-dev).
func buildUSDTWorkload(t *testing.T) string {
	t.Helper()
	return kerneltest.CC(t, "the usdt workload", "usdtwork", usdtWorkloadC, "-O1")
}

// TestUSDTProbes runs usdt scripts on the workload (5 steps) in both
// modes, with bpftrace 0.17's output for each: the probe sites, their
// arguments, and a semaphore the kernel activates while the probe is
// attached (the gated probe fires only then).
func TestUSDTProbes(t *testing.T) {
	needKernel(t)
	bin := buildUSDTWorkload(t)
	for _, tc := range []struct {
		name, script, want string
		jitOnly            bool // arguments in memory: no collector copies them
	}{
		{name: "probe and count", script: `usdt:BIN:work:step { @[probe] = count(); }`, want: "Attaching 1 probe...\n\n\n@[usdt:BIN:work:step]: 5\n"},
		{name: "semaphore", script: `usdt:BIN:gated { @ = count(); }`, want: "Attaching 1 probe...\n\n\n@: 5\n"},
		{name: "wildcard", script: `usdt:BIN:work:* { @[probe] = count(); }`, want: "Attaching 2 probes...\n\n\n@[usdt:BIN:work:gated]: 5\n@[usdt:BIN:work:step]: 5\n"},
		{name: "arguments", script: `usdt:BIN:work:step { @a = sum(arg0); @b = sum(arg1); printf("%s\n", str(arg2)); }`, jitOnly: true,
			want: "Attaching 1 probe...\n" + strings.Repeat("hello usdt\n", 5) + "\n\n@a: 10\n@b: 10000\n"},
	} {
		for _, mode := range []Mode{ModeJIT, ModeInterp} {
			if tc.jitOnly && mode == ModeInterp {
				continue
			}
			t.Run(tc.name+"/"+string(mode), func(t *testing.T) {
				lockKernel(t)
				req := Request{Source: []byte(strings.ReplaceAll(tc.script, "BIN", bin)), Command: bin + " 5", Mode: mode}
				if mode == ModeInterp {
					req.Collectors = testCollectors(t)
				}
				out, stderr, err := runScript(t, req)
				if err != nil {
					t.Fatalf("Run: %v\n%s", err, stderr)
				}
				if want := strings.ReplaceAll(tc.want, "BIN", bin); out != want {
					t.Fatalf("output:\n%s\nwant:\n%s", out, want)
				}
			})
		}
	}
}
