package broker

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// faultsC touches N fresh anonymous pages: N minor page faults beyond
// what starting the program takes, the same in every run.
const faultsC = `#include <stdlib.h>
#include <sys/mman.h>
int main(int argc, char **argv) {
	long n = atol(argv[1]);
	if (n == 0) return 0;
	char *p = mmap(0, n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) return 1;
	for (long i = 0; i < n; i++) p[i * 4096] = 1;
	return 0;
}
`

// TestSoftwareFaults counts a child's page faults through software:
// probes in both modes: touching 2000 more pages must add 2000 faults
// (and about 20 samples every 100 faults), so a probe on the wrong event, on
// some CPUs only, or with the wrong period, fails.
func TestSoftwareFaults(t *testing.T) {
	needKernel(t)
	bin := kerneltest.CC(t, "the workload", "faults", faultsC, "-O0", "-static")
	count := func(t *testing.T, mode Mode, probe string, pages int) int {
		t.Helper()
		lockKernel(t)
		script := probe + ` /pid == cpid/ { @ = count(); }`
		req := Request{Source: []byte(script), Mode: mode, Command: fmt.Sprintf("%s %d", bin, pages)}
		if mode == ModeInterp {
			req.Collectors = testCollectors(t)
		}
		out, stderr, err := runScript(t, req)
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, stderr)
		}
		m := regexp.MustCompile(`(?m)^@: (\d+)$`).FindStringSubmatch(out)
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	for _, mode := range []Mode{ModeJIT, ModeInterp} {
		for _, tc := range []struct {
			probe     string
			per, slop int
		}{
			{"software:page-faults:1", 1, 8},
			{"software:faults:1", 1, 8},
			{"s:minor-faults:1", 1, 8},
			// bpftrace's default period for faults: each CPU's counter
			// counts every process's faults, so which of them is the
			// hundredth, and whose, moves a sample or two.
			{"software:faults", 100, 4},
		} {
			t.Run(fmt.Sprintf("%s/%s", mode, tc.probe), func(t *testing.T) {
				base := count(t, mode, tc.probe, 0)
				more := count(t, mode, tc.probe, 2000)
				want := 2000 / tc.per
				if d := more - base; d < want-tc.slop || d > want+tc.slop {
					t.Errorf("%d faults counted without the pages, %d with 2000 more: %d more, want %d", base, more, d, want)
				}
			})
		}
	}
}
