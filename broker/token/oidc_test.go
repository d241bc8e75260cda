package token

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/internal/oidctest"
)

const (
	corpIss = "https://idp.example.com/realms/ops"
	labIss  = "https://lab.example.org"
)

// oidcClaims are a valid token's claims for iss, with changes applied
// (a nil value deletes the claim).
func oidcClaims(iss string, change map[string]any) map[string]any {
	now := time.Now().Unix()
	c := map[string]any{
		"iss": iss, "sub": "alice", "aud": "tracebroker", "iat": now, "exp": now + 600,
		"jti": fmt.Sprintf("j-%d", time.Now().UnixNano()), "scope": "openid trace probe:tracepoint:syscalls:sys_enter_getcwd",
	}
	for k, v := range change {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func hdr(kid string, more ...any) map[string]any {
	h := map[string]any{"typ": "at+jwt"}
	if kid != "" {
		h["kid"] = kid
	}
	for i := 0; i+1 < len(more); i += 2 {
		h[more[i].(string)] = more[i+1]
	}
	return h
}

// oidcVerifier verifies the broker's own tokens (key) and those of corp
// (every algorithm, strict typ) and lab (ES256 only, typ JWT allowed,
// an audience of its own).
func oidcVerifier(t *testing.T, dir string, key *attest.PrivateKey, rev *Revocations) *Verifier {
	t.Helper()
	v, err := NewVerifier(Config{
		Keys: []*attest.PublicKey{key.Public()}, Revoked: rev, MaxLifetime: time.Hour,
		OIDC: []OIDCConfig{
			{Name: "corp", Issuer: corpIss, JWKSFile: filepath.Join(dir, "corp.json"), Algorithms: []string{AlgEdDSA, AlgES256, AlgRS256}},
			{Name: "lab", Issuer: labIss, JWKSFile: filepath.Join(dir, "lab.json"), Algorithms: []string{AlgES256}, Typ: TypJWT, Audience: "tracebroker:lab"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestAttacksOIDC: tokens of two identity providers, minted by Python's
// cryptography, verify with each provider's JWKS, and are refused for
// everything item 4 names.
func TestAttacksOIDC(t *testing.T) {
	oidctest.Need(t)
	dir := t.TempDir()
	revPath := filepath.Join(dir, "revoked")
	os.WriteFile(revPath, []byte("revoked-jti\n"), 0o600)
	rev, err := LoadRevocations(revPath)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	rows := []struct {
		name string
		tok  oidctest.Token
		want string // "" : valid
		sub  string
	}{
		{"item4/eddsa", oidctest.Token{Key: "ed", Alg: "EdDSA", Header: hdr("ed-1"), Claims: oidcClaims(corpIss, nil)}, "", "corp:alice"},
		{"item4/es256", oidctest.Token{Key: "ec", Alg: "ES256", Header: hdr("ec-1"), Claims: oidcClaims(corpIss, nil)}, "", "corp:alice"},
		{"item4/rs256", oidctest.Token{Key: "rsa", Alg: "RS256", Header: hdr("rsa-1"), Claims: oidcClaims(corpIss, nil)}, "", "corp:alice"},
		{"item4/typ_jwt_scp_array", oidctest.Token{Key: "labec", Alg: "ES256", Header: hdr("lab-ec", "typ", "JWT"), Claims: oidcClaims(labIss, map[string]any{"aud": "tracebroker:lab", "scope": nil, "scp": []string{"trace", "probe:tracepoint:syscalls:sys_enter_getcwd"}})}, "", "lab:alice"},
		{"item4/scp_string", oidctest.Token{Key: "labec", Alg: "ES256", Header: hdr("lab-ec"), Claims: oidcClaims(labIss, map[string]any{"aud": "tracebroker:lab", "scope": nil, "scp": "trace probe:tracepoint:syscalls:sys_enter_getcwd"})}, "", "lab:alice"},

		{"item4/jwks_alg_not_allowed", oidctest.Token{Key: "rsa", Alg: "RS256", Header: hdr("lab-rsa"), Claims: oidcClaims(labIss, map[string]any{"aud": "tracebroker:lab"})}, "token signed with RS256; only ES256 is accepted from issuer lab", ""},
		{"item4/hs256_public_key_as_secret", oidctest.Token{HMACPEMOf: "rsa", Alg: "HS256", Header: hdr("rsa-1"), Claims: oidcClaims(corpIss, nil)}, "token signed with HS256; only EdDSA, ES256, RS256 is accepted from issuer corp", ""},
		{"item4/rs256_key_under_2048", oidctest.Token{Key: "rsa1k", Alg: "RS256", Header: hdr("rsa-short"), Claims: oidcClaims(corpIss, nil)}, "RSA key of 1024 bits", ""},
		{"item4/es256_p384_key", oidctest.Token{Key: "p384", Alg: "ES256", Header: hdr("p384-1"), Claims: oidcClaims(corpIss, nil)}, `EC key on curve "P-384"; ES256 needs P-256`, ""},
		{"item4/kid_unknown", oidctest.Token{Key: "ec", Alg: "ES256", Header: hdr("nope"), Claims: oidcClaims(corpIss, nil)}, `kid "nope" is not in the JWKS of issuer corp`, ""},
		{"item4/kid_of_another_issuer", oidctest.Token{Key: "labec", Alg: "ES256", Header: hdr("lab-ec"), Claims: oidcClaims(corpIss, nil)}, `kid "lab-ec" is not in the JWKS of issuer corp`, ""},
		{"item4/key_use_enc", oidctest.Token{Key: "rsa", Alg: "RS256", Header: hdr("enc-1"), Claims: oidcClaims(corpIss, nil)}, `its use is "enc", not sig`, ""},
		{"item4/alg_none", oidctest.Token{Unsigned: true, Alg: "none", Header: hdr("ed-1"), Claims: oidcClaims(corpIss, nil)}, "unsigned (alg none)", ""},
		{"item4/alg_does_not_fit_key", oidctest.Token{Key: "ed", Alg: "EdDSA", Header: hdr("ec-1"), Claims: oidcClaims(corpIss, nil)}, `alg EdDSA does not fit key "ec-1" of issuer corp, a ES256 key`, ""},
		{"item4/key_alg_differs", oidctest.Token{Key: "rsa", Alg: "RS256", Header: hdr("rsa-ps"), Claims: oidcClaims(corpIss, nil)}, `its alg "PS256" does not fit a RSA key`, ""},
		{"item4/no_kid", oidctest.Token{Key: "ec", Alg: "ES256", Header: hdr(""), Claims: oidcClaims(corpIss, nil)}, "token has no kid", ""},
		{"item4/typ_jwt_strict_issuer", oidctest.Token{Key: "ec", Alg: "ES256", Header: hdr("ec-1", "typ", "JWT"), Claims: oidcClaims(corpIss, nil)}, `typ "JWT" is not at+jwt, which issuer corp needs`, ""},
		{"item4/wrong_aud", oidctest.Token{Key: "ec", Alg: "ES256", Header: hdr("ec-1"), Claims: oidcClaims(corpIss, map[string]any{"aud": "other"})}, `audience ["other"] is not tracebroker`, ""},
		{"item4/aud_of_the_broker_not_of_the_issuer", oidctest.Token{Key: "labec", Alg: "ES256", Header: hdr("lab-ec"), Claims: oidcClaims(labIss, nil)}, `audience ["tracebroker"] is not tracebroker:lab`, ""},
		{"item4/wrong_iss", oidctest.Token{Key: "ec", Alg: "ES256", Header: hdr("ec-1"), Claims: oidcClaims("https://idp.example.com/realms/ops/", nil)}, `token issuer "https://idp.example.com/realms/ops/" is not an issuer this broker trusts`, ""},
		{"item4/expired", oidctest.Token{Key: "ec", Alg: "ES256", Header: hdr("ec-1"), Claims: oidcClaims(corpIss, map[string]any{"iat": now - 1200, "exp": now - 600})}, "token expired at", ""},
		{"item4/not_yet_valid", oidctest.Token{Key: "ec", Alg: "ES256", Header: hdr("ec-1"), Claims: oidcClaims(corpIss, map[string]any{"nbf": now + 300})}, "token not valid before", ""},
		{"item4/lifetime_over_limit", oidctest.Token{Key: "ec", Alg: "ES256", Header: hdr("ec-1"), Claims: oidcClaims(corpIss, map[string]any{"exp": now + 7200})}, "longer than this broker's limit of 1h0m0s", ""},
		{"item4/no_jti", oidctest.Token{Key: "ec", Alg: "ES256", Header: hdr("ec-1"), Claims: oidcClaims(corpIss, map[string]any{"jti": nil})}, "token has no jti claim", ""},
		{"item4/revoked", oidctest.Token{Key: "ec", Alg: "ES256", Header: hdr("ec-1"), Claims: oidcClaims(corpIss, map[string]any{"jti": "revoked-jti"})}, "token revoked-jti is revoked", ""},
		{"item4/scope_and_scp", oidctest.Token{Key: "ec", Alg: "ES256", Header: hdr("ec-1"), Claims: oidcClaims(corpIss, map[string]any{"scp": []string{"probe:**"}})}, "both scope and scp", ""},
		{"item4/scp_word_with_space", oidctest.Token{Key: "labec", Alg: "ES256", Header: hdr("lab-ec"), Claims: oidcClaims(labIss, map[string]any{"aud": "tracebroker:lab", "scope": nil, "scp": []string{"trace probe:**"}})}, "not one scope", ""},
		{"item4/no_scope", oidctest.Token{Key: "ec", Alg: "ES256", Header: hdr("ec-1"), Claims: oidcClaims(corpIss, map[string]any{"scope": nil})}, "token has no scope claim", ""},
		{"item4/crit", oidctest.Token{Key: "ec", Alg: "ES256", Header: hdr("ec-1", "crit", []string{"exp"}), Claims: oidcClaims(corpIss, nil)}, "crit", ""},
	}
	spec := oidctest.Spec{
		Dir: dir,
		Keys: map[string]string{"ed": "ed25519", "ec": "p256", "rsa": "rsa2048", "rsa1k": "rsa1024", "p384": "p384",
			"labec": "p256"},
		JWKS: map[string][]map[string]any{
			"corp.json": {
				{"key": "ed", "kid": "ed-1"}, {"key": "ec", "kid": "ec-1", "use": "sig", "alg": "ES256"}, {"key": "rsa", "kid": "rsa-1", "alg": "RS256"},
				{"key": "rsa1k", "kid": "rsa-short"}, {"key": "p384", "kid": "p384-1"}, {"key": "rsa", "kid": "enc-1", "use": "enc"},
				{"key": "rsa", "kid": "rsa-ps", "alg": "PS256"},
			},
			"lab.json": {{"key": "labec", "kid": "lab-ec"}, {"key": "rsa", "kid": "lab-rsa"}},
		},
		Tokens: map[string]oidctest.Token{},
	}
	for _, r := range rows {
		spec.Tokens[r.name] = r.tok
	}
	toks := oidctest.Mint(t, spec)
	own, err := attest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	v := oidcVerifier(t, dir, own, rev)
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			tok, err := v.Verify(toks[r.name])
			if r.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if tok.Subject != r.sub || !tok.Scopes.Trace || !tok.Scopes.AllowsProbe("tracepoint:syscalls:sys_enter_getcwd") || tok.Scopes.AllowsProbe("tracepoint:syscalls:sys_enter_openat") {
					t.Errorf("token = %+v", tok)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), r.want) {
				t.Fatalf("err = %v, want %q", err, r.want)
			}
		})
	}
	// The broker's own tokens still verify beside the providers'.
	raw, err := Issue(own, IssueOptions{Subject: "bob", Scope: "trace", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := v.Verify(raw); err != nil || tok.Subject != "bob" {
		t.Errorf("own token: %v, %+v", err, tok)
	}
}

// TestOIDCKeyRotation: a provider rotating its key publishes old and new
// together, then the new alone. Tokens of both verify during the
// overlap; after the file is replaced the old key's are refused, seen
// without a SIGHUP, and a JWKS that cannot be read refuses every token
// of its issuer until it can.
func TestOIDCKeyRotation(t *testing.T) {
	dir := t.TempDir()
	claims := oidcClaims(corpIss, nil)
	toks := oidctest.Mint(t, oidctest.Spec{
		Dir:  dir,
		Keys: map[string]string{"old": "rsa2048", "new": "p256"},
		JWKS: map[string][]map[string]any{
			"corp.json": {{"key": "old", "kid": "2026-11"}, {"key": "new", "kid": "2026-12"}},
			"next.json": {{"key": "new", "kid": "2026-12"}},
		},
		Tokens: map[string]oidctest.Token{
			"old": {Key: "old", Alg: "RS256", Header: hdr("2026-11"), Claims: claims},
			"new": {Key: "new", Alg: "ES256", Header: hdr("2026-12"), Claims: claims},
		},
	})
	own, _ := attest.GenerateKey()
	v := oidcVerifier(t, dir, own, nil)
	check := func(name, want string) {
		t.Helper()
		_, err := v.Verify(toks[name])
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: err = %v, want %q", name, err, want)
		}
	}
	check("old", "")
	check("new", "")
	jwks := filepath.Join(dir, "corp.json")
	if err := os.Rename(filepath.Join(dir, "next.json"), jwks); err != nil {
		t.Fatal(err)
	}
	check("old", `kid "2026-11" is not in the JWKS of issuer corp`)
	check("new", "")

	os.Remove(jwks)
	check("new", "the JWKS of issuer corp cannot be used, so its tokens are refused")
	if got := v.ReloadIssuers()["corp"]; !strings.Contains(got, "refusing its tokens") {
		t.Errorf("reload says %q", got)
	}
	os.WriteFile(jwks, []byte(`{"keys": [`), 0o600)
	check("new", "JWKS is not valid JSON")
	os.WriteFile(filepath.Join(dir, "broken"), []byte(`{"keys": []}`), 0o600)
	if err := os.Rename(filepath.Join(dir, "broken"), jwks); err != nil {
		t.Fatal(err)
	}
	check("new", "not in the JWKS")
}
