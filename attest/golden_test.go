package attest

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The golden manifest pins the format: a manifest signed by a released
// tracebroker must keep verifying, and the same inputs must keep giving
// the same bytes. Regenerate (only for a deliberate format change) with
//
//	go test ./attest/ -run TestGoldenManifest -update-attest-golden
var updateGolden = flag.Bool("update-attest-golden", false, "rewrite attest/testdata golden files")

const (
	goldenKey      = "testdata/test-only-release.key" // TEST ONLY: the private key is public
	goldenPub      = "testdata/test-only-release.pub"
	goldenArtifact = "testdata/golden-artifact.txt"
	goldenSig      = "testdata/golden-artifact.txt.sig"
)

var goldenPredicate = ArtifactPredicate{
	Role:     RoleCollector,
	Name:     "golden",
	Version:  "1.0.0",
	SignedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
}

func TestGoldenManifest(t *testing.T) {
	if *updateGolden {
		k := testSeedKey(t, 0x42)
		os.Remove(goldenKey)
		os.Remove(goldenPub)
		if err := WriteKeyPair("testdata/test-only-release", k); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenArtifact, []byte("a file tracebroker signed, to pin the manifest format\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := SignArtifact(goldenArtifact, k, goldenPredicate); err != nil {
			t.Fatal(err)
		}
	}

	trust, err := LoadTrust(goldenPub)
	if err != nil {
		t.Fatal(err)
	}
	id, err := VerifyArtifact(goldenArtifact, goldenSig, trust, RoleCollector)
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{Path: goldenArtifact, Digest: id.Digest, Signer: trust.IDs()[0], Role: RoleCollector,
		Name: "golden", Version: "1.0.0", Verified: true}
	if id != want {
		t.Fatalf("identity %+v, want %+v", id, want)
	}

	// git keeps no 0600 mode: load the key from a private copy.
	b := readTestFile(t, goldenKey)
	priv := filepath.Join(t.TempDir(), "k.key")
	if err := os.WriteFile(priv, b, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != trust.IDs()[0] {
		t.Fatalf("golden key id %s, public key %s", k.ID, trust.IDs()[0])
	}
	env, err := Sign([]Subject{{Name: filepath.Base(goldenArtifact), Digest: id.Digest}}, ArtifactPredicateType, goldenPredicate, k)
	if err != nil {
		t.Fatal(err)
	}
	if golden := readTestFile(t, goldenSig); !bytes.Equal(env, golden) {
		t.Fatalf("the same inputs sign different bytes:\n got %s\nwant %s", env, golden)
	}
}
