package kprobe

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/tracebroker/tracebroker/bpf/tracefs"
)

// Func is one function a kprobe may attach to.
type Func struct {
	Name   string
	Module string // "" for the kernel image
}

// blacklistPath lists the functions the kernel will not kprobe.
const blacklistPath = "/sys/kernel/debug/kprobes/blacklist"

// Functions lists the functions a kprobe wildcard attaches to: tracefs's
// available_filter_functions, minus those on the kprobe blacklist (read
// when debugfs shows it), which the kernel would refuse. A function the
// kernel image or several modules have more than once is listed once per
// module.
func Functions() ([]Func, error) { return functions(true) }

// listed is what `bpftrace -l 'kprobe:…'` prints: bpftrace 0.17 lists
// the blacklisted functions too (the kernel refuses them when asked to
// attach), so the listing keeps them to print the same lines.
func listed() ([]Func, error) { return functions(false) }

func functions(leaveOutBlacklist bool) ([]Func, error) {
	if err := Supported(); err != nil {
		return nil, err
	}
	root, err := tracefs.Root()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(root, "available_filter_functions"))
	if err != nil {
		return nil, fmt.Errorf("could not read traceable functions: %w", err)
	}
	defer f.Close()
	var black map[string]bool
	if leaveOutBlacklist {
		if b, err := os.Open(blacklistPath); err == nil {
			black, err = ParseBlacklist(b)
			b.Close()
			if err != nil {
				return nil, err
			}
		}
	}
	return ParseFunctions(f, black)
}

// ParseFunctions reads available_filter_functions (tracefs.ParseFunctions),
// leaving out the names in black, sorted by name and module, without
// repeats.
func ParseFunctions(r io.Reader, black map[string]bool) ([]Func, error) {
	var out []Func
	err := tracefs.ParseFunctions(r, func(f tracefs.Function) {
		if !black[f.Name] {
			out = append(out, Func(f))
		}
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Module < out[j].Module
	})
	return slices.Compact(out), nil
}

// maxLine bounds one line of the kprobe blacklist.
const maxLine = 4096

// ParseBlacklist reads the kprobe blacklist: "0xSTART-0xEND\tNAME" or
// "... NAME [MODULE]" a line.
func ParseBlacklist(r io.Reader) (map[string]bool, error) {
	black := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxLine)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 2 {
			black[fields[1]] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the kprobe blacklist: %w", err)
	}
	return black, nil
}

// Match returns the names of the functions, in module when it is not
// "", that pattern (a shell pattern: *, ?, [...]) matches, sorted and
// without repeats. A wildcard leaves out the compiler's partial copies
// of functions (NAME.part.N), as bpftrace 0.17 lists and expands
// kprobes; a function named in full is matched whatever its name.
func Match(funcs []Func, module, pattern string) ([]string, error) {
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, fmt.Errorf("bad function pattern %q: %w", pattern, err)
	}
	wild := strings.ContainsAny(pattern, "*?[")
	var out []string
	for _, f := range funcs {
		if module != "" && f.Module != module || wild && strings.Contains(f.Name, ".part.") {
			continue
		}
		if ok, _ := path.Match(pattern, f.Name); ok {
			out = append(out, f.Name)
		}
	}
	return slices.Compact(out), nil
}

// Size is how many bytes the kernel's function fn takes, from
// /proc/kallsyms (the distance to the next symbol): what an offset into
// it may be below. ok is false when kallsyms does not tell (addresses
// hidden by kptr_restrict, an unknown name).
func Size(fn string) (size uint64, ok bool) {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	return symbolSize(f, fn)
}

// symbolSize finds fn's address in a kallsyms listing ("ADDR TYPE NAME
// [MODULE]") and the lowest address above it.
func symbolSize(r io.Reader, fn string) (uint64, bool) {
	data, err := io.ReadAll(io.LimitReader(r, 256<<20))
	if err != nil {
		return 0, false
	}
	var addr uint64
	found := false
	var addrs []uint64
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		fields := strings.Fields(string(line))
		if len(fields) < 3 {
			continue
		}
		a, err := strconv.ParseUint(fields[0], 16, 64)
		if err != nil || a == 0 {
			continue
		}
		addrs = append(addrs, a)
		if fields[2] == fn && (fields[1] == "t" || fields[1] == "T") && !found {
			addr, found = a, true
		}
	}
	if !found {
		return 0, false
	}
	next := uint64(0)
	for _, a := range addrs {
		if a > addr && (next == 0 || a < next) {
			next = a
		}
	}
	if next == 0 {
		return 0, false
	}
	return next - addr, true
}
