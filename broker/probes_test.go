package broker

import (
	"errors"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestProfile samples a child that spins until it has had 400 ms of CPU
// (however long other tests make that take): at 99 Hz per CPU that is
// about 40 samples of the child's comm (bpftrace 0.17
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

// TestTpBTF: BTF tracepoints with typed arguments. raw_syscalls'
// sys_enter is (struct pt_regs *regs, long id): the child calls getcwd
// (79) 5 times and getcpu (309) 3 times, which the Go runtime never does
// itself. task_rename is (struct task_struct *task, const char *comm):
// the child's exec renames it once to its file's name, then it renames
// itself 3 times; sched_process_exec's old_pid is a pid_t.
func TestTpBTF(t *testing.T) {
	needKernel(t)
	f := newFixture(t)
	comm := filepath.Base(f.exe)
	if len(comm) > 15 {
		comm = comm[:15]
	}
	for _, tc := range []struct {
		name, script, cmd, want string
	}{
		{
			name: "sys_enter",
			script: `tp_btf:sys_enter /pid == cpid && args.id == 79/ { @[probe] = count(); }
tp_btf:sys_enter /pid == cpid && arg1 == 309 && args.regs != 0/ { @cpu = count(); @id = sum(args->id); }`,
			cmd:  "EXE get 5 3",
			want: "Attaching 2 probes...\n\n\n@[tp_btf:sys_enter]: 5\n@cpu: 3\n@id: 927\n",
		},
		{
			name: "task_rename",
			script: `tp_btf:task_rename /pid == cpid/ { @[str(args.comm)] = count(); @raw[str(arg1)] = count(); }
tp_btf:sched_process_exec /args.old_pid == cpid/ { @exec = count(); }`,
			cmd: "EXE rename tbrenamed 3",
			want: "Attaching 2 probes...\n\n\n@[" + comm + "]: 1\n@[tbrenamed]: 3\n@exec: 1\n" +
				"@raw[" + comm + "]: 1\n@raw[tbrenamed]: 3\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lockKernel(t)
			out, stderr, err := runScript(t, Request{Source: []byte(tc.script), Command: f.expand(tc.cmd)})
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, stderr)
			}
			if out != tc.want {
				t.Fatalf("output %q, want %q", out, tc.want)
			}
		})
	}
}

// TestTpBTFErrors: what the kernel's BTF does not have is a script error
// at the probe, and nothing is loaded.
func TestTpBTFErrors(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	for src, want := range map[string]string{
		`tp_btf:no_such_tracepoint { @ = count(); }`: "stdin:1:1-26: ERROR: no BTF tracepoint named no_such_tracepoint\n",
		`tp_btf:no_such_* { @ = count(); }`:          "stdin:1:1-17: ERROR: No probes matched tp_btf:no_such_*\n",
		`tp_btf:sys_enter { @ = args.nosuch; }`:      "stdin:1:29-35: ERROR: tracepoint sys_enter has no argument named 'nosuch' (it has: regs, id)\n",
	} {
		out, _, err := runScript(t, Request{Source: []byte(src)})
		var se *ScriptError
		if !errors.As(err, &se) || !strings.HasPrefix(se.Error(), want) || out != "" {
			t.Errorf("%s: output %q, error %v; want %q", src, out, err, want)
		}
	}
}
