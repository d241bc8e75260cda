package program

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// KprobeName is the name the compiler gives a kprobe or kretprobe on one
// function, as bpftrace's `probe` prints it: KIND:[MODULE:]FUNC, with
// "+OFFSET" (decimal) when a kprobe is not at the function's start.
func KprobeName(kind ProbeKind, module, fn string, offset uint64) string {
	n := kind.String() + ":"
	if module != "" {
		n += module + ":"
	}
	n += fn
	if offset != 0 {
		n += "+" + strconv.FormatUint(offset, 10)
	}
	return n
}

// kernelName reports whether s can be a kernel function's or module's
// name: what available_filter_functions lists ("vfs_read",
// "finish_task_switch.isra.0"), nothing a name or a pattern gives a
// meaning to.
func kernelName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}

// checkKprobeName: a probe on one function (Event, in module Category
// when set, at Offset) is named by KprobeName; one on many (Funcs, a
// kprobe.multi link) is named by the pattern as written, and every
// function must be one the pattern matches.
func (p *Probe) checkKprobeName() error {
	if len(p.Funcs) == 0 {
		if !kernelName(p.Event) || (p.Category != "" && !kernelName(p.Category)) || (p.Kind == Kretprobe && p.Offset != 0) {
			return &NameError{p.Name, fmt.Sprintf("%s module %q, function %q, offset %d", p.Kind, p.Category, p.Event, p.Offset)}
		}
		if want := KprobeName(p.Kind, p.Category, p.Event, p.Offset); p.Name != want {
			return &NameError{p.Name, want}
		}
		return nil
	}
	pattern, ok := strings.CutPrefix(p.Name, p.Kind.String()+":")
	if p.Category != "" {
		pattern, ok = strings.CutPrefix(pattern, p.Category+":")
		ok = ok && kernelName(p.Category)
	}
	is := fmt.Sprintf("%s on %d functions (%s...)", p.Kind, len(p.Funcs), p.Funcs[0])
	if !ok || p.Event != "" || p.Offset != 0 {
		return &NameError{p.Name, is}
	}
	for _, f := range p.Funcs {
		if m, err := path.Match(pattern, f); err != nil || !m || !kernelName(f) {
			return &NameError{p.Name, fmt.Sprintf("%s on %s", p.Kind, f)}
		}
	}
	return nil
}

// AttachNames are the names to judge p by — a token's probe: scopes, a
// policy's probe list: its Name, or for a probe on many functions
// (Funcs: a kprobe.multi or uprobe.multi probe) the name each
// function's own probe would have, so that a pattern grants no function
// it does not name.
func (p *Probe) AttachNames() []string {
	if len(p.Funcs) == 0 {
		return []string{p.Name}
	}
	names := make([]string, len(p.Funcs))
	for i, f := range p.Funcs {
		switch p.Kind {
		case Kprobe, Kretprobe:
			names[i] = KprobeName(p.Kind, p.Category, f, 0)
		case Uprobe, Uretprobe:
			names[i] = UprobeName(p.Kind, p.Path, f)
		default:
			return []string{p.Name}
		}
	}
	return names
}
