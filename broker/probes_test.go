package broker

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/internal/cpus"
)

// TestProfile samples a child that spins until it has had 200 ms of CPU,
// pinned to each online CPU in turn: a probe that does not fire, or does
// not fire on every CPU, finds no sample of it there. Sampling is not
// exact, and on a busy machine the child shares its CPU, so that its
// samples drift with the timing of what else runs (24 of about 40 were
// seen, unpinned, beside stress-ng): the count is bounded by what one CPU
// sampled at the probe's rate can give in the run's time, and must not be
// 0. bpftrace 0.17 counts 39-40 on the unpinned 400 ms workload, on a
// quiet machine.
func TestProfile(t *testing.T) {
	needKernel(t)
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		t.Skip("pinning the workload to a CPU needs taskset (util-linux)")
	}
	online, err := cpus.Online()
	if err != nil {
		t.Fatal(err)
	}
	bin := buildWorkload(t)
	comm := filepath.Base(bin)
	for _, tc := range []struct {
		probe string
		hz    float64
	}{{"profile:hz:99", 99}, {"profile:ms:10", 100}} {
		for _, cpu := range online {
			t.Run(fmt.Sprintf("%s/cpu%d", tc.probe, cpu), func(t *testing.T) {
				lockKernel(t)
				script := tc.probe + ` /pid == cpid/ { @[comm, probe] = count(); }`
				start := time.Now()
				out, stderr, err := runScript(t, Request{Source: []byte(script), Command: fmt.Sprintf("%s -c %d %s spin 200", taskset, cpu, bin)})
				took := time.Since(start)
				if err != nil {
					t.Fatalf("Run: %v\n%s", err, stderr)
				}
				re := regexp.MustCompile(`(?m)^@\[` + regexp.QuoteMeta(comm) + `, ` + regexp.QuoteMeta(tc.probe) + `\]: (\d+)$`)
				m := re.FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("no samples of %s on CPU %d in:\n%s", comm, cpu, out)
				}
				n, _ := strconv.Atoi(m[1])
				if most := int(took.Seconds()*tc.hz) + 2; n < 1 || n > most {
					t.Fatalf("%d samples on CPU %d in %v at %v Hz, want 1 to %d\n%s", n, cpu, took.Round(time.Millisecond), tc.hz, most, out)
				}
				t.Logf("%d samples on CPU %d in %v", n, cpu, took.Round(time.Millisecond))
			})
		}
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
