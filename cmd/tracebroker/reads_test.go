package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAttacksReadScope: nobody, with a token for one syscall tracepoint,
// asks the daemon to read kernel memory in BEGIN and user memory past a
// syscall's buffer; both are refused, printed as bpftrace prints script
// errors, naming the expression and the scope it needs. With the scope
// the same request runs. And no token holder sees the daemon's own
// events.
func TestAttacksReadScope(t *testing.T) {
	require(t, needKernel)
	e := newDaemonEnv(t, "--plugin-dir", pluginDir(t, "plugins/testdata/plugins/rawread"), "--trust", testPub)
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
	// A plugin's raw eBPF is judged by its helpers: probe_read_kernel is
	// kernel memory, wherever it points.
	t.Run("item1/cli_raw_plugin_reads_kernel", func(t *testing.T) {
		gen := func(tok string) []string {
			return []string{"trace", "--socket", e.socket, "--token-file", tok, "--gen", "rawread"}
		}
		tok := filepath.Join(e.dir, "rawgen")
		e.issueToken(t, tok, "trace gen:rawread")
		want := `gen:rawread: ERROR: probe BEGIN reads kernel memory: the token of "alice" needs scope read:kernel` + "\n"
		if r := e.run(t, nobody, gen(tok)...); r.code != 1 || r.stdout != "" || r.stderr != want {
			t.Errorf("exit %d, stdout %q, stderr %q; want exit 1, %q", r.code, r.stdout, r.stderr, want)
		}
		e.issueToken(t, tok, "trace gen:rawread read:kernel")
		if r := e.run(t, nobody, gen(tok)...); r.code != 0 || r.stdout != "Attaching 1 probe...\n\n\n" {
			t.Errorf("with read:kernel: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	// The daemon writes every session's output and its audit log: a
	// token holder tracing syscalls never sees its events (an
	// administrator does), nor so what other sessions see.
	t.Run("item1/cli_daemon_events_hidden", func(t *testing.T) {
		tok := filepath.Join(e.dir, "fsync")
		e.issueToken(t, tok, "trace probe:tracepoint:syscalls:sys_enter_fsync")
		script := `tracepoint:syscalls:sys_enter_fsync { @[pid] = count(); }`
		var outs [2]bytes.Buffer
		var clients [2]*exec.Cmd
		clients[0] = e.command(nobody, trace(tok, script)...)
		clients[1] = e.command(0, "trace", "--socket", e.socket, "-e", script)
		for i, c := range clients {
			c.Stdout = &outs[i]
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			e.attached(t, i+1)
		}
		// The daemon fsyncs its audit log for this trace's three records.
		e.must(t, "trace", "--socket", e.socket, "-e", "BEGIN { exit(); }")
		f, err := os.CreateTemp(e.dir, "fsync")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for range 3 {
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range clients {
			c.Process.Signal(os.Interrupt)
			if err := c.Wait(); err != nil {
				t.Fatal(err)
			}
		}
		mine := fmt.Sprintf("\n@[%d]: 3\n", os.Getpid())
		daemon := regexp.MustCompile(fmt.Sprintf(`\n@\[%d\]: [1-9]\d*\n`, e.serve.Process.Pid))
		if holder := outs[0].String(); !strings.Contains(holder, mine) || daemon.MatchString(holder) {
			t.Errorf("token holder: stdout %q, want %q and nothing of pid %d", holder, mine, e.serve.Process.Pid)
		}
		if admin := outs[1].String(); !strings.Contains(admin, mine) || !daemon.MatchString(admin) {
			t.Errorf("administrator: stdout %q, want %q and the daemon's fsyncs (pid %d)", admin, mine, e.serve.Process.Pid)
		}
	})
	r := e.run(t, 0, "audit", "verify", filepath.Join(e.state, "audit.log"))
	if r.code != 0 {
		t.Errorf("audit verify: %s%s", r.stdout, r.stderr)
	}
	if n := strings.Count(e.serveErr.String(), `"stage":"scope"`); n != 3 {
		t.Errorf("%d refusals at stage scope in serve's log, want 3:\n%s", n, e.serveErr.String())
	}
}
