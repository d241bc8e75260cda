package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/token"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// TestPositionalParams: a script's positional parameters travel with the
// request, compile into the program ($1 in a filter), are signed into
// its attestation and written to the audit log; and $1 in a probe's spec
// is checked against the token's scopes as the literal it stands for,
// before the compiler opens any file.
func TestPositionalParams(t *testing.T) {
	needKernel(t)
	d := startDaemon(t, daemonOpts{})
	tok := d.token(t, token.IssueOptions{Subject: "mallory", Scope: "trace probe:tracepoint:syscalls:sys_enter_getcwd", ID: "jti-args"})

	for _, tt := range []struct {
		name   string
		req    *pb.TraceRequest
		code   string
		reason string
	}{
		// Without the parameters a parse of the script would see the
		// spec `uprobe:$1:main` and no path to refuse.
		{"uprobe_path_from_$1", &pb.TraceRequest{Source: []byte("uprobe:$1:main { @ = count(); }"), Args: []string{"/nonexistent/secret"}},
			"PermissionDenied", `does not allow uprobes on /nonexistent/secret`},
		{"relative_path_from_$1", &pb.TraceRequest{Source: []byte("uprobe:$1:main { @ = count(); }"), Args: []string{"bin/work"}},
			"PermissionDenied", "needs an absolute path for a uprobe"},
		{"probe_from_$1_outside_scopes", &pb.TraceRequest{Source: []byte("tracepoint:syscalls:$1 { @ = count(); }"), Args: []string{"sys_enter_getpid"}},
			"PermissionDenied", "does not allow probe tracepoint:syscalls:sys_enter_getpid"},
		{"args_with_generator", &pb.TraceRequest{Generator: "opensnoop", Args: []string{"1"}},
			"InvalidArgument", "positional parameters go with a script"},
		{"too_many", &pb.TraceRequest{Source: getcwdScript(), Args: make([]string, DefaultRequestLimits.MaxParams+1)},
			"InvalidArgument", "positional parameters, more than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := d.start(t, tok, tt.req)
			r.wait(t)
			var ce *CallError
			if !errors.As(r.err, &ce) || ce.Code != tt.code || !strings.Contains(ce.Message, tt.reason) {
				t.Fatalf("err = %v, want %s containing %q", r.err, tt.code, tt.reason)
			}
		})
	}

	// Allowed: the filter's pid is $1, so the count is of this process's
	// getcwd calls only.
	src := []byte("tracepoint:syscalls:sys_enter_getcwd /pid == $1/ { @[str($2)] = count(); }")
	args := []string{strconv.Itoa(os.Getpid()), "calls"}
	r := d.start(t, tok, &pb.TraceRequest{Name: "args.bt", Source: src, Args: args})
	d.attached(t, 1, r)
	kerneltest.Syscalls(5, 0)
	close(r.interrupt)
	r.wait(t)
	if r.err != nil {
		t.Fatalf("trace: %v\nstderr: %s", r.err, r.stderr.String())
	}
	if got, want := r.stdout.String(), "Attaching 1 probe...\n\n\n@[calls]: 5\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	files, _ := filepath.Glob(filepath.Join(d.attest, "*.dsse.json"))
	if len(files) != 1 {
		t.Fatalf("%d attestations, want 1", len(files))
	}
	b, _ := os.ReadFile(files[0])
	if want := `"args":["` + args[0] + `","calls"]`; !strings.Contains(string(decodeDSSE(t, b)), want) {
		t.Errorf("attestation lacks %s: %s", want, decodeDSSE(t, b))
	}
	d.stop(t)
	var requests, withArgs int
	for _, rec := range auditRecords(t, d.auditLog) {
		if rec.Event != "trace.request" {
			continue
		}
		requests++
		if strings.Contains(rec.line, `"args":["`+args[0]+`","calls"]`) {
			withArgs++
		}
	}
	if requests != 6 || withArgs != 1 {
		t.Errorf("%d trace.request records, %d with the allowed trace's args; want 6 and 1", requests, withArgs)
	}
}
