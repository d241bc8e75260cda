package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf"
)

// TestFentryCLI runs the README's kfunc commands: the listing with a
// signature, as bpftrace -lv prints it, and, where the kernel refuses
// fentry programs (this project's hosts), the refusal of a kfunc probe
// naming what was refused, with nothing run.
func TestFentryCLI(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skipf("kernel BTF unavailable: %v", err)
	}
	t.Run("list -v kretfunc:vfs_read", func(t *testing.T) {
		r := tracebroker(t, "list", "-v", "kretfunc:vfs_read")
		want := "kretfunc:vmlinux:vfs_read\n    struct file * file\n    char * buf\n    size_t count\n    loff_t * pos\n    ssize_t retval\n"
		if r.code != 0 || r.stdout != want {
			t.Errorf("exit %d, stdout\n%s\nwant\n%s\nstderr %s", r.code, r.stdout, want, r.stderr)
		}
	})
	t.Run("list kfunc:vfs_rea*", func(t *testing.T) {
		r := tracebroker(t, "list", "kfunc:vfs_rea*")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "kfunc:vmlinux:vfs_read\n") {
			t.Errorf("exit %d, stdout\n%s\nstderr %s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("run refused", func(t *testing.T) {
		if err := bpf.Supported(); err != nil {
			t.Skipf("kernel tracing unavailable: %v", err)
		}
		herr := bpf.HaveFentry()
		if herr == nil {
			t.Skip("skipping: this kernel loads fentry programs")
		}
		r := tracebroker(t, "run", "-e", "fentry:vfs_read { @ = count(); }")
		want := fmt.Sprintf("stdin:1:1-16: ERROR: kfunc probes are not available: %v\n", herr)
		if r.code != 1 || !strings.HasPrefix(r.stderr, want) || r.stdout != "" {
			t.Errorf("exit %d, stdout %q, stderr\n%s\nwant it to start\n%s", r.code, r.stdout, r.stderr, want)
		}
	})
}

// TestFentryDaemon: a token holder traces kfunc probes through the
// daemon as far as the token's canonical kfunc:MODULE:FUNC scopes allow,
// whatever spelling the script uses; an issuer is told that an alias
// scope grants nothing. Runs where the kernel loads fentry programs
// (make vmtest).
func TestFentryDaemon(t *testing.T) {
	require(t, needKernel)
	if err := bpf.HaveFentry(); err != nil {
		t.Skipf("skipping: fentry/fexit unavailable: %v", err)
	}
	e := newDaemonEnv(t)
	if r := e.run(t, 0, "token", "issue", "--key", filepath.Join(e.dir, "issuer.key"), "--sub", "alice", "--scope", "trace probe:fentry:*", "--ttl", "10m"); r.code == 0 ||
		!strings.Contains(r.stderr, `scope "probe:fentry:*" matches no probe: probe names use the long type name, kfunc (write probe:kfunc:*)`) {
		t.Errorf("token issue with probe:fentry:*: exit %d, stderr %q", r.code, r.stderr)
	}
	tok := filepath.Join(e.dir, "kfunc-token")
	e.issueToken(t, tok, "trace probe:kfunc:vmlinux:ksys_read")
	for _, tt := range []struct{ name, script, stderr string }{
		{"fexit_not_granted", "fexit:ksys_read { @ = count(); }",
			`ERROR: the token of "alice" does not allow probe kretfunc:vmlinux:ksys_read (its probe scopes: probe:kfunc:vmlinux:ksys_read)` + "\n"},
		{"wildcard_reaches_past_scope", "fentry:vmlinux:ksys_*read64 { @ = count(); }",
			`ERROR: the token of "alice" does not allow probe kfunc:vmlinux:ksys_pread64 (its probe scopes: probe:kfunc:vmlinux:ksys_read)` + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run(t, nobody, "trace", "--socket", e.socket, "--token-file", tok, "-e", tt.script)
			if r.code != 1 || r.stdout != "" || r.stderr != tt.stderr {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and %q", r.code, r.stdout, r.stderr, tt.stderr)
			}
		})
	}

	// The alias, granted through the canonical name, counts the test's
	// own reads.
	f, err := os.Open("/dev/zero")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out, errb bytes.Buffer
	client := e.command(nobody, "trace", "--socket", e.socket, "--token-file", tok, "-e",
		fmt.Sprintf("fentry:ksys_read /pid == %d && args->count == 4099/ { @[probe] = count(); }", os.Getpid()))
	client.Stdout, client.Stderr = &out, &errb
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	e.attached(t, 1)
	buf := make([]byte, 4099)
	for range 3 {
		f.Read(buf)
	}
	client.Process.Signal(os.Interrupt)
	if err := client.Wait(); err != nil || out.String() != "Attaching 1 probe...\n\n\n@[kfunc:vmlinux:ksys_read]: 3\n" {
		t.Errorf("trace: %v, stdout %q, stderr %q", err, out.String(), errb.String())
	}
}
