package tracefs

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Tracepoint names one kernel tracepoint, events/Category/Name in tracefs.
type Tracepoint struct {
	Category, Name string
}

// String returns the tracepoint as "category:name", the form bpftrace uses
// after the "tracepoint:" provider.
func (t Tracepoint) String() string { return t.Category + ":" + t.Name }

// Tracepoints returns the tracepoints whose "category:name" matches pattern,
// sorted the way `bpftrace -l` sorts them (bytewise on "category:name").
//
// The pattern is "category:name" with a glob in either part: "*" matches
// any run of characters, as in bpftrace. A pattern without a colon is
// matched against names in every category ("sys_enter_open*" is
// "*:sys_enter_open*"), and an empty one matches everything, also as in
// bpftrace. Going beyond bpftrace 0.17, "?", "[abc]", "[a-z]", "[^abc]" and
// backslash escapes work as in path.Match; since tracepoint names never
// contain those characters, this cannot change what a bpftrace pattern
// matches. Matching is case-sensitive. A pattern that matches nothing
// yields no tracepoints and no error, like bpftrace; a malformed one ("[a")
// is an error.
//
// Events that cannot be enabled, namely the "ftrace" category that only
// exists to describe ring buffer records, are left out as bpftrace leaves
// them out.
func Tracepoints(pattern string) ([]Tracepoint, error) {
	dir, err := eventsDir()
	if err != nil {
		return nil, err
	}
	return listTracepoints(dir, pattern)
}

func listTracepoints(events, pattern string) ([]Tracepoint, error) {
	if pattern == "" {
		pattern = "*:*"
	} else if !strings.Contains(pattern, ":") {
		// bpftrace reads "tracepoint:sys_enter_open*" as
		// "tracepoint:*:sys_enter_open*".
		pattern = "*:" + pattern
	}
	if err := checkPattern(pattern); err != nil {
		return nil, err
	}

	// A literal name, the commonest case (a one-liner's
	// "syscalls:sys_enter_openat"), needs no directory read at all: a
	// category's listing is the kernel building hundreds of eventfs
	// entries.
	if cat, name, _ := strings.Cut(pattern, ":"); !hasMeta(cat) && !hasMeta(name) {
		return statTracepoint(events, cat, name)
	}

	// A literal category, the common case ("syscalls:sys_enter_*"), needs
	// one directory read instead of one per category.
	var cats []string
	if cat, _, ok := strings.Cut(pattern, ":"); ok && !hasMeta(cat) {
		if !validComponent(cat) {
			// "../x:*" must not list directories outside events/.
			return nil, nil
		}
		cats = []string{cat}
	} else {
		var err error
		cats, err = readCategories(events)
		if err != nil {
			return nil, err
		}
	}

	// Sorting categories by "category:" and then names within each
	// category yields exactly the order of sorting whole "category:name"
	// strings, which is what bpftrace prints, without building a key per
	// event: two distinct "category:" prefixes differ before either ends.
	slices.SortFunc(cats, compareCategories)
	perCat, err := readAllEventNames(events, cats)
	if err != nil {
		return nil, err
	}
	var out []Tracepoint
	var key []byte
	for i, cat := range cats {
		names := perCat[i]
		slices.Sort(names)
		for _, name := range names {
			key = append(append(append(key[:0], cat...), ':'), name...)
			if ok, _ := path.Match(pattern, string(key)); ok {
				out = append(out, Tracepoint{cat, name})
			}
		}
	}
	return out, nil
}

// compareCategories orders a and b as strings.Compare(a+":", b+":") would.
// That differs from plain order when one is a prefix of the other, because
// ':' sorts after '-', '.' and the digits: "x86:" < "x:".
func compareCategories(a, b string) int {
	n := min(len(a), len(b))
	if c := strings.Compare(a[:n], b[:n]); c != 0 {
		return c
	}
	switch {
	case len(a) == len(b):
		return 0
	case len(a) < len(b):
		return cmp.Compare(':', b[n])
	default:
		return cmp.Compare(a[n], ':')
	}
}

// readAllEventNames reads the category directories in parallel: almost all
// of the cost of a full listing is the kernel building ~100 eventfs
// directories, and those reads are independent.
func readAllEventNames(events string, cats []string) ([][]string, error) {
	out := make([][]string, len(cats))
	if len(cats) == 1 {
		names, err := readEventNames(filepath.Join(events, cats[0]))
		out[0] = names
		return out, err
	}
	workers := min(runtime.GOMAXPROCS(0), len(cats), 8)
	errs := make([]error, len(cats))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(cats) {
					return
				}
				out[i], errs[i] = readEventNames(filepath.Join(events, cats[i]))
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func checkPattern(pattern string) error {
	// path.Match validates the whole pattern even when the subject does
	// not match, so an empty subject is enough to reject a malformed glob.
	if _, err := path.Match(pattern, ""); err != nil {
		return fmt.Errorf("bad tracepoint pattern %q: %w", pattern, err)
	}
	return nil
}

func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// readCategories returns the subdirectories of events/. The plain files
// there (enable, header_page, header_event) are skipped by type rather than
// by name so new control files do not show up as categories.
func readCategories(events string) ([]string, error) {
	ents, err := readDir(events)
	if err != nil {
		return nil, err
	}
	cats := make([]string, 0, len(ents))
	for _, e := range ents {
		if e.typ == unix.DT_DIR {
			cats = append(cats, e.name)
		}
	}
	return cats, nil
}

// readEventNames returns the events of one category, or none when the
// category does not exist or cannot be enabled.
// statTracepoint is listTracepoints for a pattern without wildcards:
// category:name when readEventNames would list it (a directory, in a
// category with an enable file), else nothing.
func statTracepoint(events, cat, name string) ([]Tracepoint, error) {
	if !validComponent(cat) || !validComponent(name) {
		return nil, nil
	}
	catDir := filepath.Join(events, cat)
	fi, err := os.Lstat(filepath.Join(catDir, name))
	if err == nil && fi.IsDir() {
		if fi, err = os.Lstat(filepath.Join(catDir, "enable")); err == nil && !fi.IsDir() {
			return []Tracepoint{{cat, name}}, nil
		}
	}
	if err == nil || errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	return nil, err
}

func readEventNames(catDir string) ([]string, error) {
	ents, err := readDir(catDir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ents))
	enable := false
	for _, e := range ents {
		if e.typ == unix.DT_DIR {
			names = append(names, e.name)
		} else if e.name == "enable" {
			enable = true
		}
	}
	// The kernel gives every category an "enable" file except "ftrace",
	// whose events describe ftrace's own records and cannot be attached to;
	// available_events, which bpftrace reads, omits them for the same reason.
	if !enable {
		return nil, nil
	}
	return names, nil
}

type dirent struct {
	name string
	typ  uint8 // DT_* from getdents
}

// direntBufSize fits the largest category (syscalls, ~700 events) in one
// getdents call.
const direntBufSize = 64 << 10

var direntBufs = sync.Pool{New: func() any { b := make([]byte, direntBufSize); return &b }}

// readDir lists a directory with raw getdents64. With ~100 categories to
// read, the os package's extras (poller registration, a small 8 KiB buffer,
// a DirEntry allocation per name) cost more than the kernel work; nothing
// here needs sorting or lstat, since getdents already reports each entry's
// type on tracefs.
func readDir(dir string) ([]dirent, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	bp := direntBufs.Get().(*[]byte)
	defer direntBufs.Put(bp)
	buf := *bp
	var out []dirent
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "getdents", Path: dir, Err: err}
		}
		if n <= 0 {
			return out, nil
		}
		start := len(out)
		out = parseDirents(buf[:n], out)
		// Filesystems may answer DT_UNKNOWN; tracefs does not today, but
		// a stat per such entry is cheap insurance against listing control
		// files as events.
		for i := start; i < len(out); i++ {
			if out[i].typ == unix.DT_UNKNOWN {
				var st unix.Stat_t
				if unix.Fstatat(fd, out[i].name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
					out[i].typ = unix.DT_DIR
				}
			}
		}
	}
}

// parseDirents decodes linux_dirent64 records: ino u64, off s64, reclen
// u16, type u8, then a NUL-terminated name.
func parseDirents(b []byte, out []dirent) []dirent {
	const hdr = 19
	for len(b) >= hdr {
		reclen := int(binary.NativeEndian.Uint16(b[16:18]))
		if reclen < hdr || reclen > len(b) {
			break
		}
		typ := b[18]
		name := b[hdr:reclen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		b = b[reclen:]
		if len(name) == 0 || string(name) == "." || string(name) == ".." {
			continue
		}
		out = append(out, dirent{string(name), typ})
	}
	return out
}
