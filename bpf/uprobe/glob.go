package uprobe

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// MaxGlobFiles bounds the files one wildcarded path may name: each is
// opened and its symbols read, so a pattern like /*/*/*/* would otherwise
// read every ELF file of the host.
const MaxGlobFiles = 4096

// maxGlobEntries bounds the directory entries read expanding one pattern,
// matched or not, so that a pattern over huge directories ends early. A
// variable for tests.
var maxGlobEntries = 1 << 17

// ErrGlobTooBig is the error of a pattern that names more files, or reads
// more directory entries, than the bounds allow.
var ErrGlobTooBig = errors.New("matches too many files")

// Glob expands a path pattern as glob(3) does for bpftrace's
// resolve_binary_path: '*', '?' and '[...]' in any component, a name
// beginning with '.' matched only by a component beginning with '.', the
// result sorted and spelled as the pattern spells its fixed parts (so
// "./dir/x*" gives "./dir/xa", not "dir/xa"). Only files that exist are
// returned; no match is an empty result. A pattern naming more than
// MaxGlobFiles files, or reading more than maxGlobEntries directory
// entries, is ErrGlobTooBig.
func Glob(pattern string) ([]string, error) {
	if pattern == "" {
		return nil, nil
	}
	comps := strings.Split(pattern, "/")
	cur := []string{""}
	if comps[0] == "" {
		cur, comps = []string{"/"}, comps[1:]
	}
	budget := maxGlobEntries
	for i, c := range comps {
		if c == "" {
			continue // "a//b" and a trailing '/' name what "a/b" names
		}
		last := i == len(comps)-1
		if !hasMeta(c) {
			for j := range cur {
				cur[j] = join(cur[j], c)
			}
			continue
		}
		if _, err := filepath.Match(c, ""); err != nil {
			return nil, fmt.Errorf("bad pattern %q: %w", pattern, err)
		}
		var next []string
		for _, dir := range cur {
			names, err := readNames(dir, &budget)
			if err != nil {
				if errors.Is(err, ErrGlobTooBig) {
					return nil, fmt.Errorf("%q %w (more than %d directory entries read)", pattern, err, maxGlobEntries)
				}
				continue // not a directory, gone, unreadable: no match, as glob(3)
			}
			for _, n := range names {
				if n[0] == '.' && c[0] != '.' {
					continue
				}
				if ok, _ := filepath.Match(c, n); !ok {
					continue
				}
				p := join(dir, n)
				if !last {
					if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
						continue
					}
				}
				next = append(next, p)
				if len(next) > MaxGlobFiles {
					return nil, fmt.Errorf("%q %w (more than %d)", pattern, ErrGlobTooBig, MaxGlobFiles)
				}
			}
		}
		cur = next
	}
	out := cur[:0]
	for _, p := range cur {
		if _, err := os.Lstat(p); err == nil {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out, nil
}

// GlobBinaries is Glob as bpftrace's resolve_binary_path uses it: a
// pattern without '/' is globbed from the working directory and then in
// each directory of $PATH (absolute ones: see FindBinary), and what is
// kept are ELF files that are executable or shared objects (probeable),
// each once, at most MaxGlobFiles. A pattern matching none is the error
// bpftrace gives.
func GlobBinaries(pattern string) ([]string, error) {
	cands := []string{pattern}
	if !strings.Contains(pattern, "/") {
		for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
			if dir != "" && filepath.IsAbs(dir) {
				cands = append(cands, join(dir, pattern))
			}
		}
	}
	var out []string
	seen := map[string]bool{}
	for _, c := range cands {
		paths, err := Glob(c)
		if err != nil {
			return nil, fmt.Errorf("uprobe target file %w", err)
		}
		for _, p := range paths {
			if seen[p] || !probeable(p) {
				continue
			}
			seen[p] = true
			out = append(out, p)
			if len(out) > MaxGlobFiles {
				return nil, fmt.Errorf("uprobe target file %q %w (more than %d)", pattern, ErrGlobTooBig, MaxGlobFiles)
			}
		}
	}
	if len(out) == 0 {
		return nil, notFound(fmt.Sprintf("uprobe target file %q does not exist or is not executable", pattern))
	}
	return out, nil
}

// HasGlob says whether a uprobe's file is a pattern: bpftrace globs a
// path that has a '*' (and then '?' and '[' are wildcards too).
func HasGlob(path string) bool { return strings.Contains(path, "*") }

func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

func join(dir, name string) string {
	switch {
	case dir == "":
		return name
	case strings.HasSuffix(dir, "/"):
		return dir + name
	}
	return dir + "/" + name
}

// readNames reads the names in dir, taking each from budget.
func readNames(dir string, budget *int) ([]string, error) {
	if dir == "" {
		dir = "."
	}
	// O_DIRECTORY: a FIFO named like a directory must not block the open.
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	for {
		batch, err := f.Readdirnames(1024)
		*budget -= len(batch)
		if *budget < 0 {
			return nil, ErrGlobTooBig
		}
		names = append(names, batch...)
		if err != nil || len(batch) == 0 {
			// io.EOF, or a directory that went bad while read: what
			// was read is what it had.
			return names, nil
		}
	}
}
