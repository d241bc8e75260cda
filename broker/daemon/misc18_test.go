package daemon

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/token"
)

// TestTokenSoftwareAndHeaders: through the daemon, a software: probe
// needs a probe:software: scope as any probe does, and a script's
// #include reads none of the host's files (it would read the broker's,
// root's, and say which exist); the built-in headers work.
func TestTokenSoftwareAndHeaders(t *testing.T) {
	needKernel(t)
	d := startDaemon(t, daemonOpts{})
	narrow := d.token(t, token.IssueOptions{Subject: "mallory", Scope: "trace probe:tracepoint:syscalls:sys_enter_getcwd"})
	soft := d.token(t, token.IssueOptions{Subject: "alice", Scope: "trace probe:software:faults:*"})
	for _, tt := range []struct {
		name, tok, script string
		code, msg         string // a refusal, or
		exitMsg           string // a script error, or
		stdout            string // the output's end
		faults            bool   // page faults by processes of the test's own, while it waits
	}{
		{name: "software_outside_scopes", tok: narrow, script: "software:faults:1 { @ = count(); exit(); }", code: "PermissionDenied", msg: "does not allow probe software:faults:1"},
		{name: "software_other_event", tok: soft, script: "software:cs:1 { @ = count(); exit(); }", code: "PermissionDenied", msg: "does not allow probe software:cs:1"},
		{name: "software_in_scope", tok: soft, script: "software:faults:1 { @ = 1; exit(); }", stdout: "@: 1\n", faults: true},
		{name: "include_host_file", tok: narrow, script: "#include \"/etc/shadow\"\nBEGIN { exit(); }", exitMsg: "only built-in headers"},
		{name: "include_system_header", tok: narrow, script: "#include <stdio.h>\nBEGIN { exit(); }", exitMsg: "only built-in headers"},
		{name: "errno_builtin", tok: narrow, script: "#include <errno.h>\nBEGIN { print(strerror(EACCES)); exit(); }", stdout: "Permission denied\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := d.start(t, tt.tok, &pb.TraceRequest{Source: []byte(tt.script)})
			if tt.faults {
				// The daemon's own faults are hidden from token
				// holders: an idle host would give the probe none.
				stop := make(chan struct{})
				defer close(stop)
				go func() {
					for {
						select {
						case <-stop:
							return
						default:
							exec.Command("/bin/true").Run()
						}
					}
				}()
			}
			r.wait(t)
			switch {
			case tt.code != "":
				var ce *CallError
				if !errors.As(r.err, &ce) || ce.Code != tt.code || !strings.Contains(ce.Message, tt.msg) {
					t.Fatalf("err = %v (%T), want %s containing %q", r.err, r.err, tt.code, tt.msg)
				}
			case tt.exitMsg != "":
				var ee *ExitError
				if !errors.As(r.err, &ee) || !strings.Contains(ee.Message, tt.exitMsg) {
					t.Fatalf("err = %v (%T), want a script error containing %q", r.err, r.err, tt.exitMsg)
				}
			default:
				if r.err != nil || !strings.Contains(r.stdout.String(), tt.stdout) {
					t.Fatalf("err %v, stdout %q, want it to contain %q", r.err, r.stdout.String(), tt.stdout)
				}
			}
		})
	}
}
