package attest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/tracebroker/tracebroker/internal/regfile"
)

// MaxKeyFileSize bounds a key file read: a PEM Ed25519 key is about a
// hundred bytes, so anything near this is not a key.
const MaxKeyFileSize = 64 << 10

const (
	pemPrivateKey = "PRIVATE KEY" // PKCS#8, as openssl genpkey writes it
	pemPublicKey  = "PUBLIC KEY"  // PKIX SubjectPublicKeyInfo
)

// GenerateKey makes a new signing key from the system's CSPRNG.
func GenerateKey() (*PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("attest: generating key: %w", err)
	}
	return &PrivateKey{Key: priv, ID: KeyID(pub)}, nil
}

// KeyID names a key by the hash of its PKIX DER, the same bytes the .pub
// file carries, so anyone can recompute it with openssl
// (openssl pkey -pubin -outform DER | sha256sum). It is "" for a value
// that is not an Ed25519 public key, and "" is never trusted.
func KeyID(pub ed25519.PublicKey) string {
	if len(pub) != ed25519.PublicKeySize {
		return ""
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// Public derives the verification key; its ID is recomputed from the
// key rather than copied, so a PrivateKey with a stale ID cannot make a
// public key claim someone else's id.
func (k *PrivateKey) Public() *PublicKey {
	if k == nil || len(k.Key) != ed25519.PrivateKeySize {
		return nil
	}
	pub := k.Key.Public().(ed25519.PublicKey)
	return &PublicKey{Key: pub, ID: KeyID(pub)}
}

// signingID is the key id a signature by k is labelled with. A key whose
// ID field disagrees with its key material is refused: the label would
// make verifiers look up the wrong key.
func (k *PrivateKey) signingID() (string, error) {
	pub := k.Public()
	if pub == nil || pub.ID == "" {
		return "", errors.New("attest: not an Ed25519 private key")
	}
	if k.ID != "" && k.ID != pub.ID {
		return "", fmt.Errorf("attest: private key ID %q is not the id of its key (%s)", k.ID, pub.ID)
	}
	return pub.ID, nil
}

// MarshalPrivateKeyPEM encodes k as PKCS#8 PEM, the form openssl reads.
func MarshalPrivateKeyPEM(k *PrivateKey) ([]byte, error) {
	if k == nil || len(k.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("attest: not an Ed25519 private key")
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.Key)
	if err != nil {
		return nil, fmt.Errorf("attest: encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// MarshalPublicKeyPEM encodes p as PKIX PEM, the form openssl reads.
func MarshalPublicKeyPEM(p *PublicKey) ([]byte, error) {
	if p == nil || len(p.Key) != ed25519.PublicKeySize {
		return nil, errors.New("attest: not an Ed25519 public key")
	}
	der, err := x509.MarshalPKIXPublicKey(p.Key)
	if err != nil {
		return nil, fmt.Errorf("attest: encoding public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: der}), nil
}

// WriteKeyPair never overwrites (O_EXCL): replacing a key by accident
// orphans everything it signed. Either both files are written or
// neither is left behind.
func WriteKeyPair(prefix string, k *PrivateKey) (err error) {
	privPEM, err := MarshalPrivateKeyPEM(k)
	if err != nil {
		return err
	}
	pubPEM, err := MarshalPublicKeyPEM(k.Public())
	if err != nil {
		return err
	}
	var created []string
	defer func() {
		if err != nil {
			for _, p := range created {
				os.Remove(p)
			}
		}
	}()
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{prefix + ".key", privPEM, 0o600},
		{prefix + ".pub", pubPEM, 0o644},
	} {
		fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
		if err != nil {
			return fmt.Errorf("attest: writing key: %w", err)
		}
		created = append(created, f.path)
		// The umask may only have removed bits; set the mode exactly.
		err = fh.Chmod(f.mode)
		if err == nil {
			_, err = fh.Write(f.data)
		}
		if err == nil {
			err = fh.Sync()
		}
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("attest: writing key %s: %w", f.path, err)
		}
	}
	return nil
}

// decodePEM accepts exactly one block of the wanted type, without
// headers (an encrypted legacy PEM has them) and with nothing but
// whitespace around it, holding exactly one DER value.
func decodePEM(b []byte, want string) ([]byte, error) {
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if block.Type != want {
		return nil, fmt.Errorf("PEM type %q, want %q", block.Type, want)
	}
	if len(block.Headers) != 0 {
		return nil, errors.New("PEM headers are not supported (encrypted key?)")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("trailing data after the PEM block")
	}
	var v asn1.RawValue
	tail, err := asn1.Unmarshal(block.Bytes, &v)
	if err != nil {
		return nil, fmt.Errorf("bad DER: %w", err)
	}
	if len(tail) != 0 {
		return nil, errors.New("trailing data after the DER value")
	}
	return block.Bytes, nil
}

// ParsePrivateKeyPEM refuses every algorithm but Ed25519: the format,
// the key ids and the verifiers know no other.
func ParsePrivateKeyPEM(b []byte) (*PrivateKey, error) {
	der, err := decodePEM(b, pemPrivateKey)
	if err != nil {
		return nil, fmt.Errorf("attest: private key: %w", err)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("attest: private key: %w", err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("attest: private key: unknown algorithm %s, only Ed25519 keys are supported", algName(key))
	}
	pub := priv.Public().(ed25519.PublicKey)
	return &PrivateKey{Key: priv, ID: KeyID(pub)}, nil
}

// ParsePublicKeyPEM refuses every algorithm but Ed25519 (see
// ParsePrivateKeyPEM).
func ParsePublicKeyPEM(b []byte) (*PublicKey, error) {
	der, err := decodePEM(b, pemPublicKey)
	if err != nil {
		return nil, fmt.Errorf("attest: public key: %w", err)
	}
	key, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("attest: public key: %w", err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("attest: public key: unknown algorithm %s, only Ed25519 keys are supported", algName(key))
	}
	return &PublicKey{Key: pub, ID: KeyID(pub)}, nil
}

func algName(key any) string {
	switch fmt.Sprintf("%T", key) {
	case "*ecdsa.PrivateKey", "*ecdsa.PublicKey":
		return "ECDSA"
	case "*rsa.PrivateKey", "*rsa.PublicKey":
		return "RSA"
	case "*ecdh.PrivateKey", "*ecdh.PublicKey":
		return "ECDH"
	}
	return fmt.Sprintf("%T", key)
}

// LoadPrivateKey refuses a key file others can read, as ssh does: a
// signing key that leaked is a key anyone can sign releases with. Errors
// from opening the file wrap the os error (errors.Is(err,
// fs.ErrNotExist) works).
func LoadPrivateKey(path string) (*PrivateKey, error) {
	f, fi, err := regfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("attest: private key: %w", err)
	}
	defer f.Close()
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("attest: private key %s: permissions %04o are too open (it must not be accessible by group or others: chmod 600)", path, perm)
	}
	b, err := regfile.ReadAll(f, MaxKeyFileSize)
	if err != nil {
		return nil, fmt.Errorf("attest: private key: %w", err)
	}
	k, err := ParsePrivateKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return k, nil
}

// LoadPublicKey reads a .pub file (bounded).
func LoadPublicKey(path string) (*PublicKey, error) {
	b, err := regfile.ReadFile(path, MaxKeyFileSize)
	if err != nil {
		return nil, fmt.Errorf("attest: public key: %w", err)
	}
	k, err := ParsePublicKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return k, nil
}

// Trust is the set of keys a verifier accepts signatures from, by key
// id. Ids are recomputed from the keys, never taken from a caller or an
// envelope. A nil or empty Trust trusts nothing.
type Trust struct {
	keys map[string]*PublicKey
}

// NewTrust ignores nil keys and values that are not Ed25519 public keys,
// so a zero PublicKey can never be trusted under the empty id.
func NewTrust(keys ...*PublicKey) *Trust {
	t := &Trust{keys: make(map[string]*PublicKey)}
	for _, k := range keys {
		if k == nil {
			continue
		}
		id := KeyID(k.Key)
		if id == "" {
			continue
		}
		t.keys[id] = &PublicKey{Key: bytes.Clone(k.Key), ID: id}
	}
	return t
}

// LoadTrust fails on the first unreadable key rather than trusting a
// smaller set than the operator configured without saying so.
func LoadTrust(paths ...string) (*Trust, error) {
	keys := make([]*PublicKey, 0, len(paths))
	for _, p := range paths {
		k, err := LoadPublicKey(p)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return NewTrust(keys...), nil
}

// Lookup finds a trusted key by id; the empty id is never trusted.
func (t *Trust) Lookup(id string) (*PublicKey, bool) {
	if t == nil || id == "" {
		return nil, false
	}
	k, ok := t.keys[id]
	return k, ok
}

// IDs lists the trusted key ids, sorted, for messages and audit.
func (t *Trust) IDs() []string {
	if t == nil {
		return nil
	}
	ids := make([]string, 0, len(t.keys))
	for id := range t.keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Len is how many keys are trusted (0 verifies nothing).
func (t *Trust) Len() int {
	if t == nil {
		return 0
	}
	return len(t.keys)
}
