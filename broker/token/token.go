package token

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tracebroker/tracebroker/attest"
)

const (
	// DefaultIssuer and DefaultAudience are the iss and aud a token is
	// issued with and checked against when none is configured.
	DefaultIssuer   = "tracebroker"
	DefaultAudience = "tracebroker"

	// DefaultLeeway absorbs clock skew between the admin's machine and
	// the hosts; MaxLeeway keeps a configuration mistake from turning
	// expiry off.
	DefaultLeeway = 30 * time.Second
	MaxLeeway     = 5 * time.Minute

	// MaxTTL caps a token's lifetime, from its issue (iat) to its
	// expiry (exp), at issue and at verification: tokens are for
	// incidents, and one day covers a shift without leaving standing
	// access behind. A Verifier may be configured with less.
	MaxTTL = 24 * time.Hour

	// MaxMaxDuration caps max_duration, the longest a single trace may
	// run, at issue and at verification.
	MaxMaxDuration = 24 * time.Hour

	// MaxTokenLen bounds a raw token before any decoding; a real one is
	// well under 1 KiB.
	MaxTokenLen = 8 << 10

	// MaxIDLen bounds a jti.
	MaxIDLen = 128

	// Type is the typ header of a token (RFC 9068).
	Type = "at+jwt"
)

const alg = "EdDSA"

// ErrInvalid is wrapped by every error Verify returns, so a caller can
// tell "refused" from its own failures with errors.Is.
var ErrInvalid = errors.New("invalid token")

// invalidError reads as its message alone (no "invalid token:" prefix
// repeated on every line) but is ErrInvalid to errors.Is.
type invalidError struct {
	msg   string
	cause error
}

func (e *invalidError) Error() string { return e.msg }

func (e *invalidError) Unwrap() []error {
	if e.cause != nil {
		return []error{ErrInvalid, e.cause}
	}
	return []error{ErrInvalid}
}

func invalid(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// Token is a verified token.
type Token struct {
	Raw         string
	KeyID       string // the issuer key that signed it
	Issuer      string
	Subject     string
	ID          string // jti
	Audience    []string
	IssuedAt    time.Time
	NotBefore   time.Time // zero if the token has no nbf
	Expires     time.Time
	Scopes      Scopes
	MaxDuration time.Duration // 0: no limit set by the token
}

// issueClaims is what Issue signs.
type issueClaims struct {
	jwt.RegisteredClaims
	Scope       string `json:"scope"`
	MaxDuration int64  `json:"max_duration,omitempty"`
}

// verifyClaims takes scope and max_duration raw, so that a wrong type is
// reported as what it is, after the signature has been checked, rather
// than as an undecodable token.
type verifyClaims struct {
	jwt.RegisteredClaims
	Scope       json.RawMessage `json:"scope"`
	Scp         json.RawMessage `json:"scp"` // identity providers' tokens only
	MaxDuration json.RawMessage `json:"max_duration"`
}

// IssueOptions says what a token grants and for how long.
type IssueOptions struct {
	Issuer      string        // default DefaultIssuer
	Audience    string        // default DefaultAudience
	Subject     string        // required: who the token is for
	Scope       string        // required: must parse and grant something
	TTL         time.Duration // required: 0 < TTL <= MaxTTL, counted from NotBefore
	MaxDuration time.Duration // whole seconds, 0 < d <= MaxMaxDuration; 0 sets none
	NotBefore   time.Time     // zero: now
	ID          string        // jti; random 128-bit hex if empty
	Now         func() time.Time
}

// Issue signs a token with the issuer key. exp is NotBefore + TTL. The
// scope is written in its canonical form (Scopes.String).
func Issue(key *attest.PrivateKey, o IssueOptions) (string, error) {
	if key == nil {
		return "", errors.New("token: no issuer key")
	}
	pub := key.Public()
	if pub == nil || pub.ID == "" {
		return "", errors.New("token: issuer key is not an Ed25519 private key")
	}
	if key.ID != "" && key.ID != pub.ID {
		return "", fmt.Errorf("token: issuer key ID %q is not the id of its key (%s)", key.ID, pub.ID)
	}
	if o.Subject == "" {
		return "", errors.New("token: a subject (sub) is required")
	}
	if o.Issuer == "" {
		o.Issuer = DefaultIssuer
	}
	if o.Audience == "" {
		o.Audience = DefaultAudience
	}
	if strings.TrimSpace(o.Scope) == "" {
		return "", errors.New("token: a scope is required")
	}
	sc, err := CheckScopes(o.Scope)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	if !sc.Grants() {
		return "", fmt.Errorf("token: scope %s grants nothing (known scopes: %s)", quote(o.Scope), ScopeKinds)
	}
	switch {
	case o.TTL <= 0:
		return "", errors.New("token: a TTL greater than zero is required")
	case o.TTL > MaxTTL:
		return "", fmt.Errorf("token: TTL %v is longer than the limit of %v", o.TTL, MaxTTL)
	}
	switch {
	case o.MaxDuration < 0:
		return "", fmt.Errorf("token: max duration %v is negative", o.MaxDuration)
	case o.MaxDuration > MaxMaxDuration:
		return "", fmt.Errorf("token: max duration %v is longer than the limit of %v", o.MaxDuration, MaxMaxDuration)
	case o.MaxDuration%time.Second != 0:
		return "", fmt.Errorf("token: max duration %v is not a whole number of seconds", o.MaxDuration)
	}
	if o.ID == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("token: making a jti: %w", err)
		}
		o.ID = hex.EncodeToString(b[:])
	} else if err := checkID(o.ID); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	iat := now().Truncate(time.Second)
	nbf := iat
	if !o.NotBefore.IsZero() {
		nbf = o.NotBefore.Truncate(time.Second)
	}
	exp := nbf.Add(o.TTL)
	if !exp.After(iat) {
		return "", fmt.Errorf("token: it would have expired already (not before %s + TTL %v)", nbf.UTC().Format(time.RFC3339), o.TTL)
	}
	if life := exp.Sub(iat); life > MaxTTL {
		return "", fmt.Errorf("token: not before %s + TTL %v expires %v after it is issued, longer than the limit of %v (a token is a credential from the moment it is issued)",
			nbf.UTC().Format(time.RFC3339), o.TTL, life, MaxTTL)
	}
	c := issueClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    o.Issuer,
			Subject:   o.Subject,
			Audience:  jwt.ClaimStrings{o.Audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(nbf),
			IssuedAt:  jwt.NewNumericDate(iat),
			ID:        o.ID,
		},
		Scope:       sc.String(),
		MaxDuration: int64(o.MaxDuration / time.Second),
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["typ"] = Type
	t.Header["kid"] = pub.ID
	s, err := t.SignedString(key.Key)
	if err != nil {
		return "", fmt.Errorf("token: signing: %w", err)
	}
	return s, nil
}

// checkID keeps jtis to what a revocation list line can hold: printable
// ASCII without spaces or '#', so every token can be revoked.
func checkID(id string) error {
	if id == "" {
		return errors.New("jti is empty")
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("jti is longer than %d bytes", MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' || c == '#' {
			return fmt.Errorf("jti %s has a character other than printable ASCII without space and '#'", quote(id))
		}
	}
	return nil
}

// Config configures a Verifier.
type Config struct {
	Keys     []*attest.PublicKey // issuer keys; at least one
	Issuer   string              // default DefaultIssuer
	Audience string              // default DefaultAudience
	// Leeway is the clock skew allowed on exp, nbf and iat: 0 means
	// DefaultLeeway, a negative value none, at most MaxLeeway.
	Leeway time.Duration
	// MaxLifetime bounds exp - iat, and exp - now (with the leeway), of
	// the tokens accepted: 0 means MaxTTL, which is also its most.
	MaxLifetime time.Duration
	Revoked     *Revocations // nil: nothing is revoked
	Now         func() time.Time
	// OIDC are identity providers whose access tokens are accepted
	// besides those of Keys (oidc.go). With them, Keys may be empty.
	OIDC []OIDCConfig
}

// Verifier checks tokens; it is safe for concurrent use.
type Verifier struct {
	keys    *attest.Trust
	native  *profile // nil without Keys
	oidc    map[string]*oidcIssuer
	maxLife time.Duration
	leeway  time.Duration
	now     func() time.Time
	revoked *Revocations
}

// profile is what differs between the broker's own issuer and an
// identity provider: who, which keys and algorithms, how claims map.
type profile struct {
	issuer, audience string
	algs             []string
	from             string // names the issuer in messages
	oidc             bool   // scp accepted for scope
	prefix           string // of subjects
	parser           *jwt.Parser
	key              func(h map[string]any) (kid string, key any, err error)
}

// NewVerifier refuses a configuration without keys: it would verify
// nothing, which is never what was meant.
func NewVerifier(c Config) (*Verifier, error) {
	keys := attest.NewTrust(c.Keys...)
	if keys.Len() == 0 && len(c.OIDC) == 0 {
		return nil, errors.New("token: no issuer public keys configured")
	}
	if c.Issuer == "" {
		c.Issuer = DefaultIssuer
	}
	if c.Audience == "" {
		c.Audience = DefaultAudience
	}
	switch {
	case c.Leeway == 0:
		c.Leeway = DefaultLeeway
	case c.Leeway < 0:
		c.Leeway = 0
	case c.Leeway > MaxLeeway:
		return nil, fmt.Errorf("token: leeway %v is longer than the limit of %v", c.Leeway, MaxLeeway)
	}
	switch {
	case c.MaxLifetime == 0:
		c.MaxLifetime = MaxTTL
	case c.MaxLifetime < 0 || c.MaxLifetime > MaxTTL:
		return nil, fmt.Errorf("token: maximum lifetime %v is not between 0 and %v", c.MaxLifetime, MaxTTL)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	v := &Verifier{
		keys:    keys,
		maxLife: c.MaxLifetime,
		leeway:  c.Leeway,
		now:     c.Now,
		revoked: c.Revoked,
	}
	if keys.Len() > 0 {
		v.native = &profile{issuer: c.Issuer, audience: c.Audience, algs: []string{alg}, key: v.key, parser: newParser([]string{alg}, c.Issuer, c.Audience, c)}
	}
	var err error
	if v.oidc, err = newOIDCIssuers(c); err != nil {
		return nil, err
	}
	return v, nil
}

// Verify checks raw and returns what it grants. Every error wraps
// ErrInvalid and says in one line what is wrong.
func (v *Verifier) Verify(raw string) (*Token, error) {
	if v == nil || v.native == nil && len(v.oidc) == 0 {
		return nil, invalid("token verifier is not configured")
	}
	if raw == "" {
		return nil, invalid("token is empty")
	}
	if len(raw) > MaxTokenLen {
		return nil, invalid("token is %d bytes; the limit is %d", len(raw), MaxTokenLen)
	}
	// Go's base64 decoder skips '\r' and '\n', so without this a token
	// would have many spellings, and Raw could carry line breaks into logs.
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; !(c == '.' || c == '-' || c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return nil, invalid("token is malformed: byte %d (0x%02x) is not base64url or '.'", i, c)
		}
	}
	if err := checkDuplicateKeys(raw); err != nil {
		return nil, err
	}
	p := v.native
	if len(v.oidc) > 0 {
		iss, ok := peekIssuer(raw)
		switch {
		case ok && v.oidc[iss] != nil:
			p = &v.oidc[iss].p
		case ok && (p == nil || iss != p.issuer):
			return nil, invalid("token issuer %s is not an issuer this broker trusts", quote(iss))
		case p == nil:
			return nil, invalid("token has no iss claim naming an issuer this broker trusts")
		}
	}
	var (
		keyErr error
		kid    string
	)
	claims := &verifyClaims{}
	t, err := p.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		id, k, err := p.key(t.Header)
		if err != nil {
			keyErr = err
			return nil, err
		}
		kid = id
		return k, nil
	})
	if err != nil {
		return nil, p.explain(t, claims, kid, keyErr, err)
	}
	if !t.Valid {
		// Not reachable with jwt v5; kept so a library change fails closed.
		return nil, invalid("token did not verify")
	}
	return v.finish(p, raw, kid, claims)
}

// key checks the header and picks the key named by kid. Only the header
// has been read; nothing here is trusted yet.
func (v *Verifier) key(h map[string]any) (string, any, error) {
	kid, err := headerKID(h, false, "")
	if err != nil {
		return "", nil, err
	}
	k, ok := v.keys.Lookup(kid)
	if !ok {
		return "", nil, invalid("token kid %s is not a configured issuer key", quote(kid))
	}
	return k.ID, k.Key, nil
}

// headerKID checks what every issuer requires of a header, typ (at+jwt,
// or also JWT with typJWT), no crit, and returns its kid. who ends the
// typ messages, naming the issuer whose requirement it is.
func headerKID(h map[string]any, typJWT bool, who string) (string, error) {
	want := Type
	if typJWT {
		want += " or " + TypJWT
	}
	typ, ok := h["typ"]
	if !ok {
		return "", invalid("token has no typ header; want %s%s", want, who)
	}
	ts, ok := typ.(string)
	if !ok || !(strings.EqualFold(ts, Type) || strings.EqualFold(ts, "application/"+Type) || typJWT && strings.EqualFold(ts, TypJWT)) {
		return "", invalid("token typ %s is not %s%s", quoteAny(typ), want, who)
	}
	if _, ok := h["crit"]; ok {
		return "", invalid("token header has crit extensions, which are not supported")
	}
	kidv, ok := h["kid"]
	if !ok {
		return "", invalid("token has no kid")
	}
	kid, ok := kidv.(string)
	if !ok || kid == "" {
		return "", invalid("token kid %s is not a key id", quoteAny(kidv))
	}
	return kid, nil
}

// explain turns a parse failure into one line saying what is wrong. The
// library joins several claim errors; they are reported in a fixed order
// so the same token always gets the same message.
func (v *profile) explain(t *jwt.Token, c *verifyClaims, kid string, keyErr, err error) error {
	if keyErr != nil {
		return keyErr
	}
	if t != nil && t.Header != nil {
		a, ok := t.Header["alg"]
		switch {
		case !ok:
			return invalid("token header has no alg")
		case a == "none":
			return invalid("token is unsigned (alg none); only %s is accepted%s", strings.Join(v.algs, ", "), v.from)
		case !slices.Contains(v.algs, fmt.Sprint(a)):
			return invalid("token signed with %s; only %s is accepted%s", algName(a), strings.Join(v.algs, ", "), v.from)
		}
	}
	switch {
	case t == nil || errors.Is(err, jwt.ErrTokenMalformed):
		return &invalidError{msg: oneLine(err.Error()), cause: err}
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalid("token signature does not verify with issuer key %s%s", kid, v.from)
	case !errors.Is(err, jwt.ErrTokenInvalidClaims):
		return &invalidError{msg: oneLine(err.Error()), cause: err}
	}
	// From here the signature is good, so the claims are the issuer's.
	switch {
	case c.ExpiresAt == nil:
		return invalid("token has no exp claim")
	case c.Issuer == "":
		return invalid("token has no iss claim")
	case len(c.Audience) == 0 || len(c.Audience) == 1 && c.Audience[0] == "":
		return invalid("token has no aud claim")
	case errors.Is(err, jwt.ErrTokenExpired):
		return invalid("token expired at %s", stamp(c.ExpiresAt))
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return invalid("token not valid before %s", stamp(c.NotBefore))
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return invalid("token issued in the future (iat %s)", stamp(c.IssuedAt))
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return invalid("token issuer %s is not %s", quote(c.Issuer), v.issuer)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return invalid("token audience %s is not %s", quoteList(c.Audience), v.audience)
	}
	return &invalidError{msg: oneLine(err.Error()), cause: err}
}

// finish checks what the library does not: the claims this package
// requires, their types, and revocation.
func (v *Verifier) finish(p *profile, raw, kid string, c *verifyClaims) (*Token, error) {
	if c.IssuedAt == nil {
		return nil, invalid("token has no iat claim")
	}
	// The lifetime is the verifier's to bound, whatever the issuer
	// meant: a token minted for a year is refused for all of it, not
	// accepted in its last day.
	if life := c.ExpiresAt.Sub(c.IssuedAt.Time); life > v.maxLife {
		return nil, invalid("token lives %v from iat to exp, longer than this broker's limit of %v", life, v.maxLife)
	}
	if left := c.ExpiresAt.Sub(v.now()); left > v.maxLife+v.leeway {
		return nil, invalid("token expires %v from now, later than this broker's limit of %v", left.Round(time.Second), v.maxLife)
	}
	if c.Subject == "" {
		return nil, invalid("token has no sub claim")
	}
	if c.ID == "" {
		return nil, invalid("token has no jti claim")
	}
	if err := checkID(c.ID); err != nil {
		return nil, invalid("token %v, so it could not be revoked", err)
	}
	var scope string
	if p.oidc {
		var err error
		if scope, err = oidcScope(c); err != nil {
			return nil, err
		}
	} else {
		if c.Scope == nil {
			return nil, invalid("token has no scope claim")
		}
		if err := json.Unmarshal(c.Scope, &scope); err != nil {
			return nil, invalid("token scope claim is not a string")
		}
	}
	sc, err := ParseScopes(scope)
	if err != nil {
		return nil, invalid("token %v", err)
	}
	var maxDur time.Duration
	if c.MaxDuration != nil {
		if maxDur, err = parseMaxDuration(c.MaxDuration); err != nil {
			return nil, err
		}
	}
	if revoked, err := v.revoked.Revoked(c.ID); err != nil {
		return nil, &invalidError{msg: fmt.Sprintf("token %s: cannot check revocation: %v", c.ID, err), cause: err}
	} else if revoked {
		return nil, invalid("token %s is revoked", c.ID)
	}
	tok := &Token{
		Raw:         raw,
		KeyID:       kid,
		Issuer:      c.Issuer,
		Subject:     p.prefix + c.Subject,
		ID:          c.ID,
		Audience:    []string(c.Audience),
		IssuedAt:    c.IssuedAt.Time,
		Expires:     c.ExpiresAt.Time,
		Scopes:      sc,
		MaxDuration: maxDur,
	}
	if c.NotBefore != nil {
		tok.NotBefore = c.NotBefore.Time
	}
	return tok, nil
}

func parseMaxDuration(raw json.RawMessage) (time.Duration, error) {
	bad := func() error {
		return invalid("token max_duration %s is not a positive whole number of seconds up to %d", oneLine(string(raw)), int64(MaxMaxDuration/time.Second))
	}
	// Into any, not json.Number, which would also take the string "600".
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return 0, bad()
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, bad()
	}
	secs, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil || secs <= 0 || secs > int64(MaxMaxDuration/time.Second) {
		return 0, bad()
	}
	return time.Duration(secs) * time.Second, nil
}

// algName shows a registered-looking alg bare (HS256) and anything else
// quoted, since it comes from an unverified header.
func algName(a any) string {
	s, ok := a.(string)
	if !ok || s == "" || len(s) > 16 {
		return quoteAny(a)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '+' || c == '_') {
			return quote(s)
		}
	}
	return s
}

func stamp(d *jwt.NumericDate) string {
	if d == nil {
		return "(none)"
	}
	return d.UTC().Format(time.RFC3339)
}

func quoteAny(v any) string {
	if s, ok := v.(string); ok {
		return quote(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%T", v)
	}
	return quote(string(b))
}

func quoteList(l []string) string {
	q := make([]string, 0, len(l))
	for i, s := range l {
		if i == 8 {
			q = append(q, "…")
			break
		}
		q = append(q, quote(s))
	}
	return "[" + strings.Join(q, " ") + "]"
}

// oneLine keeps a library message to one line of bounded length.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// Inspect decodes a token's header and claims WITHOUT verifying
// anything: for display only. Numbers are kept exact (json.Number).
func Inspect(raw string) (header, claims map[string]any, err error) {
	if len(raw) > MaxTokenLen {
		return nil, nil, fmt.Errorf("token is %d bytes; the limit is %d", len(raw), MaxTokenLen)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, nil, fmt.Errorf("token has %d parts separated by '.'; a JWT has 3", len(parts))
	}
	dec := func(what, seg string) (map[string]any, error) {
		b, err := base64.RawURLEncoding.DecodeString(seg)
		if err != nil {
			return nil, fmt.Errorf("token %s is not base64url: %v", what, err)
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil || m == nil {
			return nil, fmt.Errorf("token %s is not a JSON object", what)
		}
		if d.More() {
			return nil, fmt.Errorf("token %s has data after its JSON object", what)
		}
		return m, nil
	}
	if header, err = dec("header", parts[0]); err != nil {
		return nil, nil, err
	}
	if claims, err = dec("claims", parts[1]); err != nil {
		return nil, nil, err
	}
	return header, claims, nil
}
