package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// TestAttacksLifetimesCLI (item 8, as an unprivileged user): nobody
// traces a storm of output through the real CLI into a pipe nobody
// reads, so that its client stops reading; an administrator's `sessions
// stop`, or the client's death, still ends the session within a second,
// with its trace.end record, nothing left loaded, and the daemon
// serving on.
func TestAttacksLifetimesCLI(t *testing.T) {
	require(t, needKernelAlone) // 500,000 getcwd calls
	e := newDaemonEnv(t)
	script := fmt.Sprintf(`tracepoint:syscalls:sys_enter_getcwd /pid == %d/ { printf("%%s %%s %%s %%s %%d\n", comm, comm, comm, comm, nsecs); }`, os.Getpid())
	for _, end := range []string{"item8/unread_stdout_then_stop", "item8/unread_stdout_then_client_dies"} {
		t.Run(end, func(t *testing.T) {
			before, _ := kerneltest.LoadedIDs(t)
			unread, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer unread.Close()
			client := e.command(nobody, "trace", "--socket", e.socket, "--token-file", e.tokenFile, "-e", script)
			client.Stdout = w
			if err := client.Start(); err != nil {
				t.Fatal(err)
			}
			w.Close()
			waited := make(chan error, 1)
			go func() { waited <- client.Wait() }()
			defer func() {
				client.Process.Kill()
				<-waited
			}()
			e.attached(t, 1)
			id := e.sessionID(t)
			// 30 MB of output into a 64 KiB pipe: the client stopped
			// reading long before the workload ends.
			kerneltest.Syscalls(500_000, 0)
			due := time.Now()
			if strings.HasSuffix(end, "stop") {
				e.must(t, "sessions", "stop", "--socket", e.socket, id)
			} else {
				client.Process.Kill()
			}
			for e.sessionID(t) == id {
				if time.Since(due) > 30*time.Second {
					t.Fatal("the session still runs after 30s")
				}
				time.Sleep(2 * time.Millisecond)
			}
			late := time.Since(due)
			t.Logf("ended %v after its end was due", late.Round(time.Millisecond))
			if late > 2*time.Second {
				t.Errorf("ended %v after its end was due", late)
			}
			if left := kerneltest.LeftLoaded(t, before, "sys_enter_getcw", time.Second); len(left) > 0 {
				t.Errorf("left loaded: %v", left)
			}
			b, err := os.ReadFile(filepath.Join(e.state, "audit.log"))
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, `"event":"trace.end"`) && strings.Contains(line, `"session":"`+id+`"`) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d trace.end records for session %s, want 1", n, id)
			}
		})
	}
	// The daemon serves on.
	begin := []string{"trace", "--socket", e.socket, "--token-file", e.tokenFile, "-e", `BEGIN { printf("ok\n"); exit(); }`}
	if r := e.run(t, nobody, begin...); r.code != 0 || r.stdout != "Attaching 1 probe...\nok\n\n\n" {
		t.Errorf("after the attacks: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
}

// sessionID is the id of the one session listed, "" if none.
func (e *daemonEnv) sessionID(t *testing.T) string {
	t.Helper()
	r := e.run(t, 0, "sessions", "list", "--json", "--socket", e.socket)
	if r.code != 0 {
		t.Fatalf("sessions list: %s", r.stderr)
	}
	var ss []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &ss); err != nil {
		t.Fatalf("sessions list: %v: %q", err, r.stdout)
	}
	if len(ss) == 0 {
		return ""
	}
	return ss[0].ID
}
