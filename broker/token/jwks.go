package token

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// Algorithms an identity provider's tokens may be signed with. Nothing
// else is ever accepted: no HMAC (whose secret would be the published
// public key), no PS*, no none.
const (
	AlgEdDSA = "EdDSA"
	AlgES256 = "ES256"
	AlgRS256 = "RS256"
)

var oidcAlgs = []string{AlgEdDSA, AlgES256, AlgRS256}

const (
	// MaxJWKSSize bounds a JWKS file: a provider's set, even with
	// certificate chains (x5c), is tens of KiB.
	MaxJWKSSize = 256 << 10
	// MaxJWKSKeys bounds its keys: providers publish a few, rotating.
	MaxJWKSKeys = 64
	// MinRSABits and MaxRSABits bound RS256 keys: below, forgeable in
	// time; above, each verification costs the daemon more than a
	// provider ever needs.
	MinRSABits = 2048
	MaxRSABits = 8192
	maxKIDLen  = 256
)

// JWKS is a parsed JSON Web Key Set (RFC 7517): the public keys of one
// issuer, by kid.
type JWKS struct {
	keys map[string]*JWK
}

// JWK is one key of a set. A key this package cannot or must not verify
// with (an encryption key, another algorithm, too short, a kid that
// appears twice) is kept with the reason in Unusable, so a token naming
// it is refused with that reason rather than as "unknown kid".
type JWK struct {
	KID      string
	Kty      string
	Alg      string // as the set says; "" if it does not
	Crv      string
	Use      string
	Key      crypto.PublicKey // nil when Unusable
	Unusable string
}

// Len is the number of kids in the set.
func (s *JWKS) Len() int { return len(s.keys) }

// Lookup returns the key named kid.
func (s *JWKS) Lookup(kid string) (*JWK, bool) {
	k, ok := s.keys[kid]
	return k, ok
}

// algOf is the one algorithm a key of this type verifies ("" if none
// this package accepts).
func algOf(kty, crv string) string {
	switch {
	case kty == "OKP" && crv == "Ed25519":
		return AlgEdDSA
	case kty == "EC" && crv == "P-256":
		return AlgES256
	case kty == "RSA":
		return AlgRS256
	}
	return ""
}

// rawJWK holds the members read; the rest (x5c, x5t, ...) are ignored.
type rawJWK struct {
	Kty    *string   `json:"kty"`
	KID    *string   `json:"kid"`
	Use    *string   `json:"use"`
	Alg    *string   `json:"alg"`
	Crv    *string   `json:"crv"`
	KeyOps *[]string `json:"key_ops"`
	X      string    `json:"x"`
	Y      string    `json:"y"`
	N      string    `json:"n"`
	E      string    `json:"e"`
}

// privateMembers are the members of private and symmetric keys: a set
// holding one has published a secret, and nothing in it is trusted.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// ParseJWKS parses a JWK set strictly. The whole set is refused when it
// is not one JSON object with a "keys" array of objects, is larger than
// MaxJWKSSize or holds more than MaxJWKSKeys keys, repeats a member
// name anywhere (as the token's own JSON must not), or holds private or
// symmetric key material. A single key that is unusable is kept as
// such (see JWK); a kid that appears twice makes both unusable, since
// which one the provider meant cannot be known.
func ParseJWKS(b []byte) (*JWKS, error) {
	if len(b) > MaxJWKSSize {
		return nil, fmt.Errorf("JWKS is %d bytes; the limit is %d", len(b), MaxJWKSSize)
	}
	if !json.Valid(b) {
		return nil, errors.New("JWKS is not valid JSON")
	}
	if key, ok := duplicateKey(b); ok {
		return nil, fmt.Errorf("JWKS: the member %s appears more than once in an object", quote(key))
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil || top == nil {
		return nil, errors.New("JWKS is not a JSON object")
	}
	rawKeys, ok := top["keys"]
	if !ok {
		return nil, errors.New(`JWKS has no "keys" member`)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(rawKeys, &list); err != nil {
		return nil, errors.New(`JWKS "keys" is not an array`)
	}
	if len(list) > MaxJWKSKeys {
		return nil, fmt.Errorf("JWKS has %d keys; the limit is %d", len(list), MaxJWKSKeys)
	}
	set := &JWKS{keys: make(map[string]*JWK, len(list))}
	seen := map[string]int{}
	for i, m := range list {
		var members map[string]json.RawMessage
		if err := json.Unmarshal(m, &members); err != nil || members == nil {
			return nil, fmt.Errorf("JWKS key %d is not a JSON object", i)
		}
		for _, p := range privateMembers {
			if _, ok := members[p]; ok {
				return nil, fmt.Errorf("JWKS key %d holds private or secret key material (%q): a published set must hold public keys only", i, p)
			}
		}
		k := parseJWK(m)
		if k.KID == "" {
			continue // no token can name it
		}
		if seen[k.KID]++; seen[k.KID] > 1 {
			set.keys[k.KID] = &JWK{KID: k.KID, Unusable: fmt.Sprintf("kid %s appears %d times in the JWKS", quote(k.KID), seen[k.KID])}
			continue
		}
		set.keys[k.KID] = k
	}
	return set, nil
}

// parseJWK reads one key; what is wrong with it goes to Unusable. The
// decoding is strict: unpadded base64url only, exact sizes.
func parseJWK(m json.RawMessage) *JWK {
	var r rawJWK
	k := &JWK{}
	dec := json.NewDecoder(bytes.NewReader(m))
	if err := dec.Decode(&r); err != nil {
		// A member of the wrong type; the kid, if it is a string, still
		// names the key so a token naming it learns why.
		var id struct {
			KID string `json:"kid"`
		}
		json.Unmarshal(m, &id)
		k.KID = id.KID
		k.Unusable = "a member has the wrong JSON type"
		return k
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	k.KID, k.Kty, k.Alg, k.Crv, k.Use = str(r.KID), str(r.Kty), str(r.Alg), str(r.Crv), str(r.Use)
	if len(k.KID) > maxKIDLen {
		k.KID = ""
		return k
	}
	bad := func(format string, args ...any) *JWK {
		k.Unusable = fmt.Sprintf(format, args...)
		return k
	}
	if r.Kty == nil {
		return bad("it has no kty")
	}
	if k.Use != "" && k.Use != "sig" {
		return bad("its use is %s, not sig", quote(k.Use))
	}
	if r.KeyOps != nil && !slices.Contains(*r.KeyOps, "verify") {
		return bad("its key_ops do not include verify")
	}
	want := algOf(k.Kty, k.Crv)
	switch {
	case want == "" && k.Kty == "EC":
		return bad("it is an EC key on curve %s; ES256 needs P-256", quote(k.Crv))
	case want == "" && k.Kty == "OKP":
		return bad("it is an OKP key on curve %s; EdDSA needs Ed25519", quote(k.Crv))
	case want == "":
		return bad("its kty %s is not OKP, EC or RSA", quote(k.Kty))
	case k.Alg != "" && k.Alg != want:
		return bad("its alg %s does not fit a %s key (%s)", quote(k.Alg), k.Kty, want)
	}
	b64 := func(s string) ([]byte, error) { return base64.RawURLEncoding.Strict().DecodeString(s) }
	switch want {
	case AlgEdDSA:
		x, err := b64(r.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return bad("its x is not %d bytes of base64url", ed25519.PublicKeySize)
		}
		k.Key = ed25519.PublicKey(x)
	case AlgES256:
		x, errX := b64(r.X)
		y, errY := b64(r.Y)
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			return bad("its x and y are not 32 bytes each of base64url")
		}
		pk, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return bad("its x and y are not a point of P-256")
		}
		k.Key = pk
	case AlgRS256:
		n, errN := b64(r.N)
		e, errE := b64(r.E)
		if errN != nil || errE != nil || len(n) == 0 || len(e) == 0 || n[0] == 0 || e[0] == 0 {
			return bad("its n and e are not base64url integers without leading zeros")
		}
		bits := new(big.Int).SetBytes(n).BitLen()
		if bits < MinRSABits || bits > MaxRSABits {
			return bad("it is an RSA key of %d bits; RS256 needs %d to %d", bits, MinRSABits, MaxRSABits)
		}
		if len(e) > 4 {
			return bad("its RSA exponent is too large")
		}
		ev := int(new(big.Int).SetBytes(e).Int64())
		if ev < 3 || ev%2 == 0 || ev > 1<<31-1 {
			return bad("its RSA exponent %d is not an odd number from 3", ev)
		}
		k.Key = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: ev}
	}
	return k
}
