package attest

import (
	"crypto/ed25519"
	"fmt"
	"time"
)

// Role is what a signed artifact is for; a verifier asks for one.
type Role string

const (
	RoleBroker    Role = "broker"
	RoleGenerator Role = "generator"
	RoleCollector Role = "collector"
	RolePolicy    Role = "policy"
	// RoleProgram signs a program-only object: the eBPF ELF file itself
	// (the signature covers the program; gatekeeper covers=program).
	RoleProgram Role = "program"
	// RoleGate signs the kernel gate's object (gatekeeper/lsmgate): the
	// BPF LSM programs that decide who may load tracing programs.
	RoleGate Role = "gate"
)

// Roles lists the roles an artifact may be signed for.
var Roles = []Role{RoleBroker, RoleGenerator, RoleCollector, RolePolicy, RoleProgram, RoleGate}

// BundleRoles are the roles of signatures over many files: a package's
// members and a repository's index (bundle.go).
var BundleRoles = []Role{RolePackage, RoleRepository}

const (
	// PayloadType is the DSSE payload type of every envelope.
	PayloadType = "application/vnd.in-toto+json"
	// StatementType is the in-toto Statement v1 type.
	StatementType = "https://in-toto.io/Statement/v1"
	// ArtifactPredicateType is the predicate of a signed artifact
	// manifest (FILE.sig).
	ArtifactPredicateType = "https://tracebroker.dev/artifact/v1"
	// ProgramPredicateType is the predicate of a program attestation.
	ProgramPredicateType = "https://tracebroker.dev/source-of-program/v1"

	// MaxEnvelopeSize bounds every envelope read: a manifest is well
	// under a kilobyte, a program attestation carries its script.
	MaxEnvelopeSize = 4 << 20
)

// PrivateKey is an Ed25519 signing key and the id of its public half.
type PrivateKey struct {
	Key ed25519.PrivateKey
	ID  string
}

// PublicKey is an Ed25519 verification key; ID is the hex SHA-256 of the
// key's PKIX DER encoding.
type PublicKey struct {
	Key ed25519.PublicKey
	ID  string
}

// ArtifactPredicate is the predicate of a signed artifact manifest.
type ArtifactPredicate struct {
	Role     Role      `json:"role"`
	Name     string    `json:"name"`
	Version  string    `json:"version,omitempty"`
	SignedAt time.Time `json:"signed_at"`
}

// Identity is what is known about an artifact or a running process: the
// file, its digest and, when a trusted manifest matched, who signed it
// for what. An unsigned development build is an Identity with Verified
// false and Reason saying why (ReasonUnsigned): a fact for the
// gatekeeper, not an error.
type Identity struct {
	Path     string `json:"path"`
	Digest   string `json:"digest"` // hex SHA-256 of the file
	Signer   string `json:"signer,omitempty"`
	Role     Role   `json:"role,omitempty"`
	Name     string `json:"name,omitempty"`
	Version  string `json:"version,omitempty"`
	Verified bool   `json:"verified"`
	Reason   string `json:"reason,omitempty"` // why not verified
}

// Reason is why a verification refused.
type Reason string

const (
	ReasonUnsigned       Reason = "unsigned"           // no manifest found
	ReasonMalformed      Reason = "malformed envelope" // not DSSE/in-toto as expected, or bad encoding
	ReasonTooLarge       Reason = "envelope too large"
	ReasonUntrustedKey   Reason = "untrusted key"   // no signature by a trusted key id
	ReasonBadSignature   Reason = "bad signature"   // a trusted key id whose signature does not verify
	ReasonDigestMismatch Reason = "digest mismatch" // the subject is not this file/program
	ReasonWrongRole      Reason = "wrong role"
	ReasonWrongType      Reason = "wrong predicate type"
	ReasonUnreadable     Reason = "unreadable"
)

// VerifyError is a refusal. Every verification error in this package is
// one, so callers (the gatekeeper, the audit log) can record the reason.
type VerifyError struct {
	Reason Reason
	Detail string
}

func (e *VerifyError) Error() string {
	if e.Detail == "" {
		return string(e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.Reason, e.Detail)
}

func refuse(r Reason, format string, args ...any) error {
	return &VerifyError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}
