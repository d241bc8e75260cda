package broker

import (
	"bufio"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tracebroker/tracebroker/broker/program"
)

// cgroup_path(id) is printed as bpftrace 0.17 prints it: the path of the
// cgroup whose directory has inode id, in each mounted hierarchy where
// one has (cgroup2 as "unified" first, then each v1 hierarchy by its
// mount point's name), "NAME:PATH" joined by commas. An optional filter
// (a glob) keeps the hierarchies whose names match.

// maxCgroupDirs bounds the directories one hierarchy's walk visits: a
// host with more cgroups than that gets no path rather than a long stall
// of the output.
const maxCgroupDirs = 1 << 16

// cgroupRoot is one mounted hierarchy.
type cgroupRoot struct {
	name, dir string
}

// cgroupRoots lists the mounted hierarchies in mounts (/proc/mounts's
// format), in bpftrace's order.
func cgroupRoots(mounts io.Reader) []cgroupRoot {
	var roots []cgroupRoot
	s := bufio.NewScanner(mounts)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) < 3 {
			continue
		}
		dir := unescapeMount(f[1])
		switch f[2] {
		case "cgroup2":
			roots = append(roots, cgroupRoot{"unified", dir})
		case "cgroup":
			roots = append(roots, cgroupRoot{filepath.Base(dir), dir})
		}
	}
	slices.SortStableFunc(roots, func(a, b cgroupRoot) int {
		switch {
		case a.name == b.name:
			return 0
		case a.name == "unified":
			return -1
		case b.name == "unified":
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	return roots
}

// unescapeMount undoes /proc/mounts' octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			if v, ok := octal3(s[i+1:]); ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func octal3(s string) (byte, bool) {
	if len(s) < 3 {
		return 0, false
	}
	v := 0
	for _, c := range s[:3] {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v*8 + int(c-'0')
	}
	return byte(v), v < 256
}

// cgroupPaths finds cgroup ids' paths through an index per hierarchy
// (inode to path), made by one walk and made again when an id is not in
// it, at most once per cgroupRewalk: a script that prints many ids the
// host has no cgroup for costs one walk a second, not one per id.
type cgroupPaths struct {
	mounts string // /proc/mounts
	mu     sync.Mutex
	index  map[string]*cgroupIndex // by hierarchy root
	now    func() time.Time
}

// cgroupRewalk is how often a hierarchy may be walked again.
const cgroupRewalk = time.Second

type cgroupIndex struct {
	paths  map[uint64]string
	walked time.Time
}

func newCgroupPaths() *cgroupPaths {
	return &cgroupPaths{mounts: "/proc/mounts", index: map[string]*cgroupIndex{}, now: time.Now}
}

// text is what cgroup_path(id, filter) prints.
func (c *cgroupPaths) text(id uint64, filter string) string {
	f, err := os.Open(c.mounts)
	if err != nil {
		return ""
	}
	roots := cgroupRoots(f)
	f.Close()
	var parts []string
	for _, r := range roots {
		if filter != "" {
			if ok, _ := path.Match(filter, r.name); !ok {
				continue
			}
		}
		if p := c.find(id, r.dir); p != "" {
			parts = append(parts, r.name+":"+p)
		}
	}
	return strings.Join(parts, ",")
}

// find is the path below dir of the directory whose inode is id, "/" for
// dir itself, "" when none is.
func (c *cgroupPaths) find(id uint64, dir string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ix := c.index[dir]
	if ix != nil {
		// A cgroup removed and another made may reuse the inode:
		// the path must still have it.
		if p, ok := ix.paths[id]; ok && inode(filepath.Join(dir, p)) == id {
			return p
		}
		if c.now().Sub(ix.walked) < cgroupRewalk {
			return ""
		}
	}
	ix = &cgroupIndex{paths: walkCgroups(dir), walked: c.now()}
	c.index[dir] = ix
	if p, ok := ix.paths[id]; ok {
		return p
	}
	return ""
}

// walkCgroups maps the inode of each directory below dir (dir itself
// too, as "/") to its path below dir, visiting at most maxCgroupDirs.
func walkCgroups(dir string) map[uint64]string {
	paths := map[uint64]string{}
	visited := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// Unreadable: skipped, as bpftrace skips what it may
			// not read.
			if d != nil && d.IsDir() && p != dir {
				return fs.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		if visited++; visited > maxCgroupDirs {
			return fs.SkipAll
		}
		rel := p[len(dir):]
		if p == dir {
			rel = "/"
		}
		if ino := inode(p); ino != 0 {
			if _, seen := paths[ino]; !seen {
				paths[ino] = rel
			}
		}
		return nil
	})
	return paths
}

// inode is p's inode number, 0 when p cannot be stat'ed.
func inode(p string) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return 0
	}
	return st.Ino
}

// usesKind reports whether a program prints or stores a value of kind k.
func usesKind(p *program.Program, k program.TypeKind) bool {
	var has func(t program.Type) bool
	has = func(t program.Type) bool {
		if t.Kind == k {
			return true
		}
		return slices.ContainsFunc(t.Elems, has)
	}
	for _, f := range p.Schema.Formats {
		for _, a := range f.Args {
			if has(a.Type) {
				return true
			}
		}
	}
	for _, m := range p.Schema.Maps {
		if has(m.Value) || slices.ContainsFunc(m.Keys, has) {
			return true
		}
	}
	return false
}
