package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditShow: after a token holder's trace and a refusal, serve's
// /metrics counts them, and audit show lists them and tells the trace
// whole, from its attestations; a log that was edited is shown under a
// warning, with exit status 1.
func TestAuditShow(t *testing.T) {
	require(t, needKernel)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metrics := l.Addr().String()
	l.Close()
	e := newDaemonEnv(t, "--metrics-listen", metrics)
	// The words after the script are its positional parameters: the
	// daemon compiles with them, and the attestation signs them.
	script := "tracepoint:syscalls:sys_enter_getcwd /pid == $1/ { @ = count(); } BEGIN { exit(); }"
	if r := e.run(t, nobody, "trace", "--socket", e.socket, "--token-file", e.tokenFile, "-e", script, "1"); r.code != 0 {
		t.Fatalf("trace: exit %d: %s", r.code, r.stderr)
	}
	if r := e.run(t, nobody, "trace", "--socket", e.socket, "--token-file", e.tokenFile, "-e", "tracepoint:syscalls:sys_enter_getpid { @ = count(); }"); r.code != 1 {
		t.Fatalf("a probe outside the scope: exit %d: %s", r.code, r.stderr)
	}

	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get("http://" + metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			"\ntracebroker_admissions_total{mode=\"jit\",verdict=\"allow\"} 1\n",
			"\ntracebroker_refusals_total{stage=\"scope\"} 1\n",
			"\ntracebroker_token_verifications_total{result=\"valid\"} 2\n",
			"\ntracebroker_sessions_ended_total{reason=\"exit\"} 1\n",
		} {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("no %q in /metrics", strings.TrimSpace(want))
			}
		}
	})

	show := func(t *testing.T, args ...string) result {
		t.Helper()
		r := e.run(t, 0, append([]string{"audit", "show", "--state", e.state}, args...)...)
		if r.code != 0 {
			t.Fatalf("audit show %q: exit %d: %s", args, r.code, r.stderr)
		}
		return r
	}
	contains := func(t *testing.T, out string, wants ...string) {
		t.Helper()
		for _, want := range wants {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in\n%s", want, out)
			}
		}
	}
	t.Run("records", func(t *testing.T) {
		r := show(t)
		contains(t, r.stdout, ": chain verified\n", " daemon.start ", " trace.admitted ", " trace.end ", " alice ", "stage=scope code=PermissionDenied")
		r = show(t, "--subject", "alice", "--event", "trace.refused")
		if n := strings.Count(r.stdout, "\n"); n != 3 {
			t.Errorf("%d lines, want the header, the column names and one refusal:\n%s", n, r.stdout)
		}
	})
	t.Run("session", func(t *testing.T) {
		var recs []struct {
			Session string `json:"session"`
		}
		if err := json.Unmarshal([]byte(show(t, "--event", "trace.admitted", "--json").stdout), &recs); err != nil || len(recs) != 1 {
			t.Fatalf("--json: %v, %d records", err, len(recs))
		}
		r := show(t, "--session", recs[0].Session)
		contains(t, r.stdout,
			"session "+recs[0].Session+"\n",
			" by alice (token ",
			" mode jit\n",
			"    tracepoint:syscalls:sys_enter_getcwd: any (loose default: ",
			" instructions, verdict any, mode jit, signed by ",
			"  ended      ",
			"  attestations (2):\n",
			"      generator tracebroker-script ",
			` args ["1"]`+"\n",
			"  source (kept, matches the signed digest):\n    | "+script+"\n")
	})
	t.Run("item5/audit_show_tampered", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(e.state, "audit.log"))
		if err != nil {
			t.Fatal(err)
		}
		edited := filepath.Join(e.dir, "edited.log")
		if err := os.WriteFile(edited, bytes.Replace(b, []byte(`"sub":"alice"`), []byte(`"sub":"carol"`), 1), 0o600); err != nil {
			t.Fatal(err)
		}
		r := e.run(t, 0, "audit", "show", "--state", e.state, edited)
		if r.code != 1 || !strings.Contains(r.stdout, "NOT VERIFIED") || !strings.Contains(r.stderr, "NOT VERIFIED") || !strings.Contains(r.stdout, " carol ") {
			t.Errorf("an edited log: exit %d, stdout %s, stderr %s", r.code, r.stdout, r.stderr)
		}
	})
}
