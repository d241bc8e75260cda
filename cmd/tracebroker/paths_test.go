package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestAttacksPaths: nobody, with a token for uprobes in a directory it
// may write, plants symlinks there to root's files; the daemon's answer
// is one refusal whatever the link leads to, and a probe inside the
// scope works.
func TestAttacksPaths(t *testing.T) {
	require(t, needKernel)
	e := newDaemonEnv(t)
	allowed := filepath.Join(e.dir, "allowed")
	private := filepath.Join(e.dir, "private")
	for _, d := range []string{allowed, private} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(allowed, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	// Root's files: an ELF binary with symbols, a key, and nothing. The
	// binaries are C: a uprobe on a Go function's entry fires again when
	// the goroutine's stack grows there (morestack restarts the function),
	// so a Go binary cannot give an exact count.
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("the workload is built with gcc, which is not installed")
	}
	src := filepath.Join(e.dir, "work.c")
	if err := os.WriteFile(src, []byte(errorsWorkloadC), 0o644); err != nil {
		t.Fatal(err)
	}
	secretELF := filepath.Join(private, "work")
	prog := filepath.Join(allowed, "prog")
	for _, out := range []string{secretELF, prog} {
		if b, err := exec.Command(gcc, "-O0", "-o", out, src).CombinedOutput(); err != nil {
			t.Fatalf("gcc: %v\n%s", err, b)
		}
	}
	if err := os.Chmod(prog, 0o755); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(e.dir, "uprobe-token")
	e.issueToken(t, tokenFile, "trace probe:uprobe:"+allowed+"/*:*")
	asNobody := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v as nobody: %v %s", name, args, err, out)
		}
	}

	t.Run("item3/symlink_to_root_files_as_nobody", func(t *testing.T) {
		link := filepath.Join(allowed, "x")
		want := `ERROR: the token of "alice" does not allow uprobes on ` + link + ` (its probe scopes: probe:uprobe:` + allowed + "/*:*)\n"
		for _, target := range []string{secretELF, filepath.Join(e.state, "host.key"), filepath.Join(private, "nosuch"), private} {
			for _, fn := range []string{"add_one", "no_such_function", "add_*"} {
				asNobody("ln", "-sfn", target, link)
				r := e.run(t, nobody, "trace", "--socket", e.socket, "--token-file", tokenFile, "-e", "uprobe:"+link+":"+fn+" { @ = count(); }")
				if r.code != 1 || r.stdout != "" || r.stderr != want {
					t.Errorf("link to %s, function %s: exit %d, stdout %q, stderr %q; want exit 1 and %q", target, fn, r.code, r.stdout, r.stderr, want)
				}
			}
		}
	})

	t.Run("item3/in_scope_as_nobody", func(t *testing.T) {
		var out, errb bytes.Buffer
		client := e.command(nobody, "trace", "--socket", e.socket, "--token-file", tokenFile, "-e", "uprobe:"+prog+":add_one { @ = count(); }")
		client.Stdout, client.Stderr = &out, &errb
		if err := client.Start(); err != nil {
			t.Fatal(err)
		}
		e.attached(t, 1)
		for range 2 {
			if b, err := exec.Command(prog).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v %s", prog, err, b)
			}
		}
		if b, err := exec.Command(secretELF).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", secretELF, err, b)
		}
		client.Process.Signal(os.Interrupt)
		if err := client.Wait(); err != nil || !strings.HasSuffix(out.String(), "\n@: 2\n") {
			t.Errorf("trace: %v, stdout %q, stderr %q", err, out.String(), errb.String())
		}
	})
}
