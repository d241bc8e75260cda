package symbols

import (
	"strconv"
	"strings"
)

// mapping is an executable, file-backed line of /proc/PID/maps.
type mapping struct {
	start, end, off uint64
	inode           uint64
	name            string
}

// parseMaps returns the mappings of a /proc/PID/maps text that bcc's
// _procfs_maps_each_module passes on: executable ones ('x' in the third
// permission letter) with a file-like name; anonymous memory, the heap,
// stacks, SysV shared memory and [vsyscall] are dropped, while [vdso] and
// [uprobes] stay (they cover addresses, though nothing resolves in them).
// Like bcc's fscanf loop, it stops at the first line it cannot parse.
func parseMaps(data string) []mapping {
	var out []mapping
	for len(data) > 0 {
		line, rest, _ := strings.Cut(data, "\n")
		data = rest
		if strings.TrimLeft(line, spaces) == "" {
			continue
		}
		m, perm, ok := parseMapsLine(line)
		if !ok {
			break
		}
		if len(perm) < 3 || perm[2] != 'x' || !fileBacked(m.name) {
			continue
		}
		out = append(out, m)
	}
	return out
}

// spaces are C's isspace characters.
const spaces = " \t\n\v\f\r"

// parseMapsLine parses "start-end perm offset major:minor inode   name"
// (the kernel's show_map_vma), the name with its leading blanks removed.
func parseMapsLine(line string) (m mapping, perm string, ok bool) {
	f := fieldScanner{s: line}
	var err error
	if m.start, ok = f.hex('-'); !ok {
		return m, "", false
	}
	if m.end, ok = f.hex(' '); !ok {
		return m, "", false
	}
	if perm, ok = f.word(); !ok || len(perm) > 4 {
		return m, "", false
	}
	if m.off, ok = f.hex(' '); !ok {
		return m, "", false
	}
	if _, ok = f.hex(':'); !ok {
		return m, "", false
	}
	if _, ok = f.hex(' '); !ok {
		return m, "", false
	}
	inode, _ := f.word()
	if m.inode, err = strconv.ParseUint(inode, 10, 64); err != nil {
		return m, "", false
	}
	m.name = strings.TrimLeft(f.s, spaces)
	return m, perm, true
}

// fieldScanner takes fields off the front of s, skipping leading blanks.
type fieldScanner struct{ s string }

// hex takes a hex number ended by sep (or, for ' ', by any blank or the
// end of the line) and the separator.
func (f *fieldScanner) hex(sep byte) (uint64, bool) {
	s := strings.TrimLeft(f.s, spaces)
	i := 0
	for i < len(s) && isHex(s[i]) {
		i++
	}
	if i == 0 || i > 16 {
		return 0, false
	}
	v, err := strconv.ParseUint(s[:i], 16, 64)
	if err != nil {
		return 0, false
	}
	switch {
	case i < len(s) && s[i] == sep:
		f.s = s[i+1:]
	case sep == ' ' && (i == len(s) || strings.IndexByte(spaces, s[i]) >= 0):
		f.s = s[i:]
	default:
		return 0, false
	}
	return v, true
}

// word takes the next blank-delimited word.
func (f *fieldScanner) word() (string, bool) {
	s := strings.TrimLeft(f.s, spaces)
	i := strings.IndexAny(s, spaces)
	if i < 0 {
		i = len(s)
	}
	if i == 0 {
		return "", false
	}
	f.s = s[i:]
	return s[:i], true
}

// fileBacked is bcc's bcc_mapping_is_file_backed.
func fileBacked(name string) bool {
	if name == "" {
		return false
	}
	for _, p := range []string{"//anon", "/dev/zero", "/anon_hugepage", "[stack", "/SYSV", "[heap]", "[vsyscall]"} {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	return true
}

// MappedFiles are the files a /proc/PID/maps text maps executable, each
// once, in the order of the maps, as the symbolizer reads them (a name
// may hold blanks).
func MappedFiles(data string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range parseMaps(data) {
		if strings.HasPrefix(m.name, "/") && !seen[m.name] {
			seen[m.name] = true
			out = append(out, m.name)
		}
	}
	return out
}
