package attest

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// writeTar writes a tar of (name, data) pairs, or of raw headers.
func writeTar(t *testing.T, p string, entries ...tar.Header) {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range entries {
		data := []byte(h.Linkname) // the data rides in Linkname for regular files
		if h.Typeflag == tar.TypeReg {
			h.Size, h.Linkname = int64(len(data)), ""
		}
		h.Mode = 0o644
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(data)
		}
	}
	tw.Close()
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func reg(name, data string) tar.Header {
	return tar.Header{Name: name, Typeflag: tar.TypeReg, Linkname: data}
}

func reason(err error) Reason {
	var ve *VerifyError
	if errors.As(err, &ve) {
		return ve.Reason
	}
	return ""
}

// TestPackage: a package verifies only with exactly its signed members,
// in a tar file and in a directory.
func TestPackage(t *testing.T) {
	key, other := testSeedKey(t, 1), testSeedKey(t, 2)
	trust := NewTrust(key.Public())
	files := []tar.Header{reg("./opensnoop.bpf.o", "\x7fELF one"), reg("meta/app.json", `{"app": 1}`), {Name: "meta/", Typeflag: tar.TypeDir}}
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, pkg string) // after signing
		reason Reason
		detail string
	}{
		{"intact", func(*testing.T, string) {}, "", ""},
		{"member changed", func(t *testing.T, pkg string) {
			writeTar(t, pkg, reg("opensnoop.bpf.o", "\x7fELF two"), reg("meta/app.json", `{"app": 1}`))
		}, ReasonDigestMismatch, "member opensnoop.bpf.o is"},
		{"member added", func(t *testing.T, pkg string) {
			writeTar(t, pkg, append(files, reg("extra.bpf.o", "\x7fELF"))...)
		}, ReasonDigestMismatch, "member extra.bpf.o is not signed"},
		{"member removed", func(t *testing.T, pkg string) {
			writeTar(t, pkg, reg("opensnoop.bpf.o", "\x7fELF one"))
		}, ReasonDigestMismatch, "signed members missing: meta/app.json"},
		{"untrusted signer", func(t *testing.T, pkg string) {
			if _, err := SignPackage(pkg, other, BundlePredicate{}); err != nil {
				t.Fatal(err)
			}
		}, ReasonUntrustedKey, ""},
		{"unsigned", func(t *testing.T, pkg string) { os.Remove(pkg + SigSuffix) }, ReasonUnsigned, ""},
		{"signed as an artifact", func(t *testing.T, pkg string) {
			if _, err := SignArtifact(pkg, key, ArtifactPredicate{Role: RoleProgram}); err != nil {
				t.Fatal(err)
			}
		}, ReasonWrongType, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkg := filepath.Join(t.TempDir(), "tools.tar")
			writeTar(t, pkg, files...)
			if _, err := SignPackage(pkg, key, BundlePredicate{Version: "1.2"}); err != nil {
				t.Fatal(err)
			}
			tc.change(t, pkg)
			p, err := OpenPackage(pkg, "", trust)
			if tc.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				if p.Identity.Signer != key.ID || p.Identity.Role != RolePackage || p.Identity.Version != "1.2" || p.Identity.Name != "tools.tar" || !p.Identity.Verified {
					t.Errorf("identity %+v", p.Identity)
				}
				if m, ok := p.Member("opensnoop.bpf.o"); !ok || string(m.Data) != "\x7fELF one" || len(p.Members) != 2 {
					t.Errorf("members %+v", p.Members)
				}
				return
			}
			if reason(err) != tc.reason || !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("OpenPackage = %v, want %s (%s)", err, tc.reason, tc.detail)
			}
			if p != nil && p.Identity.Verified {
				t.Errorf("refused, yet verified: %+v", p.Identity)
			}
		})
	}
}

func TestPackageDirectory(t *testing.T) {
	key := testSeedKey(t, 1)
	trust := NewTrust(key.Public())
	dir := t.TempDir()
	writeTestFile(t, dir, "a.bpf.o", []byte("\x7fELF a"))
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	writeTestFile(t, dir, "sub/b.bpf.o", []byte("\x7fELF b"))
	sig, err := SignPackage(dir, key, BundlePredicate{})
	if err != nil || sig != filepath.Join(dir, PackageSigName) {
		t.Fatalf("SignPackage = %s, %v", sig, err)
	}
	p, err := OpenPackage(dir, "", trust)
	if err != nil || len(p.Members) != 2 || p.Members[1].Name != "sub/b.bpf.o" {
		t.Fatalf("OpenPackage = %+v, %v", p, err)
	}
	writeTestFile(t, dir, "sub/c", []byte("new"))
	if _, err := OpenPackage(dir, "", trust); reason(err) != ReasonDigestMismatch {
		t.Errorf("a file added to the directory: %v", err)
	}
	os.Remove(filepath.Join(dir, "sub/c"))
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenPackage(dir, "", trust); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a symlink in the directory: %v", err)
	}
}

// TestPackageTarRefusals: what a tar file may not hold.
func TestPackageTarRefusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []tar.Header
		err     string
	}{
		{"symlink", []tar.Header{{Name: "x", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}}, "not a regular file"},
		{"hard link", []tar.Header{reg("a", "1"), {Name: "b", Typeflag: tar.TypeLink, Linkname: "a"}}, "not a regular file"},
		{"absolute", []tar.Header{reg("/etc/x", "1")}, "not a relative path"},
		{"dot dot", []tar.Header{reg("a/../../x", "1")}, "leaves the package"},
		{"twice", []tar.Header{reg("a", "1"), reg("./a", "2")}, "appears twice"},
		{"empty", []tar.Header{{Name: "d/", Typeflag: tar.TypeDir}}, "no files"},
		{"control character", []tar.Header{reg("a\x1b[2J", "1")}, "control character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.tar")
			writeTar(t, p, tc.entries...)
			if _, err := ReadPackage(p); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ReadPackage = %v, want %q", err, tc.err)
			}
		})
	}
	p := filepath.Join(t.TempDir(), "x.tar")
	os.WriteFile(p, []byte("not a tar at all, but long enough to be read as a header block"), 0o644)
	if _, err := ReadPackage(p); err == nil {
		t.Error("a file that is not a tar was read")
	}
}

// TestRepository: files are checked against the index as they are read.
func TestRepository(t *testing.T) {
	key, other := testSeedKey(t, 1), testSeedKey(t, 2)
	trust := NewTrust(key.Public())
	dir := t.TempDir()
	a := writeTestFile(t, dir, "a.bpf.o", []byte("\x7fELF a"))
	os.MkdirAll(filepath.Join(dir, "tools", "net"), 0o755)
	b := writeTestFile(t, dir, "tools/net/b.bpf.o", []byte("\x7fELF b"))
	if _, err := SignRepository(dir, key, BundlePredicate{Name: "site tools"}); err != nil {
		t.Fatal(err)
	}
	unindexed := writeTestFile(t, dir, "tools/new.bpf.o", []byte("\x7fELF new"))
	if got := FindRepository(b); got != dir {
		t.Errorf("FindRepository(%s) = %q, want %s", b, got, dir)
	}
	if got := FindRepository(filepath.Join(t.TempDir(), "x.o")); got != "" {
		t.Errorf("FindRepository outside = %q", got)
	}
	r, err := OpenRepository(dir, trust)
	if err != nil {
		t.Fatal(err)
	}
	if r.Identity.Name != "site tools" || r.Identity.Signer != key.ID || r.Len() != 2 {
		t.Errorf("repository %+v, %d files", r.Identity, r.Len())
	}
	if data, m, err := r.Read(b, 1<<20); err != nil || string(data) != "\x7fELF b" || m.Name != "tools/net/b.bpf.o" {
		t.Errorf("Read(b) = %q, %+v, %v", data, m, err)
	}
	if _, _, err := r.Read(unindexed, 1<<20); !errors.Is(err, ErrNotIndexed) {
		t.Errorf("Read(unindexed) = %v, want ErrNotIndexed", err)
	}
	if _, _, err := r.Read(filepath.Join(t.TempDir(), "x"), 1<<20); err == nil || !strings.Contains(err.Error(), "not inside") {
		t.Errorf("Read(outside) = %v", err)
	}
	// Changed after the index was opened: the read is what is checked.
	os.WriteFile(a, []byte("\x7fELF changed"), 0o644)
	if _, _, err := r.Read(a, 1<<20); reason(err) != ReasonDigestMismatch {
		t.Errorf("Read(changed) = %v, want a digest mismatch", err)
	}
	// A symlink where an indexed file was: never followed.
	os.Remove(a)
	os.Symlink(b, a)
	if _, _, err := r.Read(a, 1<<20); err == nil || !strings.Contains(err.Error(), "too many levels of symbolic links") && !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Read(symlink) = %v", err)
	}
	// A symlinked directory on the way: not followed either.
	os.Rename(filepath.Join(dir, "tools", "net"), filepath.Join(dir, "elsewhere"))
	os.Symlink(filepath.Join(dir, "elsewhere"), filepath.Join(dir, "tools", "net"))
	if _, _, err := r.Read(b, 1<<20); err == nil {
		t.Error("read through a symlinked directory")
	}
	// Signed by a key nobody here trusts: the Repository says so.
	if _, err := SignRepository(dir, other, BundlePredicate{}); err == nil {
		t.Error("a repository with symlinks was signed")
	}
	os.Remove(filepath.Join(dir, "tools", "net"))
	os.Remove(a)
	if _, err := SignRepository(dir, other, BundlePredicate{}); err != nil {
		t.Fatal(err)
	}
	if r, err := OpenRepository(dir, trust); reason(err) != ReasonUntrustedKey || r == nil || r.Identity.Verified {
		t.Errorf("OpenRepository(untrusted) = %+v, %v", r, err)
	}
	// A malformed index is refused outright.
	os.WriteFile(filepath.Join(dir, RepositorySigName), []byte("{}"), 0o644)
	if r, err := OpenRepository(dir, trust); r != nil || reason(err) != ReasonMalformed {
		t.Errorf("OpenRepository(malformed) = %+v, %v", r, err)
	}
}

// TestRepositoryFSVerity: an index entry with an fs-verity digest
// admits the file only with fs-verity enabled and that digest. No file
// system here has fs-verity, so the entry is written by hand; the file
// system cannot measure the file, which refuses it.
func TestRepositoryFSVerity(t *testing.T) {
	key := testSeedKey(t, 1)
	dir := t.TempDir()
	a := writeTestFile(t, dir, "a.bpf.o", []byte("\x7fELF a"))
	if _, ok := measureVerityPath(a); ok {
		t.Skip("this file system has fs-verity enabled for a new file")
	}
	m := newMember("a.bpf.o", []byte("\x7fELF a"))
	pred := BundlePredicate{Role: RoleRepository, FSVerity: map[string]string{"a.bpf.o": strings.Repeat("ab", 32)}}
	if _, err := signBundle(filepath.Join(dir, RepositorySigName), "r", []Member{m}, RepositoryPredicateType, key, pred); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRepository(dir, NewTrust(key.Public()))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Read(a, 1<<20); reason(err) != ReasonDigestMismatch || !strings.Contains(err.Error(), "fs-verity") {
		t.Errorf("Read = %v, want a refusal for want of fs-verity", err)
	}
}

// pyVerifyBundle verifies a package's or repository's signature
// independently: the DSSE signature, then every member's SHA-256
// computed by Python from the tar file or the directory, which must be
// exactly the subjects.
const pyVerifyBundle = `
import sys, os, json, base64, hashlib, tarfile
from cryptography.hazmat.primitives.serialization import load_pem_public_key, Encoding, PublicFormat
env = json.load(open(sys.argv[1]))
pub = load_pem_public_key(open(sys.argv[2], "rb").read())
keyid = hashlib.sha256(pub.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()
ptype = env["payloadType"].encode()
body = base64.b64decode(env["payload"], validate=True)
pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(body), body)
pub.verify(base64.b64decode([s for s in env["signatures"] if s["keyid"] == keyid][0]["sig"]), pae)
st = json.loads(body)
signed = {s["name"]: s["digest"]["sha256"] for s in st["subject"]}
files = {}
src, skip = sys.argv[3], sys.argv[4]
if os.path.isdir(src):
    for root, _, names in os.walk(src):
        for n in names:
            rel = os.path.relpath(os.path.join(root, n), src)
            if rel != skip:
                files[rel] = hashlib.sha256(open(os.path.join(root, n), "rb").read()).hexdigest()
else:
    with tarfile.open(src) as tf:
        for m in tf.getmembers():
            if m.isfile():
                files[os.path.normpath(m.name)] = hashlib.sha256(tf.extractfile(m).read()).hexdigest()
assert files == signed, (files, signed)
print(st["predicateType"], st["predicate"]["role"], len(files))
`

func TestIndependentVerifyBundles(t *testing.T) {
	py := findPython(t)
	if py == "" {
		t.Skip("no python3 with the cryptography package")
	}
	key := testSeedKey(t, 3)
	dir := t.TempDir()
	if err := WriteKeyPair(filepath.Join(dir, "vendor"), key); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "vendor.pub")
	pkg := filepath.Join(dir, "tools.tar")
	writeTar(t, pkg, reg("a.bpf.o", "\x7fELF a"), reg("doc/README", "hello"))
	pkgSig, err := SignPackage(pkg, key, BundlePredicate{})
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(dir, "repo")
	os.MkdirAll(filepath.Join(repo, "net"), 0o755)
	writeTestFile(t, repo, "net/b.bpf.o", []byte("\x7fELF b"))
	writeTestFile(t, repo, "c.bpf.o", []byte("\x7fELF c"))
	repoSig, err := SignRepository(repo, key, BundlePredicate{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ sig, src, skip, want string }{
		{pkgSig, pkg, "", PackagePredicateType + " package 2"},
		{repoSig, repo, RepositorySigName, RepositoryPredicateType + " repository 2"},
	} {
		out, err := exec.Command(py, "-c", pyVerifyBundle, tc.sig, pub, tc.src, tc.skip).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != tc.want {
			t.Errorf("python on %s: %v\n%s\nwant %s", tc.src, err, out, tc.want)
		}
	}
	// A program-only object's signature: one subject, role program.
	obj := writeTestFile(t, dir, "opensnoop.bpf.o", []byte("\x7fELF object"))
	objSig, err := SignArtifact(obj, key, ArtifactPredicate{Role: RoleProgram})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "-c", pyVerify, objSig, pub).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"role": "program"`) || !strings.Contains(string(out), `"name": "opensnoop.bpf.o"`) {
		t.Errorf("python on the object's signature: %v\n%s", err, out)
	}
	// The control: python refuses a package whose member changed.
	writeTar(t, pkg, reg("a.bpf.o", "\x7fELF A"), reg("doc/README", "hello"))
	if out, err := exec.Command(py, "-c", pyVerifyBundle, pkgSig, pub, pkg, "").CombinedOutput(); err == nil {
		t.Errorf("python accepted a changed package: %s", out)
	}
}

// FuzzReadTar: whatever a package file holds, reading it ends in members
// with clean, distinct names, or an error.
func FuzzReadTar(f *testing.F) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "a.bpf.o", Typeflag: tar.TypeReg, Size: 4, Mode: 0o644})
	tw.Write([]byte("\x7fELF"))
	tw.WriteHeader(&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.Close()
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, err := readTarFrom(bytes.NewReader(data), "fuzz.tar")
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, m := range ms {
			if c, err := cleanMember(m.Name); err != nil || c != m.Name || seen[m.Name] {
				t.Fatalf("member %q: %v", m.Name, err)
			}
			seen[m.Name] = true
		}
	})
}

// BenchmarkOpenPackage: verifying a package of 16 members of 64 KiB,
// each hashed and matched against the signed statement.
func BenchmarkOpenPackage(b *testing.B) {
	key := testSeedKey(b, 1)
	trust := NewTrust(key.Public())
	dir := b.TempDir()
	p := filepath.Join(dir, "pkg.tar")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i < 16; i++ {
		data := bytes.Repeat([]byte{byte(i)}, 64<<10)
		tw.WriteHeader(&tar.Header{Name: "m" + string(rune('a'+i)), Typeflag: tar.TypeReg, Size: int64(len(data)), Mode: 0o644})
		tw.Write(data)
	}
	tw.Close()
	os.WriteFile(p, buf.Bytes(), 0o644)
	if _, err := SignPackage(p, key, BundlePredicate{}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		if _, err := OpenPackage(p, "", trust); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRepositoryRead: opening a repository of 256 files' index and
// reading one 64 KiB file checked against it, as each run of an object
// in a repository does.
func BenchmarkRepositoryRead(b *testing.B) {
	key := testSeedKey(b, 1)
	trust := NewTrust(key.Public())
	dir := b.TempDir()
	for i := 0; i < 256; i++ {
		writeTestFile(b, dir, "f"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26)), bytes.Repeat([]byte{byte(i)}, 64<<10))
	}
	if _, err := SignRepository(dir, key, BundlePredicate{}); err != nil {
		b.Fatal(err)
	}
	target := filepath.Join(dir, "faa")
	b.SetBytes(64 << 10)
	for b.Loop() {
		r, err := OpenRepository(dir, trust)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := r.Read(target, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}
