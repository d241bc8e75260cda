package broker

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
	return kerneltest.CC(t, "the workload", "work", mountNSWorkloadC)
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

// TestUSDTScopedNamesNoRefusedFile: under a scope, the files a usdt
// probe's process (-p) or file pattern finds are the daemon's finding,
// not the caller's: one the scope refuses is passed over, unnamed, so
// that a token holder learns neither the program of another user's
// process nor the files of a directory it cannot list.
func TestUSDTScopedNamesNoRefusedFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: a process of another user needs root")
	}
	bin := buildMountNSWorkload(t)
	secret := filepath.Join(t.TempDir(), "secretdir")
	if err := os.Mkdir(secret, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := kerneltest.CopyFile(bin, filepath.Join(secret, "hidden-prog"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Where nobody may run it.
	prog := filepath.Join(kerneltest.SharedDir(t), "nobodys-prog")
	if err := kerneltest.CopyFile(bin, prog, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prog)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if _, err := cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	refuseAll := &uprobe.Scope{Allows: func(string) bool { return false }}
	for _, tt := range []struct {
		name, script string
		pid          int
	}{
		{"process", "usdt:*:x:y { exit() }", cmd.Process.Pid},
		{"process_any_file", "usdt::x:y { exit() }", cmd.Process.Pid},
		{"pattern", "usdt:" + secret + "/*:x:y { exit() }", 0},
		{"pattern_class", "usdt:" + secret + "/hidden-pro[g]:x:y { exit() }", 0},
		{"pattern_none", "usdt:" + secret + "/nothing*:x:y { exit() }", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			prog, _, err := Compile(&Request{Source: []byte(tt.script), PID: tt.pid, UprobeScope: refuseAll})
			if err == nil {
				prog.Close()
				t.Fatalf("%s compiled under a scope refusing every file", tt.script)
			}
			// A match that was refused and no match are one answer.
			if want := "No probes matched"; !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v, want %q", tt.script, err, want)
			}
			for _, leak := range []string{"nobodys-prog", "hidden-prog", "libc"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("%s: the error names %q, a file the scope refused: %v", tt.script, leak, err)
				}
			}
		})
	}
}
