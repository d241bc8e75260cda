package attest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeTestFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFileDigest(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("tracebroker"), 100000)
	p := writeTestFile(t, dir, "f", data)
	sum := sha256.Sum256(data)
	if d, err := FileDigest(p); err != nil || d != hex.EncodeToString(sum[:]) {
		t.Fatalf("FileDigest = %s, %v", d, err)
	}
	if _, err := FileDigest(dir); err == nil {
		t.Error("digest of a directory")
	}
	if _, err := FileDigest(filepath.Join(dir, "missing")); err == nil {
		t.Error("digest of a missing file")
	}
	// The bound, with a small limit (the real one is a gigabyte).
	if _, err := fileDigestBounded(p, int64(len(data))-1); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: err = %v", err)
	}
	if d, err := fileDigestBounded(p, int64(len(data))); err != nil || d != hex.EncodeToString(sum[:]) {
		t.Errorf("file at the limit: %s, %v", d, err)
	}
}

func TestSignVerifyArtifact(t *testing.T) {
	k := testSeedKey(t, 30)
	trust := NewTrust(k.Public())
	dir := t.TempDir()
	p := writeTestFile(t, dir, "collector-openat", []byte("\x7fELF a collector"))
	before := time.Now().UTC().Truncate(time.Second)
	sigPath, err := SignArtifact(p, k, ArtifactPredicate{Role: RoleCollector, Version: "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	if sigPath != p+".sig" {
		t.Fatalf("sigPath %s", sigPath)
	}
	if fi, err := os.Stat(sigPath); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("sig file: %v %v", fi, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Fatalf("temporary file left behind: %v", ents)
	}
	digest, _ := FileDigest(p)
	for _, role := range []Role{"", RoleCollector} {
		id, err := VerifyArtifact(p, sigPath, trust, role)
		if err != nil {
			t.Fatalf("role %q: %v", role, err)
		}
		want := Identity{Path: p, Digest: digest, Signer: k.ID, Role: RoleCollector, Name: "collector-openat", Version: "1.2.3", Verified: true}
		if id != want {
			t.Fatalf("identity %+v, want %+v", id, want)
		}
	}
	// sigPath "" is path+".sig".
	if id, err := VerifyArtifact(p, "", trust, RoleCollector); err != nil || !id.Verified {
		t.Fatalf("default sig path: %+v %v", id, err)
	}
	// SignedAt defaulted to now, UTC, whole seconds.
	var pred ArtifactPredicate
	env, _ := os.ReadFile(sigPath)
	if _, _, err := Verify(env, trust, ArtifactPredicateType, &pred); err != nil {
		t.Fatal(err)
	}
	if pred.SignedAt.Location() != time.UTC || pred.SignedAt.Nanosecond() != 0 ||
		pred.SignedAt.Before(before) || pred.SignedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("signed_at %v", pred.SignedAt)
	}
	// Re-signing replaces the manifest.
	if _, err := SignArtifact(p, k, ArtifactPredicate{Role: RoleCollector, Name: "renamed"}); err != nil {
		t.Fatal(err)
	}
	if id, _ := VerifyArtifact(p, "", trust, ""); id.Name != "renamed" {
		t.Fatalf("re-signed identity %+v", id)
	}
	// A renamed file keeps its identity (the digest is the identity).
	moved := filepath.Join(dir, "installed")
	os.Rename(p, moved)
	if id, err := VerifyArtifact(moved, sigPath, trust, ""); err != nil || !id.Verified {
		t.Fatalf("renamed file: %+v %v", id, err)
	}
}

func TestSignArtifactRefusals(t *testing.T) {
	k := testSeedKey(t, 31)
	dir := t.TempDir()
	p := writeTestFile(t, dir, "f", []byte("x"))
	for _, role := range []Role{"", "admin", "Broker"} {
		if _, err := SignArtifact(p, k, ArtifactPredicate{Role: role}); err == nil {
			t.Errorf("signed with role %q", role)
		}
	}
	if _, err := SignArtifact(filepath.Join(dir, "missing"), k, ArtifactPredicate{Role: RoleBroker}); err == nil {
		t.Error("signed a missing file")
	}
	if _, err := os.Stat(p + ".sig"); err == nil {
		t.Error("a refused signing wrote a manifest")
	}
}

func TestVerifyArtifactRefusals(t *testing.T) {
	k, other := testSeedKey(t, 32), testSeedKey(t, 33)
	trust := NewTrust(k.Public())
	content := []byte("#!/bin/sh\necho the broker\n")

	// sign writes a file and its manifest in a fresh directory.
	sign := func(t *testing.T, key *PrivateKey, role Role) (path, sig string) {
		t.Helper()
		d := t.TempDir()
		path = writeTestFile(t, d, "tracebroker", content)
		sig, err := SignArtifact(path, key, ArtifactPredicate{Role: role, Version: "1"})
		if err != nil {
			t.Fatal(err)
		}
		return path, sig
	}
	// crafted signs a manifest by hand, for predicates SignArtifact
	// would not write.
	crafted := func(t *testing.T, subjects []Subject, pred any) (path, sig string) {
		t.Helper()
		d := t.TempDir()
		path = writeTestFile(t, d, "tracebroker", content)
		env, err := Sign(subjects, ArtifactPredicateType, pred, k)
		if err != nil {
			t.Fatal(err)
		}
		return path, writeTestFile(t, d, "tracebroker.sig", env)
	}
	contentDigest := testHex(string(content))
	signedAt := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	cases := []struct {
		name  string
		setup func(t *testing.T) (path, sig string)
		role  Role
		want  Reason
	}{
		{"control: verifies", func(t *testing.T) (string, string) { return sign(t, k, RoleBroker) }, RoleBroker, ""},
		{"flipped byte in the file", func(t *testing.T) (string, string) {
			p, s := sign(t, k, RoleBroker)
			b, _ := os.ReadFile(p)
			b[3] ^= 1
			os.WriteFile(p, b, 0o755)
			return p, s
		}, RoleBroker, ReasonDigestMismatch},
		{"appended byte in the file", func(t *testing.T) (string, string) {
			p, s := sign(t, k, RoleBroker)
			os.WriteFile(p, append(bytes.Clone(content), 0), 0o755)
			return p, s
		}, "", ReasonDigestMismatch},
		{"flipped byte in the payload", func(t *testing.T) (string, string) {
			p, s := sign(t, k, RoleBroker)
			e := testDecodeEnv(t, readTestFile(t, s))
			pl, _ := base64.StdEncoding.DecodeString(e.Payload)
			i := bytes.Index(pl, []byte(`"broker"`)) + 1
			pl[i] = 'B' // still valid JSON: "Broker"
			e.Payload = base64.StdEncoding.EncodeToString(pl)
			os.WriteFile(s, testEncodeEnv(t, e), 0o644)
			return p, s
		}, "", ReasonBadSignature},
		{"flipped byte in the signature", func(t *testing.T) (string, string) {
			p, s := sign(t, k, RoleBroker)
			e := testDecodeEnv(t, readTestFile(t, s))
			sig, _ := base64.StdEncoding.DecodeString(e.Signatures[0].Sig)
			sig[0] ^= 1
			e.Signatures[0].Sig = base64.StdEncoding.EncodeToString(sig)
			os.WriteFile(s, testEncodeEnv(t, e), 0o644)
			return p, s
		}, RoleBroker, ReasonBadSignature},
		{"signed by another key", func(t *testing.T) (string, string) { return sign(t, other, RoleBroker) }, RoleBroker, ReasonUntrustedKey},
		{"wrong role", func(t *testing.T) (string, string) { return sign(t, k, RolePolicy) }, RoleBroker, ReasonWrongRole},
		{"asked for an unknown role", func(t *testing.T) (string, string) { return sign(t, k, RoleBroker) }, "root", ReasonWrongRole},
		{"truncated envelope", func(t *testing.T) (string, string) {
			p, s := sign(t, k, RoleBroker)
			b := readTestFile(t, s)
			os.WriteFile(s, b[:len(b)-10], 0o644)
			return p, s
		}, RoleBroker, ReasonMalformed},
		{"oversized envelope", func(t *testing.T) (string, string) {
			p, s := sign(t, k, RoleBroker)
			os.WriteFile(s, append(readTestFile(t, s), bytes.Repeat([]byte(" "), MaxEnvelopeSize)...), 0o644)
			return p, s
		}, RoleBroker, ReasonTooLarge},
		{"manifest for a different file", func(t *testing.T) (string, string) {
			p, _ := sign(t, k, RoleBroker)
			q := writeTestFile(t, filepath.Dir(p), "other", []byte("another program"))
			s, err := SignArtifact(q, k, ArtifactPredicate{Role: RoleBroker})
			if err != nil {
				t.Fatal(err)
			}
			return p, s
		}, RoleBroker, ReasonDigestMismatch},
		{"no manifest", func(t *testing.T) (string, string) {
			return writeTestFile(t, t.TempDir(), "f", content), ""
		}, "", ReasonUnsigned},
		{"manifest is a directory", func(t *testing.T) (string, string) {
			p := writeTestFile(t, t.TempDir(), "f", content)
			os.Mkdir(p+".sig", 0o755)
			return p, ""
		}, "", ReasonUnreadable},
		{"file missing", func(t *testing.T) (string, string) {
			return filepath.Join(t.TempDir(), "f"), ""
		}, "", ReasonUnreadable},
		{"program attestation, not a manifest", func(t *testing.T) (string, string) {
			d := t.TempDir()
			p := writeTestFile(t, d, "f", content)
			env, _ := Sign([]Subject{{Name: "f", Digest: contentDigest}}, ProgramPredicateType, ProgramPredicate{}, k)
			return p, writeTestFile(t, d, "f.sig", env)
		}, "", ReasonWrongType},
		{"two subjects", func(t *testing.T) (string, string) {
			return crafted(t, []Subject{{"a", contentDigest}, {"b", testDigestB}}, ArtifactPredicate{Role: RoleBroker, Name: "x", SignedAt: signedAt})
		}, "", ReasonMalformed},
		{"unknown role in predicate", func(t *testing.T) (string, string) {
			return crafted(t, []Subject{{"a", contentDigest}}, ArtifactPredicate{Role: "root", Name: "x", SignedAt: signedAt})
		}, "", ReasonMalformed},
		{"no name", func(t *testing.T) (string, string) {
			return crafted(t, []Subject{{"a", contentDigest}}, ArtifactPredicate{Role: RoleBroker, SignedAt: signedAt})
		}, "", ReasonMalformed},
		{"no signed_at", func(t *testing.T) (string, string) {
			return crafted(t, []Subject{{"a", contentDigest}}, map[string]any{"role": "broker", "name": "x"})
		}, "", ReasonMalformed},
		{"extra claim in predicate", func(t *testing.T) (string, string) {
			return crafted(t, []Subject{{"a", contentDigest}}, map[string]any{"role": "broker", "name": "x", "signed_at": signedAt, "only_on": "host1"})
		}, "", ReasonMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path, sig := tc.setup(t)
			id, err := VerifyArtifact(path, sig, trust, tc.role)
			if tc.want == "" {
				if err != nil || !id.Verified || id.Reason != "" {
					t.Fatalf("%+v, %v", id, err)
				}
				return
			}
			var ve *VerifyError
			if !errors.As(err, &ve) || ve.Reason != tc.want {
				t.Fatalf("err = %v, want reason %q", err, tc.want)
			}
			if id.Verified || id.Reason != string(tc.want) || id.Path != path || id.Signer != "" || id.Role != "" {
				t.Fatalf("identity on refusal: %+v", id)
			}
			if d, derr := FileDigest(path); derr == nil && id.Digest != d {
				t.Fatalf("identity digest %q, file is %q", id.Digest, d)
			}
		})
	}
}

func TestVerifyManifest(t *testing.T) {
	k := testSeedKey(t, 34)
	trust := NewTrust(k.Public())
	p := writeTestFile(t, t.TempDir(), "f", []byte("policy"))
	sig, err := SignArtifact(p, k, ArtifactPredicate{Role: RolePolicy})
	if err != nil {
		t.Fatal(err)
	}
	env := readTestFile(t, sig)
	d, _ := FileDigest(p)
	id, err := VerifyManifest(env, d, trust, RolePolicy)
	if err != nil || !id.Verified || id.Digest != d || id.Path != "" || id.Signer != k.ID {
		t.Fatalf("%+v %v", id, err)
	}
	for _, tc := range []struct {
		digest string
		want   Reason
	}{
		{testDigestA, ReasonDigestMismatch},
		{strings.ToUpper(d), ReasonDigestMismatch},
		{"", ReasonDigestMismatch},
	} {
		id, err := VerifyManifest(env, tc.digest, trust, "")
		if testReason(err) != tc.want || id.Verified || id.Reason != string(tc.want) || id.Digest != tc.digest {
			t.Errorf("digest %q: %+v %v", tc.digest, id, err)
		}
	}
}

func readTestFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
