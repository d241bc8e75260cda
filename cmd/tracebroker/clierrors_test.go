package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/broker/daemon"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// outsider is a uid in neither the socket's group (nobody's) nor any
// other: the responder an administrator forgot to add.
const outsider = 65533

// TestDaemonCLIErrors: a responder's first mistakes read as sentences
// with the fix, and a double Ctrl-C leaves quietly with 130.
func TestDaemonCLIErrors(t *testing.T) {
	require(t, needKernel)
	before, _ := kerneltest.LoadedIDs(t)
	e := newDaemonEnv(t)
	script := fmt.Sprintf("tracepoint:syscalls:sys_enter_getcwd /pid == %d/ { @ = count(); }", os.Getpid())

	t.Run("not_in_socket_group", func(t *testing.T) {
		group := fmt.Sprint(nobody)
		if g, err := user.LookupGroupId(group); err == nil {
			group = g.Name
		}
		r := e.run(t, outsider, "trace", "--socket", e.socket, "--token-file", e.tokenFile, "-e", script)
		want := fmt.Sprintf("ERROR: cannot connect to %s: permission denied; you (uid %d) are not in group %s (the socket's group); ask an administrator to add you, then log in again\n", e.socket, outsider, group)
		if r.code != 1 || r.stdout != "" || r.stderr != want {
			t.Errorf("exit %d, stdout %q, stderr\n%q\nwant exit 1 and\n%q", r.code, r.stdout, r.stderr, want)
		}
	})

	// The second Ctrl-C leaves before the daemon answers the first: the
	// daemon is stopped (SIGSTOP) between them, so it cannot end the
	// trace first, and the client must leave on its own. The second is
	// sent once the client has said it heard the first: two signals
	// sent together arrive as one.
	t.Run("double_ctrl_c", func(t *testing.T) {
		var out bytes.Buffer
		client := e.command(nobody, "trace", "--socket", e.socket, "--token-file", e.tokenFile, "-e", script)
		client.Stdout = &out
		stderr, err := client.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := client.Start(); err != nil {
			t.Fatal(err)
		}
		errLines := make(chan string, 4)
		var errb strings.Builder
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			r := bufio.NewReader(stderr)
			for {
				line, err := r.ReadString('\n')
				errb.WriteString(line)
				if err != nil {
					close(errLines)
					return
				}
				errLines <- line
			}
		}()
		e.attached(t, 1)
		if err := e.serve.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		resumed := false
		resume := func() {
			if !resumed {
				e.serve.Process.Signal(syscall.SIGCONT)
				resumed = true
			}
		}
		defer resume()
		client.Process.Signal(os.Interrupt)
		const heard = "tracebroker: ending the trace (interrupt again to leave at once)\n"
		select {
		case line := <-errLines:
			if line != heard {
				t.Fatalf("after the first Ctrl-C, stderr %q, want %q", line, heard)
			}
		case <-time.After(30 * time.Second):
			client.Process.Kill()
			t.Fatal("the client said nothing after the first Ctrl-C")
		}
		client.Process.Signal(os.Interrupt)
		exited := make(chan error, 1)
		go func() {
			<-readDone
			exited <- client.Wait()
		}()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			client.Process.Kill()
			<-exited
			t.Fatal("the client did not leave on the second Ctrl-C")
		}
		resume()
		if code := client.ProcessState.ExitCode(); code != 130 || errb.String() != heard || out.String() != "Attaching 1 probe...\n" {
			t.Errorf("exit %d, stdout %q, stderr %q; want 130, only the Attaching line, no error", code, out.String(), errb.String())
		}
		// The daemon, resumed, ends the session the client dropped.
		for i := 0; ; i++ {
			r := e.run(t, 0, "sessions", "list", "--json", "--socket", e.socket)
			if r.code == 0 && r.stdout == "[]\n" {
				break
			}
			if i > 500 {
				t.Fatalf("session still listed: %s%s", r.stdout, r.stderr)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if left := kerneltest.LeftLoaded(t, before, "sys_enter_getcw", 2*time.Second); len(left) > 0 {
			t.Errorf("programs left loaded: %v", left)
		}
	})

	t.Run("no_raw_grpc", func(t *testing.T) {
		// A file that is not a socket, where one was expected.
		notSock := e.dir + "/token"
		r := e.run(t, nobody, "sessions", "list", "--socket", notSock)
		want := "ERROR: cannot connect to " + notSock + ": it is not a socket; give the daemon's --socket PATH\n"
		if r.code != 1 || r.stderr != want {
			t.Errorf("exit %d, stderr %q, want %q", r.code, r.stderr, want)
		}
	})
}

// TestInterrupted: only an error that says "interrupted", after an
// interrupt, becomes the quiet 130.
func TestInterrupted(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	other := errors.New("open x.bt: no such file or directory")
	refusal := &daemon.CallError{Code: "PermissionDenied", Message: "only root on the unix socket may list sessions"}
	for _, tt := range []struct {
		name string
		ctx  context.Context
		err  error
		want error
	}{
		{"no_error", ended, nil, nil},
		{"call_interrupted", live, &daemon.CallError{Code: "Canceled", Message: "interrupted", Interrupted: true}, exitInterrupted},
		{"cancelled_after_interrupt", ended, fmt.Errorf("generating: %w", context.Canceled), exitInterrupted},
		{"not_started_after_interrupt", ended, fmt.Errorf("%w: %w", broker.ErrNotStarted, context.Canceled), exitInterrupted},
		{"cancelled_without_interrupt", live, context.Canceled, context.Canceled},
		{"other_error_after_interrupt", ended, other, other},
		{"daemon_refusal_after_interrupt", ended, refusal, refusal},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := interrupted(tt.ctx, tt.err); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}
