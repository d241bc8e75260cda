package attest

// Packages and repositories: signatures over many files at once.
//
// A package is an app's bundle of eBPF objects (and whatever else it
// ships): a tar file, signed in FILE.sig beside it, or a directory, signed
// in DIR/package.sig. Its statement has one subject per member, and the
// signature holds only if the members are exactly the subjects: a member
// added, removed or changed refuses the whole package.
//
// A repository is a directory a host trusts programs from: its signed
// index, DIR/repository.sig, has one subject per file. Each file is
// checked against the index when it is read, from the bytes read (no
// window between check and use); a file the index does not name is not
// the repository's. The index may also carry fs-verity digests: a file
// signed with one must have fs-verity enabled with that digest.

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/internal/regfile"
)

const (
	RolePackage    Role = "package"
	RoleRepository Role = "repository"

	// PackagePredicateType and RepositoryPredicateType are the
	// predicates of a package's and a repository's signatures.
	PackagePredicateType    = "https://tracebroker.dev/package/v1"
	RepositoryPredicateType = "https://tracebroker.dev/repository/v1"

	// PackageSigName and RepositorySigName are the signatures' names in
	// a package directory and in a repository.
	PackageSigName    = "package.sig"
	RepositorySigName = "repository.sig"

	// MaxMembers and MaxBundleSize bound a package (members, bytes) and
	// a repository's index.
	MaxMembers    = 4096
	MaxBundleSize = 256 << 20
	// MaxMemberSize bounds one member or repository file.
	MaxMemberSize = 64 << 20
)

// BundlePredicate is the predicate of a package's or a repository's
// signature.
type BundlePredicate struct {
	Role     Role      `json:"role"`
	Name     string    `json:"name"`
	Version  string    `json:"version,omitempty"`
	SignedAt time.Time `json:"signed_at"`
	// FSVerity holds, by subject name, the fs-verity digest (SHA-256,
	// hex) a file had when it was signed (repositories only).
	FSVerity map[string]string `json:"fsverity,omitempty"`
}

// Member is one file of a package, as read.
type Member struct {
	Name   string // slash-separated, relative, clean
	Data   []byte
	Digest string // hex SHA-256 of Data
}

// Package is a package whose members are read and whose signature was
// checked: Identity says whether it verified (and who signed), as for an
// artifact; Members are the bytes that were checked.
type Package struct {
	Path     string
	Identity Identity
	Members  []Member
}

// Member finds a member by name.
func (p *Package) Member(name string) (Member, bool) {
	for _, m := range p.Members {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// cleanMember checks a member's name: relative, slash-separated, no ".."
// or empty components, printable.
func cleanMember(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsAny(name, "\\\x00") {
		return "", fmt.Errorf("member name %q is not a relative path", name)
	}
	c := path.Clean(name)
	if c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("member name %q leaves the package", name)
	}
	for _, r := range c {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("member name %q has a control character", name)
		}
	}
	return c, nil
}

// ReadPackage reads a package's members: a tar file's regular files (a
// directory entry is skipped; links, devices and the like refuse it), or
// a directory's regular files but its signature, recursively (a symlink
// refuses it). Sorted by name.
func ReadPackage(p string) ([]Member, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	var ms []Member
	if st.IsDir() {
		ms, err = readTree(p, PackageSigName)
	} else {
		ms, err = readTar(p)
	}
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("%s: the package has no files", p)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	return ms, nil
}

func newMember(name string, data []byte) Member {
	sum := sha256.Sum256(data)
	return Member{Name: name, Data: data, Digest: hex.EncodeToString(sum[:])}
}

func readTar(p string) ([]Member, error) {
	f, _, err := regfile.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readTarFrom(f, p)
}

// readTarFrom is readTar of what r holds; p names it in errors.
func readTarFrom(r io.Reader, p string) ([]Member, error) {
	tr := tar.NewReader(io.LimitReader(r, MaxBundleSize+1))
	var ms []Member
	seen := map[string]bool{}
	total := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return ms, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: not a tar file: %w", p, err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		default:
			return nil, fmt.Errorf("%s: member %q is not a regular file (tar type %q): a package holds files only", p, h.Name, h.Typeflag)
		}
		name, err := cleanMember(h.Name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if seen[name] {
			return nil, fmt.Errorf("%s: member %q appears twice", p, name)
		}
		seen[name] = true
		if len(ms) >= MaxMembers {
			return nil, fmt.Errorf("%s: more than %d members", p, MaxMembers)
		}
		if h.Size > MaxMemberSize || total+int(h.Size) > MaxBundleSize {
			return nil, fmt.Errorf("%s: member %q of %d bytes: at most %d per member and %d in all", p, name, h.Size, MaxMemberSize, MaxBundleSize)
		}
		// The size is bounded above: read exactly that, in one buffer.
		data := make([]byte, h.Size)
		if _, err := io.ReadFull(tr, data); err != nil {
			return nil, fmt.Errorf("%s: member %q: truncated (%v)", p, name, err)
		}
		total += len(data)
		ms = append(ms, newMember(name, data))
	}
}

// readTree reads the regular files under dir, but skip (a name at the
// top), refusing symlinks and anything else that is not a file or a
// directory.
func readTree(dir, skip string) ([]Member, error) {
	var ms []Member
	total := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return nil
		case rel == skip:
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file (%v): only files are signed", p, d.Type())
		}
		if len(ms) >= MaxMembers {
			return fmt.Errorf("%s: more than %d files", dir, MaxMembers)
		}
		name, err := cleanMember(rel)
		if err != nil {
			return err
		}
		data, err := regfile.ReadFile(p, MaxMemberSize)
		if err != nil {
			return err
		}
		if total += len(data); total > MaxBundleSize {
			return fmt.Errorf("%s: more than %d bytes in all", dir, MaxBundleSize)
		}
		ms = append(ms, newMember(name, data))
		return nil
	})
	return ms, err
}

// PackageSigPath is where a package's signature is: FILE.sig beside a
// tar file, package.sig inside a directory.
func PackageSigPath(p string) string {
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		return filepath.Join(p, PackageSigName)
	}
	return p + SigSuffix
}

// SignPackage signs every member of the package at p (ReadPackage) in
// one statement and writes its signature (PackageSigPath).
func SignPackage(p string, key *PrivateKey, pred BundlePredicate) (string, error) {
	ms, err := ReadPackage(p)
	if err != nil {
		return "", err
	}
	pred.Role = RolePackage
	return signBundle(PackageSigPath(p), filepath.Base(filepath.Clean(p)), ms, PackagePredicateType, key, pred)
}

func signBundle(sigPath, base string, ms []Member, predType string, key *PrivateKey, pred BundlePredicate) (string, error) {
	if pred.Name == "" {
		pred.Name = base
	}
	if pred.SignedAt.IsZero() {
		pred.SignedAt = time.Now()
	}
	pred.SignedAt = pred.SignedAt.UTC().Truncate(time.Second)
	subjects := make([]Subject, len(ms))
	for i, m := range ms {
		subjects[i] = Subject{Name: m.Name, Digest: m.Digest}
	}
	env, err := Sign(subjects, predType, pred, key)
	if err != nil {
		return "", err
	}
	if err := regfile.WriteAtomic(sigPath, env, 0o644, false); err != nil {
		return "", fmt.Errorf("attest: writing %s: %w", sigPath, err)
	}
	return sigPath, nil
}

// verifyBundle checks a package's or repository's signature: signed by
// a trusted key, for role, with distinct subject names that are clean
// member names. On refusal the Identity has Reason.
func verifyBundle(sigPath string, trust *Trust, predType string, role Role) (Identity, []Subject, BundlePredicate, error) {
	id := Identity{}
	var pred BundlePredicate
	fail := func(err error) (Identity, []Subject, BundlePredicate, error) {
		var ve *VerifyError
		if !errors.As(err, &ve) {
			ve = &VerifyError{Reason: ReasonMalformed, Detail: err.Error()}
			err = ve
		}
		id.Reason = string(ve.Reason)
		return id, nil, BundlePredicate{}, err
	}
	env, err := readEnvelope(sigPath, "signature")
	if err != nil {
		return fail(err)
	}
	sum := sha256.Sum256(env)
	id.Digest = hex.EncodeToString(sum[:])
	subjects, signer, err := Verify(env, trust, predType, &pred)
	if err != nil {
		return fail(err)
	}
	switch {
	case pred.Role != role:
		return fail(refuse(ReasonWrongRole, "signed as %q, wanted %s", pred.Role, role))
	case pred.Name == "":
		return fail(refuse(ReasonMalformed, "predicate has no name"))
	case pred.SignedAt.IsZero():
		return fail(refuse(ReasonMalformed, "predicate has no signed_at"))
	case len(subjects) > MaxMembers:
		return fail(refuse(ReasonMalformed, "%d subjects, at most %d", len(subjects), MaxMembers))
	}
	seen := map[string]bool{}
	for _, s := range subjects {
		n, err := cleanMember(s.Name)
		if err != nil || n != s.Name {
			return fail(refuse(ReasonMalformed, "subject %q is not a clean relative path", s.Name))
		}
		if seen[n] {
			return fail(refuse(ReasonMalformed, "subject %q appears twice", n))
		}
		seen[n] = true
	}
	for n, d := range pred.FSVerity {
		if !seen[n] || !isDigest(d) {
			return fail(refuse(ReasonMalformed, "fs-verity digest of %q: not a subject's, or not 64 hex digits", n))
		}
	}
	return Identity{Digest: id.Digest, Signer: signer, Role: role, Name: pred.Name, Version: pred.Version, Verified: true}, subjects, pred, nil
}

// OpenPackage reads the package at p and checks its signature (sigPath,
// "" for PackageSigPath): the members must be exactly the signed
// subjects, each with its digest. As for ReadSigned, the Package comes
// back with an unsigned or untrusted signature (Identity says which, the
// error is its *VerifyError) but not with any other refusal: a member
// added, missing or changed is ReasonDigestMismatch.
func OpenPackage(p, sigPath string, trust *Trust) (*Package, error) {
	ms, err := ReadPackage(p)
	if err != nil {
		return nil, refuse(ReasonUnreadable, "%v", err)
	}
	if sigPath == "" {
		sigPath = PackageSigPath(p)
	}
	pkg := &Package{Path: p, Members: ms}
	id, subjects, _, err := verifyBundle(sigPath, trust, PackagePredicateType, RolePackage)
	id.Path = p
	pkg.Identity = id
	if err != nil {
		return pkg, err
	}
	signed := map[string]string{}
	for _, s := range subjects {
		signed[s.Name] = s.Digest
	}
	fail := func(format string, args ...any) (*Package, error) {
		pkg.Identity = Identity{Path: p, Digest: id.Digest, Reason: string(ReasonDigestMismatch)}
		return pkg, refuse(ReasonDigestMismatch, format, args...)
	}
	for _, m := range ms {
		d, ok := signed[m.Name]
		switch {
		case !ok:
			return fail("member %s is not signed", m.Name)
		case d != m.Digest:
			return fail("member %s is %s, signed as %s", m.Name, m.Digest, d)
		}
		delete(signed, m.Name)
	}
	if len(signed) > 0 {
		return fail("signed members missing: %s", strings.Join(slices.Sorted(maps.Keys(signed)), ", "))
	}
	return pkg, nil
}

// Repository is a directory whose signed index verified.
type Repository struct {
	Dir      string
	Identity Identity
	index    map[string]string // name -> sha256
	fsverity map[string]string // name -> fs-verity digest, when signed with one
}

// SignRepository signs the index of every regular file under dir (but
// the index itself), with the fs-verity digest of each file that has
// fs-verity enabled, into DIR/repository.sig.
func SignRepository(dir string, key *PrivateKey, pred BundlePredicate) (string, error) {
	ms, err := readTree(dir, RepositorySigName)
	if err != nil {
		return "", err
	}
	if len(ms) == 0 {
		return "", fmt.Errorf("%s: no files to sign", dir)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	pred.Role = RoleRepository
	pred.FSVerity = nil
	for _, m := range ms {
		if d, ok := measureVerityPath(filepath.Join(dir, filepath.FromSlash(m.Name))); ok {
			if pred.FSVerity == nil {
				pred.FSVerity = map[string]string{}
			}
			pred.FSVerity[m.Name] = d
		}
	}
	return signBundle(filepath.Join(dir, RepositorySigName), filepath.Base(filepath.Clean(dir)), ms, RepositoryPredicateType, key, pred)
}

// OpenRepository reads and verifies dir's index. As for ReadSigned, an
// unsigned or untrusted index comes back with its Identity and its
// *VerifyError; any other refusal returns no Repository.
func OpenRepository(dir string, trust *Trust) (*Repository, error) {
	id, subjects, pred, err := verifyBundle(filepath.Join(dir, RepositorySigName), trust, RepositoryPredicateType, RoleRepository)
	id.Path = dir
	r := &Repository{Dir: dir, Identity: id, index: map[string]string{}, fsverity: pred.FSVerity}
	if err != nil {
		if id.Reason == string(ReasonUnsigned) || id.Reason == string(ReasonUntrustedKey) {
			return r, err
		}
		return nil, err
	}
	for _, s := range subjects {
		r.index[s.Name] = s.Digest
	}
	return r, nil
}

// FindRepository is the nearest directory above file (its own, then its
// parent's, up to the root) that holds a repository index, or "".
func FindRepository(file string) string {
	abs, err := filepath.Abs(file)
	if err != nil {
		return ""
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		if st, err := os.Lstat(filepath.Join(dir, RepositorySigName)); err == nil && st.Mode().IsRegular() {
			return dir
		}
		if dir == filepath.Dir(dir) {
			return ""
		}
	}
}

// ErrNotIndexed is Read's error for a file the index does not name.
var ErrNotIndexed = errors.New("not in the repository's index")

// Read reads a file of the repository (a path inside Dir) and checks
// it against the index, from the bytes it returns: its digest, and its
// fs-verity digest when the index has one. No symlink is followed and
// nothing outside Dir is read. A file the index does not name is
// ErrNotIndexed; one whose digest differs is ReasonDigestMismatch.
func (r *Repository) Read(file string, limit int64) ([]byte, Member, error) {
	absDir, err := filepath.Abs(r.Dir)
	if err != nil {
		return nil, Member{}, err
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, Member{}, err
	}
	rel, err := filepath.Rel(absDir, abs)
	if err != nil {
		return nil, Member{}, err
	}
	name, err := cleanMember(filepath.ToSlash(rel))
	if err != nil {
		return nil, Member{}, fmt.Errorf("%s is not inside the repository %s", file, r.Dir)
	}
	want, ok := r.index[name]
	if !ok {
		return nil, Member{Name: name}, fmt.Errorf("%s: %w %s", file, ErrNotIndexed, r.Dir)
	}
	f, err := openBeneath(absDir, name)
	if err != nil {
		return nil, Member{Name: name}, fmt.Errorf("%s: %w", file, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, Member{Name: name}, fmt.Errorf("%s is not a regular file", file)
	}
	data, err := regfile.ReadAll(f, limit)
	if err != nil {
		return nil, Member{Name: name}, err
	}
	m := newMember(name, data)
	if m.Digest != want {
		return nil, m, refuse(ReasonDigestMismatch, "%s is %s, the repository's index says %s", file, m.Digest, want)
	}
	if v, ok := r.fsverity[name]; ok {
		got, has := measureVerity(int(f.Fd()))
		switch {
		case !has:
			return nil, m, refuse(ReasonDigestMismatch, "%s was signed with fs-verity, which it does not have enabled here", file)
		case got != v:
			return nil, m, refuse(ReasonDigestMismatch, "%s has fs-verity digest %s, the index says %s", file, got, v)
		}
	}
	return data, m, nil
}

// openBeneath opens dir/name for reading without following any symlink
// and without leaving dir (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS).
func openBeneath(dir, name string) (*os.File, error) {
	d, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(d)
	fd, err := unix.Openat2(d, name, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(dir, name), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, name)), nil
}

// measureVerity is the file's fs-verity digest (SHA-256, hex), when it
// has fs-verity enabled with SHA-256.
func measureVerity(fd int) (string, bool) {
	// struct fsverity_digest { __u16 digest_algorithm; __u16 digest_size; __u8 digest[]; }
	var buf struct {
		alg, size uint16
		digest    [64]byte
	}
	buf.size = uint16(len(buf.digest))
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.FS_IOC_MEASURE_VERITY, uintptr(unsafe.Pointer(&buf)))
	if errno != 0 || buf.alg != unix.FS_VERITY_HASH_ALG_SHA256 || buf.size != sha256.Size {
		return "", false
	}
	return hex.EncodeToString(buf.digest[:sha256.Size]), true
}

func measureVerityPath(p string) (string, bool) {
	f, err := os.Open(p)
	if err != nil {
		return "", false
	}
	defer f.Close()
	return measureVerity(int(f.Fd()))
}

// Contains reports whether the index names file (a path inside Dir).
func (r *Repository) Contains(name string) bool { _, ok := r.index[name]; return ok }

// Len is the number of files the index names.
func (r *Repository) Len() int { return len(r.index) }

// Verification is what a signature was found to cover, for a person to
// read (attest verify): which of the forms, the identity it gives, and
// the files it names.
type Verification struct {
	// Form is "artifact" (FILE.sig over one file, role Identity.Role),
	// "package", "repository" (a directory's index) or "repository
	// file" (a file checked against its repository's index).
	Form string
	// Identity is the signature's; its Digest is the file's for an
	// artifact or a repository file, and the signature's own (the
	// signed statement) for a package or a repository.
	Identity Identity
	// Covers says in words what the signature covers.
	Covers string
	// Subjects are the files it names, with their digests.
	Subjects []Subject
}

// VerifyAny verifies whatever signs path: a directory's repository
// index or package signature, a file's own signature (an artifact's or a
// tar package's, told apart by the statement's predicate type), or the
// index of the repository a file is in. role, when set, is the role an
// artifact must have. Every refusal is a *VerifyError, as for the forms'
// own functions.
func VerifyAny(p, sigPath string, trust *Trust, role Role) (*Verification, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, refuse(ReasonUnreadable, "%v", err)
	}
	isFile := func(name string) bool { s, err := os.Lstat(name); return err == nil && s.Mode().IsRegular() }
	if st.IsDir() {
		switch {
		case isFile(filepath.Join(p, RepositorySigName)):
			return verifyRepositoryDir(p, trust)
		case isFile(filepath.Join(p, PackageSigName)):
			return verifyPackage(p, sigPath, trust)
		}
		return nil, refuse(ReasonUnsigned, "%s holds neither %s nor %s", p, RepositorySigName, PackageSigName)
	}
	if sigPath == "" {
		sigPath = p + SigSuffix
	}
	if !isFile(sigPath) {
		if dir := FindRepository(p); dir != "" {
			repo, err := OpenRepository(dir, trust)
			if err != nil {
				return nil, err
			}
			_, m, err := repo.Read(p, MaxArtifactSize)
			if err != nil {
				return nil, err
			}
			id := repo.Identity
			id.Path, id.Digest = p, m.Digest
			return &Verification{Form: "repository file", Identity: id, Subjects: []Subject{{Name: m.Name, Digest: m.Digest}},
				Covers: fmt.Sprintf("this file, as %s in the index of the repository %s (%d files)", m.Name, dir, repo.Len())}, nil
		}
	}
	// Which predicate, before it is verified, only chooses how to verify
	// it: each way checks the predicate type again.
	if env, err := readEnvelope(sigPath, "signature"); err == nil && unverifiedPredicateType(env) == PackagePredicateType {
		return verifyPackage(p, sigPath, trust)
	}
	id, err := VerifyArtifact(p, sigPath, trust, role)
	if err != nil {
		return nil, err
	}
	what := "this file's bytes"
	if id.Role == RoleProgram {
		what = "this eBPF object's bytes: the program alone"
	}
	return &Verification{Form: "artifact", Identity: id, Covers: what, Subjects: []Subject{{Name: filepath.Base(p), Digest: id.Digest}}}, nil
}

// unverifiedPredicateType is the predicate type an envelope's statement
// claims, "" if it has none that parses. Nothing is verified: only a
// choice between verifications may depend on it.
func unverifiedPredicateType(env []byte) string {
	e, err := ParseEnvelope(env)
	if err != nil {
		return ""
	}
	body, err := decodeB64(e.Payload)
	if err != nil {
		return ""
	}
	st, err := ParseStatement(body)
	if err != nil {
		return ""
	}
	return st.PredicateType
}

func verifyPackage(p, sigPath string, trust *Trust) (*Verification, error) {
	pkg, err := OpenPackage(p, sigPath, trust)
	if err != nil {
		return nil, err
	}
	v := &Verification{Form: "package", Identity: pkg.Identity,
		Covers: fmt.Sprintf("every member of the package (%d), and nothing else", len(pkg.Members))}
	for _, m := range pkg.Members {
		v.Subjects = append(v.Subjects, Subject{Name: m.Name, Digest: m.Digest})
	}
	return v, nil
}

// verifyRepositoryDir checks a whole repository: its index, and every
// file it names against the files there.
func verifyRepositoryDir(dir string, trust *Trust) (*Verification, error) {
	repo, err := OpenRepository(dir, trust)
	if err != nil {
		return nil, err
	}
	v := &Verification{Form: "repository", Identity: repo.Identity}
	for _, name := range slices.Sorted(maps.Keys(repo.index)) {
		_, m, err := repo.Read(filepath.Join(dir, filepath.FromSlash(name)), MaxMemberSize)
		if err != nil {
			return nil, err
		}
		v.Subjects = append(v.Subjects, Subject{Name: m.Name, Digest: m.Digest})
	}
	v.Covers = fmt.Sprintf("the index of %d files under %s; each is checked when it is read", len(v.Subjects), dir)
	if len(repo.fsverity) > 0 {
		v.Covers += fmt.Sprintf(" (%d with fs-verity)", len(repo.fsverity))
	}
	return v, nil
}
