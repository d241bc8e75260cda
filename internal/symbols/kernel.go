package symbols

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/tracebroker/tracebroker/internal/cxxsort"
)

// Kernel resolves kernel addresses with a snapshot of /proc/kallsyms. It
// is immutable once loaded and safe for concurrent use.
type Kernel struct {
	// syms are the text symbols in the order bcc's std::sort leaves them
	// (sorted by address; see package cxxsort for why the order of
	// aliases matters).
	syms []ksym
	// text is the file, which the names are slices of.
	text string
	// names are what Lookup searches: the address of the first line
	// naming each symbol; built at the first Lookup, as kaddr is rare.
	namesOnce sync.Once
	names     map[string]uint64
}

type ksym struct {
	addr uint64
	name string
	mod  string // "" for vmlinux
}

// minKernelAddr is bcc's kernelAddrSpace: on x86-64, kallsyms entries
// below it (per-CPU variables, whose "addresses" are offsets) are not
// kernel text and bcc drops them.
var minKernelAddr = func() uint64 {
	if runtime.GOARCH == "amd64" {
		return 0x00ffffffffffffff
	}
	return 0
}()

// LoadKernel reads a kallsyms file ("" means /proc/kallsyms) once; the
// symbols of modules loaded later (and of BPF programs, which kallsyms
// lists too) are not seen, as in bpftrace, which reads it at its first
// kernel symbol.
//
// It fails when every address in the file is 0, which is what the kernel
// shows with kernel.kptr_restrict set or to a reader without
// CAP_SYSLOG: bcc would then resolve nothing and print bare addresses.
func LoadKernel(path string) (*Kernel, error) {
	if path == "" {
		path = "/proc/kallsyms"
	}
	text, err := readText(path)
	if err != nil {
		return nil, err
	}
	k, err := parseKallsyms(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// readText reads a file into a string without the copies of os.ReadFile
// and a conversion: /proc/kallsyms has no size to allocate by, and is
// several megabytes.
func readText(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b strings.Builder
	b.Grow(8 << 20)
	if _, err := io.Copy(&b, f); err != nil {
		return "", err
	}
	return b.String(), nil
}

var (
	errNoKsyms    = errors.New("no symbols")
	errKptrHidden = errors.New("every address is 0: kernel addresses are hidden (kernel.kptr_restrict is set, or the reader lacks CAP_SYSLOG)")
)

// parseKallsyms parses kallsyms text. The symbols kept for Resolve are
// those bcc's bcc_procutils_each_ksym keeps: address neither 0 nor
// all-ones nor below minKernelAddr, and not a data symbol (types b, B, d,
// D, r, R). Lookup instead sees every "ADDR TYPE NAME" line, as
// bpftrace's resolve_kname does.
func parseKallsyms(data string) (*Kernel, error) {
	k := &Kernel{text: data, syms: make([]ksym, 0, strings.Count(data, "\n")+1)}
	lines, nonzero := 0, 0
	for len(data) > 0 {
		var line string
		if i := strings.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, ""
		}
		addr, end, ok := parseHex(line)
		if !ok {
			continue
		}
		lines++
		if addr != 0 {
			nonzero++
		}
		if addr == 0 || addr == ^uint64(0) || addr < minKernelAddr {
			continue
		}
		// bcc reads the type one byte past the address and the name two
		// bytes further, whatever those bytes are.
		if end+3 > len(line) {
			continue
		}
		switch line[end+1] {
		case 'b', 'B', 'd', 'D', 'r', 'R':
			continue
		}
		rest := line[end+3:]
		nameEnd := strings.IndexAny(rest, spaces)
		if nameEnd < 0 {
			nameEnd = len(rest)
		}
		s := ksym{addr: addr, name: rest[:nameEnd]}
		if s.name == "" {
			continue
		}
		if m := rest[nameEnd:]; len(m) > 2 && m[1] == '[' {
			if j := strings.IndexByte(m[2:], ']'); j >= 0 {
				s.mod = m[2 : 2+j]
			}
		}
		k.syms = append(k.syms, s)
	}
	if lines == 0 {
		return nil, errNoKsyms
	}
	if nonzero == 0 {
		return nil, errKptrHidden
	}
	cxxsort.Sort(k.syms, func(a, b *ksym) bool { return a.addr < b.addr })
	return k, nil
}

// buildNames indexes every "ADDR TYPE NAME" line for Lookup.
func (k *Kernel) buildNames() {
	k.names = make(map[string]uint64, len(k.syms))
	for data := k.text; len(data) > 0; {
		var line string
		if i := strings.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, ""
		}
		addr, _, ok := parseHex(line)
		if !ok {
			continue
		}
		if n, ok := lookupName(line); ok {
			if _, dup := k.names[n]; !dup {
				k.names[n] = addr
			}
		}
	}
}

// parseHex parses the leading hex number of a line as strtoull(line,
// &end, 16) does for kallsyms: leading white space and an optional 0x
// are skipped. It returns the index just past the digits; ok is false
// when there are none or the number overflows.
func parseHex(line string) (v uint64, end int, ok bool) {
	i := 0
	for i < len(line) && strings.IndexByte(spaces, line[i]) >= 0 {
		i++
	}
	if i+2 < len(line) && line[i] == '0' && (line[i+1] == 'x' || line[i+1] == 'X') && isHex(line[i+2]) {
		i += 2
	}
	start := i
	for i < len(line) && isHex(line[i]) {
		i++
	}
	if i == start {
		return 0, 0, false
	}
	v, err := strconv.ParseUint(line[start:i], 16, 64)
	if err != nil {
		return 0, 0, false
	}
	return v, i, true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// lookupName is the third space-separated field of a line, which is what
// bpftrace's resolve_kname compares with the name asked for. In a module
// symbol's line it is "name\t[module]", which no name equals: kaddr()
// finds only vmlinux symbols.
func lookupName(line string) (string, bool) {
	_, rest, ok := strings.Cut(line, " ")
	if !ok {
		return "", false
	}
	_, rest, ok = strings.Cut(rest, " ")
	if !ok {
		return "", false
	}
	name, _, _ := strings.Cut(rest, " ")
	if name == "" || strings.IndexByte(name, '\t') >= 0 {
		return "", false
	}
	return name, true
}

// Resolve is bcc's KSyms::resolve_addr: the symbol with the greatest
// address not above addr, whatever the distance (kallsyms has no sizes),
// so any address at or above the first kernel symbol resolves; ok is
// false below it.
func (k *Kernel) Resolve(addr uint64) (Symbol, bool) {
	i := sort.Search(len(k.syms), func(i int) bool { return k.syms[i].addr > addr })
	if i == 0 {
		return Symbol{}, false
	}
	s := &k.syms[i-1]
	return Symbol{Name: s.name, Offset: addr - s.addr, Module: s.mod}, true
}

// Lookup is bpftrace's kaddr(name): the address on the first line of the
// file naming a vmlinux symbol of any type (data symbols included);
// module symbols are not found. ok is false when there is none or its
// address is 0.
func (k *Kernel) Lookup(name string) (uint64, bool) {
	k.namesOnce.Do(k.buildNames)
	addr := k.names[name]
	return addr, addr != 0
}

// Name is bpftrace's ksym(addr): the symbol's name without an offset, or
// the address as "0x..." when it does not resolve.
func (k *Kernel) Name(addr uint64) string {
	if s, ok := k.Resolve(addr); ok {
		return s.Name
	}
	return pointer(addr)
}

// Frame is one kstack frame: "name+offset" (offset in decimal), or
// "0x..." when the address does not resolve; in perf mode the address in
// bare hex and a space come first ("ffffffff814b096d vfs_read+5"). Kernel
// frames never show their module.
func (k *Kernel) Frame(addr uint64, perf bool) string {
	sym := pointer(addr)
	if s, ok := k.Resolve(addr); ok {
		sym = withOffset(s)
	}
	if perf {
		return strconv.FormatUint(addr, 16) + " " + sym
	}
	return sym
}

// Stack is what bpftrace prints for a kstack: a newline, then a line per
// frame up to the first zero address, each indented by indent spaces, or
// by a tab in perf mode ("\n    vfs_read+5\n    ksys_read+115\n").
func (k *Kernel) Stack(addrs []uint64, perf bool, indent int) string {
	return stack(addrs, perf, indent, func(a uint64) string { return k.Frame(a, perf) })
}
