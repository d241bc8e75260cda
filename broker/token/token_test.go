package token

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tracebroker/tracebroker/attest"
)

// t0 is the test clock: tokens are issued at t0 and verified at t0
// unless a case moves the clock.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixed(t time.Time) func() time.Time { return func() time.Time { return t } }

func genKey(t testing.TB) *attest.PrivateKey {
	t.Helper()
	k, err := attest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func seg(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// craft builds a token by hand, signed with priv over exactly the given
// header and claims (nil priv: empty signature), so that tests can make
// tokens Issue refuses to make.
func craft(priv ed25519.PrivateKey, header, claims map[string]any) string {
	in := seg(header) + "." + seg(claims)
	var sig []byte
	if priv != nil {
		sig = ed25519.Sign(priv, []byte(in))
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func goodHeader(k *attest.PrivateKey) map[string]any {
	return map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": k.ID}
}

func goodClaims() map[string]any {
	return map[string]any{
		"iss":   "tracebroker",
		"sub":   "alice",
		"aud":   []string{"tracebroker"},
		"iat":   t0.Unix(),
		"nbf":   t0.Unix(),
		"exp":   t0.Add(30 * time.Minute).Unix(),
		"jti":   "0123456789abcdef0123456789abcdef",
		"scope": "trace probe:tracepoint:syscalls:*",
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

func writeFile(t testing.TB, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTokenVerifyValid(t *testing.T) {
	k := genKey(t)
	raw, err := Issue(k, IssueOptions{
		Subject:     "alice",
		Scope:       "probe:uprobe:/usr/bin/*:* trace   probe:tracepoint:syscalls:* gen:opensnoop",
		TTL:         30 * time.Minute,
		MaxDuration: 10 * time.Minute,
		ID:          "incident-42",
		Now:         fixed(t0.Add(500 * time.Millisecond)),
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(Config{Keys: []*attest.PublicKey{k.Public()}, Now: fixed(t0.Add(time.Minute))})
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := &Token{
		Raw:       raw,
		KeyID:     k.ID,
		Issuer:    "tracebroker",
		Subject:   "alice",
		ID:        "incident-42",
		Audience:  []string{"tracebroker"},
		IssuedAt:  t0,
		NotBefore: t0,
		Expires:   t0.Add(30 * time.Minute),
		Scopes: Scopes{
			Trace:  true,
			Probes: []string{"tracepoint:syscalls:*", "uprobe:/usr/bin/*:*"},
			Gens:   []string{"opensnoop"},
		},
		MaxDuration: 10 * time.Minute,
	}
	// Times come back in local time; compare instants.
	for _, p := range []*time.Time{&got.IssuedAt, &got.NotBefore, &got.Expires} {
		*p = p.UTC()
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if got.Scopes.Bits() != 7 || !got.Scopes.AllowsProbe("uprobe:/usr/bin/bash:readline") || got.Scopes.AllowsProbe("kprobe:do_sys_open") {
		t.Fatalf("scopes %+v", got.Scopes)
	}
	h, c, err := Inspect(raw)
	if err != nil {
		t.Fatal(err)
	}
	if h["alg"] != "EdDSA" || h["typ"] != "at+jwt" || h["kid"] != k.ID {
		t.Errorf("header %v", h)
	}
	if c["scope"] != "trace probe:tracepoint:syscalls:* probe:uprobe:/usr/bin/*:* gen:opensnoop" || c["max_duration"] != json.Number("600") {
		t.Errorf("claims %v", c)
	}
}

// TestVerifyAttacks: every forged, stale or misdirected token is refused
// with an error that says why, and that is ErrInvalid.
func TestTokenVerifyAttacks(t *testing.T) {
	k := genKey(t)
	other := genKey(t)
	pub := k.Public()
	pubPEM, err := attest.MarshalPublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rev, err := LoadRevocations(writeFile(t, dir, "revoked", "# stolen laptop\nrevoked-1\n"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(Config{Keys: []*attest.PublicKey{pub}, Revoked: rev, Now: fixed(t0)})
	if err != nil {
		t.Fatal(err)
	}
	h, c := goodHeader(k), goodClaims()
	good := craft(k.Key, h, c)
	if _, err := v.Verify(good); err != nil {
		t.Fatalf("the crafted baseline token does not verify: %v", err)
	}

	hs256 := func(key []byte) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(c))
		tok.Header["typ"] = "at+jwt"
		tok.Header["kid"] = k.ID
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tampered := func() string {
		parts := strings.Split(good, ".")
		parts[1] = seg(with(c, "scope", "trace probe:**"))
		return strings.Join(parts, ".")
	}
	flipSig := func() string {
		b := []byte(good)
		i := len(b) - 5
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}

	for _, tc := range []struct {
		name, raw, want string
	}{
		{"alg none", craft(nil, with(h, "alg", "none"), c), "token is unsigned (alg none); only EdDSA is accepted"},
		{"alg none with a signature", craft(k.Key, with(h, "alg", "none"), c), "alg none"},
		{"HS256 with the raw public key", hs256(pub.Key), "token signed with HS256; only EdDSA is accepted"},
		{"HS256 with the PEM public key", hs256(pubPEM), "token signed with HS256; only EdDSA is accepted"},
		{"RS256 header", craft(k.Key, with(h, "alg", "RS256"), c), "token signed with RS256; only EdDSA is accepted"},
		{"unknown alg", craft(k.Key, with(h, "alg", "Ed448"), c), "token signed with Ed448; only EdDSA is accepted"},
		{"lower-case alg", craft(k.Key, with(h, "alg", "eddsa"), c), "token signed with eddsa"},
		{"alg not a string", craft(k.Key, with(h, "alg", 7), c), `token signed with "7"`},
		{"no alg", craft(k.Key, with(h, "alg", nil), c), "token header has no alg"},
		{"another issuer key", craft(other.Key, goodHeader(other), c), "token kid \"" + other.ID + "\" is not a configured issuer key"},
		{"forged kid", craft(other.Key, h, c), "token signature does not verify with issuer key " + k.ID},
		{"flipped signature", flipSig(), "token signature does not verify"},
		{"no signature", craft(nil, h, c), "token signature does not verify"},
		{"tampered payload", tampered(), "token signature does not verify with issuer key " + k.ID},
		{"no kid", craft(k.Key, with(h, "kid", nil), c), "token has no kid"},
		{"empty kid", craft(k.Key, with(h, "kid", ""), c), "is not a key id"},
		{"kid not a string", craft(k.Key, with(h, "kid", 1), c), "is not a key id"},
		{"crit header", craft(k.Key, with(h, "crit", []string{"exp"}), c), "crit"},
		{"wrong typ", craft(k.Key, with(h, "typ", "JWT"), c), `token typ "JWT" is not at+jwt`},
		{"typ not a string", craft(k.Key, with(h, "typ", true), c), "token typ \"true\" is not at+jwt"},
		{"missing typ", craft(k.Key, with(h, "typ", nil), c), "token has no typ header"},
		{"expired", craft(k.Key, h, with(c, "exp", t0.Add(-time.Minute).Unix())), "token expired at 2026-03-01T11:59:00Z"},
		{"not yet valid", craft(k.Key, h, with(c, "nbf", t0.Add(time.Hour).Unix())), "token not valid before 2026-03-01T13:00:00Z"},
		{"issued in the future", craft(k.Key, h, with(c, "iat", t0.Add(time.Hour).Unix())), "token issued in the future (iat 2026-03-01T13:00:00Z)"},
		{"no exp", craft(k.Key, h, with(c, "exp", nil)), "token has no exp claim"},
		{"exp not a number", craft(k.Key, h, with(c, "exp", "tomorrow")), "token is malformed"},
		{"no iat", craft(k.Key, h, with(c, "iat", nil)), "token has no iat claim"},
		{"wrong audience", craft(k.Key, h, with(c, "aud", []string{"grafana"})), `token audience ["grafana"] is not tracebroker`},
		{"string audience", craft(k.Key, h, with(c, "aud", "grafana")), `token audience ["grafana"] is not tracebroker`},
		{"no audience", craft(k.Key, h, with(c, "aud", nil)), "token has no aud claim"},
		{"wrong issuer", craft(k.Key, h, with(c, "iss", "evil")), `token issuer "evil" is not tracebroker`},
		{"no issuer", craft(k.Key, h, with(c, "iss", nil)), "token has no iss claim"},
		{"no sub", craft(k.Key, h, with(c, "sub", nil)), "token has no sub claim"},
		{"empty sub", craft(k.Key, h, with(c, "sub", "")), "token has no sub claim"},
		{"no jti", craft(k.Key, h, with(c, "jti", nil)), "token has no jti claim"},
		{"unrevocable jti", craft(k.Key, h, with(c, "jti", "a # b")), "could not be revoked"},
		{"revoked jti", craft(k.Key, h, with(c, "jti", "revoked-1")), "token revoked-1 is revoked"},
		{"no scope", craft(k.Key, h, with(c, "scope", nil)), "token has no scope claim"},
		{"scope not a string", craft(k.Key, h, with(c, "scope", []string{"trace"})), "token scope claim is not a string"},
		{"bad scope pattern", craft(k.Key, h, with(c, "scope", "trace probe:[z-a]")), "reversed range"},
		{"empty scope pattern", craft(k.Key, h, with(c, "scope", "trace probe:")), "empty pattern"},
		{"max_duration string", craft(k.Key, h, with(c, "max_duration", "600")), "token max_duration"},
		{"max_duration fraction", craft(k.Key, h, with(c, "max_duration", 1.5)), "token max_duration"},
		{"max_duration zero", craft(k.Key, h, with(c, "max_duration", 0)), "token max_duration"},
		{"max_duration negative", craft(k.Key, h, with(c, "max_duration", -5)), "token max_duration"},
		{"max_duration too long", craft(k.Key, h, with(c, "max_duration", 86401)), "token max_duration"},
		{"max_duration null", craft(k.Key, h, with(c, "max_duration", json.RawMessage("null"))), "token max_duration"},
		{"oversized", good + strings.Repeat("A", MaxTokenLen), "token is 8"},
		{"empty", "", "token is empty"},
		{"one part", "garbage", "token is malformed"},
		{"two parts", "a.b", "token is malformed"},
		{"four parts", good + ".x", "token is malformed"},
		{"dots", "..", "token is malformed"},
		{"bad base64", "!!!." + strings.Split(good, ".")[1] + ".sig", "token is malformed"},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("hello")) + ".e30.", "token is malformed"},
		{"padded header", seg(h) + "=." + strings.SplitN(good, ".", 2)[1], "token is malformed"},
		{"newline appended", good + "\n", "token is malformed"},
		{"not UTF-8", "\xff\xfe.\xfd.\x00", "token is malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := v.Verify(tc.raw)
			if err == nil {
				t.Fatalf("verified: %+v", tok)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q is not ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is more than one line", err)
			}
		})
	}
}

func TestTokenVerifyAcceptsVariants(t *testing.T) {
	k := genKey(t)
	v, err := NewVerifier(Config{Keys: []*attest.PublicKey{genKey(t).Public(), k.Public()}, Now: fixed(t0)})
	if err != nil {
		t.Fatal(err)
	}
	h, c := goodHeader(k), goodClaims()
	for _, tc := range []struct {
		name   string
		h, c   map[string]any
		expect func(*Token) bool
	}{
		{"application/at+jwt", with(h, "typ", "application/at+jwt"), c, nil},
		{"upper-case typ", with(h, "typ", "AT+JWT"), c, nil},
		{"several audiences", h, with(c, "aud", []string{"grafana", "tracebroker"}), func(t *Token) bool { return len(t.Audience) == 2 }},
		{"string audience", h, with(c, "aud", "tracebroker"), nil},
		{"no nbf", h, with(c, "nbf", nil), func(t *Token) bool { return t.NotBefore.IsZero() }},
		{"no max_duration", h, c, func(t *Token) bool { return t.MaxDuration == 0 }},
		{"unknown claims are ignored", h, with(c, "client_id", "x"), nil},
	} {
		tok, err := v.Verify(craft(k.Key, tc.h, tc.c))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if tc.expect != nil && !tc.expect(tok) {
			t.Errorf("%s: %+v", tc.name, tok)
		}
	}
}

// TestLeeway pins the boundaries: exp is good strictly before
// exp+leeway; nbf and iat are good from their time minus the leeway.
func TestTokenLeeway(t *testing.T) {
	k := genKey(t)
	exp := t0.Add(10 * time.Minute)
	raw := craft(k.Key, goodHeader(k), with(goodClaims(), "exp", exp.Unix()))
	future := craft(k.Key, goodHeader(k), with(goodClaims(), "nbf", exp.Unix(), "iat", exp.Unix(), "exp", exp.Add(time.Hour).Unix()))
	for _, tc := range []struct {
		name   string
		leeway time.Duration
		raw    string
		now    time.Time
		want   string // "" valid
	}{
		{"default leeway, 29s late", 0, raw, exp.Add(29 * time.Second), ""},
		{"default leeway, 30s late", 0, raw, exp.Add(30 * time.Second), "token expired at"},
		{"10s leeway, 9s late", 10 * time.Second, raw, exp.Add(9 * time.Second), ""},
		{"10s leeway, 10s late", 10 * time.Second, raw, exp.Add(10 * time.Second), "token expired at"},
		{"no leeway, 1s early", -1, raw, exp.Add(-time.Second), ""},
		{"no leeway, at exp", -1, raw, exp, "token expired at"},
		{"default leeway, nbf 30s early", 0, future, exp.Add(-30 * time.Second), ""},
		{"default leeway, nbf 31s early", 0, future, exp.Add(-31 * time.Second), "token not valid before"},
		{"no leeway, at nbf", -1, future, exp, ""},
		{"no leeway, nbf 1s early", -1, future, exp.Add(-time.Second), "token not valid before"},
	} {
		v, err := NewVerifier(Config{Keys: []*attest.PublicKey{k.Public()}, Leeway: tc.leeway, Now: fixed(tc.now)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(tc.raw)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestTokenVerifierConfig(t *testing.T) {
	k := genKey(t)
	if _, err := NewVerifier(Config{}); err == nil || !strings.Contains(err.Error(), "no issuer public keys") {
		t.Errorf("no keys: %v", err)
	}
	if _, err := NewVerifier(Config{Keys: []*attest.PublicKey{nil, {}}}); err == nil {
		t.Error("only unusable keys: verifier made")
	}
	if _, err := NewVerifier(Config{Keys: []*attest.PublicKey{k.Public()}, Leeway: time.Hour}); err == nil {
		t.Error("an hour of leeway accepted")
	}
	var nilV *Verifier
	if _, err := nilV.Verify("x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil verifier: %v", err)
	}

	// Custom issuer and audience are what is checked.
	raw, err := Issue(k, IssueOptions{Issuer: "admin@corp", Audience: "host-7", Subject: "bob", Scope: "trace", TTL: time.Hour, Now: fixed(t0)})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewVerifier(Config{Keys: []*attest.PublicKey{k.Public()}, Issuer: "admin@corp", Audience: "host-7", Now: fixed(t0)})
	if _, err := v.Verify(raw); err != nil {
		t.Errorf("custom iss/aud: %v", err)
	}
	v, _ = NewVerifier(Config{Keys: []*attest.PublicKey{k.Public()}, Now: fixed(t0)})
	if _, err := v.Verify(raw); err == nil || !strings.Contains(err.Error(), `token issuer "admin@corp" is not tracebroker`) {
		t.Errorf("default iss: %v", err)
	}
}

func TestTokenIssueOptions(t *testing.T) {
	k := genKey(t)
	base := IssueOptions{Subject: "alice", Scope: "trace", TTL: time.Hour, Now: fixed(t0)}
	mod := func(f func(*IssueOptions)) IssueOptions {
		o := base
		f(&o)
		return o
	}
	for _, tc := range []struct {
		name string
		key  *attest.PrivateKey
		o    IssueOptions
		want string
	}{
		{"no key", nil, base, "no issuer key"},
		{"key with a stale id", &attest.PrivateKey{Key: k.Key, ID: "beef"}, base, "is not the id of its key"},
		{"no subject", k, mod(func(o *IssueOptions) { o.Subject = "" }), "subject (sub) is required"},
		{"no scope", k, mod(func(o *IssueOptions) { o.Scope = " " }), "a scope is required"},
		{"bad scope", k, mod(func(o *IssueOptions) { o.Scope = "trace gen:" }), "empty pattern"},
		{"scope of no known kind", k, mod(func(o *IssueOptions) { o.Scope = "Trace" }), `unknown scope "Trace"`},
		{"no TTL", k, mod(func(o *IssueOptions) { o.TTL = 0 }), "TTL greater than zero"},
		{"negative TTL", k, mod(func(o *IssueOptions) { o.TTL = -time.Hour }), "TTL greater than zero"},
		{"TTL too long", k, mod(func(o *IssueOptions) { o.TTL = 25 * time.Hour }), "longer than the limit"},
		{"negative max duration", k, mod(func(o *IssueOptions) { o.MaxDuration = -time.Second }), "negative"},
		{"fractional max duration", k, mod(func(o *IssueOptions) { o.MaxDuration = 1500 * time.Millisecond }), "whole number of seconds"},
		{"max duration too long", k, mod(func(o *IssueOptions) { o.MaxDuration = 48 * time.Hour }), "longer than the limit"},
		{"jti with a space", k, mod(func(o *IssueOptions) { o.ID = "a b" }), "printable ASCII"},
		{"jti with a #", k, mod(func(o *IssueOptions) { o.ID = "a#b" }), "printable ASCII"},
		{"jti too long", k, mod(func(o *IssueOptions) { o.ID = strings.Repeat("a", 129) }), "longer than 128"},
		{"already expired", k, mod(func(o *IssueOptions) { o.NotBefore = t0.Add(-2 * time.Hour) }), "expired already"},
	} {
		if _, err := Issue(tc.key, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}

	// Defaults: random jti, nbf = iat = now, exp = nbf + TTL.
	a, err := Issue(k, base)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Issue(k, base)
	_, ca, _ := Inspect(a)
	_, cb, _ := Inspect(b)
	if ja, _ := ca["jti"].(string); len(ja) != 32 || ja == cb["jti"] {
		t.Errorf("jti %v and %v: want distinct 128-bit hex", ca["jti"], cb["jti"])
	}
	if ca["iat"] != json.Number("1772366400") || ca["nbf"] != ca["iat"] || ca["exp"] != json.Number("1772370000") {
		t.Errorf("times: %v", ca)
	}
	if _, ok := ca["max_duration"]; ok {
		t.Errorf("max_duration set without being asked for: %v", ca)
	}

	// A future NotBefore moves exp with it.
	c, err := Issue(k, mod(func(o *IssueOptions) { o.NotBefore = t0.Add(time.Hour) }))
	if err != nil {
		t.Fatal(err)
	}
	_, cc, _ := Inspect(c)
	if cc["nbf"] != json.Number("1772370000") || cc["exp"] != json.Number("1772373600") {
		t.Errorf("future nbf: %v", cc)
	}
}

func TestTokenInspect(t *testing.T) {
	k := genKey(t)
	raw := craft(nil, with(goodHeader(k), "alg", "none"), goodClaims())
	h, c, err := Inspect(raw)
	if err != nil || h["alg"] != "none" || c["sub"] != "alice" {
		t.Fatalf("%v %v %v", h, c, err)
	}
	for _, bad := range []string{"", "a.b", "a.b.c.d", "!.e30.", "e30.!.", "W10.e30.", "e30.bnVsbA.", "e30.e30e30.", strings.Repeat("a", MaxTokenLen+1)} {
		if _, _, err := Inspect(bad); err == nil {
			t.Errorf("Inspect(%.20q) succeeded", bad)
		}
	}
}
