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
