package attest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// The envelope format is the standard one: tools that share no code with
// this package (Python's cryptography, openssl) verify what it signs,
// computing the DSSE PAE themselves, and it verifies what they sign.

// pyVerify is an independent DSSE + Ed25519 verifier: it finds the
// signature by the key id it computes from the PEM (sha256 of the DER
// SubjectPublicKeyInfo), builds the PAE from the DSSE spec, and verifies.
// It exits non-zero on any failure (InvalidSignature raises).
const pyVerify = `
import sys, json, base64, hashlib
from cryptography.hazmat.primitives.serialization import load_pem_public_key, Encoding, PublicFormat
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
env = json.load(open(sys.argv[1]))
pub = load_pem_public_key(open(sys.argv[2], "rb").read())
assert isinstance(pub, Ed25519PublicKey), type(pub)
keyid = hashlib.sha256(pub.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()
ptype = env["payloadType"].encode()
body = base64.b64decode(env["payload"], validate=True)
pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(body), body)
sigs = [s for s in env["signatures"] if s["keyid"] == keyid]
if not sigs:
    sys.exit("no signature by " + keyid)
pub.verify(base64.b64decode(sigs[0]["sig"], validate=True), pae)
st = json.loads(body)
print(json.dumps({"keyid": keyid, "type": st["_type"], "name": st["subject"][0]["name"],
                  "sha256": st["subject"][0]["digest"]["sha256"], "predicateType": st["predicateType"],
                  "role": st["predicate"]["role"]}))
`

// pySign makes a key and an envelope the way any DSSE implementation
// would, for this package to verify.
const pySign = `
import sys, json, base64, hashlib
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, PrivateFormat, NoEncryption
out, digest = sys.argv[1], sys.argv[2]
key = Ed25519PrivateKey.generate()
pub = key.public_key()
open(out + "/py.pub", "wb").write(pub.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
open(out + "/py.key", "wb").write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
keyid = hashlib.sha256(pub.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()
st = {"_type": "https://in-toto.io/Statement/v1",
      "subject": [{"name": "tool", "digest": {"sha256": digest}}],
      "predicateType": "https://tracebroker.dev/artifact/v1",
      "predicate": {"role": "generator", "name": "tool", "version": "9", "signed_at": "2026-02-03T04:05:06Z"}}
body = json.dumps(st, indent=2).encode()
ptype = b"application/vnd.in-toto+json"
pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(body), body)
env = {"payloadType": ptype.decode(), "payload": base64.b64encode(body).decode(),
       "signatures": [{"keyid": keyid, "sig": base64.b64encode(key.sign(pae)).decode()}]}
open(out + "/tool.sig", "w").write(json.dumps(env))
print(keyid)
`

func findPython(t *testing.T) string {
	t.Helper()
	var cands []string
	if p, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, p)
	}
	cands = append(cands, "/root/.pyenv/versions/3.11.7/bin/python3")
	for _, p := range cands {
		if err := exec.Command(p, "-c", "import cryptography.hazmat.primitives.asymmetric.ed25519").Run(); err == nil {
			return p
		}
	}
	return ""
}

// independentFixture signs an artifact manifest with the package and
// writes the public key as PEM.
func independentFixture(t *testing.T) (dir, sigPath, pubPath string, k *PrivateKey, digest string) {
	t.Helper()
	dir = t.TempDir()
	k = testSeedKey(t, 40)
	art := writeTestFile(t, dir, "collector", []byte("independent verification"))
	sigPath, err := SignArtifact(art, k, ArtifactPredicate{Role: RoleCollector, Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyPair(filepath.Join(dir, "release"), k); err != nil {
		t.Fatal(err)
	}
	digest, _ = FileDigest(art)
	return dir, sigPath, filepath.Join(dir, "release.pub"), k, digest
}

func tamperPayload(t *testing.T, env []byte) []byte {
	t.Helper()
	e := testDecodeEnv(t, env)
	p, _ := base64.StdEncoding.DecodeString(e.Payload)
	p[bytes.Index(p, []byte("collector"))] = 'C'
	e.Payload = base64.StdEncoding.EncodeToString(p)
	return testEncodeEnv(t, e)
}

func TestIndependentVerify(t *testing.T) {
	ran := false
	t.Run("python-cryptography", func(t *testing.T) {
		py := findPython(t)
		if py == "" {
			t.Skip("no python3 with the cryptography package")
		}
		ran = true
		dir, sigPath, pubPath, k, digest := independentFixture(t)
		out, err := exec.Command(py, "-c", pyVerify, sigPath, pubPath).CombinedOutput()
		if err != nil {
			t.Fatalf("python refused the envelope: %v\n%s", err, out)
		}
		var got map[string]string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		want := map[string]string{"keyid": k.ID, "type": StatementType, "name": "collector", "sha256": digest,
			"predicateType": ArtifactPredicateType, "role": "collector"}
		for key, v := range want {
			if got[key] != v {
				t.Errorf("python read %s = %q, want %q", key, got[key], v)
			}
		}
		// The control: python does refuse a tampered envelope.
		bad := writeTestFile(t, dir, "bad.sig", tamperPayload(t, readTestFile(t, sigPath)))
		if out, err := exec.Command(py, "-c", pyVerify, bad, pubPath).CombinedOutput(); err == nil {
			t.Fatalf("python accepted a tampered envelope: %s", out)
		}
	})
	t.Run("python-signs", func(t *testing.T) {
		py := findPython(t)
		if py == "" {
			t.Skip("no python3 with the cryptography package")
		}
		dir := t.TempDir()
		art := writeTestFile(t, dir, "tool", []byte("a generator plugin"))
		digest, _ := FileDigest(art)
		out, err := exec.Command(py, "-c", pySign, dir, digest).CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		trust, err := LoadTrust(filepath.Join(dir, "py.pub"))
		if err != nil {
			t.Fatal(err)
		}
		if ids := trust.IDs(); len(ids) != 1 || ids[0] != strings.TrimSpace(string(out)) {
			t.Fatalf("key id: ours %v, python's %s", ids, out)
		}
		id, err := VerifyArtifact(art, filepath.Join(dir, "tool.sig"), trust, RoleGenerator)
		if err != nil {
			t.Fatalf("python's envelope refused: %v", err)
		}
		if id.Name != "tool" || id.Version != "9" || id.Role != RoleGenerator || id.Signer != trust.IDs()[0] {
			t.Fatalf("identity %+v", id)
		}
		// Python's PKCS#8 private key loads too.
		os.Chmod(filepath.Join(dir, "py.key"), 0o600)
		k, err := LoadPrivateKey(filepath.Join(dir, "py.key"))
		if err != nil || k.ID != trust.IDs()[0] {
			t.Fatalf("python's key: %v, %v", k, err)
		}
	})
	t.Run("openssl", func(t *testing.T) {
		openssl, err := exec.LookPath("openssl")
		if err != nil {
			t.Skip("no openssl")
		}
		// Ed25519 with -rawin needs OpenSSL 3.
		if out, err := exec.Command(openssl, "version").Output(); err != nil || !bytes.HasPrefix(out, []byte("OpenSSL 3")) {
			t.Skipf("openssl %q: pkeyutl -rawin needs OpenSSL 3", out)
		}
		ran = true
		dir, sigPath, pubPath, k, _ := independentFixture(t)
		e := testDecodeEnv(t, readTestFile(t, sigPath))
		body, _ := base64.StdEncoding.DecodeString(e.Payload)
		sig, _ := base64.StdEncoding.DecodeString(e.Signatures[0].Sig)
		// The PAE written out by hand from the DSSE spec, not dsse.PAE.
		pae := []byte("DSSEv1 28 application/vnd.in-toto+json " + strconv.Itoa(len(body)) + " " + string(body))
		if !bytes.Equal(pae, dsse.PAE(e.PayloadType, body)) {
			t.Fatal("the PAE differs from the spec's")
		}
		paePath := writeTestFile(t, dir, "pae.bin", pae)
		sigBin := writeTestFile(t, dir, "sig.bin", sig)
		verify := func(in string) ([]byte, error) {
			return exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", pubPath, "-rawin", "-in", in, "-sigfile", sigBin).CombinedOutput()
		}
		if out, err := verify(paePath); err != nil || !bytes.Contains(out, []byte("Signature Verified Successfully")) {
			t.Fatalf("openssl refused the signature: %v\n%s", err, out)
		}
		pae[len(pae)-2] ^= 1
		badPath := writeTestFile(t, dir, "bad.bin", pae)
		if out, err := verify(badPath); err == nil {
			t.Fatalf("openssl accepted a tampered PAE: %s", out)
		}
		// The key id is the SHA-256 of the DER openssl writes.
		der, err := exec.Command(openssl, "pkey", "-pubin", "-in", pubPath, "-outform", "DER").Output()
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(der); hex.EncodeToString(sum[:]) != k.ID {
			t.Fatalf("openssl DER hashes to %x, key id is %s", sum, k.ID)
		}
		// An openssl-generated key loads, and its public half matches.
		keyPath := filepath.Join(dir, "ossl.key")
		if out, err := exec.Command(openssl, "genpkey", "-algorithm", "ed25519", "-out", keyPath).CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		os.Chmod(keyPath, 0o600)
		ok, err := LoadPrivateKey(keyPath)
		if err != nil {
			t.Fatal(err)
		}
		pubPEM, err := exec.Command(openssl, "pkey", "-in", keyPath, "-pubout").Output()
		if err != nil {
			t.Fatal(err)
		}
		op, err := ParsePublicKeyPEM(pubPEM)
		if err != nil || op.ID != ok.ID {
			t.Fatalf("openssl public key %v, %v; private key id %s", op, err, ok.ID)
		}
		// And openssl verifies a signature by that key made here.
		env := testSignEnvelope(t, ok)
		e = testDecodeEnv(t, env)
		body, _ = base64.StdEncoding.DecodeString(e.Payload)
		sig, _ = base64.StdEncoding.DecodeString(e.Signatures[0].Sig)
		writeTestFile(t, dir, "sig.bin", sig)
		writeTestFile(t, dir, "pae.bin", dsse.PAE(PayloadType, body))
		pubPath = writeTestFile(t, dir, "ossl.pub", pubPEM)
		if out, err := verify(paePath); err != nil {
			t.Fatalf("openssl refused a signature by its own key: %v\n%s", err, out)
		}
	})
	if !ran {
		t.Skip("neither python3 with cryptography nor OpenSSL 3 is available")
	}
}
