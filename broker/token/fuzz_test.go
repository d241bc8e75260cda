package token

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/attest"
)

// FuzzVerify: no input panics, every refusal is ErrInvalid, and nothing
// verifies unless it carries a real Ed25519 signature by the issuer key
// over its first two parts, checked here independently of jwt.
func FuzzVerify(f *testing.F) {
	k := genKey(f)
	v, err := NewVerifier(Config{Keys: []*attest.PublicKey{k.Public()}, Now: fixed(t0)})
	if err != nil {
		f.Fatal(err)
	}
	good := craft(k.Key, goodHeader(k), goodClaims())
	issued, err := Issue(k, IssueOptions{Subject: "s", Scope: "trace probe:** gen:*", TTL: time.Hour, MaxDuration: time.Minute, Now: fixed(t0)})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		good, issued, "", ".", "..", "a.b.c", good + "x", strings.TrimSuffix(good, good[len(good)-3:]),
		craft(nil, with(goodHeader(k), "alg", "none"), goodClaims()),
		craft(k.Key, with(goodHeader(k), "typ", "JWT"), goodClaims()),
		craft(k.Key, goodHeader(k), with(goodClaims(), "scope", "probe:[")),
		craft(k.Key, goodHeader(k), with(goodClaims(), "exp", 1e300)),
		craft(k.Key, goodHeader(k), with(goodClaims(), "exp", -1e300)),
		craft(k.Key, goodHeader(k), with(goodClaims(), "max_duration", 9223372036854775807)),
		"eyJhbGciOiJFZERTQSJ9.e30.", "e30.e30.e30", "\x00.\x00.\x00",
	} {
		f.Add(s)
	}
	pub := k.Public().Key
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := v.Verify(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %q is not ErrInvalid", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q is more than one line", err)
			}
			return
		}
		i := strings.LastIndexByte(raw, '.')
		sig, derr := base64.RawURLEncoding.DecodeString(raw[i+1:])
		if i < 0 || derr != nil || !ed25519.Verify(pub, []byte(raw[:i]), sig) {
			t.Fatalf("verified without a valid signature: %q", raw)
		}
		if tok.Subject == "" || tok.ID == "" || tok.Expires.IsZero() || tok.KeyID != k.ID {
			t.Fatalf("verified with missing fields: %+v", tok)
		}
	})
}

func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{"", "trace", "trace probe:tracepoint:syscalls:* gen:x", "probe:", "probe:[", "gen:***", "probe:[^a-z]", "x y z", "probe:\\", "probe:[\\]]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScopes(s)
		if err != nil {
			return
		}
		// The canonical form parses back to the same thing.
		again, err := ParseScopes(sc.String())
		if err != nil || again.String() != sc.String() || again.Bits() != sc.Bits() {
			t.Fatalf("%q -> %q -> %q, %v", s, sc.String(), again.String(), err)
		}
		for _, p := range append(append([]string{}, sc.Probes...), sc.Gens...) {
			if _, err := Match(p, p); err != nil {
				t.Fatalf("accepted pattern %q does not compile: %v", p, err)
			}
		}
	})
}

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"tracepoint:syscalls:*", "tracepoint:syscalls:sys_enter_openat"},
		{"uprobe:/usr/bin/*:*", "uprobe:/usr/bin/x/y:f"},
		{"**", "a/b"}, {"[^a-c]?", "d/"}, {`\*[\]]`, "*]"}, {"*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaa"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		toks, err := compileGlob(pattern)
		if err != nil {
			return
		}
		steps := 0
		ok := matchGlob(toks, s, &steps)
		if bound := (len(s) + 1) * (len(toks) + 1); steps > bound {
			t.Fatalf("%d steps > %d", steps, bound)
		}
		// Properties that hold for every pattern: ** matches all valid
		// UTF-8; a pattern without wildcards matches exactly itself.
		if pattern == "**" && !ok && isValidUTF8(s) {
			t.Fatalf("** does not match %q", s)
		}
		if !strings.ContainsAny(pattern, `*?[\`) && ok != (pattern == s) {
			t.Fatalf("literal %q vs %q: %v", pattern, s, ok)
		}
		// A wildcard never lets '/' through unless ** is in the pattern.
		if ok && strings.Contains(s, "/") && !strings.Contains(pattern, "**") && strings.Count(s, "/") != literalSlashes(toks) {
			t.Fatalf("%q matched %q: '/' crossed without **", pattern, s)
		}
	})
}

func isValidUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func literalSlashes(toks []globTok) int {
	n := 0
	for _, t := range toks {
		if t.kind == gLit && t.r == '/' {
			n++
		}
	}
	return n
}
