package broker

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// mountNSWorkloadC calls work() 5 times once a byte arrives on stdin,
// then exits: the test attaches first, then lets it run.
const mountNSWorkloadC = `#include <unistd.h>
__attribute__((noinline)) int work(int i) { return i * 2; }
int main(void) {
	char c;
	if (read(0, &c, 1) != 1)
		return 1;
	int s = 0;
	for (int i = 0; i < 5; i++)
		s += work(i);
	return s == 20 ? 0 : 2;
}
`

func buildMountNSWorkload(t *testing.T) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("skipping: the workload is built with gcc, which is not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "work.c")
	if err := os.WriteFile(src, []byte(mountNSWorkloadC), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "work")
	if out, err := exec.Command(gcc, "-O0", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return bin
}

// TestUprobeInProcessMountNS: with -p, a uprobe on a path of a process
// in another mount namespace is that process's file, reached through
// /proc/PID/root and named so, as bpftrace 0.17 attaches it; the probe
// fires once per call, in both modes.
func TestUprobeInProcessMountNS(t *testing.T) {
	needKernel(t)
	bin := buildMountNSWorkload(t)
	for _, mode := range []Mode{ModeJIT, ModeInterp} {
		t.Run(string(mode), func(t *testing.T) {
			lockKernel(t)
			proc := kerneltest.InMountNS(t, bin)
			pid, seen := proc.Pid, proc.Seen
			req := Request{
				Source: []byte("uprobe:" + seen + ":work { @ = count(); }"),
				PID:    pid, Mode: mode,
				Attached: func(*Admission) { proc.Stdin.Write([]byte{'x'}) },
			}
			if mode == ModeInterp {
				req.Collectors = testCollectors(t)
			}
			prog, _, err := Compile(&Request{Source: req.Source, PID: pid})
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			want := "uprobe:/proc/" + strconv.Itoa(pid) + "/root" + seen + ":work"
			if len(prog.Probes) != 1 || prog.Probes[0].Name != want {
				t.Errorf("probes %v, want one named %s", prog.Probes, want)
			}
			prog.Close()
			out, stderr, err := runScript(t, req)
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, stderr)
			}
			if want := "Attaching 1 probe...\n\n\n@: 5\n"; out != want {
				t.Fatalf("output:\n%s\nwant:\n%s", out, want)
			}
		})
	}
}

// TestUprobeInProcessMountNSScoped: under a uprobe scope (a token holder
// of the daemon) -p does not lead paths into the process's mount
// namespace, even with a scope allowing every file: the path is the
// daemon's, where the process's file is not, and /proc/PID/root spelled
// out is walked as a path of the daemon's too, its magic link not
// followed, so the scope judges the file that would be probed.
func TestUprobeInProcessMountNSScoped(t *testing.T) {
	bin := buildMountNSWorkload(t)
	proc := kerneltest.InMountNS(t, bin)
	pid, seen := proc.Pid, proc.Seen
	for _, path := range []string{seen, "/proc/" + strconv.Itoa(pid) + "/root" + seen} {
		for _, scope := range []*uprobe.Scope{{}, {Allows: func(p string) bool { return strings.HasPrefix(p, "/proc/") || strings.HasPrefix(p, filepath.Dir(seen)) }}} {
			req := &Request{Source: []byte("uprobe:" + path + ":work { @ = count(); }"), PID: pid, UprobeScope: scope}
			prog, _, err := Compile(req)
			if err == nil {
				prog.Close()
				t.Fatalf("uprobe:%s:work with -p %d compiled under a scope: %v", path, pid, prog.Probes)
			}
			if !strings.Contains(err.Error(), "does not exist") && !strings.Contains(err.Error(), "no such file") {
				t.Errorf("uprobe:%s:work under a scope: %v, want a file that does not exist", path, err)
			}
		}
	}
}
