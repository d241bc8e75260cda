package uprobe

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/internal/elfdebug"
)

// Target is a uprobe's file, opened once. The scope check judges it, the
// compiler reads its symbols from it and the probe is attached through
// it (AttachPath), so all three see one inode whatever happens to its
// name meanwhile: a path checked and then opened again is a race that
// whoever may rename files in its directory wins.
//
// The descriptor is O_PATH: opening it has no side effect (no open of a
// device, no block on a FIFO, no atime) and grants no read; the ELF is
// read through a new open of /proc/self/fd/N, which reaches that same
// inode.
type Target struct {
	f    *os.File // O_PATH
	name string   // what probes call it: see Path
	real string   // its real path when it was opened
	dev  uint64
	ino  uint64
	// debugFile finds the separate debug file: elfdebug.UnderRoot for a
	// scoped open, whose binary's directory may be anyone's.
	debugFile func(root, path string, f *elf.File) string

	once    sync.Once
	syms    []Symbol
	symsErr error
}

// Scope limits what OpenTarget opens for a caller who may probe some
// files and not others (a token holder of the broker daemon).
type Scope struct {
	// Allows says whether some probe on the file at path (absolute and
	// clean) could be allowed. nil allows every path.
	Allows func(path string) bool
	// Refusal is the error of every refusal, given the path as written
	// and nothing else, so that a refusal says nothing about what the
	// path leads to. nil: ErrNotAllowed.
	Refusal func(written string) error
}

// ErrNotAllowed is the refusal of a path that a Scope does not allow.
var ErrNotAllowed = errors.New("not allowed")

// refusal is a Scope's Refusal, which is ErrNotAllowed too.
type refusal struct{ err error }

func (r refusal) Error() string   { return r.err.Error() }
func (r refusal) Unwrap() []error { return []error{r.err, ErrNotAllowed} }

// maxSymlinks is the kernel's limit on symlinks followed in one lookup
// (MAXSYMLINKS).
const maxSymlinks = 40

// OpenTarget opens the uprobe target named as written.
//
// Without a scope it is found as bpftrace finds it (FindBinary: a name
// without '/' is looked up in $PATH, a relative path is taken from the
// working directory), its symlinks are followed as the kernel follows
// them, and probes are named by the path as found (Path), as bpftrace
// names them.
//
// With a scope the path must be absolute and is walked one component at
// a time, each opened O_PATH|O_NOFOLLOW under the directory before it:
// a symlink is read (from its own descriptor, so it cannot change under
// the read) and followed only if the path it leads to, lexically clean,
// is one the scope allows; otherwise, and if the opened file's real path
// (/proc/self/fd/N) is not allowed, the open is refused with the scope's
// one error, whatever the file is, so that the refusal tells nothing of
// whether it exists, is ELF, is stripped or which symbols it has. Probes
// are named by the real path.
func OpenTarget(written string, scope *Scope) (*Target, error) {
	if scope == nil {
		return openFound(written)
	}
	refuse := func() error {
		if scope.Refusal != nil {
			return refusal{scope.Refusal(written)}
		}
		return fmt.Errorf("uprobe target file %q: %w", written, ErrNotAllowed)
	}
	allows := func(p string) bool { return scope.Allows == nil || scope.Allows(p) }
	if written == "" {
		return nil, errors.New("uprobe target file is empty")
	}
	if !filepath.IsAbs(written) {
		return nil, fmt.Errorf("uprobe target file %q: the path must be absolute", written)
	}
	path := filepath.Clean(written)
	if !allows(path) {
		return nil, refuse()
	}
	fd, err := walk(written, path, allows, refuse)
	if err != nil {
		return nil, err
	}
	t, err := newTarget(fd, written)
	if err != nil {
		return nil, err
	}
	// The walk checked the names it went through; the file's real path
	// now is what a rename of a directory on the way cannot fool.
	if !allows(t.real) {
		t.Close()
		return nil, refuse()
	}
	t.name, t.debugFile = t.real, elfdebug.UnderRoot
	return t, nil
}

// openFound is OpenTarget without a scope.
func openFound(written string) (*Target, error) {
	path, err := FindBinary(written)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, targetError(written, err)
	}
	t, err := newTarget(fd, written)
	if err != nil {
		return nil, err
	}
	t.name, t.debugFile = path, elfdebug.File
	return t, nil
}

// walk opens clean, the absolute clean form of written, component by
// component, following only the symlinks whose destination allows
// accepts. It returns an O_PATH descriptor of what is not a symlink.
func walk(written, clean string, allows func(string) bool, refuse func() error) (int, error) {
	path := clean
	for hops := 0; ; hops++ {
		fd, next, err := walkOnce(written, path)
		if err != nil || next == "" {
			return fd, err
		}
		if !allows(next) {
			return -1, refuse()
		}
		if hops >= maxSymlinks {
			return -1, targetError(written, unix.ELOOP)
		}
		path = next
	}
}

// walkOnce opens path (absolute and clean) up to its first symlink: it
// returns the descriptor of the file when there is none, else the path
// that the symlink makes of path (lexically clean).
func walkOnce(written, path string) (int, string, error) {
	dir, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", targetError(written, err)
	}
	if path == "/" {
		unix.Close(dir)
		return -1, "", fmt.Errorf("uprobe target file %q is not a regular file (a directory)", written)
	}
	comps := strings.Split(path[1:], "/")
	for i, c := range comps {
		fd, err := unix.Openat(dir, c, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(dir)
		if err != nil {
			return -1, "", targetError(written, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, "", targetError(written, err)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			link, err := readlinkFD(fd)
			unix.Close(fd)
			if err != nil {
				return -1, "", fmt.Errorf("uprobe target file %q: reading the symbolic link %s: %w", written, "/"+strings.Join(comps[:i+1], "/"), err)
			}
			if !filepath.IsAbs(link) {
				link = "/" + strings.Join(comps[:i], "/") + "/" + link
			}
			return -1, filepath.Clean(link + "/" + strings.Join(comps[i+1:], "/")), nil
		case unix.S_IFDIR:
			if i == len(comps)-1 {
				return fd, "", nil // newTarget refuses it
			}
			dir = fd
		default:
			if i == len(comps)-1 {
				return fd, "", nil
			}
			unix.Close(fd)
			return -1, "", targetError(written, unix.ENOTDIR)
		}
	}
	panic("unreachable: the last component returns")
}

// readlinkFD reads the symlink an O_PATH|O_NOFOLLOW descriptor holds.
// Read through the descriptor, the link is the one that was opened: a
// read by name races with a rename that puts a file there, which fails
// with a bare EINVAL.
func readlinkFD(fd int) (string, error) {
	for n := 256; n <= 1<<16; n *= 2 {
		b := make([]byte, n)
		l, err := unix.Readlinkat(fd, "", b)
		if err != nil {
			return "", err
		}
		if l < n {
			return string(b[:l]), nil
		}
	}
	return "", unix.ENAMETOOLONG
}

// newTarget makes a Target of an O_PATH descriptor of a file that must
// be a regular file, and learns its real path.
func newTarget(fd int, written string) (*Target, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, targetError(written, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("uprobe target file %q is not a regular file (%s)", written, fileKind(modeOf(st.Mode)))
	}
	if st.Nlink == 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("uprobe target file %q was deleted while it was opened", written)
	}
	t := &Target{f: os.NewFile(uintptr(fd), written), dev: st.Dev, ino: st.Ino}
	real, err := os.Readlink(t.AttachPath())
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("uprobe target file %q: its real path from /proc/self/fd: %w (is /proc mounted?)", written, err)
	}
	t.real = real
	return t, nil
}

// modeOf is the fs.FileMode type bits of a stat mode.
func modeOf(m uint32) fs.FileMode {
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFLNK:
		return fs.ModeSymlink
	}
	return 0
}

// targetError says what went wrong with a path in words: a raw errno
// ("invalid argument") tells a user nothing.
func targetError(written string, err error) error {
	var why string
	switch {
	case errors.Is(err, unix.ENOENT):
		return notFound(fmt.Sprintf("uprobe target file %q does not exist", written))
	case errors.Is(err, unix.ENOTDIR):
		why = "a component of the path is not a directory"
	case errors.Is(err, unix.ELOOP):
		why = "too many levels of symbolic links"
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		why = "permission denied"
	case errors.Is(err, unix.ENAMETOOLONG):
		why = "the path is too long"
	default:
		why = "cannot open it"
	}
	return fmt.Errorf("uprobe target file %q: %s: %w", written, why, err)
}

// Path is the name probes on the file carry: the real path of a file
// opened with a scope, else the path as found.
func (t *Target) Path() string { return t.name }

// RealPath is the file's real path when it was opened.
func (t *Target) RealPath() string { return t.real }

// AttachPath names the open file for the kernel (Open's path):
// /proc/self/fd/N, which the kernel resolves to the inode held, not to
// whatever has the name now.
func (t *Target) AttachPath() string { return "/proc/self/fd/" + strconv.Itoa(int(t.f.Fd())) }

// Same says whether two targets are one inode.
func (t *Target) Same(o *Target) bool { return t.dev == o.dev && t.ino == o.ino }

// SameFile says whether st describes the target's inode.
func (t *Target) SameFile(st *unix.Stat_t) bool { return st.Dev == t.dev && st.Ino == t.ino }

// Close releases the descriptor. Probes attached through it stay.
func (t *Target) Close() error { return t.f.Close() }

// open opens the target for reading, through its descriptor.
func (t *Target) open() (*os.File, int64, error) {
	f, err := os.OpenFile(t.AttachPath(), os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", t.name, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%s: %w", t.name, err)
	}
	if !t.SameFile(&st) {
		f.Close()
		return nil, 0, fmt.Errorf("%s: the file changed while it was open", t.name)
	}
	return f, st.Size, nil
}

// Functions is Functions of the target, read once.
func (t *Target) Functions() ([]Symbol, error) {
	t.once.Do(func() {
		f, size, err := t.open()
		if err != nil {
			t.symsErr = err
			return
		}
		defer f.Close()
		t.syms, t.symsErr = functionsOf(f, size, t.name, t.debugFile)
	})
	return t.syms, t.symsErr
}

// Match is Match on the target.
func (t *Target) Match(pattern string) ([]Symbol, error) {
	if pattern == "" {
		return nil, fmt.Errorf("%s: empty function name", t.name)
	}
	syms, err := t.Functions()
	if err != nil {
		return nil, err
	}
	return match(syms, t.name, pattern)
}

// FuncOffset is the file offset of fn in the target, as the compiler
// finds it: a function's symbol (Match without wildcards), or 0xADDR
// (AddressOffset).
func (t *Target) FuncOffset(fn string) (uint64, error) {
	if addr, ok := address(fn); ok {
		// The address must be inside a function the file's symbols
		// name, as bpftrace resolves it: a breakpoint anywhere else
		// could split an instruction, or land in data.
		off, err := t.AddressOffset(addr)
		if err == nil && !t.inFunction(addr) {
			err = errors.New("not in a function")
		}
		if err != nil {
			// bpftrace's words, the address in hex whatever its spelling.
			return 0, fmt.Errorf("Could not resolve address: %s:%#x", t.name, addr)
		}
		return off, nil
	}
	if strings.HasPrefix(fn, "0x") {
		return 0, fmt.Errorf("invalid address %q", fn)
	}
	if strings.Contains(fn, "*") {
		return 0, fmt.Errorf("%s: %q is a wildcard, not a function", t.name, fn)
	}
	// FUNC+OFFSET: an instruction inside the function, as bpftrace
	// takes it, within the function's size.
	name, plus := fn, uint64(0)
	if i := strings.LastIndexByte(fn, '+'); i > 0 {
		if n, err := strconv.ParseUint(fn[i+1:], 0, 64); err == nil {
			name, plus = fn[:i], n
		}
	}
	syms, err := t.Match(name)
	if err != nil {
		return 0, err
	}
	if plus > 0 && plus >= syms[0].Size {
		return 0, fmt.Errorf("Offset outside the function bounds ('%s' size is %d)", name, syms[0].Size)
	}
	return syms[0].Offset + plus, nil
}

// address reads a uprobe's FUNC that is an address: 0x... or decimal.
func address(fn string) (uint64, bool) {
	if hex, ok := strings.CutPrefix(fn, "0x"); ok {
		v, err := strconv.ParseUint(hex, 16, 64)
		return v, err == nil
	}
	v, err := strconv.ParseUint(fn, 10, 64)
	return v, err == nil
}

// AddressOffset is AddressOffset on the target.
func (t *Target) AddressOffset(addr uint64) (uint64, error) {
	f, _, err := t.open()
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return addressOffset(f, t.name, addr)
}

// Read opens the target and hands it to read, for other readers of its
// ELF (symbol addresses): the inode is the target's.
func (t *Target) Read(read func(f *os.File, size int64) error) error {
	f, size, err := t.open()
	if err != nil {
		return err
	}
	defer f.Close()
	return read(f, size)
}

// inFunction says whether addr is inside a function symbol of the file.
func (t *Target) inFunction(addr uint64) bool {
	syms, err := t.Functions()
	if err != nil {
		return false
	}
	for _, s := range syms {
		if addr >= s.Addr && (addr < s.Addr+s.Size || s.Size == 0 && addr == s.Addr) {
			return true
		}
	}
	return false
}
