package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/internal/kerneltest"
	"github.com/tracebroker/tracebroker/internal/oidctest"
)

// restartServe stops the daemon and starts it again with the same
// command line, for configuration written into its state directory
// after init. The cleanup of newDaemonEnv stops the new one.
func (e *daemonEnv) restartServe(t *testing.T) {
	t.Helper()
	e.serve.Process.Signal(syscall.SIGTERM)
	if err := <-e.exited; err != nil {
		t.Fatalf("serve before the restart: %v\n%s", err, e.serveErr.String())
	}
	e.serveErr.Reset()
	e.serve = exec.Command(e.serve.Args[0], e.serve.Args[1:]...)
	e.serve.Stderr = &e.serveErr
	if err := e.serve.Start(); err != nil {
		t.Fatal(err)
	}
	e.exited = make(chan error, 1)
	go func(c *exec.Cmd, done chan error) { done <- c.Wait() }(e.serve, e.exited)
	for i := 0; ; i++ {
		if r := e.run(t, 0, "sessions", "list", "--socket", e.socket); r.code == 0 {
			return
		} else if i > 100 {
			t.Fatalf("the daemon does not answer after its restart: %s\n%s", r.stderr, e.serveErr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDaemonOIDC (issue 16, item 4): as the README says, an operator
// puts an identity provider's configuration and JWKS in STATE/issuers;
// nobody traces with the provider's token (minted by Python's
// cryptography), counting exactly; a token of a key the JWKS does not
// hold is refused, with the reason in the audit log; after the provider
// rotates its key and the file is replaced, the old key's tokens are
// refused and the new key's traced.
func TestDaemonOIDC(t *testing.T) {
	require(t, needKernel)
	oidctest.Need(t)
	e := newDaemonEnv(t)
	issuers := filepath.Join(e.state, "issuers")
	const iss = "https://idp.example.com/realms/ops"
	now := time.Now().Unix()
	claims := func(jti string) map[string]any {
		return map[string]any{"iss": iss, "sub": "alice", "aud": "tracebroker", "iat": now, "exp": now + 600, "jti": jti,
			"scope": "openid trace probe:tracepoint:syscalls:sys_enter_getcwd probe:BEGIN"}
	}
	toks := oidctest.Mint(t, oidctest.Spec{
		Dir:  issuers,
		Keys: map[string]string{"old": "rsa2048", "new": "p256"},
		JWKS: map[string][]map[string]any{
			"corp.jwks.json": {{"key": "old", "kid": "2026-11", "use": "sig", "alg": "RS256"}, {"key": "new", "kid": "2026-12", "use": "sig", "alg": "ES256"}},
			"next.jwks":      {{"key": "new", "kid": "2026-12", "use": "sig", "alg": "ES256"}},
		},
		Tokens: map[string]oidctest.Token{
			"old":   {Key: "old", Alg: "RS256", Header: map[string]any{"typ": "at+jwt", "kid": "2026-11"}, Claims: claims("old-1")},
			"new":   {Key: "new", Alg: "ES256", Header: map[string]any{"typ": "at+jwt", "kid": "2026-12"}, Claims: claims("new-1")},
			"alien": {Key: "new", Alg: "ES256", Header: map[string]any{"typ": "at+jwt", "kid": "k9"}, Claims: claims("alien-1")},
		},
	})
	conf := `{"issuer": "` + iss + `", "jwks_file": "corp.jwks.json", "algorithms": ["ES256", "RS256"]}`
	if err := os.WriteFile(filepath.Join(issuers, "corp.oidc.json"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	e.restartServe(t)
	files := map[string]string{}
	for name, tok := range toks {
		files[name] = filepath.Join(e.dir, name+".token")
		if err := os.WriteFile(files[name], []byte(tok), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf("tracepoint:syscalls:sys_enter_getcwd /pid == %d/ { @ = count(); }", os.Getpid())

	// The old key's token traces while the JWKS holds both keys.
	var out, errb bytes.Buffer
	client := e.command(nobody, "trace", "--socket", e.socket, "--token-file", files["old"], "-e", script)
	client.Stdout, client.Stderr = &out, &errb
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	e.attached(t, 1)
	if list := e.must(t, "sessions", "list", "--json", "--socket", e.socket); !strings.Contains(list, `"subject":"corp:alice"`) {
		t.Errorf("sessions list: %s", list)
	}
	kerneltest.Syscalls(5, 0)
	client.Process.Signal(os.Interrupt)
	if err := client.Wait(); err != nil || out.String() != "Attaching 1 probe...\n\n\n@: 5\n" {
		t.Errorf("the provider's token: %v, stdout %q, stderr %q", err, out.String(), errb.String())
	}

	begin := func(name string) result {
		return e.run(t, nobody, "trace", "--socket", e.socket, "--token-file", files[name], "-e", `BEGIN { printf("ok\n"); exit(); }`)
	}
	refused := func(name, want string) {
		t.Helper()
		if r := begin(name); r.code != 1 || r.stdout != "" || r.stderr != "ERROR: invalid token: "+want+"\n" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %q", name, r.code, r.stdout, r.stderr, want)
		}
	}
	refused("alien", `token kid "k9" is not in the JWKS of issuer corp`)

	// Rotation: the operator's job replaces the file with the new key
	// alone; no signal is needed.
	if err := os.Rename(filepath.Join(issuers, "next.jwks"), filepath.Join(issuers, "corp.jwks.json")); err != nil {
		t.Fatal(err)
	}
	refused("old", `token kid "2026-11" is not in the JWKS of issuer corp`)
	if r := begin("new"); r.code != 0 || r.stdout != "Attaching 1 probe...\nok\n\n\n" {
		t.Errorf("the new key's token: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	// A JWKS that cannot be read refuses the provider's tokens, saying
	// why, until it can.
	jwks := filepath.Join(issuers, "corp.jwks.json")
	if err := os.Rename(jwks, jwks+".away"); err != nil {
		t.Fatal(err)
	}
	refused("new", "the JWKS of issuer corp cannot be used, so its tokens are refused: "+jwks+" does not exist")
	if err := os.Rename(jwks+".away", jwks); err != nil {
		t.Fatal(err)
	}
	// SIGHUP re-reads the file and records what it holds.
	e.serve.Process.Signal(syscall.SIGHUP)
	for i := 0; ; i++ {
		log, _ := os.ReadFile(filepath.Join(e.state, "audit.log"))
		if bytes.Contains(log, []byte(`"daemon.reload"`)) {
			break
		}
		if i > 500 {
			t.Fatal("no daemon.reload record after SIGHUP")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.serve.Process.Signal(syscall.SIGTERM)
	if err := <-e.exited; err != nil {
		t.Fatalf("serve: %v", err)
	}
	e.exited <- nil
	if r := e.run(t, 0, "audit", "verify", filepath.Join(e.state, "audit.log")); r.code != 0 {
		t.Errorf("audit verify: %s%s", r.stdout, r.stderr)
	}
	log, _ := os.ReadFile(filepath.Join(e.state, "audit.log"))
	for _, want := range []string{`kid \"k9\" is not in the JWKS of issuer corp`, `the JWKS of issuer corp cannot be used`, `kid \"2026-11\" is not in the JWKS of issuer corp`, `"identity_providers":{"corp":"1 key"}`} {
		if !bytes.Contains(log, []byte(want)) {
			t.Errorf("the audit log does not say %s", want)
		}
	}
}

// TestTokenInspectOIDC: an operator checks a provider's token against
// its configuration before handing the provider's users the broker, as
// the README says: `token inspect --oidc-issuer FILE - < token`.
func TestTokenInspectOIDC(t *testing.T) {
	oidctest.Need(t)
	dir := t.TempDir()
	const iss = "https://idp.example.com/realms/ops"
	now := time.Now().Unix()
	toks := oidctest.Mint(t, oidctest.Spec{
		Dir:  dir,
		Keys: map[string]string{"k": "p256"},
		JWKS: map[string][]map[string]any{"corp.jwks.json": {{"key": "k", "kid": "k1"}}},
		Tokens: map[string]oidctest.Token{"t": {Key: "k", Alg: "ES256", Header: map[string]any{"typ": "JWT", "kid": "k1"},
			Claims: map[string]any{"iss": iss, "sub": "alice", "aud": "tracebroker", "iat": now, "exp": now + 600, "jti": "t-1", "scp": []string{"trace", "probe:tracepoint:syscalls:*"}}}},
	})
	for _, r := range []struct {
		conf, want string
	}{
		{`{"issuer": "` + iss + `", "jwks_file": "corp.jwks.json", "algorithms": ["ES256"], "typ": "JWT"}`, "valid\n"},
		{`{"issuer": "` + iss + `", "jwks_file": "corp.jwks.json", "algorithms": ["ES256"]}`, `invalid: token typ "JWT" is not at+jwt, which issuer corp needs` + "\n"},
		{`{"issuer": "` + iss + `", "jwks_file": "corp.jwks.json", "algorithms": ["RS256"], "typ": "JWT"}`, "invalid: token signed with ES256; only RS256 is accepted from issuer corp\n"},
	} {
		conf := filepath.Join(dir, "corp.oidc.json")
		if err := os.WriteFile(conf, []byte(r.conf), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := runTokenCmd(t, toks["t"]+"\n", "inspect", "--oidc-issuer", conf, "-")
		if !strings.HasSuffix(out, r.want) || (err == nil) != (r.want == "valid\n") || !strings.Contains(out, `"iss": "`+iss+`"`) {
			t.Errorf("%s: err %v, output:\n%s\nwant it to end %q", r.conf, err, out, r.want)
		}
	}
}
