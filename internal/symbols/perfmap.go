package symbols

import (
	"bufio"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/internal/cxxsort"
	"github.com/tracebroker/tracebroker/internal/elfsym"
	"github.com/tracebroker/tracebroker/internal/regfile"
)

// perfMap is a process's /tmp/perf-PID.map, where JIT compilers (the JVM
// with perf-map-agent, node --perf-basic-prof, ...) list the code they
// generate, one "START SIZE name" line per symbol. It grows as they
// compile, so it is read again whenever the file changes.
type perfMap struct {
	paths []string

	mu   sync.Mutex
	key  fileKey
	syms []usym
}

// perfMapModule is the perf map module bcc adds after the mappings when
// one is readable: first /tmp/perf-NSPID.map inside the process's root
// (named with that root's path, as bcc's bcc_perf_map_path does), else
// the host's /tmp/perf-PID.map.
func perfMapModule(pid int, dir string) *module {
	if target, err := os.Readlink(dir + "/root"); err == nil {
		if target == "/" {
			target = ""
		}
		name := target + "/tmp/perf-" + strconv.Itoa(nsTgid(pid, dir)) + ".map"
		if path := dir + "/root" + name; unix.Access(path, unix.R_OK) == nil {
			return &module{name: name, perf: &perfMap{paths: []string{path, name}}}
		}
	}
	name := "/tmp/perf-" + strconv.Itoa(pid) + ".map"
	if unix.Access(name, unix.R_OK) == nil {
		return &module{name: name, perf: &perfMap{paths: []string{name}}}
	}
	return nil
}

// nsTgid is bcc's bcc_perf_map_nstgid: the process's id in its own pid
// namespace (the last NStgid field of /proc/PID/status), else its Tgid,
// else pid; -1 when the status cannot be read.
func nsTgid(pid int, dir string) int {
	f, err := os.Open(dir + "/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	id := pid
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				id = n
			}
		}
		if v, ok := strings.CutPrefix(line, "NStgid:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				if n, err := strconv.Atoi(f[len(f)-1]); err == nil {
					id = n
				}
			}
		}
	}
	return id
}

// symbols returns the map's symbols, sorted as bcc sorts them, reading
// the file again if it changed since it was last read. When it can no
// longer be read, the last symbols read stay.
func (m *perfMap) symbols() []usym {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, path := range m.paths {
		f, fi, err := regfile.Open(path)
		if errors.Is(err, regfile.ErrNotRegular) {
			break
		}
		if err != nil {
			continue
		}
		defer f.Close()
		if k := keyOf(fi); k != m.key {
			m.key = k
			m.syms = parsePerfMap(f)
		}
		break
	}
	return m.syms
}

// Bounds on a perf map, which is the traced process's file: at most
// maxPerfMap bytes of it are read, and a line longer than maxPerfLine
// (a name longer than elfsym.MaxName) is skipped.
const (
	maxPerfMap  = 64 << 20
	maxPerfLine = elfsym.MaxName + 64
)

// parsePerfMap parses perf map lines as bcc's bcc_perf_map_foreach_sym:
// a nonzero hex start and a hex size, each followed by a space, then the
// name (which may contain spaces) to the end of the line; other lines
// are skipped.
func parsePerfMap(r io.Reader) []usym {
	br := bufio.NewReaderSize(io.LimitReader(r, maxPerfMap), maxPerfLine)
	var syms []usym
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// Too long for a symbol: skip to the end of the line.
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
			if err != nil {
				break
			}
			continue
		}
		if len(line) > 0 {
			if s, ok := parsePerfMapLine(strings.TrimSuffix(string(line), "\n")); ok {
				syms = append(syms, s)
			}
		}
		if err != nil {
			break
		}
	}
	cxxsort.Sort(syms, func(a, b *usym) bool { return a.start < b.start })
	return syms
}

func parsePerfMapLine(line string) (usym, bool) {
	start, rest, ok := perfMapHex(line)
	if !ok || start == 0 {
		return usym{}, false
	}
	size, rest, ok := perfMapHex(strings.TrimLeft(rest, spaces))
	if !ok {
		return usym{}, false
	}
	return usym{start: start, size: size, name: strings.TrimLeft(rest, spaces)}, true
}

// perfMapHex parses a hex number (strtoull's optional blanks and 0x
// included) that a space must follow.
func perfMapHex(s string) (uint64, string, bool) {
	v, end, ok := parseHex(s)
	if !ok || end >= len(s) || s[end] != ' ' {
		return 0, "", false
	}
	return v, s[end:], true
}
