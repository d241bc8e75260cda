package attest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"time"

	"github.com/tracebroker/tracebroker/internal/regfile"
)

// MaxArtifactSize bounds what FileDigest reads: the broker, a plugin, a
// collector or a policy is megabytes, not gigabytes.
const MaxArtifactSize = 1 << 30

// SigSuffix is appended to a file's path to name its manifest.
const SigSuffix = ".sig"

// FileDigest streams the file (never holding it in memory) and refuses
// anything that is not a regular file or is over MaxArtifactSize.
func FileDigest(path string) (string, error) {
	return fileDigestBounded(path, MaxArtifactSize)
}

func fileDigestBounded(path string, limit int64) (string, error) {
	f, _, err := regfile.Open(path)
	if err != nil {
		return "", fmt.Errorf("attest: digest: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, limit+1))
	if err != nil {
		return "", fmt.Errorf("attest: digest %s: %w", path, err)
	}
	if n > limit {
		return "", fmt.Errorf("attest: digest %s: larger than %d bytes", path, limit)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// validRole reports whether r is one of Roles.
func validRole(r Role) bool { return slices.Contains(Roles, r) }

// SignArtifact writes path+".sig" by rename from a temporary file in the
// same directory, so a reader sees the old manifest or the new one,
// never half of one.
func SignArtifact(path string, key *PrivateKey, p ArtifactPredicate) (sigPath string, err error) {
	if !validRole(p.Role) {
		return "", fmt.Errorf("attest: sign: role %q is not one of %v", p.Role, Roles)
	}
	digest, err := FileDigest(path)
	if err != nil {
		return "", err
	}
	base := filepath.Base(path)
	if p.Name == "" {
		p.Name = base
	}
	if p.SignedAt.IsZero() {
		p.SignedAt = time.Now()
	}
	p.SignedAt = p.SignedAt.UTC().Truncate(time.Second)
	env, err := Sign([]Subject{{Name: base, Digest: digest}}, ArtifactPredicateType, p, key)
	if err != nil {
		return "", err
	}
	sigPath = path + SigSuffix
	if err := regfile.WriteAtomic(sigPath, env, 0o644, false); err != nil {
		return "", fmt.Errorf("attest: writing %s: %w", sigPath, err)
	}
	return sigPath, nil
}

// WriteNew writes an envelope (an attestation) to a file that must not
// exist yet, completely or not at all: a record is never overwritten.
func WriteNew(path string, data []byte) error {
	return regfile.WriteAtomic(path, data, 0o644, true)
}

// VerifyArtifact always returns the Identity, refusal or not: an unsigned
// or refused file is a fact for the gatekeeper (Path, Digest, Verified
// false, Reason the refusal's Reason) as well as an error (*VerifyError).
// A missing manifest is ReasonUnsigned. sigPath "" means path+".sig".
// role "" accepts any role.
func VerifyArtifact(path, sigPath string, trust *Trust, role Role) (Identity, error) {
	if sigPath == "" {
		sigPath = path + SigSuffix
	}
	id := Identity{Path: path}
	fail := func(err error) (Identity, error) {
		id.Verified = false
		var ve *VerifyError
		if errors.As(err, &ve) {
			id.Reason = string(ve.Reason)
		} else {
			id.Reason = string(ReasonUnreadable)
			err = refuse(ReasonUnreadable, "%v", err)
		}
		return id, err
	}
	digest, err := FileDigest(path)
	if err != nil {
		return fail(refuse(ReasonUnreadable, "%v", err))
	}
	id.Digest = digest
	env, err := readEnvelope(sigPath, "manifest")
	if err != nil {
		return fail(err)
	}
	got, err := VerifyManifest(env, digest, trust, role)
	if err != nil {
		return fail(err)
	}
	got.Path = path
	return got, nil
}

// VerifyBuiltIn verifies the manifest in dir/file of an artifact
// compiled into this binary (a collector, the kernel gate): its bytes
// are what digest says, so only the manifest is read. Errors begin with
// what and end with howto, which tells an operator how to sign it.
func VerifyBuiltIn(what, dir, file, digest string, trust *Trust, role Role, howto string) (Identity, error) {
	if dir == "" {
		return Identity{}, fmt.Errorf("%s: no manifest directory configured: %s", what, howto)
	}
	path := filepath.Join(dir, file)
	env, err := regfile.ReadFile(path, MaxEnvelopeSize)
	if errors.Is(err, fs.ErrNotExist) {
		return Identity{}, fmt.Errorf("%s: not signed (no %s): %s", what, path, howto)
	}
	if err != nil {
		return Identity{}, fmt.Errorf("%s: manifest: %w", what, err)
	}
	id, err := VerifyManifest(env, digest, trust, role)
	if err != nil {
		var ve *VerifyError
		if errors.As(err, &ve) && ve.Reason == ReasonDigestMismatch {
			return Identity{}, fmt.Errorf("%s: manifest %s: %w (this build's %s differs from the one signed: %s)", what, path, err, what, howto)
		}
		return Identity{}, fmt.Errorf("%s: manifest %s: %w", what, path, err)
	}
	return id, nil
}

// VerifyManifest is VerifyArtifact for a digest already known (Measure
// caches digests). Only the subject's digest is compared, not its name:
// the file may have been renamed when installed. A manifest has exactly
// one subject, a known role, a name and a signing time; anything else is
// malformed. On refusal the Identity has Digest and Reason.
func VerifyManifest(envelope []byte, digest string, trust *Trust, role Role) (Identity, error) {
	id := Identity{Digest: digest}
	fail := func(err error) (Identity, error) {
		var ve *VerifyError
		if !errors.As(err, &ve) {
			ve = &VerifyError{Reason: ReasonMalformed, Detail: err.Error()}
			err = ve
		}
		id.Reason = string(ve.Reason)
		return id, err
	}
	if role != "" && !validRole(role) {
		return fail(refuse(ReasonWrongRole, "no such role %q (roles: %v)", role, Roles))
	}
	if !isDigest(digest) {
		return fail(refuse(ReasonDigestMismatch, "%q is not a lowercase hex SHA-256", digest))
	}
	var p ArtifactPredicate
	subjects, signer, err := Verify(envelope, trust, ArtifactPredicateType, &p)
	if err != nil {
		return fail(err)
	}
	if len(subjects) != 1 {
		return fail(refuse(ReasonMalformed, "an artifact manifest has one subject, this has %d", len(subjects)))
	}
	if subjects[0].Digest != digest {
		return fail(refuse(ReasonDigestMismatch, "the manifest is for %s (%s), the file is %s", subjects[0].Name, subjects[0].Digest, digest))
	}
	switch {
	case !validRole(p.Role):
		return fail(refuse(ReasonMalformed, "predicate role %q is not one of %v", p.Role, Roles))
	case p.Name == "":
		return fail(refuse(ReasonMalformed, "predicate has no name"))
	case p.SignedAt.IsZero():
		return fail(refuse(ReasonMalformed, "predicate has no signed_at"))
	}
	if role != "" && p.Role != role {
		return fail(refuse(ReasonWrongRole, "signed as %s, wanted %s", p.Role, role))
	}
	return Identity{
		Digest:   digest,
		Signer:   signer,
		Role:     p.Role,
		Name:     p.Name,
		Version:  p.Version,
		Verified: true,
	}, nil
}

// ReadSigned reads the file at path once, at most limit bytes, and
// verifies its manifest (sigPath; "" is path+".sig") against exactly the
// bytes it returns: what the caller parses and loads is what was
// verified, whatever happens to the file afterwards. The Identity is
// returned as VerifyArtifact returns it, refusal or not; the data is
// returned with every refusal but ReasonUnreadable and ReasonTooLarge of
// the file itself, so that the caller can judge an unsigned file.
func ReadSigned(path, sigPath string, limit int64, trust *Trust, role Role) ([]byte, Identity, error) {
	if sigPath == "" {
		sigPath = path + SigSuffix
	}
	id := Identity{Path: path}
	data, err := regfile.ReadFile(path, limit)
	if err != nil {
		var se *regfile.TooLargeError
		reason := ReasonUnreadable
		if errors.As(err, &se) {
			reason = ReasonTooLarge
		}
		id.Reason = string(reason)
		return nil, id, refuse(reason, "%v", err)
	}
	sum := sha256.Sum256(data)
	id.Digest = hex.EncodeToString(sum[:])
	env, err := readEnvelope(sigPath, "manifest")
	if err != nil {
		id.Reason = string(err.(*VerifyError).Reason)
		return data, id, err
	}
	got, err := VerifyManifest(env, id.Digest, trust, role)
	got.Path = path
	return data, got, err
}

// readEnvelope reads a signature file (what names it in errors:
// "manifest", "signature"), at most MaxEnvelopeSize bytes. Its errors are
// *VerifyError: ReasonUnsigned when there is none, ReasonTooLarge,
// ReasonUnreadable.
func readEnvelope(path, what string) ([]byte, error) {
	env, err := regfile.ReadFile(path, MaxEnvelopeSize)
	if err == nil {
		return env, nil
	}
	var se *regfile.TooLargeError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, refuse(ReasonUnsigned, "no %s %s", what, path)
	case errors.As(err, &se):
		return nil, refuse(ReasonTooLarge, "%v", err)
	}
	return nil, refuse(ReasonUnreadable, "%s: %v", what, err)
}
