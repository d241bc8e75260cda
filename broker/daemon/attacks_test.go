package daemon

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tracebroker/tracebroker/attest"
	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/token"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// forge signs claims as an attacker would: with any method and key, and
// any header.
func forge(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tk := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		tk.Header[k] = v
	}
	s, err := tk.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTokenAttacks: every bad token is refused with its reason, nothing
// is loaded, the refusal is in the audit log, and the daemon goes on to
// run a good token's trace.
func TestTokenAttacks(t *testing.T) {
	needKernel(t)
	d := startDaemon(t, daemonOpts{})
	other, err := attest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	kid := d.issuer.ID
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{
			"iss": "tracebroker", "aud": "tracebroker", "sub": "mallory", "jti": "j1",
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
			"scope": "trace probe:tracepoint:syscalls:sys_enter_getcwd",
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	hdr := map[string]any{"typ": "at+jwt", "kid": kid}
	ed := func(edit func(jwt.MapClaims)) string {
		return forge(t, jwt.SigningMethodEdDSA, d.issuer.Key, hdr, claims(edit))
	}
	pubRaw := []byte(d.issuer.Public().Key)
	pubPEM, err := attest.MarshalPublicKeyPEM(d.issuer.Public())
	if err != nil {
		t.Fatal(err)
	}
	good := ed(nil)
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	json.Unmarshal(payload, &m)
	m["scope"] = "trace probe:**"
	tampered, _ := json.Marshal(m)

	unsigned := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt","kid":"`+kid+`"}`)) + "." + parts[1] + "."
	script := getcwdScript()
	for _, tt := range []struct {
		name, tok string
		code      string
		reason    string
		script    string
	}{
		{"alg_none", unsigned, "Unauthenticated", "token is unsigned (alg none)", ""},
		{"hs256_with_public_key_bytes", forge(t, jwt.SigningMethodHS256, pubRaw, hdr, claims(nil)), "Unauthenticated", "HS256", ""},
		{"hs256_with_public_key_pem", forge(t, jwt.SigningMethodHS256, pubPEM, hdr, claims(nil)), "Unauthenticated", "HS256", ""},
		{"other_issuer_key", forge(t, jwt.SigningMethodEdDSA, other.Key, map[string]any{"typ": "at+jwt", "kid": other.ID}, claims(nil)), "Unauthenticated", other.ID, ""},
		{"other_key_claims_issuer_kid", forge(t, jwt.SigningMethodEdDSA, other.Key, hdr, claims(nil)), "Unauthenticated", "signature", ""},
		{"expired", ed(func(c jwt.MapClaims) {
			c["exp"] = now.Add(-time.Hour).Unix()
			c["iat"] = now.Add(-2 * time.Hour).Unix()
			c["nbf"] = now.Add(-2 * time.Hour).Unix()
		}), "Unauthenticated", "expired", ""},
		{"nbf_future", ed(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }), "Unauthenticated", "not valid", ""},
		{"no_exp", ed(func(c jwt.MapClaims) { delete(c, "exp") }), "Unauthenticated", "exp", ""},
		{"wrong_audience", ed(func(c jwt.MapClaims) { c["aud"] = "someone-else" }), "Unauthenticated", "aud", ""},
		{"wrong_issuer", ed(func(c jwt.MapClaims) { c["iss"] = "evil" }), "Unauthenticated", "iss", ""},
		{"tampered_payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString(tampered) + "." + parts[2], "Unauthenticated", "signature", ""},
		{"no_typ", forge(t, jwt.SigningMethodEdDSA, d.issuer.Key, map[string]any{"kid": kid}, claims(nil)), "Unauthenticated", "typ", ""},
		{"revoked_jti", ed(func(c jwt.MapClaims) { c["jti"] = "revoked-jti" }), "Unauthenticated", "revoked", ""},
		{"garbage", "not.a.token", "Unauthenticated", "invalid token", ""},
		{"no_trace_scope", ed(func(c jwt.MapClaims) { c["scope"] = "probe:tracepoint:syscalls:*" }), "PermissionDenied", "no trace scope", ""},
		{"probe_outside_scopes", ed(nil), "PermissionDenied", "does not allow probe tracepoint:syscalls:sys_enter_getpid", "tracepoint:syscalls:sys_enter_getpid { @ = count(); }"},
		{"one_of_two_probes_outside", ed(nil), "PermissionDenied", "does not allow probe tracepoint:syscalls:sys_enter_getppid", "tracepoint:syscalls:sys_enter_getcwd, tracepoint:syscalls:sys_enter_getppid { @ = count(); }"},
		{"wildcard_reaching_outside", ed(nil), "PermissionDenied", "does not allow probe tracepoint:syscalls:sys_enter_", "tracepoint:syscalls:sys_enter_getc* { @ = count(); }"},
		{"gen_outside_scopes", ed(nil), "PermissionDenied", "does not allow generator opensnoop", "gen"},
		// Refused before the compiler opens the file: the error says
		// nothing of whether it exists.
		{"uprobe_outside_scopes", ed(nil), "PermissionDenied", `the token of "mallory" does not allow uprobes on /nonexistent/secret`, "uprobe:/nonexistent/secret:main { @ = count(); }"},
		{"uretprobe_wildcard_outside", ed(nil), "PermissionDenied", "does not allow uretprobes on /etc/shadow", "ur:/etc/shadow:* { @ = count(); }"},
		{"relative_uprobe", ed(nil), "PermissionDenied", "needs an absolute path for a uprobe", "uprobe:bin/work:f { @ = count(); }"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := kerneltest.LoadedIDs(t)
			req := &pb.TraceRequest{Source: script}
			switch tt.script {
			case "":
			case "gen":
				req = &pb.TraceRequest{Generator: "opensnoop"}
			default:
				req.Source = []byte(tt.script)
			}
			r := d.start(t, tt.tok, req)
			r.wait(t)
			var ce *CallError
			if !errors.As(r.err, &ce) {
				t.Fatalf("err = %v (%T), want a refusal; stdout %q", r.err, r.err, r.stdout.String())
			}
			t.Logf("%s: %s", ce.Code, ce.Message)
			if ce.Code != tt.code || !strings.Contains(ce.Message, tt.reason) {
				t.Errorf("refused with %s %q, want %s containing %q", ce.Code, ce.Message, tt.code, tt.reason)
			}
			if r.stdout.Len() > 0 {
				t.Errorf("stdout = %q", r.stdout.String())
			}
			if left := newSince(t, before); len(left) > 0 {
				t.Errorf("programs loaded: %v", left)
			}
		})
	}
	// The daemon survived all of it: a good token traces.
	r := d.start(t, good, &pb.TraceRequest{Source: script, DurationMs: 60_000})
	d.attached(t, 1, r)
	kerneltest.Syscalls(2, 0)
	close(r.interrupt)
	r.wait(t)
	if r.err != nil || !strings.HasSuffix(r.stdout.String(), "@: 2\n") {
		t.Errorf("good token: err %v, stdout %q", r.err, r.stdout.String())
	}
	d.stop(t)
	ev := auditEvents(t, d.auditLog)
	refused := 0
	for _, e := range ev {
		if e == "trace.refused" {
			refused++
		}
	}
	if refused != 22 {
		t.Errorf("%d trace.refused records, want 22: %v", refused, ev)
	}
}

// TestRevocationReload: a jti revoked after the daemon started is refused
// once the list is re-read (SIGHUP), and an unreadable list refuses every
// token.
func TestRevocationReload(t *testing.T) {
	needKernel(t)
	d := startDaemon(t, daemonOpts{})
	tok := d.token(t, token.IssueOptions{Scope: "trace probe:**", ID: "later-revoked"})
	try := func() error {
		r := d.start(t, tok, &pb.TraceRequest{Source: []byte("BEGIN { exit(); }")})
		r.wait(t)
		return r.err
	}
	if err := try(); err != nil {
		t.Fatalf("before revoking: %v", err)
	}
	if err := writeFile(d.revPath, "later-revoked\n"); err != nil {
		t.Fatal(err)
	}
	if err := try(); err != nil {
		t.Fatalf("revoked but not reloaded yet: %v", err)
	}
	// A session of the token runs when it is revoked: it ends, with its
	// maps, once the list is re-read.
	r := d.start(t, tok, &pb.TraceRequest{Source: getcwdScript()})
	d.attached(t, 1, r)
	kerneltest.Syscalls(4, 0)
	d.srv.Reload()
	r.wait(t)
	if r.err != nil || r.res.Reason != "token_revoked" || !strings.HasSuffix(r.stdout.String(), "@: 4\n") {
		t.Errorf("revoked session: err %v, reason %q, stdout %q", r.err, r.res.Reason, r.stdout.String())
	}
	if err := try(); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("after reload: %v", err)
	}
	d.stop(t)
	b, err := os.ReadFile(d.auditLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"event":"daemon.reload","data":{"revoked":1,"sessions_ended":1}`) {
		t.Errorf("the audit log does not record the reload ending one session:\n%s", b)
	}
}

// TestNotAdmin: a token holder is no administrator, whatever its scopes.
func TestNotAdmin(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	c := d.client(t, d.token(t, token.IssueOptions{Scope: "trace probe:**"}))
	defer c.Close()
	// Root with a token is still root on the socket; sessions are for
	// the caller's uid, which the kernel vouches for.
	if _, err := c.Sessions(context.Background()); err != nil {
		t.Fatalf("root with a token: %v", err)
	}
	if err := c.Stop(context.Background(), "nosuch"); err == nil || !strings.Contains(err.Error(), `no session "nosuch"`) {
		t.Fatalf("stop of an unknown session: %v", err)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// TestUprobePrecheck: the first filter never refuses what a scope
// allows; the compiler then speaks, and the exact check follows.
func TestUprobePrecheck(t *testing.T) {
	for _, tt := range []struct {
		scopes, script string
		ok             bool
	}{
		{"trace probe:uprobe:/usr/bin/*:*", "uprobe:/usr/bin/bash:readline {}", true},
		{"trace probe:uprobe:/usr/bin/*:*", "u:/usr/bin/bash:read* {}", true},
		{"trace probe:uprobe:/usr/bin/bash:read*", "uprobe:/usr/bin/bash:readline {}", true},
		{"trace probe:uprobe:/usr/bin/bash:read*", "uprobe:/usr/bin/bash:re* {}", true},
		{"trace probe:uprobe:/usr/bin/**", "uprobe:/usr/bin/x/y:f {}", true},
		{"trace probe:**", "uretprobe:/anything:f {}", true},
		{"trace probe:uprobe:/usr/bin/*:*", "uretprobe:/usr/bin/bash:readline {}", false},
		{"trace probe:uprobe:/usr/bin/*:*", "uprobe:/usr/sbin/sshd:main {}", false},
		{"trace probe:uprobe:/usr/bin/bash:read*", "uprobe:/usr/bin/zsh:* {}", false},
		{"trace probe:tracepoint:**", "uprobe:/usr/bin/bash:readline {}", false},
		{"trace probe:uprobe:/usr/bin/*:*", "tracepoint:syscalls:sys_enter_openat {}", true}, // not the filter's business
	} {
		sc, err := token.ParseScopes(tt.scopes)
		if err != nil {
			t.Fatal(err)
		}
		err = precheckUprobes(&token.Token{Subject: "s", Scopes: sc}, &pb.TraceRequest{Name: "stdin", Source: []byte(tt.script)})
		if (err == nil) != tt.ok {
			t.Errorf("%s with %q: %v, want ok=%v", tt.script, tt.scopes, err, tt.ok)
		}
	}
}
