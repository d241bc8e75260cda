// Package attest will own keys, signed manifests of binaries, collectors
// and policies, the measured identity of a running process, and the signed
// source-of-program attestation of every generated program (DSSE around an
// in-toto statement). Not built yet: see the attest issue.
package attest
