package token

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tracebroker/tracebroker/internal/regfile"
)

// OIDCSuffix ends the name of an identity provider's configuration in
// STATE/issuers: NAME.oidc.json.
const OIDCSuffix = ".oidc.json"

// TypJWT is the typ many identity providers put on access tokens; an
// issuer configured with it is accepted with it as well as at+jwt.
const TypJWT = "JWT"

const maxOIDCConfig = 64 << 10

// OIDCConfig configures one identity provider whose access tokens the
// Verifier accepts besides its own issuer's: its tokens are verified
// with the keys of a JWKS file on disk, which the daemon never fetches
// (an operator's job refreshes the file; the Verifier re-reads it when
// it changes).
type OIDCConfig struct {
	// Name prefixes the subjects of this issuer's tokens ("corp:alice"),
	// so that no provider's user is taken for another's, or for a
	// subject of the broker's own tokens, by session limits, policies
	// and the audit log. LoadOIDCConfig takes it from the file name.
	Name string `json:"-"`
	// Issuer is the iss of its tokens, compared exactly.
	Issuer string `json:"issuer"`
	// JWKSFile is the key set; a relative path is relative to the
	// configuration file's directory.
	JWKSFile string `json:"jwks_file"`
	// Algorithms are those accepted of {EdDSA, ES256, RS256}.
	Algorithms []string `json:"algorithms"`
	// Audience, if set, replaces the Verifier's for this issuer.
	Audience string `json:"audience,omitempty"`
	// Typ is "at+jwt" (the default: RFC 9068 access tokens only) or
	// "JWT", which accepts typ JWT as well.
	Typ string `json:"typ,omitempty"`
}

// LoadOIDCConfig reads an identity provider's configuration file. It is
// decoded strictly: an unknown or repeated member, a wrong type, or a
// setting outside what is supported is an error, so a typo is never
// a silently looser check.
func LoadOIDCConfig(path string) (OIDCConfig, error) {
	var c OIDCConfig
	b, err := regfile.ReadFile(path, maxOIDCConfig)
	if err != nil {
		return c, err
	}
	if !json.Valid(b) {
		return c, fmt.Errorf("%s: not valid JSON", path)
	}
	if key, ok := duplicateKey(b); ok {
		return c, fmt.Errorf("%s: the member %s appears more than once", path, quote(key))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("%s: %v", path, err)
	}
	base := filepath.Base(path)
	c.Name = strings.TrimSuffix(strings.TrimSuffix(base, OIDCSuffix), ".json")
	if c.JWKSFile != "" && !filepath.IsAbs(c.JWKSFile) {
		c.JWKSFile = filepath.Join(filepath.Dir(path), c.JWKSFile)
	}
	if err := c.check(); err != nil {
		return c, fmt.Errorf("%s: %v", path, err)
	}
	return c, nil
}

func (c *OIDCConfig) check() error {
	switch {
	case c.Name == "" || strings.IndexFunc(c.Name, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.')
	}) >= 0:
		return fmt.Errorf("issuer name %s: want letters, digits, '-', '_' and '.'", quote(c.Name))
	case c.Issuer == "":
		return errors.New(`"issuer" is required: the iss of the provider's tokens`)
	case len(c.Issuer) > 1024:
		return errors.New(`"issuer" is longer than 1024 bytes`)
	case c.JWKSFile == "":
		return errors.New(`"jwks_file" is required: the provider's key set, kept current by the operator`)
	case len(c.Algorithms) == 0:
		return fmt.Errorf(`"algorithms" is required: some of %s`, strings.Join(oidcAlgs, ", "))
	}
	for _, a := range c.Algorithms {
		if !slices.Contains(oidcAlgs, a) {
			return fmt.Errorf("algorithm %s is not one of %s", quote(a), strings.Join(oidcAlgs, ", "))
		}
	}
	switch c.Typ {
	case "", Type, TypJWT:
	default:
		return fmt.Errorf(`"typ" %s: want %s (the default) or %s`, quote(c.Typ), Type, TypJWT)
	}
	return nil
}

// oidcIssuer verifies one provider's tokens with its JWKS file, read
// again whenever the file's identity, size or mtime differ from the
// copy held (checked on every token: a stat), and on Reload.
type oidcIssuer struct {
	cfg OIDCConfig
	p   profile

	mu    sync.Mutex
	stamp fileStamp
	keys  *JWKS
	err   error // why the file cannot be used; its tokens are refused
}

// fileStamp is what tells that a file was replaced or rewritten.
type fileStamp struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
	ctime    syscall.Timespec
}

func stampOf(fi os.FileInfo) fileStamp {
	s := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.dev, s.ino, s.ctime = uint64(st.Dev), st.Ino, st.Ctim
	}
	return s
}

// load reads and parses the file, keeping the outcome. The stamp is the
// opened file's, so a replacement during the read is seen next time.
func (o *oidcIssuer) load() {
	f, fi, err := regfile.Open(o.cfg.JWKSFile)
	if err != nil {
		o.keys, o.err, o.stamp = nil, err, fileStamp{}
		return
	}
	defer f.Close()
	o.stamp = stampOf(fi)
	b, err := regfile.ReadAll(f, MaxJWKSSize)
	if err == nil {
		o.keys, err = ParseJWKS(b)
	}
	if err != nil {
		o.keys, o.err = nil, err
		return
	}
	o.err = nil
}

// current is the key set to verify with now, or why there is none.
func (o *oidcIssuer) current() (*JWKS, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fi, err := os.Stat(o.cfg.JWKSFile)
	switch {
	case err != nil:
		o.keys, o.err, o.stamp = nil, err, fileStamp{}
	case o.keys == nil || stampOf(fi) != o.stamp:
		o.load()
	}
	return o.keys, o.err
}

// reload reads the file whatever its stamp, and says what it holds.
func (o *oidcIssuer) reload() (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.load()
	if o.err != nil {
		return 0, o.err
	}
	return o.keys.Len(), nil
}

// key checks the header of a token that names this issuer and picks its
// key. The parser has checked alg against the issuer's algorithms.
func (o *oidcIssuer) key(h map[string]any) (string, any, error) {
	kid, err := headerKID(h, o.cfg.Typ == TypJWT, ", which issuer "+o.cfg.Name+" needs")
	if err != nil {
		return "", nil, err
	}
	keys, err := o.current()
	if err != nil {
		return "", nil, &invalidError{msg: fmt.Sprintf("the JWKS of issuer %s cannot be used, so its tokens are refused: %s", o.cfg.Name, o.problem(err)), cause: err}
	}
	k, ok := keys.Lookup(kid)
	if !ok {
		return "", nil, invalid("token kid %s is not in the JWKS of issuer %s", quote(kid), o.cfg.Name)
	}
	if k.Unusable != "" {
		return "", nil, invalid("token kid %s of issuer %s cannot verify tokens: %s", quote(kid), o.cfg.Name, k.Unusable)
	}
	alg, _ := h["alg"].(string)
	if want := algOf(k.Kty, k.Crv); want != alg {
		return "", nil, invalid("token alg %s does not fit key %s of issuer %s, a %s key", algName(alg), quote(kid), o.cfg.Name, want)
	}
	return kid, k.Key, nil
}

// problem says what is wrong with the JWKS file in words, not as the
// system call that failed.
func (o *oidcIssuer) problem(err error) string {
	var big *regfile.TooLargeError
	f := o.cfg.JWKSFile
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return f + " does not exist"
	case errors.Is(err, fs.ErrPermission):
		return f + " is not readable by the daemon"
	case errors.Is(err, regfile.ErrNotRegular):
		return f + " is not a regular file"
	case errors.As(err, &big):
		return fmt.Sprintf("%s is larger than %d bytes", f, big.Limit)
	}
	return f + ": " + oneLine(err.Error())
}

// peekIssuer reads the iss claim of a token before anything is
// verified, only to pick the issuer whose keys and checks apply; the
// checks then require that very iss.
func peekIssuer(raw string) (string, bool) {
	parts := strings.SplitN(raw, ".", 3)
	if len(parts) != 3 {
		return "", false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(parts[1])
	if err != nil {
		return "", false
	}
	var c struct {
		Iss any `json:"iss"`
	}
	if json.Unmarshal(b, &c) != nil {
		return "", false
	}
	s, ok := c.Iss.(string)
	return s, ok
}

// newOIDCIssuers checks the configurations against each other and the
// broker's own issuer, and reads each key set once: one that cannot be
// read leaves its issuer refusing tokens, not the daemon unstarted.
func newOIDCIssuers(c Config) (map[string]*oidcIssuer, error) {
	out := map[string]*oidcIssuer{}
	names := map[string]string{}
	for _, oc := range c.OIDC {
		if err := oc.check(); err != nil {
			return nil, fmt.Errorf("token: identity provider %s: %v", oc.Name, err)
		}
		if other, ok := out[oc.Issuer]; ok {
			return nil, fmt.Errorf("token: identity providers %s and %s both claim issuer %s", other.cfg.Name, oc.Name, quote(oc.Issuer))
		}
		if len(c.Keys) > 0 && oc.Issuer == c.Issuer {
			return nil, fmt.Errorf("token: identity provider %s claims issuer %s, which is this broker's own", oc.Name, quote(oc.Issuer))
		}
		if other, ok := names[oc.Name]; ok {
			return nil, fmt.Errorf("token: two identity providers are named %s (issuers %s and %s)", oc.Name, quote(other), quote(oc.Issuer))
		}
		names[oc.Name] = oc.Issuer
		aud := oc.Audience
		if aud == "" {
			aud = c.Audience
		}
		o := &oidcIssuer{cfg: oc}
		o.p = profile{
			issuer: oc.Issuer, audience: aud, algs: oc.Algorithms, from: " from issuer " + oc.Name,
			oidc: true, prefix: oc.Name + ":", key: o.key,
			parser: newParser(oc.Algorithms, oc.Issuer, aud, c),
		}
		o.reload()
		out[oc.Issuer] = o
	}
	return out, nil
}

func newParser(algs []string, issuer, audience string, c Config) *jwt.Parser {
	return jwt.NewParser(
		jwt.WithValidMethods(algs),
		jwt.WithAudience(audience),
		jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(c.Leeway),
		jwt.WithTimeFunc(c.Now),
		// One token, one encoding: no non-zero padding bits.
		jwt.WithStrictDecoding(),
	)
}

// ReloadIssuers re-reads every identity provider's JWKS file (SIGHUP),
// and says for each, by name, how many keys it holds or why its tokens
// are refused.
func (v *Verifier) ReloadIssuers() map[string]string {
	if v == nil || len(v.oidc) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, o := range v.oidc {
		if n, err := o.reload(); err != nil {
			out[o.cfg.Name] = "refusing its tokens: " + o.problem(err)
		} else {
			out[o.cfg.Name] = fmt.Sprintf("%d key%s", n, map[bool]string{true: "s"}[n != 1])
		}
	}
	return out
}

// oidcScope is an identity provider's grant: scope, a space-separated
// string (RFC 9068), or scp, the same as a string or an array of
// strings, as several providers send it; both at once are refused,
// since they could differ.
func oidcScope(c *verifyClaims) (string, error) {
	switch {
	case c.Scope != nil && c.Scp != nil:
		return "", invalid("token has both scope and scp claims")
	case c.Scope != nil:
		var s string
		if err := json.Unmarshal(c.Scope, &s); err != nil {
			return "", invalid("token scope claim is not a string")
		}
		return s, nil
	case c.Scp != nil:
		var s string
		if json.Unmarshal(c.Scp, &s) == nil {
			return s, nil
		}
		var l []string
		if err := json.Unmarshal(c.Scp, &l); err != nil {
			return "", invalid("token scp claim is not a string or an array of strings")
		}
		for _, w := range l {
			if w == "" || strings.ContainsFunc(w, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
				return "", invalid("token scp claim holds %s, which is not one scope", quote(w))
			}
		}
		return strings.Join(l, " "), nil
	}
	return "", invalid("token has no scope claim")
}
