// Package token issues and verifies the short-lived, scoped JWTs that let
// an incident responder trace through the broker daemon without root.
//
// An administrator issues tokens offline with an Ed25519 issuer key
// (attest keys; the key id is the SHA-256 of the public key). The daemon
// verifies them against the issuer public keys it is configured with and
// an optional revocation list.
//
// # Token format
//
// A token is a JWS compact serialization (RFC 7515) of a JWT access token
// (RFC 9068):
//
//	header: {"alg":"EdDSA", "typ":"at+jwt", "kid":"<attest key id>"}
//	claims: iss sub aud exp iat nbf jti scope [max_duration]
//
// Verification fails closed: only alg EdDSA; typ must be at+jwt (or
// application/at+jwt, compared case-insensitively); the kid must name one
// of the configured keys, and a token without a kid is refused rather than
// tried against every key; a crit header is refused (no extension is
// understood); exp, iat, sub, jti and scope are required; iss and aud must
// be the configured ones; exp, nbf and iat are checked with a leeway
// (default 30s); a jti on the revocation list is refused, and so is every
// token while the list could not be read. max_duration, if present, is a
// positive whole number of seconds, at most MaxMaxDuration. The lifetime
// is bounded when verifying, not only when issuing: exp - iat, and exp -
// now (with the leeway), at most Config.MaxLifetime (default and most
// MaxTTL), so a token minted for longer is refused for all its life. A
// header or claims holding a key twice (after unescaping and case
// folding, as encoding/json matches keys) is refused before anything is
// decoded: the library would take the last, another reader the first.
//
// # Binding a token to its daemon
//
// iss and aud default to "tracebroker", so a token from an issuer key is
// good on every daemon that trusts the key. A daemon configured with its
// own audience (Config.Audience, e.g. "tracebroker:db-7") accepts only
// the tokens issued for it (IssueOptions.Audience); a token may name
// several audiences.
//
// # Tokens of an identity provider
//
// Config.OIDC adds identity providers (OIDCConfig; serve reads
// STATE/issuers/NAME.oidc.json). A token whose iss is a provider's
// issuer URL, exactly, is verified with that provider's keys alone, from
// a JWKS file on disk that the operator keeps current: the Verifier
// never fetches anything. The file is stat'ed on every such token and
// read again when its device, inode, size, mtime or ctime differ (a
// replacement by rename, or a rewrite), and on ReloadIssuers (SIGHUP).
// While it cannot be read or parsed, the provider's tokens are refused
// with the reason; the other issuers are unaffected.
//
// A provider's token passes every check above, with its own issuer and
// audience (the Verifier's unless the provider sets one), and:
//
//   - alg is one of the provider's Algorithms, from {EdDSA, ES256, RS256}
//     only; the key its kid names must be of that algorithm (OKP Ed25519,
//     EC P-256, RSA of 2048 to 8192 bits), with use sig and alg that
//     algorithm if the JWKS says, and key_ops holding verify if present.
//   - typ at+jwt, or also JWT where the provider's Typ says so.
//   - the grant is scope (a string), or scp (a string or an array of
//     words), never both.
//   - the subject is NAME:sub, so that no provider's user is taken for
//     another provider's or the broker's own in session limits,
//     attestations, policies and the audit log.
//
// A JWKS is refused whole when it is larger than MaxJWKSSize, holds more
// than MaxJWKSKeys keys, repeats a member name, or holds private or
// symmetric key material; a kid it holds twice is refused, its other
// keys still verify. Configurations that claim one iss, or the broker's
// own, are refused.
//
// # Scopes
//
// The scope claim is a space-separated list of words (RFC 8693 style):
//
//	trace            may run traces
//	probe:PATTERN    may attach to probes whose canonical spec matches PATTERN
//	gen:PATTERN      may run the generator plugins whose name matches PATTERN
//
// Any other word is kept (Scopes.Other) but grants nothing. An empty
// pattern, a malformed pattern, a pattern longer than MaxPatternLen bytes
// or more than MaxScopes words make the whole scope claim invalid, and so
// the token.
//
// # Pattern semantics
//
// Patterns are globs, matched against the WHOLE string (anchored at both
// ends), rune by rune (both must be valid UTF-8):
//
//	**       any run of characters, including '/', possibly empty
//	*        any run of characters except '/', possibly empty
//	?        exactly one character except '/'
//	[class]  exactly one character, not '/', in the class: [abc], [a-z],
//	         [^a-z] (negated); a '\' escapes the next character; '-'
//	         must be escaped unless it is a range; empty classes and
//	         reversed ranges are malformed; '/' inside a class is
//	         malformed (a class never matches '/')
//	\c       the character c itself (e.g. \* is a literal '*')
//	c        any other character matches itself
//
// Three or more '*' in a row are malformed, as is a trailing '\' or an
// unterminated class. Only ** crosses '/': so probe:uprobe:/usr/bin/*:*
// allows uprobes on any file directly in /usr/bin but not in its
// subdirectories, probe:tracepoint:syscalls:* allows every syscall
// tracepoint, and probe:** allows every probe.
//
// Matching simulates the pattern's automaton over all positions at once
// (no backtracking), so it takes at most (len(s)+1)·(tokens+1) steps
// whatever the pattern: a hostile pattern such as *a*a*a*a*b cannot make
// it exponential.
package token
