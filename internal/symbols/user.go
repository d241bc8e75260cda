package symbols

import (
	"debug/elf"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/internal/regfile"
)

// User resolves user-space addresses of processes. It caches what it
// reads, per process and per file, and is safe for concurrent use.
type User struct {
	mu    sync.Mutex
	procs *lru[int, *proc]
	files *lru[fileKey, *fileEntry]
}

const (
	// maxProcs bounds the processes whose mappings are kept. A process
	// stays resolvable after it exits only while it is cached.
	maxProcs = 4096
	// maxFiles bounds the files whose symbols are kept beyond the
	// processes that map them.
	maxFiles = 1024
)

// refreshInterval is how often, at most, a process's mappings are read
// again because an address lies in none of them (a library it loaded
// after they were read); a variable for the tests.
var refreshInterval = time.Second

// maxPartialReads bounds the reads of a process's mappings that are not
// whole (see proc.whole) before one is kept anyway. The -c child is
// watched from before its exec, so the window is hit, and an event of the
// new program can be printed a moment later: any rate limit by time let
// a record read just before the exec finished stand for a second, and
// every frame of the trace printed [unknown]. A process that unmapped its
// own executable stays partial and costs this many reads of its maps.
const maxPartialReads = 64

// NewUser returns an empty cache.
func NewUser() *User {
	return &User{procs: newLRU[int, *proc](maxProcs), files: newLRU[fileKey, *fileEntry](maxFiles)}
}

// proc is what is known of a process: its executable mappings as bcc's
// ProcSyms holds them, one module per mapped name in the order of
// /proc/PID/maps, then its perf map if it has one.
type proc struct {
	pid     int
	exePath string // "/proc/PID/exe"
	exe     fileID // what it was when the mappings were read
	// whole reports whether the mappings held the executable: read
	// while the process was in execve, after the kernel had set its new
	// executable but before it had mapped it, they do not, and such a
	// record must not be kept as the process's.
	whole bool
	// partial counts the reads in a row that were not whole.
	partial int
	mods    []*module
	// read is when the mappings were last read or tried (UnixNano).
	read atomic.Int64
}

// fileID identifies a file, for bcc's check that a process has not
// exec'd another program (ProcStat::is_stale).
type fileID struct{ dev, ino uint64 }

type module struct {
	name   string   // as printed: the path in /proc/PID/maps
	paths  []string // where to read it, in order; none: nothing resolves
	ranges []mapping
	perf   *perfMap // nil for a mapped file

	once sync.Once
	file *fileSyms // nil: unreadable
}

// fileKey identifies a version of a file: a binary rebuilt at the same
// path differs in one of these, and is read again.
type fileKey struct {
	dev, ino    uint64
	size, mtime int64
}

type fileEntry struct {
	once sync.Once
	syms *fileSyms
}

// Resolve resolves addr in process pid as bcc 0.26's
// ProcSyms::resolve_addr does for bpftrace 0.17's ustack and usym, so
// that the output is the same:
//
//   - The module is the first executable file-backed mapping holding
//     addr, in /proc/PID/maps order; in the vDSO, a deleted file or one
//     that cannot be read nothing resolves.
//   - addr becomes an address of the file: as is for an ET_EXEC
//     executable; for ET_DYN (PIE executables, shared libraries) the file
//     offset addr - start + offset of the mapping, through the PT_LOAD
//     header holding it.
//   - The symbol is the innermost containing that address (see find), of
//     any type (bpftrace asks for all: a data object in .text resolves),
//     among the file's .symtab and .dynsym and those of its separate
//     debug file; failing that, from the process's /tmp/perf-PID.map.
//
// Module is the mapped path as /proc/PID/maps shows it (or the perf
// map's). ok is false when addr does not resolve, or when the process is
// not cached and /proc/PID/maps cannot be read.
//
// Unlike bpftrace 0.17, which by default reads /proc/PID/maps again for
// every address, the mappings are read once per process and cached, so
// that a stack resolved once while the process was alive still resolves
// after it exits. They are read again when /proc/PID/exe is another file
// (the process exec'd another program, bcc's own check) and, at most once
// a second, when addr lies in no mapping (a library loaded since). Files
// are read through /proc/PID/root when it is there, so that a process in
// a container gets its own files.
func (u *User) Resolve(pid int, addr uint64) (Symbol, bool) {
	p := u.proc(pid)
	if p == nil {
		return Symbol{}, false
	}
	s, ok, _ := u.resolveIn(p, addr)
	return s, ok
}

// Name is bpftrace's usym(addr): the symbol's name without an offset, or
// the address as "0x..." when it does not resolve.
func (u *User) Name(pid int, addr uint64) string {
	if s, ok := u.Resolve(pid, addr); ok {
		return s.Name
	}
	return pointer(addr)
}

// Frame is one ustack frame: "name+offset" (offset in decimal), or
// "0x..." when the address does not resolve. In perf mode the address in
// bare hex and a space come first, and the module follows in parentheses,
// "[unknown]" when unresolved: "55977d93b139 add_one+0 (/tmp/bt/w)",
// "7fe99bb9ccce 0x7fe99bb9ccce ([unknown])".
func (u *User) Frame(pid int, addr uint64, perf bool) string {
	s, ok := u.Resolve(pid, addr)
	return userFrame(addr, s, ok, perf)
}

// Stack is what bpftrace prints for a ustack: a newline, then a line per
// frame up to the first zero address, each indented by indent spaces, or
// by a tab in perf mode.
func (u *User) Stack(pid int, addrs []uint64, perf bool, indent int) string {
	// One look-up of the process serves the whole stack.
	p := u.proc(pid)
	return stack(addrs, perf, indent, func(a uint64) string {
		var s Symbol
		ok := false
		if p != nil {
			s, ok, p = u.resolveIn(p, a)
		}
		return userFrame(a, s, ok, perf)
	})
}

func userFrame(addr uint64, s Symbol, ok, perf bool) string {
	switch {
	case !perf && ok:
		return withOffset(s)
	case !perf:
		return pointer(addr)
	case ok:
		return strconv.FormatUint(addr, 16) + " " + withOffset(s) + " (" + s.Module + ")"
	}
	return strconv.FormatUint(addr, 16) + " " + pointer(addr) + " ([unknown])"
}

// resolveIn resolves addr in p, or in p's mappings read anew when addr
// lies in none of them; it returns the process record to use next.
func (u *User) resolveIn(p *proc, addr uint64) (Symbol, bool, *proc) {
	s, ok, mapped := p.resolve(u, addr)
	if ok || mapped {
		return s, ok, p
	}
	now := time.Now().UnixNano()
	last := p.read.Load()
	if now-last < int64(refreshInterval) || !p.read.CompareAndSwap(last, now) {
		return s, false, p
	}
	np, err := readProc(p.pid)
	if err != nil {
		return s, false, p // gone: keep what is cached
	}
	u.mu.Lock()
	u.procs.put(p.pid, np)
	u.mu.Unlock()
	s, ok, _ = np.resolve(u, addr)
	return s, ok, np
}

// resolve is bcc's ProcSyms::resolve_addr on p. mapped reports whether
// addr lies in a mapping of a file (a perf map does not count).
func (p *proc) resolve(u *User, addr uint64) (s Symbol, ok, mapped bool) {
	onlyPerf := false
	for _, m := range p.mods {
		if onlyPerf && m.perf == nil {
			continue
		}
		sym, off, in := m.find(u, addr)
		if !in {
			continue
		}
		if m.perf == nil {
			mapped = true
		}
		if sym != nil {
			return Symbol{Name: sym.name, Offset: off - sym.start, Module: m.name}, true, mapped
		}
		// As bcc does, an address in a module with no symbol for it is
		// then looked for in the perf map only.
		if m.perf == nil {
			onlyPerf = true
		}
	}
	return Symbol{}, false, mapped
}

// find looks addr up in m: in reports whether m covers addr, off is the
// address converted to the module's own, and sym the symbol, if any.
func (m *module) find(u *User, addr uint64) (sym *usym, off uint64, in bool) {
	if m.perf != nil {
		// A perf map covers the whole address space, in absolute
		// addresses.
		if addr == ^uint64(0) {
			return nil, 0, false
		}
		sym, _ = find(m.perf.symbols(), addr)
		return sym, addr, true
	}
	for _, r := range m.ranges {
		if addr < r.start || addr >= r.end {
			continue
		}
		f := m.symbols(u)
		if f == nil || f.typ == elf.ET_NONE {
			return nil, addr, true
		}
		off = addr
		if f.typ == elf.ET_DYN {
			off = f.vaddr(addr - r.start + r.off)
		}
		sym, _ = find(f.syms, off)
		return sym, off, true
	}
	return nil, 0, false
}

func (m *module) symbols(u *User) *fileSyms {
	m.once.Do(func() { m.file = u.open(m.paths) })
	return m.file
}

// open reads the symbols of the first of paths that can be opened, or
// takes them from the cache when that version of the file was read
// before. It returns nil when none opens or the file is not regular.
func (u *User) open(paths []string) *fileSyms {
	for _, path := range paths {
		f, fi, err := regfile.Open(path)
		if errors.Is(err, regfile.ErrNotRegular) {
			return nil
		}
		if err != nil {
			continue
		}
		defer f.Close()
		key := keyOf(fi)
		u.mu.Lock()
		e, ok := u.files.get(key)
		if !ok {
			e = &fileEntry{}
			u.files.put(key, e)
		}
		u.mu.Unlock()
		e.once.Do(func() { e.syms = readFileSyms(f, path, fi.Size()) })
		return e.syms
	}
	return nil
}

func keyOf(fi os.FileInfo) fileKey {
	k := fileKey{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.dev, k.ino = uint64(st.Dev), uint64(st.Ino)
	}
	return k
}

// proc returns the cached record of pid, reading it if it is not cached
// or the process has exec'd another program since; nil when it cannot be
// read.
func (u *User) proc(pid int) *proc {
	if pid <= 0 {
		return nil
	}
	u.mu.Lock()
	p, ok := u.procs.get(pid)
	u.mu.Unlock()
	if ok {
		// A process that has exited keeps its record.
		id, err := exeID(p.exePath)
		if err != nil {
			return p
		}
		if id == p.exe && (p.whole || p.partial >= maxPartialReads) {
			return p
		}
	}
	np, err := readProc(pid)
	if err != nil {
		if ok {
			return p
		}
		return nil
	}
	if ok && !np.whole && np.exe == p.exe {
		np.partial = p.partial + 1
	}
	u.mu.Lock()
	u.procs.put(pid, np)
	u.mu.Unlock()
	return np
}

func exeID(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileID{}, err
	}
	return fileID{uint64(st.Dev), st.Ino}, nil
}

// readProc reads the mappings of pid into a record whose files are read
// when first needed.
func readProc(pid int) (*proc, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	p := &proc{pid: pid, exePath: dir + "/exe"}
	// The executable is identified before the maps are read: should the
	// process exec in between, the record names the old file and the
	// next look-up reads the new maps, never the reverse.
	p.exe, _ = exeID(p.exePath)
	data, err := os.ReadFile(dir + "/maps")
	if err != nil {
		return nil, err
	}
	p.read.Store(time.Now().UnixNano())
	byName := map[string]*module{}
	for _, mp := range parseMaps(string(data)) {
		name, paths := mp.name, []string{dir + "/root" + mp.name, mp.name}
		switch {
		case strings.Contains(name, "/memfd:"):
			// bcc reads a memfd through the process's descriptor for it,
			// and names the module after that.
			if fd := memfdPath(dir, mp.inode); fd != "" {
				name, paths = fd, []string{fd}
			} else {
				paths = nil
			}
		case strings.HasSuffix(name, " (deleted)") || !strings.HasPrefix(name, "/"):
			// A deleted file, or [vdso] and the like: bcc finds no file
			// at that name (bpftrace 0.17 leaves vDSO frames unresolved
			// too).
			paths = nil
		}
		if m := byName[name]; m != nil {
			m.ranges = append(m.ranges, mp)
			continue
		}
		m := &module{name: name, paths: paths, ranges: []mapping{mp}}
		byName[name] = m
		p.mods = append(p.mods, m)
	}
	if m := perfMapModule(pid, dir); m != nil {
		p.mods = append(p.mods, m)
	}
	p.whole = p.exe == fileID{} || p.maps(p.exe.ino)
	return p, nil
}

// maps reports whether one of p's mappings is of the file with inode
// ino.
func (p *proc) maps(ino uint64) bool {
	for _, m := range p.mods {
		for _, r := range m.ranges {
			if r.inode == ino {
				return true
			}
		}
	}
	return false
}

// memfdPath is bcc's _procutils_memfd_path: the /proc/PID/fd entry, in
// directory order, of the file with the given inode, or "".
func memfdPath(dir string, inode uint64) string {
	d, err := os.Open(dir + "/fd")
	if err != nil {
		return ""
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	for _, n := range names {
		var st unix.Stat_t
		p := dir + "/fd/" + n
		if unix.Stat(p, &st) == nil && st.Ino == inode {
			return p
		}
	}
	return ""
}
