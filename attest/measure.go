package attest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Measured identity of a running process.
//
// Measure hashes the file a process is actually executing, not whatever
// now lives at its path: it opens /proc/PID/exe, whose magic link opens
// the executing inode even when the path was replaced or deleted, and
// hashes from that descriptor. The path (readlink of the same link) is
// only used to report the process and to find its manifest.
//
// The manifest is looked for, in this order:
//
//	PATH.sig                      beside the executable
//	MANIFESTDIR/BASENAME.sig      in MeasureOptions.ManifestDir
//	MANIFESTDIR/DIGEST.sig        same directory, named by the hex SHA-256
//
// Every candidate that exists is verified against the measured digest;
// the first that verifies gives the identity. When none does, the
// identity is unverified with the reason of the first candidate found
// (ReasonUnsigned when there is none). A manifest that is not a regular
// file, is unreadable or larger than MaxEnvelopeSize counts as found and
// refused (ReasonUnreadable, ReasonTooLarge). Trying every candidate is
// not a partial success: each one is verified completely against the
// digest of the executing file, so whichever verifies vouches for
// exactly what runs. It lets the digest-named form keep an old release
// verifiable while a new one is already installed beside it.
//
// A replaced or deleted executable (readlink ends in " (deleted)") is
// reported under the path it was started from, without the suffix; the
// manifest found there describes whatever is installed now, so a
// process still running the old file measures as ReasonDigestMismatch
// unless a manifest for its own digest is found (DIGEST.sig).
//
// The digest is cached by (device, inode, size, mtime, ctime) of the
// opened executable. mtime alone can be set back by the file's owner
// (utimensat), ctime cannot: any write, chmod, link count change or
// utimensat moves it to the current time, so an in-place rewrite that
// keeps size and restores mtime still misses the cache. The price is a
// rehash after a mere chmod or rename, which is cheap and rare. Only digests
// are cached; the manifest is read and verified on every call, so a
// changed manifest or trust set takes effect at once.
//
// The file could change while it is hashed: the hash is read from the
// same descriptor that was fstat'ed, the descriptor is fstat'ed again
// afterwards, and when the key moved (or fewer or more bytes than the
// size were read) it is hashed again, up to three times, then Measure
// gives up with an error rather than report a digest of a torn read.

// MeasureOptions configures Measure.
type MeasureOptions struct {
	// Trust is the set of keys a manifest must be signed by; nil trusts
	// nothing (every manifest is ReasonUntrustedKey).
	Trust *Trust
	// ManifestDir is an optional directory of manifests kept apart
	// from the executables (BASENAME.sig or DIGEST.sig).
	ManifestDir string
	// Role the manifest must be signed for; "" accepts any role.
	Role Role
}

const (
	measureCacheEntries = 256
	measureAttempts     = 3
)

// Measurer measures processes with a cache of executable digests of its
// own. It is safe for concurrent use.
type Measurer struct {
	opts  MeasureOptions
	cache *exeDigestCache
}

// NewMeasurer returns a Measurer with an empty digest cache.
func NewMeasurer(opts MeasureOptions) *Measurer {
	return &Measurer{opts: opts, cache: newExeDigestCache(measureCacheEntries)}
}

// processDigests is the cache shared by every call of Measure.
var processDigests = newExeDigestCache(measureCacheEntries)

// Measure measures process pid (0: the calling process) with the
// process-wide digest cache; see Measurer.Measure.
func Measure(pid int, opts MeasureOptions) (Identity, error) {
	return (&Measurer{opts: opts, cache: processDigests}).Measure(pid)
}

// Measure returns the identity of the file process pid (0: the calling
// process) is executing: its path, the hex SHA-256 of its content and,
// when a manifest signed by a trusted key matches that digest, signer,
// role, name and version with Verified true. An unverified identity
// (unsigned, untrusted, digest mismatch...) is not an error: Verified
// is false and Reason says why. The error is for a process that cannot
// be measured at all: no such process (errors.Is(err, fs.ErrNotExist)),
// no permission, /proc not mounted, an executable that cannot be read
// or hashed. A returned Identity always carries Path and Digest.
func (m *Measurer) Measure(pid int) (Identity, error) {
	if pid < 0 {
		return Identity{}, fmt.Errorf("attest: measure: invalid pid %d", pid)
	}
	if pid == 0 {
		pid = os.Getpid()
	}
	exe, path, err := openProcExecutable(pid)
	if err != nil {
		return Identity{}, fmt.Errorf("attest: measure pid %d: %w", pid, err)
	}
	defer exe.Close()
	digest, err := m.cache.digest(exe)
	if err != nil {
		return Identity{}, fmt.Errorf("attest: measure pid %d: %s: %w", pid, path, err)
	}
	return m.identify(path, digest), nil
}

// MeasureFile measures the executable at path as Measure measures a
// process's: its digest, and its manifest's verdict. It also returns
// the file's stat, taken from the descriptor hashed once the hash was
// known to be of an unchanging file, so that whoever acts on the
// identity (the kernel gate's allow map) names exactly the file
// measured.
func (m *Measurer) MeasureFile(path string) (Identity, unix.Stat_t, error) {
	var st unix.Stat_t
	f, err := os.Open(path)
	if err != nil {
		return Identity{}, st, fmt.Errorf("attest: measure %s: %w", path, err)
	}
	defer f.Close()
	digest, err := m.cache.digest(f)
	if err != nil {
		return Identity{}, st, fmt.Errorf("attest: measure %s: %w", path, err)
	}
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return Identity{}, st, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if d, ok := m.cache.lookup(exeKeyOf(&st)); !ok || d != digest {
		return Identity{}, st, fmt.Errorf("attest: measure %s: the file changed while it was measured", path)
	}
	return m.identify(path, digest), st, nil
}

// MeasureFile is Measurer.MeasureFile with the process-wide cache.
func MeasureFile(path string, opts MeasureOptions) (Identity, unix.Stat_t, error) {
	return (&Measurer{opts: opts, cache: processDigests}).MeasureFile(path)
}

// identify finds and verifies the manifest of the executable at path
// with the given digest.
func (m *Measurer) identify(path, digest string) Identity {
	var first Reason
	for _, c := range manifestCandidates(path, digest, m.opts.ManifestDir) {
		env, err := readMeasureManifest(c)
		if err != nil && isAbsent(err) {
			continue
		}
		var id Identity
		if err == nil {
			id, err = VerifyManifest(env, digest, m.opts.Trust, m.opts.Role)
		}
		if err == nil && id.Verified {
			id.Path, id.Digest, id.Reason = path, digest, ""
			return id
		}
		if first == "" {
			first = refusalReason(err)
		}
	}
	if first == "" {
		first = ReasonUnsigned
	}
	// Fail closed: nothing an unverified manifest claims is reported.
	return Identity{Path: path, Digest: digest, Reason: string(first)}
}

func refusalReason(err error) Reason {
	var ve *VerifyError
	switch {
	case err == nil:
		// VerifyManifest said neither yes nor why: still a refusal.
		return ReasonMalformed
	case errors.As(err, &ve):
		return ve.Reason
	default:
		return Reason(err.Error())
	}
}

// manifestCandidates lists where the manifest of the executable at path
// may be, in lookup order, without duplicates.
func manifestCandidates(path, digest, dir string) []string {
	var cs []string
	add := func(p string) {
		for _, c := range cs {
			if c == p {
				return
			}
		}
		cs = append(cs, p)
	}
	// A path that is not absolute is one readlink could not express in
	// our mount namespace; nothing can be found beside it.
	if filepath.IsAbs(path) {
		add(path + SigSuffix)
	}
	if dir != "" {
		if base := filepath.Base(path); filepath.IsAbs(path) && base != "/" && base != "." {
			add(filepath.Join(dir, base+SigSuffix))
		}
		add(filepath.Join(dir, digest+SigSuffix))
	}
	return cs
}

// isAbsent: no manifest there (a missing file or a path component that
// is not a directory).
func isAbsent(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR)
}

// readMeasureManifest reads a manifest of at most MaxEnvelopeSize bytes.
// It opens non-blocking and refuses anything but a regular file, so a
// FIFO or device planted as a manifest cannot hang the measurement.
// Errors other than absence are *VerifyError.
func readMeasureManifest(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		if isAbsent(err) {
			return nil, err
		}
		return nil, refuse(ReasonUnreadable, "%s: %v", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, refuse(ReasonUnreadable, "%s: %v", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, refuse(ReasonUnreadable, "%s: not a regular file", path)
	}
	if fi.Size() > MaxEnvelopeSize {
		return nil, refuse(ReasonTooLarge, "%s: %d bytes, at most %d", path, fi.Size(), MaxEnvelopeSize)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxEnvelopeSize+1))
	if err != nil {
		return nil, refuse(ReasonUnreadable, "%s: %v", path, err)
	}
	if len(b) > MaxEnvelopeSize {
		return nil, refuse(ReasonTooLarge, "%s: more than %d bytes", path, MaxEnvelopeSize)
	}
	return b, nil
}

// openProcExecutable opens the file process pid executes and returns it
// with its path. Both go through one descriptor of /proc/PID, which is
// bound to that process: if it exits and the pid is reused meanwhile,
// the lookups fail instead of describing the newcomer.
func openProcExecutable(pid int) (*os.File, string, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			if _, serr := os.Stat("/proc/self/exe"); serr != nil {
				return nil, "", fmt.Errorf("/proc is not available: %w", serr)
			}
			return nil, "", fmt.Errorf("no such process: %w", err)
		}
		return nil, "", &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dfd)

	fd, err := unix.Openat(dfd, "exe", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			// Exited (a zombie has no executable) or a kernel thread.
			return nil, "", fmt.Errorf("process has exited or has no executable: %w", unix.ENOENT)
		}
		return nil, "", &os.PathError{Op: "open", Path: dir + "/exe", Err: err}
	}
	exe := os.NewFile(uintptr(fd), dir+"/exe")
	link, err := readlinkat(dfd, "exe")
	if err != nil {
		exe.Close()
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			return nil, "", fmt.Errorf("process has exited: %w", unix.ENOENT)
		}
		return nil, "", &os.PathError{Op: "readlink", Path: dir + "/exe", Err: err}
	}
	return exe, executablePath(link, exe), nil
}

func readlinkat(dfd int, name string) (string, error) {
	for n := 256; ; n *= 2 {
		b := make([]byte, n)
		l, err := unix.Readlinkat(dfd, name, b)
		if err != nil {
			return "", err
		}
		if l < n {
			return string(b[:l]), nil
		}
		if n >= 1<<16 {
			return "", unix.ENAMETOOLONG
		}
	}
}

// deletedSuffix is what the kernel appends to the link of a file whose
// name was removed (unlinked, or renamed over).
const deletedSuffix = " (deleted)"

// executablePath strips deletedSuffix from link, unless a file really is
// named so and is the very executable.
func executablePath(link string, exe *os.File) string {
	p, ok := strings.CutSuffix(link, deletedSuffix)
	if !ok {
		return link
	}
	var exeSt, linkSt unix.Stat_t
	if unix.Fstat(int(exe.Fd()), &exeSt) == nil && unix.Stat(link, &linkSt) == nil &&
		exeSt.Dev == linkSt.Dev && exeSt.Ino == linkSt.Ino {
		return link
	}
	return p
}

// exeFileKey identifies one version of one file. See the comment at the
// top of this file for why ctime is part of it.
type exeFileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime unix.Timespec
}

func exeKeyOf(st *unix.Stat_t) exeFileKey {
	return exeFileKey{
		dev:   uint64(st.Dev),
		ino:   uint64(st.Ino),
		size:  st.Size,
		mtime: st.Mtim,
		ctime: st.Ctim,
	}
}

// afterExeHash, when set (by tests), runs between hashing an executable
// and checking that it did not change meanwhile.
var afterExeHash func(f *os.File)

// exeDigestCache maps file keys to hex SHA-256 digests. It holds at most
// max entries and drops the oldest inserted first.
type exeDigestCache struct {
	max int

	mu      sync.Mutex
	entries map[exeFileKey]string
	order   []exeFileKey // insertion order, oldest first

	hashes atomic.Int64 // files hashed (cache misses, retries included)
}

func newExeDigestCache(max int) *exeDigestCache {
	return &exeDigestCache{max: max, entries: make(map[exeFileKey]string)}
}

func (c *exeDigestCache) lookup(k exeFileKey) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.entries[k]
	return d, ok
}

func (c *exeDigestCache) store(k exeFileKey, digest string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; ok {
		return
	}
	for len(c.order) >= c.max {
		delete(c.entries, c.order[0])
		n := copy(c.order, c.order[1:])
		c.order = c.order[:n]
	}
	c.entries[k] = digest
	c.order = append(c.order, k)
}

func (c *exeDigestCache) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// digest returns the hex SHA-256 of the open file f, from the cache when
// f's key is there. It hashes from f itself, never from a path, and
// only caches a digest whose key did not move while it was read.
// Concurrent misses on one key may both hash; the results are equal.
func (c *exeDigestCache) digest(f *os.File) (string, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	k := exeKeyOf(&st)
	if d, ok := c.lookup(k); ok {
		return d, nil
	}
	for range measureAttempts {
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return "", errors.New("executable is not a regular file")
		}
		if st.Size > MaxArtifactSize {
			return "", fmt.Errorf("executable is %d bytes, at most %d are hashed", st.Size, MaxArtifactSize)
		}
		h := sha256.New()
		c.hashes.Add(1)
		n, err := io.Copy(h, io.NewSectionReader(f, 0, MaxArtifactSize+1))
		if err != nil {
			return "", fmt.Errorf("hashing executable: %w", err)
		}
		if afterExeHash != nil {
			afterExeHash(f)
		}
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			return "", &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
		}
		after := exeKeyOf(&st)
		if after == k && n == st.Size {
			d := hex.EncodeToString(h.Sum(nil))
			c.store(k, d)
			return d, nil
		}
		k = after
	}
	return "", fmt.Errorf("executable changed while it was hashed (%d attempts)", measureAttempts)
}
