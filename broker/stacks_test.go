package broker

import (
	"regexp"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf"
)

// TestStacks: kernel and user stacks as map keys and in printf, in both
// of bpftrace's modes, in both execution modes (in the interpreter, the
// collector copies the stacks with each event). Addresses and offsets depend on the kernel and the
// compiler, so frames are matched by name; counts are exact.
func TestStacks(t *testing.T) {
	needKernel(t)
	bin := buildWorkload(t)
	f := newFixture(t)
	tests := []struct {
		name, script, cmd string
		want              []string // regexps, each matched against the whole output
		// noKStack replaces want on a kernel whose syscall tracepoints
		// have no kernel stack (bpf.HaveSyscallKernelStacks): empty
		// stacks, as bpftrace 0.17 prints them there (on 6.1: "@[]: 5").
		noKStack []string
	}{
		{
			// The child calls getcwd 5 times: the kernel stack of the
			// syscall tracepoint starts in perf's syscall handler, called
			// from the syscall entry, or from the tracepoint's iterator
			// while another tracer (another test, another tool) also
			// has a probe on sys_enter.
			name:   "kstack",
			script: `tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { @[kstack(2)] = count(); @p[kstack(perf, 1)] = count(); @v = kstack(1); @t = (1, kstack(1)); }`,
			cmd:    f.expand("EXE get 5 0"),
			want: []string{
				`(?m)^@\[\n    perf_syscall_enter\+\d+\n    (syscall_trace_enter|__traceiter_sys_enter)\+\d+\n\]: 5$`,
				`(?m)^@p\[\n\tffffffff[0-9a-f]{8} perf_syscall_enter\+\d+\n\]: 5$`,
				// As a value or in a tuple a stack is indented by 8, as
				// bpftrace 0.17 prints it (value_to_str), not by a key's 4.
				`(?m)^@v: \n        perf_syscall_enter\+\d+\n$`,
				`(?m)^@t: \(1, \n        perf_syscall_enter\+\d+\n\)$`,
			},
			noKStack: []string{`(?m)^@\[\]: 5$`, `(?m)^@p\[\]: 5$`, `(?m)^@v: $`, `(?m)^@t: \(1, \)$`},
		},
		{
			// main calls add_one 10 times: ustack names the function and
			// its caller. The trace exits in greet while the child
			// lingers, so its address space is still there to read.
			name: "ustack",
			script: `uprobe:BIN:add_one { @[ustack(2)] = count(); @p[ustack(perf, 1)] = count(); @f[func] = count(); }
uprobe:BIN:greet { printf("%s|\n", ustack(1)); exit(); }`,
			cmd: bin + " 10 linger",
			want: []string{
				`(?m)^@\[\n    add_one\+0\n    main\+\d+\n\]: 10$`,
				`(?m)^@p\[\n\t[0-9a-f]+ add_one\+0 \(BIN\)\n\]: 10$`,
				`(?m)^\n        greet\+0\n\|$`,
				`(?m)^@f\[add_one\]: 10$`,
			},
		},
	}
	for _, tc := range tests {
		for _, mode := range modes {
			t.Run(tc.name+"/"+string(mode), func(t *testing.T) {
				lockKernel(t)
				script := strings.ReplaceAll(tc.script, "BIN", bin)
				out, stderr, err := runScript(t, Request{Source: []byte(script), Command: tc.cmd, Mode: mode, Collectors: testCollectors(t)})
				if err != nil {
					t.Fatalf("Run: %v\n%s", err, stderr)
				}
				want := tc.want
				if tc.noKStack != nil && !haveSyscallKernelStacks(t) {
					want = tc.noKStack
				}
				for _, w := range want {
					re := regexp.MustCompile(strings.ReplaceAll(w, "BIN", regexp.QuoteMeta(bin)))
					if !re.MatchString(out) {
						t.Errorf("output does not match %s:\n%s", re, out)
					}
				}
			})
		}
	}
}

// haveSyscallKernelStacks is bpf.HaveSyscallKernelStacks, logged when
// the kernel has none.
func haveSyscallKernelStacks(t *testing.T) bool {
	t.Helper()
	have, err := bpf.HaveSyscallKernelStacks()
	if err != nil {
		t.Fatalf("probing kernel stacks at syscall tracepoints: %v", err)
	}
	if !have {
		t.Log("this kernel gives syscall tracepoints no kernel stack (their programs get the system call's user registers): kstack is empty, as bpftrace 0.17 prints it here")
	}
	return have
}
