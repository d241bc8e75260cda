package attest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const measureHelperEnv = "ATTEST_MEASURE_HELPER"

// TestMeasureHelperProcess is the long-running "tool" the Measure tests
// start: a copy of this test binary that blocks until its stdin closes
// (the test killed it or died).
func TestMeasureHelperProcess(t *testing.T) {
	if os.Getenv(measureHelperEnv) != "1" {
		return
	}
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

func requireProc(t *testing.T) {
	t.Helper()
	if _, err := os.Readlink("/proc/self/exe"); err != nil {
		t.Skipf("Measure needs /proc: %v", err)
	}
}

// measureDir is a temporary directory by the name readlink reports.
func measureDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeTool installs a copy of the test binary with tail appended (an
// ELF runs the same with trailing bytes; the digest differs) at path,
// atomically: a new inode renamed over whatever was there.
func writeTool(t *testing.T, path, tail string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, append(b, tail...), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// startTool runs the tool at path and returns its pid; the process is
// killed and reaped when the test ends.
func startTool(t *testing.T, path string) int {
	t.Helper()
	cmd := exec.Command(path, "-test.run=^TestMeasureHelperProcess$")
	cmd.Env = append(os.Environ(), measureHelperEnv+"=1")
	if _, err := cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	// Start returns once the exec succeeded: /proc/PID/exe is the tool.
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd.Process.Pid
}

func signTool(t *testing.T, path string, key *PrivateKey, name, version string) {
	t.Helper()
	sig, err := SignArtifact(path, key, ArtifactPredicate{Role: RoleBroker, Name: name, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	if sig != path+".sig" {
		t.Fatalf("SignArtifact wrote %s, want %s", sig, path+".sig")
	}
}

func newKey(t *testing.T) *PrivateKey {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func fileDigest(t *testing.T, path string) string {
	t.Helper()
	d, err := FileDigest(path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func measure(t *testing.T, m *Measurer, pid int) Identity {
	t.Helper()
	id, err := m.Measure(pid)
	if err != nil {
		t.Fatalf("Measure(%d): %v", pid, err)
	}
	return id
}

func wantIdentity(t *testing.T, what string, got, want Identity) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func TestMeasureVerified(t *testing.T) {
	requireProc(t)
	dir := measureDir(t)
	tool := filepath.Join(dir, "tool")
	writeTool(t, tool, "")
	key := newKey(t)
	signTool(t, tool, key, "tool", "1")
	pid := startTool(t, tool)

	want := Identity{
		Path:     tool,
		Digest:   fileDigest(t, tool),
		Signer:   key.Public().ID,
		Role:     RoleBroker,
		Name:     "tool",
		Version:  "1",
		Verified: true,
	}
	for _, role := range []Role{"", RoleBroker} {
		m := NewMeasurer(MeasureOptions{Trust: NewTrust(key.Public()), Role: role})
		wantIdentity(t, "role "+strconv.Quote(string(role)), measure(t, m, pid), want)
	}

	m := NewMeasurer(MeasureOptions{Trust: NewTrust(key.Public()), Role: RoleGenerator})
	wantIdentity(t, "wrong role", measure(t, m, pid),
		Identity{Path: tool, Digest: want.Digest, Reason: string(ReasonWrongRole)})

	// The package-level Measure gives the same answer.
	id, err := Measure(pid, MeasureOptions{Trust: NewTrust(key.Public()), Role: RoleBroker})
	if err != nil {
		t.Fatal(err)
	}
	wantIdentity(t, "Measure", id, want)
}

func TestMeasureUnsigned(t *testing.T) {
	requireProc(t)
	dir := measureDir(t)
	tool := filepath.Join(dir, "tool")
	writeTool(t, tool, "")
	pid := startTool(t, tool)

	m := NewMeasurer(MeasureOptions{Trust: NewTrust(newKey(t).Public())})
	wantIdentity(t, "unsigned", measure(t, m, pid),
		Identity{Path: tool, Digest: fileDigest(t, tool), Reason: string(ReasonUnsigned)})
}

func TestMeasureUntrusted(t *testing.T) {
	requireProc(t)
	dir := measureDir(t)
	tool := filepath.Join(dir, "tool")
	writeTool(t, tool, "")
	signTool(t, tool, newKey(t), "tool", "1")
	pid := startTool(t, tool)
	want := Identity{Path: tool, Digest: fileDigest(t, tool), Reason: string(ReasonUntrustedKey)}

	m := NewMeasurer(MeasureOptions{Trust: NewTrust(newKey(t).Public())})
	wantIdentity(t, "other key", measure(t, m, pid), want)
	m = NewMeasurer(MeasureOptions{})
	wantIdentity(t, "nil trust", measure(t, m, pid), want)
}

// TestMeasureReplaced: the digest follows the file that executes, not
// the one at the path, and the cache does not lie.
func TestMeasureReplaced(t *testing.T) {
	requireProc(t)
	dir := measureDir(t)
	tool := filepath.Join(dir, "tool")
	writeTool(t, tool, "")
	key := newKey(t)
	signTool(t, tool, key, "tool", "1")
	oldDigest := fileDigest(t, tool)
	oldPid := startTool(t, tool)

	m := NewMeasurer(MeasureOptions{Trust: NewTrust(key.Public()), Role: RoleBroker})
	verified := func(digest, version string) Identity {
		return Identity{Path: tool, Digest: digest, Signer: key.Public().ID,
			Role: RoleBroker, Name: "tool", Version: version, Verified: true}
	}
	wantIdentity(t, "old process", measure(t, m, oldPid), verified(oldDigest, "1"))
	wantIdentity(t, "old process again", measure(t, m, oldPid), verified(oldDigest, "1"))
	if n := m.cache.hashes.Load(); n != 1 {
		t.Errorf("hashed %d times, want 1 (second measure from the cache)", n)
	}

	// Replace the file under the running process and sign the new one.
	writeTool(t, tool, "\nversion 2\n")
	signTool(t, tool, key, "tool", "2")
	newDigest := fileDigest(t, tool)
	if newDigest == oldDigest {
		t.Fatal("replacement has the old digest")
	}
	if link, _ := os.Readlink("/proc/" + strconv.Itoa(oldPid) + "/exe"); link != tool+deletedSuffix {
		t.Errorf("old process exe link is %q, want %q", link, tool+deletedSuffix)
	}

	// The old process still executes the old inode: old digest, and the
	// manifest beside the path is now for the new file.
	wantIdentity(t, "old process after replace", measure(t, m, oldPid),
		Identity{Path: tool, Digest: oldDigest, Reason: string(ReasonDigestMismatch)})
	// Losing its name moved the old inode's ctime: hashed once more.
	if n := m.cache.hashes.Load(); n != 2 {
		t.Errorf("hashed %d times, want 2", n)
	}

	newPid := startTool(t, tool)
	wantIdentity(t, "new process", measure(t, m, newPid), verified(newDigest, "2"))
	wantIdentity(t, "old process once more", measure(t, m, oldPid),
		Identity{Path: tool, Digest: oldDigest, Reason: string(ReasonDigestMismatch)})
	wantIdentity(t, "new process again", measure(t, m, newPid), verified(newDigest, "2"))
	if n := m.cache.hashes.Load(); n != 3 {
		t.Errorf("hashed %d times, want 3 (the new file once, then the cache)", n)
	}

	// The old release's manifest kept by digest verifies the old process
	// again, while the path's manifest keeps verifying the new one.
	mdir := measureDir(t)
	oldCopy := filepath.Join(mdir, "old")
	writeTool(t, oldCopy, "")
	signTool(t, oldCopy, key, "tool", "1")
	if err := os.Rename(oldCopy+".sig", filepath.Join(mdir, oldDigest+".sig")); err != nil {
		t.Fatal(err)
	}
	m2 := NewMeasurer(MeasureOptions{Trust: NewTrust(key.Public()), Role: RoleBroker, ManifestDir: mdir})
	wantIdentity(t, "old process, manifest by digest", measure(t, m2, oldPid), verified(oldDigest, "1"))
	wantIdentity(t, "new process, manifest beside", measure(t, m2, newPid), verified(newDigest, "2"))
}

// TestMeasureChangedInPlace: a file whose metadata changed is hashed
// again, and one rewritten in place with its mtime set back is not taken
// for the old one (ctime is in the cache key).
func TestMeasureChangedInPlace(t *testing.T) {
	requireProc(t)
	dir := measureDir(t)
	tool := filepath.Join(dir, "tool")
	writeTool(t, tool, "tail-0")
	key := newKey(t)
	signTool(t, tool, key, "tool", "1")
	digest := fileDigest(t, tool)
	pid := startTool(t, tool)
	m := NewMeasurer(MeasureOptions{Trust: NewTrust(key.Public())})
	want := Identity{Path: tool, Digest: digest, Signer: key.Public().ID,
		Role: RoleBroker, Name: "tool", Version: "1", Verified: true}
	wantIdentity(t, "first", measure(t, m, pid), want)

	fi, err := os.Stat(tool)
	if err != nil {
		t.Fatal(err)
	}
	mtime := fi.ModTime()
	time.Sleep(20 * time.Millisecond) // past a coarse timestamp tick
	if err := os.Chtimes(tool, time.Time{}, mtime.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	wantIdentity(t, "after touch", measure(t, m, pid), want)
	if n := m.cache.hashes.Load(); n != 2 {
		t.Errorf("hashed %d times, want 2 (a new mtime is a new key)", n)
	}

	// Rewrite the tail in place, same size, mtime restored. Kernels that
	// refuse writes to an executing file (ETXTBSY) make this moot.
	f, err := os.OpenFile(tool, os.O_WRONLY, 0)
	if errors.Is(err, syscall.ETXTBSY) {
		t.Logf("in-place rewrite of a running executable refused (%v): not tested", err)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if _, err := f.WriteAt([]byte("1"), fi.Size()-1); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tool, time.Time{}, mtime.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	rewritten := fileDigest(t, tool)
	if rewritten == digest {
		t.Fatal("rewrite did not change the digest")
	}
	wantIdentity(t, "rewritten in place", measure(t, m, pid),
		Identity{Path: tool, Digest: rewritten, Reason: string(ReasonDigestMismatch)})
}

func TestMeasureManifestDir(t *testing.T) {
	requireProc(t)
	dir := measureDir(t)
	mdir := measureDir(t)
	tool := filepath.Join(dir, "tool")
	writeTool(t, tool, "")
	key := newKey(t)
	signTool(t, tool, key, "tool", "1")
	digest := fileDigest(t, tool)
	pid := startTool(t, tool)
	trust := NewTrust(key.Public())
	verified := Identity{Path: tool, Digest: digest, Signer: key.Public().ID,
		Role: RoleBroker, Name: "tool", Version: "1", Verified: true}
	unsigned := Identity{Path: tool, Digest: digest, Reason: string(ReasonUnsigned)}
	move := func(from, to string) {
		t.Helper()
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
	}

	byName := filepath.Join(mdir, "tool.sig")
	byDigest := filepath.Join(mdir, digest+".sig")
	move(tool+".sig", byName)
	wantIdentity(t, "no ManifestDir", measure(t, NewMeasurer(MeasureOptions{Trust: trust}), pid), unsigned)
	m := NewMeasurer(MeasureOptions{Trust: trust, ManifestDir: mdir})
	wantIdentity(t, "basename in ManifestDir", measure(t, m, pid), verified)
	move(byName, byDigest)
	wantIdentity(t, "digest in ManifestDir", measure(t, m, pid), verified)

	// Every candidate is tried: an untrusted manifest beside the file
	// does not hide a trusted one in the directory, and when none
	// verifies the first one found gives the reason.
	signTool(t, tool, newKey(t), "tool", "1")
	wantIdentity(t, "untrusted beside, trusted by digest", measure(t, m, pid), verified)
	move(byDigest, filepath.Join(mdir, "unrelated.sig"))
	wantIdentity(t, "untrusted beside only", measure(t, m, pid),
		Identity{Path: tool, Digest: digest, Reason: string(ReasonUntrustedKey)})

	// A FIFO planted as the manifest is refused, not waited on.
	if err := os.Remove(tool + ".sig"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(tool+".sig", 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan Identity, 1)
	go func() {
		id, _ := m.Measure(pid)
		done <- id
	}()
	select {
	case id := <-done:
		wantIdentity(t, "FIFO manifest", id,
			Identity{Path: tool, Digest: digest, Reason: string(ReasonUnreadable)})
	case <-time.After(10 * time.Second):
		t.Fatal("Measure blocked on a FIFO manifest")
	}
}

func TestMeasureSelf(t *testing.T) {
	requireProc(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if self, err = filepath.EvalSymlinks(self); err != nil {
		t.Fatal(err)
	}
	want := Identity{Path: self, Digest: fileDigest(t, self), Reason: string(ReasonUnsigned)}
	if _, err := os.Stat(self + ".sig"); err == nil {
		t.Skipf("%s.sig exists", self)
	}
	m := NewMeasurer(MeasureOptions{})
	wantIdentity(t, "pid 0", measure(t, m, 0), want)
	wantIdentity(t, "own pid", measure(t, m, os.Getpid()), want)
	if n := m.cache.hashes.Load(); n != 1 {
		t.Errorf("hashed %d times, want 1", n)
	}
	id, err := Measure(0, MeasureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantIdentity(t, "Measure(0)", id, want)

	// Concurrent measurements agree (run with -race).
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			id, err := m.Measure(0)
			if err != nil || id != want {
				t.Errorf("concurrent Measure: %+v, %v", id, err)
			}
		})
	}
	wg.Wait()
}

func TestMeasureNoProcess(t *testing.T) {
	requireProc(t)
	m := NewMeasurer(MeasureOptions{})
	for _, pid := range []int{-1, noSuchPid(t)} {
		if id, err := m.Measure(pid); err == nil {
			t.Errorf("Measure(%d) = %+v, want an error", pid, id)
		}
	}
	if _, err := m.Measure(noSuchPid(t)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no such process: %v, want fs.ErrNotExist", err)
	}

	// A zombie has no executable left to measure.
	dir := measureDir(t)
	tool := filepath.Join(dir, "tool")
	writeTool(t, tool, "")
	cmd := exec.Command(tool, "-test.run=^TestMeasureHelperProcess$")
	cmd.Env = append(os.Environ(), measureHelperEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	stdin.Close() // the helper exits; it stays a zombie until Wait
	stat := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat"
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		b, err := os.ReadFile(stat)
		if err != nil {
			t.Fatal(err)
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && strings.HasPrefix(string(b[i:]), ") Z") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("helper did not exit: %s", b)
		}
	}
	if _, err := m.Measure(cmd.Process.Pid); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("zombie: %v, want fs.ErrNotExist", err)
	}
}

// noSuchPid is a pid above the kernel's maximum: it cannot exist.
func noSuchPid(t *testing.T) int {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Skipf("pid_max: %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n + 1
}

func TestMeasureCacheKeyCtime(t *testing.T) {
	// An in-place rewrite of the same size with the mtime set back must
	// not be served from the cache.
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("content A"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	c := newExeDigestCache(measureCacheEntries)
	digestOf := func() string {
		t.Helper()
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		d, err := c.digest(f)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	sum := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return hex.EncodeToString(h[:])
	}
	if d := digestOf(); d != sum("content A") {
		t.Fatalf("digest %s, want %s", d, sum("content A"))
	}
	time.Sleep(20 * time.Millisecond)
	if err := os.WriteFile(path, []byte("content B"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if d := digestOf(); d != sum("content B") {
		t.Errorf("after in-place rewrite with mtime restored: digest %s, want %s", d, sum("content B"))
	}
	if d := digestOf(); d != sum("content B") {
		t.Errorf("cached: %s, want %s", d, sum("content B"))
	}
	if n := c.hashes.Load(); n != 2 {
		t.Errorf("hashed %d times, want 2", n)
	}
}

func TestMeasureCacheRace(t *testing.T) {
	// The file changes while it is hashed: hashed again, never cached
	// under the key it had before.
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("before"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := newExeDigestCache(measureCacheEntries)

	calls := 0
	afterExeHash = func(*os.File) {
		calls++
		if calls == 1 {
			if err := os.WriteFile(path, []byte("after!!"), 0o644); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(func() { afterExeHash = nil })
	d, err := c.digest(f)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("after!!"))
	if want := hex.EncodeToString(h[:]); d != want {
		t.Errorf("digest %s, want %s (the content after the change)", d, want)
	}
	if n := c.hashes.Load(); n != 2 || c.count() != 1 {
		t.Errorf("hashed %d times, %d cached; want 2 and 1", n, c.count())
	}

	// A file that never holds still is not measured.
	if err := os.WriteFile(path, []byte("restless"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := 0
	afterExeHash = func(*os.File) {
		n++
		if err := os.WriteFile(path, []byte(strings.Repeat("x", n)), 0o644); err != nil {
			t.Error(err)
		}
	}
	if d, err := c.digest(f); err == nil {
		t.Errorf("digest of a file changing on every read: %s, want an error", d)
	}
	if n != measureAttempts {
		t.Errorf("hashed %d times, want %d", n, measureAttempts)
	}
}

func TestMeasureCacheBounded(t *testing.T) {
	c := newExeDigestCache(3)
	key := func(i int) exeFileKey { return exeFileKey{dev: 1, ino: uint64(i), size: 10} }
	for i := range 5 {
		c.store(key(i), strconv.Itoa(i))
	}
	c.store(key(4), "again") // already there: kept, not reordered
	if c.count() != 3 {
		t.Fatalf("%d entries, want 3", c.count())
	}
	for i := range 5 {
		d, ok := c.lookup(key(i))
		if want := i >= 2; ok != want || (ok && d != strconv.Itoa(i)) {
			t.Errorf("entry %d: %q %v, want present %v", i, d, ok, want)
		}
	}
}
