package token

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/attest"
)

// craftRaw signs header and claims given as JSON text, byte for byte,
// so that tests can make what no encoder writes (a key twice).
func craftRaw(priv ed25519.PrivateKey, header, claims string) string {
	in := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(claims))
	return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(in)))
}

// TestTokenDuplicateKeys (issue 15, item 11): a header or claims with a
// key twice is refused, however the second is spelled, even when it is
// signed by the issuer: encoding/json would take the last, another
// reader the first.
func TestTokenDuplicateKeys(t *testing.T) {
	k := genKey(t)
	v, err := NewVerifier(Config{Keys: []*attest.PublicKey{k.Public()}, Now: fixed(t0)})
	if err != nil {
		t.Fatal(err)
	}
	h := `{"alg":"EdDSA","typ":"at+jwt","kid":"` + k.ID + `"}`
	claims := func(extra string) string {
		return `{"iss":"tracebroker","sub":"alice","aud":["tracebroker"],"iat":` + itoa(t0.Unix()) + `,"exp":` + itoa(t0.Add(time.Hour).Unix()) +
			`,"jti":"j1","scope":"trace probe:tracepoint:syscalls:sys_enter_getcwd"` + extra + `}`
	}
	if _, err := v.Verify(craftRaw(k.Key, h, claims(""))); err != nil {
		t.Fatalf("baseline: %v", err)
	}
	for _, tt := range []struct {
		name, header, claims, want string
	}{
		{"scope_twice", h, claims(`,"scope":"trace probe:**"`), `token claims: the key "scope" appears more than once`},
		{"scope_case_folded", h, claims(`,"Scope":"trace probe:**"`), `token claims: the key "Scope" appears more than once`},
		{"scope_escaped", h, claims(`,"\u0073cope":"trace probe:**"`), `token claims: the key "scope" appears more than once`},
		{"sub_upper", h, claims(`,"SUB":"root"`), `token claims: the key "SUB" appears more than once`},
		{"kid_kelvin_sign", `{"alg":"EdDSA","typ":"at+jwt","kid":"x","\u212Aid":"` + k.ID + `"}`, claims(""), "token header: the key \"\u212aid\" appears more than once"},
		{"jti_dotless_i", h, claims(`,"jt\u0131":"x"`), ""}, // ı is not i: no duplicate (an unknown claim)
		{"exp_twice", h, claims(`,"exp":` + itoa(t0.Add(365*24*time.Hour).Unix())), `token claims: the key "exp" appears more than once`},
		{"alg_twice", `{"alg":"none","typ":"at+jwt","kid":"` + k.ID + `","alg":"EdDSA"}`, claims(""), `token header: the key "alg" appears more than once`},
		{"kid_twice", `{"alg":"EdDSA","typ":"at+jwt","kid":"x","KID":"` + k.ID + `"}`, claims(""), `token header: the key "KID" appears more than once`},
		{"nested_twice", h, claims(`,"ext":{"a":1,"A":2}`), `token claims: the key "A" appears more than once`},
		{"nested_distinct", h, claims(`,"ext":{"a":1,"b":[{"a":2},{"a":3}]},"a":4`), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(craftRaw(k.Key, tt.header, tt.claims))
			if tt.want == "" {
				if err != nil && strings.Contains(err.Error(), "more than once") {
					t.Errorf("refused as a duplicate: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestTokenLifetime (issue 15, item 11): the maximum lifetime is the
// verifier's: exp - iat and exp - now are bounded whatever the issuer
// signed.
func TestTokenLifetime(t *testing.T) {
	k := genKey(t)
	day := MaxTTL
	for _, tt := range []struct {
		name    string
		max     time.Duration
		claims  map[string]any
		now     time.Time
		wantErr string
	}{
		{"a day", 0, with(goodClaims(), "exp", t0.Add(day).Unix()), t0, ""},
		{"a day and a second", 0, with(goodClaims(), "exp", t0.Add(day+time.Second).Unix()), t0, "token lives 24h0m1s from iat to exp, longer than this broker's limit of 24h0m0s"},
		{"a year", 0, with(goodClaims(), "exp", t0.Add(365*day).Unix()), t0, "token lives 8760h0m0s from iat to exp"},
		// Accepted in none of its days, not even its last.
		{"a year, in its last hour", 0, with(goodClaims(), "exp", t0.Add(365*day).Unix()), t0.Add(365*day - time.Hour), "token lives 8760h0m0s"},
		{"configured an hour", time.Hour, with(goodClaims(), "exp", t0.Add(time.Hour).Unix()), t0, ""},
		{"configured an hour, token of two", time.Hour, with(goodClaims(), "exp", t0.Add(2*time.Hour).Unix()), t0.Add(90 * time.Minute), "token lives 2h0m0s from iat to exp, longer than this broker's limit of 1h0m0s"},
		// iat backdated would pass exp - iat: exp - now catches a
		// token that still has longer to run than the limit.
		{"iat in the future by the leeway", time.Hour, with(goodClaims(), "iat", t0.Add(25*time.Second).Unix(), "nbf", t0.Unix(), "exp", t0.Add(time.Hour+25*time.Second).Unix()), t0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(Config{Keys: []*attest.PublicKey{k.Public()}, MaxLifetime: tt.max, Now: fixed(tt.now)})
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(craft(k.Key, goodHeader(k), tt.claims))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if _, err := NewVerifier(Config{Keys: []*attest.PublicKey{k.Public()}, MaxLifetime: 2 * day}); err == nil {
		t.Error("a verifier with a lifetime past MaxTTL was made")
	}
	// Issue keeps to the same bound: a token valid tomorrow for a day
	// lives more than a day from its issue.
	if _, err := Issue(k, IssueOptions{Subject: "a", Scope: "trace", TTL: day, NotBefore: t0.Add(time.Hour), Now: fixed(t0)}); err == nil ||
		!strings.Contains(err.Error(), "expires 25h0m0s after it is issued") {
		t.Errorf("Issue of a token living 25h: %v", err)
	}
}

// FuzzDuplicateKey: duplicateKey finds two keys of an object exactly
// when encoding/json would take them for the same (bytes.EqualFold), and
// never panics on valid JSON.
func FuzzDuplicateKey(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"A":2}`, `{"k":1,"\u212a":2}`, `{"a":{"b":1,"b":2}}`, `[{"a":1},{"a":1}]`, `{"ſ":1,"s":2}`, `{"a":[1,{"x":{}}],"b":"a"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		_, found := duplicateKey(b)
		// The independent check, for flat objects only.
		dec := json.NewDecoder(bytes.NewReader(b))
		if d, _ := dec.Token(); d != json.Delim('{') {
			return
		}
		var keys []string
		for dec.More() {
			k, _ := dec.Token()
			keys = append(keys, k.(string))
			if v, _ := dec.Token(); v == json.Delim('{') || v == json.Delim('[') {
				return
			}
		}
		want := false
		for i := range keys {
			for j := i + 1; j < len(keys); j++ {
				want = want || bytes.EqualFold([]byte(keys[i]), []byte(keys[j]))
			}
		}
		if found != want {
			t.Fatalf("duplicateKey(%s) = %v, want %v", b, found, want)
		}
	})
}
