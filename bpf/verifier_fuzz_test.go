package bpf_test

import (
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/broker/script/compile"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// FuzzVerifier: every program the compiler accepts, the kernel's verifier
// accepts too. A rejection is a code generation bug (an uninitialised
// read, an unbounded access), never the user's fault.
func FuzzVerifier(f *testing.F) {
	for _, s := range []string{
		`tracepoint:syscalls:sys_enter_openat /comm == "bash"/ { @[comm, pid] = count(); printf("%s %d\n", str(args->filename), args->flags); }`,
		`tracepoint:syscalls:sys_exit_openat { @h = hist(args->ret); @l = lhist(args->ret, 0, 100, 10); $x = args->ret > 0 ? "ok" : "fail"; @s[$x] = stats(args->ret); }`,
		`BEGIN { @a[1, "x"] = 1; print(@a); delete(@a[1, "x"]); clear(@a); exit(); } END { printf("%d\n", @b); @b = 2; }`,
		`tracepoint:sched:sched_switch { @[args->prev_comm] = max(args->prev_pid); if (args->next_pid == 0) { @idle = count(); } else { @busy = sum(1); } }`,
		`tracepoint:sched:sched_process_exec { printf("%s\n", str(args->filename)); @t[(pid, comm)] = avg(args->pid); }`,
		`interval:ms:10 { @n = @n + 1; @x += 2; if (@n > 3) { exit(); } }`,
		`tracepoint:syscalls:sys_enter_execve { printf("%c %s %s\n", *args->filename, str(args->argv[0]), str(args->filename, 4)); }`,
		`BEGIN { $s = comm; if ($s == comm) { @m[$s] = min(elapsed); } @v = $s == "x" || nsecs > 0 && !(cpu < 0); exit(); }`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		if err := bpf.Supported(); err != nil {
			t.Skipf("kernel tracing unavailable: %v", err)
		}
		file, err := syntax.Parse("stdin", []byte(src))
		if err != nil {
			return
		}
		prog, _, err := compile.Compile(file, compile.Options{Tracepoints: broker.KernelTracepoints{}, MaxMapKeys: 16})
		if err != nil || len(prog.Probes) > 8 {
			return
		}
		// Per input, not per target: fuzzing workers are processes of
		// their own and would wait for each other forever.
		kerneltest.Lock(t)
		s, err := bpf.Load(prog, bpf.Options{})
		if err != nil {
			if strings.Contains(err.Error(), "too many") || strings.Contains(err.Error(), "cannot allocate memory") {
				return
			}
			t.Fatalf("the verifier rejected a compiled program:\n%s\n%v", src, err)
		}
		s.Close()
	})
}
