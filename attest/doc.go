// Package attest owns the trust of tracebroker: Ed25519 keys, signed
// manifests of the broker, its generator plugins, static collector
// programs and gatekeeper policies, the measured identity of a running
// process, and the signed source-of-program attestation of every program
// the broker generates.
//
// Everything signed is one format: a DSSE envelope (payload type
// application/vnd.in-toto+json) around an in-toto Statement v1, so any
// DSSE/in-toto verifier can check it. Verification fails closed: an
// unknown key, a bad signature, a digest that does not match, the wrong
// role, a malformed or oversized envelope are all refusals with the
// reason (see Reason), never a partial success.
package attest
