package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestListProcessRights: list -p reads a process's program and mapped
// files through /proc/PID, which the kernel opens only for who may
// trace the process: nobody lists its own process, as root lists any,
// but not root's, whatever the pattern or format, and learns nothing of
// it.
func TestListProcessRights(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: running processes as another user needs root")
	}
	e := newErrorsEnv(t)
	src := filepath.Join(e.dir, "wait.c")
	if err := os.WriteFile(src, []byte("#include <unistd.h>\nint main(void) { pause(); return 0; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wait := filepath.Join(e.dir, "wait")
	if out, err := exec.Command("gcc", "-O0", "-o", wait, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	start := func(uid int) int {
		cmd := exec.Command(wait)
		if uid != 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
		return cmd.Process.Pid
	}
	pids := map[int]int{0: start(0), nobody: start(nobody)}
	for _, tt := range []struct {
		name      string
		as, owner int
		pattern   string
		ok        bool
	}{
		{"root_lists_root", 0, 0, "", true},
		{"root_lists_nobody", 0, nobody, "uprobe:*", true},
		{"nobody_lists_own", nobody, nobody, "", true},
		{"nobody_lists_own_uprobes", nobody, nobody, "uprobe:*", true},
		{"nobody_lists_root", nobody, 0, "", false},
		{"nobody_lists_root_uprobes", nobody, 0, "uprobe:*", false},
		{"nobody_lists_root_uretprobes", nobody, 0, "uretprobe:*", false},
		{"nobody_lists_root_usdt", nobody, 0, "usdt:*", false},
		{"nobody_lists_own_json", nobody, nobody, "--json", true},
		{"nobody_lists_root_json", nobody, 0, "--json", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pid := strconv.Itoa(pids[tt.owner])
			args := []string{"list", "-p", pid}
			if tt.pattern != "" {
				args = append(args, tt.pattern)
			}
			r := e.runAs(t, tt.as, args...)
			if !tt.ok {
				if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "permission denied") {
					t.Fatalf("%q as %d: exit %d, stdout %q, stderr %q; want exit 1, nothing listed, permission denied", args, tt.as, r.code, r.stdout, r.stderr)
				}
				return
			}
			want := "uprobe:/proc/" + pid + "/root" + wait + ":main\n"
			if tt.pattern == "--json" {
				want = `{"probe":"` + strings.TrimSuffix(want, "\n") + `"}`
			}
			if r.code != 0 || !strings.Contains(r.stdout, want) {
				t.Fatalf("%q as %d: exit %d, stderr %q; want %q in\n%s", args, tt.as, r.code, r.stderr, want, r.stdout)
			}
		})
	}
}
