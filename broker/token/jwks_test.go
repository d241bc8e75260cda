package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tracebroker/tracebroker/attest"
)

// goJWK is a public key as a JWK, made here in Go for the tests that
// need many keys or many tokens (the benchmarks, the fuzzer's seeds);
// the tokens of the item's own tests are minted by Python.
func goJWK(t testing.TB, kid string, pub crypto.PublicKey) map[string]any {
	t.Helper()
	b := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b(k)}
	case *ecdsa.PublicKey:
		raw, _ := k.Bytes()
		return map[string]any{"kty": "EC", "crv": "P-256", "kid": kid, "x": b(raw[1:33]), "y": b(raw[33:])}
	case *rsa.PublicKey:
		return map[string]any{"kty": "RSA", "kid": kid, "n": b(k.N.Bytes()), "e": b(big.NewInt(int64(k.E)).Bytes())}
	}
	t.Fatalf("key %T", pub)
	return nil
}

func jwksJSON(t testing.TB, keys ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goProvider is an identity provider "corp" with one key of each
// algorithm (kids ed, ec, rsa), accepting typ JWT, and its verifier.
func goProvider(t testing.TB) (ed25519.PrivateKey, *ecdsa.PrivateKey, *rsa.PrivateKey, *Verifier) {
	t.Helper()
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, path, jwksJSON(t, goJWK(t, "ed", edPriv.Public()), goJWK(t, "ec", &ec.PublicKey), goJWK(t, "rsa", &rk.PublicKey)))
	v, err := NewVerifier(Config{OIDC: []OIDCConfig{{Name: "corp", Issuer: corpIss, JWKSFile: path, Algorithms: oidcAlgs, Typ: TypJWT}}})
	if err != nil {
		t.Fatal(err)
	}
	return edPriv, ec, rk, v
}

func writeJWKS(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestAttacksJWKS: what whoever writes the JWKS file, or the
// configuration, can hand the daemon. A set too large, with too many
// keys, repeated members or secrets is refused whole, and the issuer's
// tokens with it; a kid that appears twice is refused, the other keys
// still verify; two configurations claiming one iss, or the broker's
// own, do not start.
func TestAttacksJWKS(t *testing.T) {
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	edPub := edPriv.Public()
	good := goJWK(t, "good", edPub)
	claims := jwt.MapClaims{"iss": corpIss, "sub": "s", "aud": "tracebroker", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(), "jti": "j", "scope": "trace"}
	sign := func(kid string) string {
		tk := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
		tk.Header["typ"], tk.Header["kid"] = Type, kid
		s, err := tk.SignedString(edPriv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	many := make([]map[string]any, MaxJWKSKeys+1)
	for i := range many {
		many[i] = goJWK(t, fmt.Sprintf("k%d", i), edPub)
	}
	pad := map[string]any{"kty": "OKP", "kid": "pad", "x5c": []string{strings.Repeat("A", MaxJWKSSize)}}
	rows := []struct {
		name string
		jwks []byte
		kid  string
		want string // "" : the token verifies
	}{
		{"item4/jwks_huge", jwksJSON(t, good, pad), "good", "larger than 262144 bytes"},
		{"item4/jwks_thousands_of_keys", jwksJSON(t, append(many, goJWK(t, "good", edPub))...), "good", "JWKS has 66 keys; the limit is 64"},
		{"item4/jwks_duplicate_kid", jwksJSON(t, good, goJWK(t, "twice", edPub), goJWK(t, "twice", edPub)), "twice", `kid "twice" appears 2 times in the JWKS`},
		{"item4/jwks_duplicate_kid_others_verify", jwksJSON(t, good, goJWK(t, "twice", edPub), goJWK(t, "twice", edPub)), "good", ""},
		{"item4/jwks_duplicate_member", []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"good","x":"` + good["x"].(string) + `","kid":"other"}]}`), "good", `the member "kid" appears more than once`},
		{"item4/jwks_private_key", jwksJSON(t, map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": "good", "x": good["x"], "d": "AAAA"}), "good", "holds private or secret key material"},
		{"item4/jwks_symmetric_key", jwksJSON(t, good, map[string]any{"kty": "oct", "kid": "hs", "k": "c2VjcmV0"}), "good", "holds private or secret key material"},
		{"item4/jwks_not_an_object", []byte(`[]`), "good", "JWKS is not a JSON object"},
		{"item4/jwks_key_ops_sign_only", jwksJSON(t, map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": "good", "x": good["x"], "key_ops": []string{"sign"}}), "good", "key_ops do not include verify"},
		{"item4/jwks_padded_base64", jwksJSON(t, map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": "good", "x": good["x"].(string) + "="}), "good", "x is not 32 bytes of base64url"},
		{"item4/jwks_wrong_types", []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"good","x":7}]}`), "good", "a member has the wrong JSON type"},
	}
	dir := t.TempDir()
	jwksPath := filepath.Join(dir, "corp.json")
	v, err := NewVerifier(Config{OIDC: []OIDCConfig{{Name: "corp", Issuer: corpIss, JWKSFile: jwksPath, Algorithms: []string{AlgEdDSA}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			// A new file each time (rename), as an operator's job does.
			tmp := filepath.Join(dir, "next")
			writeJWKS(t, tmp, r.jwks)
			if err := os.Rename(tmp, jwksPath); err != nil {
				t.Fatal(err)
			}
			_, err := v.Verify(sign(r.kid))
			switch {
			case r.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case r.want != "" && (err == nil || !strings.Contains(err.Error(), r.want)):
				t.Fatalf("err = %v, want %q", err, r.want)
			}
		})
	}
	t.Run("item4/iss_of_no_provider", func(t *testing.T) {
		// A verifier of providers alone: the broker's own iss, or none,
		// is nobody's.
		for iss, want := range map[string]string{DefaultIssuer: `token issuer "tracebroker" is not an issuer this broker trusts`, "": "token has no iss claim naming an issuer"} {
			claims["iss"] = iss
			if iss == "" {
				delete(claims, "iss")
			}
			if _, err := v.Verify(sign("good")); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("iss %q: err = %v, want %q", iss, err, want)
			}
		}
		claims["iss"] = corpIss
	})
	t.Run("item4/jwks_fifo", func(t *testing.T) {
		os.Remove(jwksPath)
		if err := syscall.Mkfifo(jwksPath, 0o600); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
		// Nobody writes to it: a read would block every token for ever.
		if _, err := v.Verify(sign("good")); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("err = %v", err)
		}
	})

	own, _ := attest.GenerateKey()
	for _, r := range []struct {
		name string
		c    Config
		want string
	}{
		{"item4/iss_claimed_twice", Config{OIDC: []OIDCConfig{
			{Name: "a", Issuer: corpIss, JWKSFile: jwksPath, Algorithms: []string{AlgEdDSA}},
			{Name: "b", Issuer: corpIss, JWKSFile: jwksPath, Algorithms: []string{AlgRS256}},
		}}, "identity providers a and b both claim issuer"},
		{"item4/iss_of_the_broker", Config{Keys: []*attest.PublicKey{own.Public()}, OIDC: []OIDCConfig{
			{Name: "a", Issuer: DefaultIssuer, JWKSFile: jwksPath, Algorithms: []string{AlgEdDSA}},
		}}, "which is this broker's own"},
		{"item4/name_twice", Config{OIDC: []OIDCConfig{
			{Name: "a", Issuer: corpIss, JWKSFile: jwksPath, Algorithms: []string{AlgEdDSA}},
			{Name: "a", Issuer: labIss, JWKSFile: jwksPath, Algorithms: []string{AlgEdDSA}},
		}}, "two identity providers are named a"},
		{"item4/alg_hs256_configured", Config{OIDC: []OIDCConfig{{Name: "a", Issuer: corpIss, JWKSFile: jwksPath, Algorithms: []string{"HS256"}}}}, `algorithm "HS256" is not one of EdDSA, ES256, RS256`},
		{"item4/no_algorithms", Config{OIDC: []OIDCConfig{{Name: "a", Issuer: corpIss, JWKSFile: jwksPath}}}, `"algorithms" is required`},
	} {
		t.Run(r.name, func(t *testing.T) {
			if _, err := NewVerifier(r.c); err == nil || !strings.Contains(err.Error(), r.want) {
				t.Fatalf("err = %v, want %q", err, r.want)
			}
		})
	}
}

// TestLoadOIDCConfig: the file is strict, and names its issuer.
func TestLoadOIDCConfig(t *testing.T) {
	dir := t.TempDir()
	for _, r := range []struct {
		name, body, want string
	}{
		{"corp.oidc.json", `{"issuer":"` + corpIss + `","jwks_file":"corp.jwks.json","algorithms":["RS256","ES256"],"typ":"JWT","audience":"tracebroker:db-7"}`, ""},
		{"typo.oidc.json", `{"issuer":"x","jwks_file":"j","algorithms":["RS256"],"audeince":"a"}`, `unknown field "audeince"`},
		{"twice.oidc.json", `{"issuer":"x","jwks_file":"j","algorithms":["RS256"],"issuer":"y"}`, `the member "issuer" appears more than once`},
		{"typ.oidc.json", `{"issuer":"x","jwks_file":"j","algorithms":["RS256"],"typ":"none"}`, `"typ" "none": want at+jwt`},
		{"no-jwks.oidc.json", `{"issuer":"x","algorithms":["RS256"]}`, `"jwks_file" is required`},
		{"bad name!.oidc.json", `{"issuer":"x","jwks_file":"j","algorithms":["RS256"]}`, "issuer name"},
	} {
		p := filepath.Join(dir, r.name)
		writeJWKS(t, p, []byte(r.body))
		c, err := LoadOIDCConfig(p)
		if r.want == "" {
			if err != nil || c.Name != "corp" || c.JWKSFile != filepath.Join(dir, "corp.jwks.json") || c.Typ != TypJWT || c.Audience != "tracebroker:db-7" {
				t.Errorf("%s: %+v, %v", r.name, c, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%s: err = %v, want %q", r.name, err, r.want)
		}
	}
}

// FuzzParseJWKS: no input panics; what parses holds at most
// MaxJWKSKeys kids, and every key it would verify with is of a type
// and algorithm that agree, with the key itself.
func FuzzParseJWKS(f *testing.F) {
	edPriv, ec, rk, _ := goProvider(f)
	f.Add(jwksJSON(f, goJWK(f, "a", edPriv.Public()), goJWK(f, "b", &ec.PublicKey), goJWK(f, "c", &rk.PublicKey)))
	f.Add(jwksJSON(f, goJWK(f, "a", edPriv.Public()), goJWK(f, "a", edPriv.Public())))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-384","kid":"x","x":"AA","y":"AA"},{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB","use":"enc"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AA"}]}`))
	f.Add([]byte(`{"keys":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseJWKS(b)
		if err != nil {
			return
		}
		if s.Len() > MaxJWKSKeys {
			t.Fatalf("%d keys", s.Len())
		}
		for kid, k := range s.keys {
			if k.KID != kid || kid == "" {
				t.Fatalf("kid %q holds %q", kid, k.KID)
			}
			if k.Unusable != "" {
				if k.Key != nil {
					t.Fatalf("unusable key %q has a key", kid)
				}
				continue
			}
			switch key := k.Key.(type) {
			case ed25519.PublicKey:
				if algOf(k.Kty, k.Crv) != AlgEdDSA || len(key) != ed25519.PublicKeySize {
					t.Fatalf("%q: %s %s", kid, k.Kty, k.Crv)
				}
			case *ecdsa.PublicKey:
				if algOf(k.Kty, k.Crv) != AlgES256 || key.Curve != elliptic.P256() {
					t.Fatalf("%q: %s %s", kid, k.Kty, k.Crv)
				}
			case *rsa.PublicKey:
				if algOf(k.Kty, k.Crv) != AlgRS256 || key.N.BitLen() < MinRSABits || key.N.BitLen() > MaxRSABits {
					t.Fatalf("%q: %s, %d bits", kid, k.Kty, key.N.BitLen())
				}
			default:
				t.Fatalf("%q: key %T", kid, k.Key)
			}
			if k.Alg != "" && k.Alg != algOf(k.Kty, k.Crv) {
				t.Fatalf("%q: alg %s on %s", kid, k.Alg, k.Kty)
			}
			if k.Use != "" && k.Use != "sig" {
				t.Fatalf("%q: use %s", kid, k.Use)
			}
		}
	})
}

// BenchmarkVerifyOIDC is the daemon's cost per request for an identity
// provider's token, by algorithm: BenchmarkVerify's checks, plus the
// issuer's pick, a stat of its JWKS file and the key's own check.
func BenchmarkVerifyOIDC(b *testing.B) {
	edPriv, ec, rk, v := goProvider(b)
	for _, r := range []struct {
		alg    string
		method jwt.SigningMethod
		kid    string
		key    any
	}{
		{AlgEdDSA, jwt.SigningMethodEdDSA, "ed", edPriv},
		{AlgES256, jwt.SigningMethodES256, "ec", ec},
		{AlgRS256, jwt.SigningMethodRS256, "rsa", rk},
	} {
		tk := jwt.NewWithClaims(r.method, jwt.MapClaims{"iss": corpIss, "sub": "alice", "aud": "tracebroker", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
			"jwt": "j", "jti": "bench", "scope": "trace probe:tracepoint:syscalls:* gen:opensnoop"})
		tk.Header["typ"], tk.Header["kid"] = Type, r.kid
		raw, err := tk.SignedString(r.key)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(r.alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzVerifyOIDC: an identity provider's tokens, fuzzed. No input
// panics, every refusal is ErrInvalid in one line, and nothing verifies
// unless its signature by the JWKS key its kid names checks here, with
// the standard library alone.
func FuzzVerifyOIDC(f *testing.F) {
	edPriv, ec, rk, v := goProvider(f)
	now := time.Now().Unix()
	for _, r := range []struct {
		method jwt.SigningMethod
		kid    string
		key    any
		extra  string
	}{
		{jwt.SigningMethodEdDSA, "ed", edPriv, "scope"}, {jwt.SigningMethodES256, "ec", ec, "scp"}, {jwt.SigningMethodRS256, "rsa", rk, "scope"},
		{jwt.SigningMethodES256, "rsa", ec, "scope"}, {jwt.SigningMethodHS256, "rsa", []byte("secret"), "scope"},
	} {
		tk := jwt.NewWithClaims(r.method, jwt.MapClaims{"iss": corpIss, "sub": "alice", "aud": "tracebroker", "iat": now, "exp": now + 3600, "jti": "j", r.extra: "trace probe:**"})
		tk.Header["typ"], tk.Header["kid"] = "JWT", r.kid
		raw, err := tk.SignedString(r.key)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := v.Verify(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q", err)
			}
			return
		}
		i := strings.LastIndexByte(raw, '.')
		sig, derr := base64.RawURLEncoding.DecodeString(raw[i+1:])
		if derr != nil {
			t.Fatalf("verified with a signature that is not base64url: %q", raw)
		}
		digest := sha256.Sum256([]byte(raw[:i]))
		var ok bool
		switch tok.KeyID {
		case "ed":
			ok = ed25519.Verify(edPriv.Public().(ed25519.PublicKey), []byte(raw[:i]), sig)
		case "ec":
			ok = len(sig) == 64 && ecdsa.Verify(&ec.PublicKey, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
		case "rsa":
			ok = rsa.VerifyPKCS1v15(&rk.PublicKey, crypto.SHA256, digest[:], sig) == nil
		}
		if !ok || tok.Issuer != corpIss || !strings.HasPrefix(tok.Subject, "corp:") {
			t.Fatalf("verified without a valid signature of its key: %q, %+v", raw, tok)
		}
	})
}

// TestOIDCConcurrentReload: tokens verify while SIGHUP re-reads the
// JWKS (go test -race checks that they share nothing unguarded).
func TestOIDCConcurrentReload(t *testing.T) {
	edPriv, _, _, v := goProvider(t)
	tk := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": corpIss, "sub": "alice", "aud": "tracebroker", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(), "jti": "j", "scope": "trace"})
	tk.Header["typ"], tk.Header["kid"] = Type, "ed"
	raw, err := tk.SignedString(edPriv)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for range 200 {
				if _, err := v.Verify(raw); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 50 {
		if got := v.ReloadIssuers()["corp"]; got != "3 keys" {
			t.Errorf("reload: %s", got)
		}
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
