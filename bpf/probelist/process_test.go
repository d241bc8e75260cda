package probelist_test

import (
	"bytes"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf/probelist"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// processWorkloadC has functions and two USDT probes, and waits on its
// stdin: a process to list.
const processWorkloadC = `#include <sys/sdt.h>
#include <unistd.h>
__attribute__((noinline)) int work(int i) { DTRACE_PROBE1(wl, step, i); return i; }
int main(void) {
	char c;
	DTRACE_PROBE(wl2, start);
	if (read(0, &c, 1) != 1)
		return 1;
	return work(0);
}
`

func buildProcessWorkload(t *testing.T) string {
	t.Helper()
	return kerneltest.CC(t, "the workload", "wl", processWorkloadC)
}

// TestProcessSideBySide: -l -p PID of a process in another mount
// namespace is bpftrace 0.17's, line for line: the program's functions
// and the USDT probes of every file it maps, named through
// /proc/PID/root; and so are its uprobe-only, uretprobe and usdt-only
// listings.
func TestProcessSideBySide(t *testing.T) {
	bt := kerneltest.Bpftrace017(t)
	proc := kerneltest.InMountNS(t, buildProcessWorkload(t))
	pid := strconv.Itoa(proc.Pid)
	for _, tt := range []struct {
		pattern string
		has     []string // lines the listing must have, bpftrace or not
	}{
		{"", []string{"uprobe:/proc/PID/root" + proc.Seen + ":work\n", "usdt:/proc/PID/root" + proc.Seen + ":wl:step\n", "usdt:/proc/PID/root" + proc.Seen + ":wl2:start\n"}},
		{"uprobe:*", []string{"uprobe:/proc/PID/root" + proc.Seen + ":main\n"}},
		{"uretprobe:*", []string{"uretprobe:/proc/PID/root" + proc.Seen + ":work\n"}},
		{"usdt:*", []string{"usdt:/proc/PID/root" + proc.Seen + ":wl:step\n"}},
		{"usdt:*:wl2:*", []string{"usdt:/proc/PID/root" + proc.Seen + ":wl2:start\n"}},
	} {
		t.Run(tt.pattern, func(t *testing.T) {
			var got bytes.Buffer
			if err := probelist.WriteFor(&got, tt.pattern, false, proc.Pid); err != nil {
				t.Fatalf("WriteFor(%q, -p %s): %v", tt.pattern, pid, err)
			}
			for _, l := range tt.has {
				if l = strings.ReplaceAll(l, "PID", pid); !strings.Contains(got.String(), l) {
					t.Errorf("no %q in\n%s", l, got.String())
				}
			}
			args := []string{"-l", "-p", pid}
			if tt.pattern != "" {
				args = []string{"-l", tt.pattern, "-p", pid}
			}
			var stderr bytes.Buffer
			cmd := exec.Command(bt, args...)
			cmd.Stderr = &stderr
			want, err := cmd.Output()
			if err != nil {
				t.Fatalf("bpftrace %q: %v\n%s", args, err, stderr.String())
			}
			if got.String() != string(want) {
				d := kerneltest.ListDiff(got.String(), string(want))
				t.Errorf("WriteFor(%q, -p %s) is not bpftrace's:\n%s", tt.pattern, pid, d)
			}
		})
	}
}

// TestProcessGone: a process that is not there is an error naming it,
// not an empty listing.
func TestProcessGone(t *testing.T) {
	pid := kerneltest.NoSuchPID(t)
	for _, pattern := range []string{"", "uprobe:*", "usdt:*"} {
		var got bytes.Buffer
		err := probelist.WriteFor(&got, pattern, false, pid)
		if err == nil || !strings.Contains(err.Error(), "process "+strconv.Itoa(pid)) {
			t.Errorf("WriteFor(%q, -p %d) = %v, output %q; want an error naming the process", pattern, pid, err, got.String())
		}
	}
}
