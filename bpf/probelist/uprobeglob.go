package probelist

import (
	"bytes"
	"io"
	"slices"
	"strings"

	"github.com/tracebroker/tracebroker/bpf/uprobe"
)

// listFuncs lists the functions matching fn of the file target names
// (a path, a name found through $PATH, or a pattern of paths), as
// provider ("uprobe" or "uretprobe") probes. A pattern lists each ELF
// file it matches (uprobe.GlobBinaries), the lines of all of them sorted
// as one, as bpftrace sorts its matches, and kept only where the whole
// of TARGET:FUNC matches PATH:SYMBOL, as bpftrace keeps them.
func listFuncs(w io.Writer, provider, target, fn string) error {
	list := uprobe.List
	if provider == "uretprobe" {
		list = uprobe.ListRet
	}
	if !uprobe.HasGlob(target) {
		path, err := uprobe.FindBinary(target)
		if err != nil {
			return err
		}
		return list(w, path, fn)
	}
	paths, err := uprobe.GlobBinaries(target)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	for _, p := range paths {
		if err := list(&b, p, fn); err != nil {
			return err
		}
	}
	if fn == "" {
		fn = "*"
	}
	// bpftrace matches TARGET:FUNC, as one wildcard, against each
	// PATH:SYMBOL: a file found through $PATH ("bas*" finding
	// /usr/bin/bash) is not listed unless the pattern's start matches
	// its whole path too.
	whole := target + ":" + fn
	lines := strings.SplitAfter(b.String(), "\n")
	slices.Sort(lines)
	for _, l := range lines {
		if l == "" || !uprobe.MatchName(whole, strings.TrimSuffix(strings.TrimPrefix(l, provider+":"), "\n")) {
			continue
		}
		if _, err := io.WriteString(w, l); err != nil {
			return err
		}
	}
	return nil
}
