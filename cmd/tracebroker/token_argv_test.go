package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// TestAttacksTokenArgv (issue 15, item 13): a token never reaches the
// command line, where every user of the host reads it (ps,
// /proc/PID/cmdline). --token is refused before anything is sent; the
// file, stdin and the environment serve, and while the trace runs its
// command line holds no part of the token.
func TestAttacksTokenArgv(t *testing.T) {
	require(t, needKernel)
	e := newDaemonEnv(t)
	b, err := os.ReadFile(e.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(b))
	script := fmt.Sprintf("tracepoint:syscalls:sys_enter_getcwd /pid == %d/ { @ = count(); }", os.Getpid())
	base := []string{"trace", "--socket", e.socket, "-e", script}

	t.Run("item13/token_flag_refused", func(t *testing.T) {
		before := e.auditEvents(t)
		r := e.run(t, nobody, append(base, "--token", tok)...)
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "--token would put the token in this command's arguments, which every user of the host can read") ||
			!strings.Contains(r.stderr, "--token-file FILE, --token-file - (stdin) or $TRACEBROKER_TOKEN") {
			t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		if after := e.auditEvents(t); after != before {
			t.Errorf("the daemon heard of it: audit %q, then %q", before, after)
		}
	})
	t.Run("item13/help_says_so", func(t *testing.T) {
		r := e.run(t, nobody, "trace", "--help")
		if !strings.Contains(r.stdout, "never from the command line") || !strings.Contains(r.stdout, "--token-file") || strings.Contains(r.stdout, "--token string") {
			t.Errorf("trace --help:\n%s", r.stdout)
		}
	})
	for _, tt := range []struct {
		name  string
		args  []string
		stdin string
		env   string
	}{
		{"item13/token_file_stdin", []string{"--token-file", "-"}, tok + "\n", ""},
		{"item13/token_env", nil, "", "TRACEBROKER_TOKEN=" + tok},
		{"item13/token_file", []string{"--token-file", e.tokenFile}, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := e.command(nobody, append(base, tt.args...)...)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			cmd.Stdin = strings.NewReader(tt.stdin)
			if tt.env != "" {
				cmd.Env = append(os.Environ(), tt.env)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			e.attached(t, 1)
			cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid))
			if err != nil {
				t.Fatal(err)
			}
			// Any of its three parts would be a leak (the signature most).
			for _, part := range strings.Split(tok, ".") {
				if bytes.Contains(cmdline, []byte(part)) {
					t.Errorf("/proc/PID/cmdline holds part of the token: %q", cmdline)
				}
			}
			kerneltest.Syscalls(3, 0)
			cmd.Process.Signal(os.Interrupt)
			if err := cmd.Wait(); err != nil || out.String() != "Attaching 1 probe...\n\n\n@: 3\n" {
				t.Errorf("trace: %v, stdout %q, stderr %q", err, out.String(), errb.String())
			}
		})
	}
}

// auditEvents is the daemon's audit log's events so far.
func (e *daemonEnv) auditEvents(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(e.state + "/audit.log")
	if err != nil {
		t.Fatal(err)
	}
	var ev []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if i := strings.Index(line, `"event":"`); i >= 0 {
			ev = append(ev, strings.SplitN(line[i+9:], `"`, 2)[0])
		}
	}
	return strings.Join(ev, " ")
}
