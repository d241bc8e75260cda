package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/attest"
)

// runTokenCmd runs `tracebroker token ARGS` in process, so it needs no
// wiring into the root command.
func runTokenCmd(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := newTokenCmd()
	var out, errOut bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), err
}

func tokenKeyPair(t *testing.T, dir, name string) string {
	t.Helper()
	k, err := attest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(dir, name)
	if err := attest.WriteKeyPair(prefix, k); err != nil {
		t.Fatal(err)
	}
	return prefix
}

// TestTokenCLI walks an admin issuing a token and a responder (or the
// admin) checking it, and the ways a token is turned down.
func TestTokenCLI(t *testing.T) {
	dir := t.TempDir()
	issuer := tokenKeyPair(t, dir, "test-only-issuer")
	other := tokenKeyPair(t, dir, "test-only-other")

	out, err := runTokenCmd(t, "", "issue", "--key", issuer+".key", "--sub", "alice",
		"--scope", "trace probe:tracepoint:syscalls:*", "--ttl", "30m", "--max-duration", "10m", "--jti", "incident-7")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$`).MatchString(out) {
		t.Fatalf("issue printed %q", out)
	}
	tok := strings.TrimSpace(out)

	// Without a key it decodes and says nothing was checked.
	out, err = runTokenCmd(t, "", "inspect", tok)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"typ": "at+jwt"`, `"alg": "EdDSA"`, `"sub": "alice"`, `"jti": "incident-7"`, `"max_duration": 600`,
		`"scope": "trace probe:tracepoint:syscalls:*"`, "expires:    20", "max duration: 10m0s", "signature not checked"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}

	// A tampered copy: the scope widened, the signature kept.
	parts := strings.Split(tok, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	json.Unmarshal(claims, &m)
	m["scope"] = "trace probe:**"
	b, _ := json.Marshal(m)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]

	// A token from before issue checked scopes, or from another tool
	// with the same key: its typo'd scope signed.
	k, err := attest.LoadPrivateKey(issuer + ".key")
	if err != nil {
		t.Fatal(err)
	}
	typo := craftToken(t, k, "tracebroker", "trace prob:tracepoint:*")
	// A provider's token carries its own words, which are not typos.
	provider := craftToken(t, k, "https://idp.example.com", "openid trace probe:tracepoint:syscalls:*")

	revoked := filepath.Join(dir, "revoked")
	os.WriteFile(revoked, []byte("incident-7\n"), 0o644)

	for _, tc := range []struct {
		name    string
		stdin   string
		args    []string
		wantOut string // "" to skip
		wantErr string // "" for success
	}{
		{"verifies", "", []string{"inspect", "--issuer-pub", issuer + ".pub", tok}, "\nvalid\n", ""},
		{"from stdin", tok + "\n", []string{"inspect", "--issuer-pub", other + ".pub," + issuer + ".pub", "-"}, "\nvalid\n", ""},
		{"tampered", "", []string{"inspect", "--issuer-pub", issuer + ".pub", tampered}, `"scope": "trace probe:**"`, "token signature does not verify with issuer key"},
		{"another issuer", "", []string{"inspect", "--issuer-pub", other + ".pub", tok}, "\ninvalid: token kid", "is not a configured issuer key"},
		{"wrong audience", "", []string{"inspect", "--issuer-pub", issuer + ".pub", "--aud", "host-9", tok}, "invalid: ", `token audience ["tracebroker"] is not host-9`},
		{"revoked", "", []string{"inspect", "--issuer-pub", issuer + ".pub", "--revoked", revoked, tok}, "invalid: token incident-7 is revoked", "revoked"},
		{"garbage", "", []string{"inspect", "not-a-token"}, "", "a JWT has 3"},
		{"empty stdin", "\n", []string{"inspect", "-"}, "", "no token on stdin"},
		{"no key", "", []string{"issue", "--sub", "a", "--scope", "trace", "--ttl", "1m"}, "", "--key is required"},
		{"no subject", "", []string{"issue", "--key", issuer + ".key", "--scope", "trace", "--ttl", "1m"}, "", "--sub is required"},
		{"no scope", "", []string{"issue", "--key", issuer + ".key", "--sub", "a", "--ttl", "1m"}, "", "--scope is required"},
		{"no ttl", "", []string{"issue", "--key", issuer + ".key", "--sub", "a", "--scope", "trace"}, "", "--ttl is required"},
		{"ttl too long", "", []string{"issue", "--key", issuer + ".key", "--sub", "a", "--scope", "trace", "--ttl", "48h"}, "", "longer than the limit"},
		{"bad scope", "", []string{"issue", "--key", issuer + ".key", "--sub", "a", "--scope", "trace probe:", "--ttl", "1m"}, "", "empty pattern"},
		{"memory scopes", "", []string{"issue", "--key", issuer + ".key", "--sub", "a", "--scope", "read:kernel trace read:user", "--ttl", "1m"}, "", ""},
		{"misspelt memory scope", "", []string{"issue", "--key", issuer + ".key", "--sub", "a", "--scope", "trace read:kernal", "--ttl", "1m"}, "", `unknown scope "read:kernal"`},
		{"item2/typo_scope_refused", "", []string{"issue", "--key", issuer + ".key", "--sub", "a", "--scope", "trace prob:tracepoint:*", "--ttl", "1m"}, "",
			`unknown scope "prob:tracepoint:*": the scopes are trace, probe:PATTERN, gen:PATTERN, read:user, read:kernel (did you mean "probe:tracepoint:*"?)`},
		{"item2/unknown_probe_type_refused", "", []string{"issue", "--key", issuer + ".key", "--sub", "a", "--scope", "trace probe:usdt:*", "--ttl", "1m"}, "",
			`matches no probe tracebroker attaches: the probe types are interval, kfunc, kprobe, kretfunc, kretprobe, profile, rawtracepoint, software, tp_btf, tracepoint, uprobe, uretprobe`},
		{"item2/typo_scope_inspected", "", []string{"inspect", "--issuer-pub", issuer + ".pub", typo}, "\ninvalid: unknown scope \"prob:tracepoint:*\"", `unknown scope "prob:tracepoint:*"`},
		{"item2/typo_scope_inspected_unverified", "", []string{"inspect", typo}, "signature not checked (give --issuer-pub or --oidc-issuer to verify)\ninvalid: unknown scope \"prob:tracepoint:*\"", `unknown scope "prob:tracepoint:*"`},
		{"item2/provider_words_not_typos", "", []string{"inspect", provider}, "signature not checked (give --issuer-pub or --oidc-issuer to verify)\n", ""},
		{"bad not-before", "", []string{"issue", "--key", issuer + ".key", "--sub", "a", "--scope", "trace", "--ttl", "1m", "--not-before", "tomorrow"}, "", "want RFC 3339"},
		{"public key as the signing key", "", []string{"issue", "--key", issuer + ".pub", "--sub", "a", "--scope", "trace", "--ttl", "1m"}, "", "private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runTokenCmd(t, tc.stdin, tc.args...)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("%v\n%s", err, out)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want %q\n%s", err, tc.wantErr, out)
			}
			if tc.wantOut != "" && !strings.Contains(out, tc.wantOut) {
				t.Errorf("output lacks %q:\n%s", tc.wantOut, out)
			}
		})
	}

	// A future --not-before is honoured: the token is not valid yet.
	nbf := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
	out, err = runTokenCmd(t, "", "issue", "--key", issuer+".key", "--sub", "bob", "--scope", "trace", "--ttl", "1h", "--not-before", nbf)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := runTokenCmd(t, "", "inspect", "--issuer-pub", issuer+".pub", strings.TrimSpace(out)); err == nil ||
		!strings.Contains(out, "invalid: token not valid before "+nbf) {
		t.Errorf("future token: %v\n%s", err, out)
	}
	// A token is a credential from its issue: one valid in a year is
	// not issued.
	if _, err := runTokenCmd(t, "", "issue", "--key", issuer+".key", "--sub", "bob", "--scope", "trace", "--ttl", "1h", "--not-before", "2099-01-01T00:00:00Z"); err == nil ||
		!strings.Contains(err.Error(), "longer than the limit of 24h0m0s") {
		t.Errorf("token valid from 2099: %v", err)
	}

	// A key others can read is refused, as attest refuses it.
	os.Chmod(issuer+".key", 0o644)
	if _, err := runTokenCmd(t, "", "issue", "--key", issuer+".key", "--sub", "a", "--scope", "trace", "--ttl", "1m"); err == nil ||
		!strings.Contains(err.Error(), "too open") {
		t.Errorf("world-readable key: %v", err)
	}
}

// TestTokenExitStatus runs the built binary: an invalid token exits 1.
func TestTokenExitStatus(t *testing.T) {
	if c, _, err := newRootCmd().Find([]string{"token"}); err != nil || c.Name() != "token" {
		t.Skip("token is not wired into the root command")
	}
	dir := t.TempDir()
	issuer := tokenKeyPair(t, dir, "test-only-issuer")
	other := tokenKeyPair(t, dir, "test-only-other")
	r := tracebroker(t, "token", "issue", "--key", issuer+".key", "--sub", "alice", "--scope", "trace", "--ttl", "5m")
	if r.code != 0 {
		t.Fatalf("issue: exit %d: %s", r.code, r.stderr)
	}
	tok := strings.TrimSpace(r.stdout)
	if r := tracebroker(t, "token", "inspect", "--issuer-pub", issuer+".pub", tok); r.code != 0 || !strings.HasSuffix(r.stdout, "\nvalid\n") {
		t.Errorf("valid token: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := tracebroker(t, "token", "inspect", "--issuer-pub", other+".pub", tok); r.code != 1 || !strings.Contains(r.stdout, "\ninvalid: ") {
		t.Errorf("invalid token: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// craftToken signs a token from iss with scope as Issue would, without
// Issue's checks of the scope.
func craftToken(t *testing.T, k *attest.PrivateKey, iss, scope string) string {
	t.Helper()
	now := time.Now().Unix()
	seg := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := seg(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": k.ID}) + "." +
		seg(map[string]any{"iss": iss, "sub": "alice", "aud": []string{"tracebroker"}, "iat": now, "nbf": now, "exp": now + 300, "jti": "crafted-1", "scope": scope})
	return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(k.Key, []byte(in)))
}
