package broker

import (
	"debug/elf"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// workloadC is the traced program of the uprobe tests: every call is
// known, so every count is exact.
const workloadC = `#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
__attribute__((noinline)) int add_one(int x) { return x + 1; }
__attribute__((noinline)) int add_two(int x) { return x + 2; }
__attribute__((noinline)) void greet(const char *s) { __asm__ volatile("" :: "r"(s) : "memory"); }
/* spin MS: keep one CPU busy in user space, for profile, until this
   process has had MS of CPU time: on a busy machine that takes longer,
   and the samples still count MS of it. */
static int spin(long ms) {
	struct timespec a, b;
	volatile long x = 0;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
	do {
		for (int i = 0; i < 100000; i++)
			x += i;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
	} while ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < ms);
	return 0;
}
int main(int argc, char **argv) {
	if (argc > 2 && strcmp(argv[1], "spin") == 0)
		return spin(atol(argv[2]));
	int n = argc > 1 ? atoi(argv[1]) : 10;
	volatile long sum = 0;
	for (int i = 0; i < n; i++)
		sum += add_one(i % 3);
	sum += add_two(40);
	char msg[] = "hello uprobe"; /* on the stack: a uprobe cannot fault in a page */
	greet(msg);
	/* linger: stay alive after the calls, so that addresses in this
	   process still resolve when a trace that exits in greet prints. */
	if (argc > 2 && strcmp(argv[2], "linger") == 0)
		usleep(500000);
	return 0;
}
`

// buildWorkload compiles workloadC with gcc (PIE, as distributions build).
func buildWorkload(t *testing.T) string {
	t.Helper()
	return kerneltest.CC(t, "the uprobe workload", "work", workloadC)
}

// TestUprobes runs uprobe and uretprobe scripts on the workload and
// checks bpftrace's output exactly (each expected text is what bpftrace
// 0.17 prints for the same script and workload): 10 calls of add_one
// with arguments 0,1,2,0,1,2,... and one of add_two.
func TestUprobes(t *testing.T) {
	needKernel(t)
	bin := buildWorkload(t)
	tests := []struct {
		name, script, want string
	}{
		{
			name:   "arguments",
			script: `uprobe:BIN:add_one { @[arg0] = count(); }`,
			want:   "Attaching 1 probe...\n\n\n@[1]: 3\n@[2]: 3\n@[0]: 4\n",
		},
		{
			name:   "return values",
			script: `uretprobe:BIN:add_one { @ = hist(retval); }`,
			want: "Attaching 1 probe...\n\n\n@: \n" +
				"[1]                    4 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@                  |\n" +
				"[2, 4)                 6 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n\n",
		},
		{
			name:   "wildcard and probe",
			script: `uprobe:BIN:add_* { @[probe] = count(); }`,
			want:   "Attaching 2 probes...\n\n\n@[uprobe:BIN:add_two]: 1\n@[uprobe:BIN:add_one]: 10\n",
		},
		{
			name:   "string argument from user memory",
			script: `uprobe:BIN:greet { printf("%s|%d\n", str(arg0), pid == cpid); }`,
			want:   "Attaching 1 probe...\nhello uprobe|1\n\n\n",
		},
		{
			name:   "return value printed",
			script: `uretprobe:BIN:add_two { printf("%d\n", retval); }`,
			want:   "Attaching 1 probe...\n42\n\n\n",
		},
		{
			name:   "address",
			script: fmt.Sprintf(`uprobe:BIN:%#x { @ = count(); }`, symbolAddr(t, bin, "add_one")),
			want:   "Attaching 1 probe...\n\n\n@: 10\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lockKernel(t)
			script := strings.ReplaceAll(tc.script, "BIN", bin)
			out, stderr, err := runScript(t, Request{Source: []byte(script), Command: bin + " 10"})
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, stderr)
			}
			if want := strings.ReplaceAll(tc.want, "BIN", bin); out != want {
				t.Fatalf("output:\n%s\nwant:\n%s", out, want)
			}
		})
	}
}

// symbolAddr is a function's virtual address, read independently of
// bpf/uprobe with debug/elf.
func symbolAddr(t *testing.T, bin, name string) uint64 {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name {
			return s.Value
		}
	}
	t.Fatalf("%s not in %s", name, bin)
	return 0
}

// TestUprobeErrors: each bad attach point is a one-line reason at the
// probe, and nothing runs.
func TestUprobeErrors(t *testing.T) {
	needKernel(t)
	bin := buildWorkload(t)
	tests := []struct{ script, want string }{
		{`uprobe:/nosuch/bin:f { @ = count(); }`, "/nosuch/bin"},
		{`uprobe:BIN:nosuch { @ = count(); }`, "Could not resolve symbol: BIN:nosuch"},
		{`uprobe:BIN:nosuch* { @ = count(); }`, "No probes matched"},
		{`uretprobe:BIN:add_one { @ = arg0; }`, "The arg0 builtin can only be used with 'kprobes', 'uprobes' and 'usdt' probes"},
		{`uprobe:BIN:add_one { @ = retval; }`, "The retval builtin can only be used with 'kretprobe' and 'uretprobe' probes"},
		{`uprobe:BIN:add_one { @ = arg6; }`, "x86_64 doesn't support arg6"},
		{`uprobe:BIN { @ = count(); }`, "uprobe probe must be uprobe:PATH:FUNCTION"},
	}
	for _, tc := range tests {
		script := strings.ReplaceAll(tc.script, "BIN", bin)
		out, _, err := runScript(t, Request{Source: []byte(script)})
		var se *ScriptError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), strings.ReplaceAll(tc.want, "BIN", bin)) || out != "" {
			t.Errorf("%s: err %v, output %q; want a script error with %q", script, err, out, tc.want)
		}
	}
}
