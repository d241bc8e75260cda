package kprobe

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// List writes what `bpftrace -l 'kprobe:PATTERN'` prints: one
// "PROVIDER:FUNC" line per traceable function pattern matches, sorted,
// without repeats; provider is "kprobe" or "kretprobe". A target of
// MODULE:PATTERN lists that module's functions as PROVIDER:MODULE:FUNC.
func List(w io.Writer, provider, target string) error {
	if err := Supported(); err != nil {
		return fmt.Errorf("%s probes are not available: %w", provider, err)
	}
	funcs, err := listed()
	if err != nil {
		return err
	}
	return list(w, funcs, provider, target)
}

func list(w io.Writer, funcs []Func, provider, target string) error {
	module, pattern, ok := strings.Cut(target, ":")
	if !ok {
		module, pattern = "", target
	}
	if pattern == "" {
		pattern = "*"
	}
	names, err := Match(funcs, module, pattern)
	if err != nil {
		return err
	}
	prefix := provider + ":"
	if module != "" {
		prefix += module + ":"
	}
	bw := bufio.NewWriter(w)
	for _, n := range names {
		bw.WriteString(prefix)
		bw.WriteString(n)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}
