package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestAttacksReadScope: nobody, with a token for one syscall tracepoint,
// asks the daemon to read kernel memory in BEGIN and user memory past a
// syscall's buffer; both are refused, printed as bpftrace prints script
// errors, naming the expression and the scope it needs. With the scope
// the same request runs.
func TestAttacksReadScope(t *testing.T) {
	require(t, needKernel)
	e := newDaemonEnv(t)
	kernelRead := `BEGIN { $s = str(0xffff888000000000); exit(); }`
	userRead := `tracepoint:syscalls:sys_enter_getcwd { $s = str(args->buf + 4096); exit(); }`
	trace := func(tok, script string) []string {
		return []string{"trace", "--socket", e.socket, "--token-file", tok, "-e", script}
	}
	for _, tt := range []struct {
		name, script, stderr string
	}{
		{"item1/cli_kernel_memory_in_begin", kernelRead,
			`stdin:1:14-37: ERROR: str() of an integer reads arbitrary kernel memory: the token of "alice" needs scope read:kernel` + "\n" +
				kernelRead + "\n" +
				strings.Repeat(" ", 13) + "^" + strings.Repeat("~", 22) + "\n"},
		{"item1/cli_user_memory_past_a_pointer", userRead,
			`stdin:1:45-66: ERROR: str() of pointer arithmetic reads arbitrary user memory: the token of "alice" needs scope read:user` + "\n" +
				userRead + "\n" +
				strings.Repeat(" ", 44) + "^" + strings.Repeat("~", 20) + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run(t, nobody, trace(e.tokenFile, tt.script)...)
			if r.code != 1 || r.stdout != "" || r.stderr != tt.stderr {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 1, no stdout, stderr:\n%s", r.code, r.stdout, r.stderr, tt.stderr)
			}
		})
	}
	t.Run("item1/cli_with_read_kernel", func(t *testing.T) {
		tok := filepath.Join(e.dir, "kernel")
		e.issueToken(t, tok, "trace read:kernel")
		if r := e.run(t, nobody, trace(tok, kernelRead)...); r.code != 0 || r.stdout != "Attaching 1 probe...\n\n\n" {
			t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	r := e.run(t, 0, "audit", "verify", filepath.Join(e.state, "audit.log"))
	if r.code != 0 {
		t.Errorf("audit verify: %s%s", r.stdout, r.stderr)
	}
	if n := strings.Count(e.serveErr.String(), `"stage":"scope"`); n != 2 {
		t.Errorf("%d refusals at stage scope in serve's log, want 2:\n%s", n, e.serveErr.String())
	}
}
