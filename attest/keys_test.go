package attest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// seedKey is a deterministic test-only key: the same seed, the same key,
// the same signatures.
func testSeedKey(t testing.TB, seed byte) *PrivateKey {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return &PrivateKey{Key: priv, ID: KeyID(priv.Public().(ed25519.PublicKey))}
}

func TestKeyIDIsSHA256OfPKIXDER(t *testing.T) {
	k := testSeedKey(t, 1)
	pub := k.Key.Public().(ed25519.PublicKey)
	// RFC 8410 SubjectPublicKeyInfo for Ed25519: a fixed 12-byte prefix
	// and the 32 key bytes, written out here rather than via x509.
	prefix, _ := hex.DecodeString("302a300506032b6570032100")
	sum := sha256.Sum256(append(prefix, pub...))
	if want := hex.EncodeToString(sum[:]); KeyID(pub) != want {
		t.Fatalf("KeyID = %s, want %s", KeyID(pub), want)
	}
	if k.Public().ID != KeyID(pub) || !bytes.Equal(k.Public().Key, pub) {
		t.Fatalf("Public() = %+v", k.Public())
	}
	for _, bad := range []ed25519.PublicKey{nil, pub[:31], append(bytes.Clone(pub), 0)} {
		if id := KeyID(bad); id != "" {
			t.Errorf("KeyID(%d bytes) = %q, want empty", len(bad), id)
		}
	}
	// A stale ID is not copied to the public key.
	forged := &PrivateKey{Key: k.Key, ID: strings.Repeat("0", 64)}
	if forged.Public().ID != k.ID {
		t.Errorf("Public() copied a forged ID")
	}
}

func TestGenerateKey(t *testing.T) {
	a, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == b.ID || len(a.ID) != 64 || a.ID != KeyID(a.Key.Public().(ed25519.PublicKey)) {
		t.Fatalf("ids %s %s", a.ID, b.ID)
	}
}

func TestWriteKeyPair(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "release")
	k := testSeedKey(t, 2)
	if err := WriteKeyPair(prefix, k); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path    string
		mode    os.FileMode
		pemType string
	}{
		{prefix + ".key", 0o600, "PRIVATE KEY"},
		{prefix + ".pub", 0o644, "PUBLIC KEY"},
	} {
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != f.mode {
			t.Errorf("%s: mode %04o, want %04o", f.path, fi.Mode().Perm(), f.mode)
		}
		b, _ := os.ReadFile(f.path)
		block, rest := pem.Decode(b)
		if block == nil || block.Type != f.pemType || len(bytes.TrimSpace(rest)) != 0 {
			t.Errorf("%s: not one PEM %q block: %q", f.path, f.pemType, b)
		}
	}
	priv, err := LoadPrivateKey(prefix + ".key")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := LoadPublicKey(prefix + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if !priv.Key.Equal(k.Key) || priv.ID != k.ID || pub.ID != k.ID || !pub.Key.Equal(k.Key.Public()) {
		t.Fatalf("round trip: %s %s, want %s", priv.ID, pub.ID, k.ID)
	}

	// Never overwrite, and leave nothing behind when refusing.
	before, _ := os.ReadFile(prefix + ".key")
	if err := WriteKeyPair(prefix, testSeedKey(t, 3)); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("overwriting an existing pair: err = %v, want ErrExist", err)
	}
	if after, _ := os.ReadFile(prefix + ".key"); !bytes.Equal(before, after) {
		t.Fatal("existing key overwritten")
	}
	// Only the .pub exists: the .key created first must be removed again.
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other+".pub", []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyPair(other, testSeedKey(t, 3)); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("err = %v, want ErrExist", err)
	}
	if _, err := os.Stat(other + ".key"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("half-written pair left a .key behind (stat: %v)", err)
	}
	if b, _ := os.ReadFile(other + ".pub"); string(b) != "keep" {
		t.Fatalf("existing .pub changed: %q", b)
	}
}

func TestLoadPrivateKeyPermissions(t *testing.T) {
	k := testSeedKey(t, 4)
	pemBytes, err := MarshalPrivateKeyPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o644, false},
		{0o640, false},
		{0o604, false},
		{0o660, false},
		{0o601, false},
	} {
		path := filepath.Join(t.TempDir(), "k.key")
		if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadPrivateKey(path)
		if tc.ok && err != nil {
			t.Errorf("mode %04o: %v", tc.mode, err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "too open")) {
			t.Errorf("mode %04o: err = %v, want permissions too open", tc.mode, err)
		}
	}
	if _, err := LoadPrivateKey(filepath.Join(t.TempDir(), "missing.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing key: err = %v, want ErrNotExist (state.Init relies on it)", err)
	}
	if _, err := LoadPrivateKey(t.TempDir()); err == nil {
		t.Error("a directory loaded as a key")
	}
	big := filepath.Join(t.TempDir(), "big.key")
	os.WriteFile(big, append(pemBytes, bytes.Repeat([]byte("\n"), MaxKeyFileSize)...), 0o600)
	if _, err := LoadPrivateKey(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized key file: err = %v", err)
	}
}

func TestParseKeyRefusals(t *testing.T) {
	k := testSeedKey(t, 5)
	privPEM, _ := MarshalPrivateKeyPEM(k)
	pubPEM, _ := MarshalPublicKeyPEM(k.Public())

	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPubDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	ecdsaPriv := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})
	ecdsaPub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecPubDER})
	rsaPriv := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rsaDER})

	privBlock, _ := pem.Decode(privPEM)
	pubBlock, _ := pem.Decode(pubPEM)
	derTrailing := func(typ string, der []byte) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: append(bytes.Clone(der), 0x05, 0x00)})
	}
	withHeader := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: privBlock.Bytes})

	for _, tc := range []struct {
		name    string
		private bool
		in      []byte
		want    string // substring of the error
	}{
		{"ecdsa private", true, ecdsaPriv, "unknown algorithm ECDSA"},
		{"rsa private", true, rsaPriv, "unknown algorithm RSA"},
		{"ecdsa public", false, ecdsaPub, "unknown algorithm ECDSA"},
		{"public as private", true, pubPEM, `PEM type "PUBLIC KEY"`},
		{"private as public", false, privPEM, `PEM type "PRIVATE KEY"`},
		{"EC PRIVATE KEY type", true, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: privBlock.Bytes}), "PEM type"},
		{"private trailing garbage", true, append(bytes.Clone(privPEM), "garbage"...), "trailing data"},
		{"public trailing garbage", false, append(bytes.Clone(pubPEM), "garbage"...), "trailing data"},
		{"two public keys", false, append(bytes.Clone(pubPEM), pubPEM...), "trailing data"},
		{"private DER trailing", true, derTrailing("PRIVATE KEY", privBlock.Bytes), "trailing data"},
		{"public DER trailing", false, derTrailing("PUBLIC KEY", pubBlock.Bytes), "trailing data"},
		{"headers", true, withHeader, "headers"},
		{"empty private", true, nil, "no PEM block"},
		{"empty public", false, nil, "no PEM block"},
		{"not PEM", false, []byte("ssh-ed25519 AAAA"), "no PEM block"},
		{"garbage DER", false, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}}), "DER"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.private {
				_, err = ParsePrivateKeyPEM(tc.in)
			} else {
				_, err = ParsePublicKeyPEM(tc.in)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	// Leading and trailing whitespace is not garbage.
	if _, err := ParsePublicKeyPEM(append([]byte("\n"), append(pubPEM, "\n\n"...)...)); err != nil {
		t.Fatal(err)
	}
}

func TestTrust(t *testing.T) {
	a, b := testSeedKey(t, 6).Public(), testSeedKey(t, 7).Public()
	var nilTrust *Trust
	for name, tr := range map[string]*Trust{"nil": nilTrust, "empty": NewTrust(), "nil keys": NewTrust(nil, &PublicKey{})} {
		if _, ok := tr.Lookup(a.ID); ok {
			t.Errorf("%s trust trusts %s", name, a.ID)
		}
		if _, ok := tr.Lookup(""); ok {
			t.Errorf("%s trust trusts the empty id", name)
		}
		if len(tr.IDs()) != 0 || tr.Len() != 0 {
			t.Errorf("%s trust has ids %v", name, tr.IDs())
		}
	}
	// The id is recomputed: a PublicKey claiming another id is trusted
	// under its own.
	forged := &PublicKey{Key: b.Key, ID: a.ID}
	tr := NewTrust(a, forged, nil)
	if k, ok := tr.Lookup(a.ID); !ok || !k.Key.Equal(a.Key) {
		t.Fatalf("Lookup(a) = %v, %v", k, ok)
	}
	if k, ok := tr.Lookup(b.ID); !ok || !k.Key.Equal(b.Key) {
		t.Fatalf("Lookup(b) = %v, %v", k, ok)
	}
	if ids := tr.IDs(); len(ids) != 2 || !slices.IsSorted(ids) {
		t.Fatalf("IDs = %v", ids)
	}

	dir := t.TempDir()
	pa, pb := filepath.Join(dir, "a.pub"), filepath.Join(dir, "b.pub")
	for p, k := range map[string]*PublicKey{pa: a, pb: b} {
		pemBytes, _ := MarshalPublicKeyPEM(k)
		os.WriteFile(p, pemBytes, 0o644)
	}
	lt, err := LoadTrust(pa, pb)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(lt.IDs(), tr.IDs()) {
		t.Fatalf("LoadTrust ids %v, want %v", lt.IDs(), tr.IDs())
	}
	if _, err := LoadTrust(pa, filepath.Join(dir, "missing.pub")); err == nil {
		t.Fatal("LoadTrust with a missing key succeeded")
	}
}
