package uprobe

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Match returns the functions of the ELF file at path matching a bpftrace
// wildcard pattern ('*' matches any run of characters), sorted by name.
//
// Matching is bpftrace 0.17's, quirks included: the pattern is split at
// '*' and each piece is found in turn, leftmost, so that "a*b" does not
// match "abab" (the leftmost "b" leaves "ab" over); and functions whose
// name contains ".part." (GCC's split-off parts, which bpftrace skips
// because they cannot be traced as functions) never match. Functions no
// loadable segment backs (Offset 0) are left out, since they cannot be
// attached.
//
// A pattern without wildcards that matches nothing is an error naming
// the symbol and file, as bpftrace's "Could not resolve symbol:
// /bin/bash:nosuch". (bpftrace 0.17 itself silently drops such a probe and
// fails only when no probe is left, with "No probes to attach".) A
// wildcard pattern matching nothing gives no symbols and no error.
//
// Functions of Size 0 (_init, _fini, canonical PLT entries) are returned;
// bpftrace 0.17 refuses to attach to one, even as part of a wildcard
// expansion, and fails the run with "Offset outside the function bounds
// ('_init' size is 0)".
func Match(path, pattern string) ([]Symbol, error) {
	if pattern == "" {
		return nil, fmt.Errorf("%s: empty function name", path)
	}
	syms, err := Functions(path)
	if err != nil {
		return nil, err
	}
	return match(syms, path, pattern)
}

// match is Match over the functions syms of the file named path.
func match(syms []Symbol, path, pattern string) ([]Symbol, error) {
	if !strings.Contains(pattern, "*") {
		// syms are sorted by name, each name once (Functions).
		i, ok := slices.BinarySearchFunc(syms, pattern, func(s Symbol, name string) int { return strings.Compare(s.Name, name) })
		if ok && syms[i].Offset != 0 && !strings.Contains(pattern, ".part.") {
			return []Symbol{syms[i]}, nil
		}
		return nil, &NoSymbolError{Path: path, Func: pattern}
	}
	w := newWildcard(pattern)
	var out []Symbol
	for _, s := range syms {
		if s.Offset != 0 && w.listed(s.Name) {
			out = append(out, s)
		}
	}
	return out, nil
}

// A NoSymbolError is a function name without wildcards that a file has
// no function of. A script's list of uprobes skips such a one (with a
// warning) rather than failing, as bpftrace does: stock tools list
// functions that only some builds of a library have.
type NoSymbolError struct{ Path, Func string }

func (e *NoSymbolError) Error() string {
	return fmt.Sprintf("Could not resolve symbol: %s:%s", e.Path, e.Func)
}

// List writes "uprobe:PATH:FUNC" lines for `tracebroker list
// 'uprobe:PATH:PATTERN'`, as `bpftrace -l 'uprobe:PATH:PATTERN'` prints
// them: one line per matching function, sorted by name. An empty pattern
// is '*'; one without wildcards lists that function if it exists.
//
// PATH is resolved with FindBinary and printed as resolved ("bash" lists
// as /usr/bin/bash, "/bin/bash" stays /bin/bash). Like bpftrace, List
// prints nothing for a file without symbols; a missing or non-ELF file is
// an error. (bpftrace prints "uretprobe:" lines for a uretprobe pattern;
// those are the same lines with the other provider.)
func List(w io.Writer, path, pattern string) error {
	return list(w, "uprobe", path, pattern, nil)
}

// ListVerbose is List with each function's lines from params, indented
// by four spaces under it, as bpftrace -lv lists a uprobe's arguments.
func ListVerbose(w io.Writer, path, pattern string, params func(fn string) []string) error {
	return list(w, "uprobe", path, pattern, params)
}

// ListRet is List for uretprobes: the same functions, named as
// bpftrace -l 'uretprobe:PATH:*' names them.
func ListRet(w io.Writer, path, pattern string) error {
	return list(w, "uretprobe", path, pattern, nil)
}

func list(w io.Writer, provider, path, pattern string, params func(fn string) []string) error {
	if pattern == "" {
		pattern = "*"
	}
	path, err := FindBinary(path)
	if err != nil {
		return err
	}
	syms, err := Functions(path)
	if err != nil && !isStripped(err) {
		return err
	}
	m := newWildcard(pattern)
	bw := bufio.NewWriter(w)
	for _, s := range syms {
		if m.listed(s.Name) {
			bw.WriteString(provider)
			bw.WriteByte(':')
			bw.WriteString(path)
			bw.WriteByte(':')
			bw.WriteString(s.Name)
			bw.WriteByte('\n')
			if params != nil {
				for _, l := range params(s.Name) {
					bw.WriteString("    ")
					bw.WriteString(l)
					bw.WriteByte('\n')
				}
			}
		}
	}
	return bw.Flush()
}

// isStripped tells the "no symbols" error of Functions from read errors:
// Functions opened and parsed the file and found nothing to list.
func isStripped(err error) bool {
	var s *strippedError
	return errors.As(err, &s)
}

// wildcard is a bpftrace wildcard pattern, split as get_wildcard_tokens
// does: the pieces between '*'s (empty ones dropped) and whether it starts
// or ends with '*'.
type wildcard struct {
	tokens     []string
	start, end bool
}

func newWildcard(pattern string) wildcard {
	w := wildcard{
		start: strings.HasPrefix(pattern, "*"),
		end:   strings.HasSuffix(pattern, "*"),
	}
	for _, t := range strings.Split(pattern, "*") {
		if t != "" {
			w.tokens = append(w.tokens, t)
		}
	}
	return w
}

// match is bpftrace's wildcard_match, applied to the function name alone:
// bpftrace matches "PATH:PATTERN" against "PATH:NAME", which comes to the
// same thing since PATH has no wildcard.
func (w wildcard) match(s string) bool {
	next := 0
	if !w.start && len(w.tokens) > 0 && !strings.HasPrefix(s, w.tokens[0]) {
		return false
	}
	for _, t := range w.tokens {
		i := strings.Index(s[next:], t)
		if i < 0 {
			return false
		}
		next += i + len(t)
	}
	return w.end || next == len(s)
}

// listed is match plus bpftrace's filter of ".part." functions.
func (w wildcard) listed(name string) bool {
	return w.match(name) && !strings.Contains(name, ".part.")
}

// MatchName is bpftrace's wildcard match of a name ('*' the only
// wildcard), as its probe names are matched.
func MatchName(pattern, name string) bool { return newWildcard(pattern).match(name) }
