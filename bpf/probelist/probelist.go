// Package probelist writes the probes a pattern matches, as bpftrace
// 0.17's -l prints them: each provider lists its own (tracefs's
// tracepoints, software and hardware events; kprobe's traceable
// functions; btftp's tp_btf tracepoints and kfuncs; uprobe's symbols),
// and the listing of everything merges them.
package probelist

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/btftp"
	"github.com/tracebroker/tracebroker/bpf/kprobe"
	"github.com/tracebroker/tracebroker/bpf/tracefs"
	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/bpf/usdt"
)

// Write writes the probes pattern matches ("" for all), with verbose each
// one's arguments, as bpftrace -l (-lv) does.
func Write(w io.Writer, pattern string, verbose bool) error {
	return WriteFor(w, pattern, verbose, 0)
}

// WriteFor is Write for the process pid (-p, when > 0): its USDT
// probes, in every file it maps, as bpftrace -l -p lists them.
func WriteFor(w io.Writer, pattern string, verbose bool, pid int) error {
	if pid > 0 {
		if done, err := writeProcess(w, pattern, pid); done {
			return err
		}
	}
	if strings.TrimSpace(pattern) == "" {
		return all(w, verbose)
	}
	// bpftrace reads a pattern as a probe: what no probe spells is
	// refused as its lexer refuses it.
	if i := strings.IndexFunc(pattern, notInSpec); i >= 0 {
		return fmt.Errorf("invalid character '%c' in the pattern %q (at %d)", pattern[i], pattern, i+1)
	}
	provider, rest, ok := strings.Cut(pattern, ":")
	if !ok {
		provider = ""
	}
	switch provider {
	case "usdt", "U":
		return usdt.List(w, rest, pid, uprobe.MatchName)
	case "*":
		// *:PATH:* is every probe of a file: its functions and its
		// USDT probes.
		if target, fn, ok := strings.Cut(rest, ":"); ok && strings.Contains(target, "/") {
			if err := listFuncs(w, "uprobe", target, fn); err != nil {
				return err
			}
			return usdt.List(w, rest, pid, uprobe.MatchName)
		}
	case "uprobe", "u", "uretprobe", "ur":
		target, fn, _ := strings.Cut(rest, ":")
		long := "uprobe"
		if provider == "uretprobe" || provider == "ur" {
			long = "uretprobe"
		}
		if verbose && long == "uprobe" && !uprobe.HasGlob(target) {
			// bpftrace -lv: each function with its parameters.
			path, err := uprobe.FindBinary(target)
			if err != nil {
				return err
			}
			return listUprobeArgs(w, os.Stderr, path, fn)
		}
		return listFuncs(w, long, target, fn)
	case "tp_btf":
		return btftp.List(w, rest, verbose)
	case "kprobe", "k", "kretprobe", "kr":
		long := map[string]string{"k": "kprobe", "kr": "kretprobe"}[provider]
		if long == "" {
			long = provider
		}
		return kprobe.List(w, long, rest)
	}
	if p, ok := btftp.FuncProvider(provider); ok {
		return btftp.ListFuncs(w, p, rest, verbose)
	}
	if !ok && strings.ContainsAny(pattern, "*?[") {
		return bare(w, pattern, verbose)
	}
	return tracefs.List(w, pattern, verbose)
}

// bare is bpftrace 0.17's listing of a wildcard without a probe type
// (-l '*do_nanosleep*'): the software, hardware and tracepoint probes it
// matches, and the kprobes and kfuncs whose whole name
// (kprobe:do_nanosleep, kfunc:vmlinux:do_nanosleep) it matches, merged
// and sorted as the listing of everything is.
func bare(w io.Writer, pattern string, verbose bool) error {
	var b bytes.Buffer
	if err := tracefs.List(&b, pattern, verbose); err != nil {
		return err
	}
	var funcs bytes.Buffer
	if kprobe.Supported() == nil {
		if err := kprobe.List(&funcs, "kprobe", ""); err != nil {
			return err
		}
	}
	if bpf.HaveFentry() == nil {
		if err := btftp.ListFuncs(&funcs, "kfunc", "", verbose); err != nil {
			return err
		}
	}
	return writeSorted(w, mergeBare(b.String(), funcs.String(), pattern))
}

// mergeBare is tracefs's listing of pattern and the blocks of funcs (a
// listing of every kprobe and kfunc) whose probe pattern matches.
func mergeBare(tracefs, funcs, pattern string) []string {
	blocks := probeBlocks(tracefs)
	for _, bl := range probeBlocks(funcs) {
		name, _, _ := strings.Cut(bl, "\n")
		if ok, err := path.Match(pattern, name); err == nil && ok {
			blocks = append(blocks, bl)
		}
	}
	return blocks
}

// probeBlocks splits a listing into each probe's block: its line and
// the indented lines of its arguments that follow it.
func probeBlocks(listing string) []string {
	var blocks []string
	for _, line := range strings.SplitAfter(listing, "\n") {
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, " ") && len(blocks) > 0 {
			blocks[len(blocks)-1] += line
			continue
		}
		blocks = append(blocks, line)
	}
	return blocks
}

func writeSorted(w io.Writer, blocks []string) error {
	slices.Sort(blocks)
	blocks = slices.Compact(blocks)
	for _, bl := range blocks {
		if _, err := io.WriteString(w, bl); err != nil {
			return err
		}
	}
	return nil
}

// all is bpftrace 0.17's listing of everything: software and hardware
// events, tracepoints, and where the kernel has them kprobes (its
// traceable functions) and kfuncs (the functions BTF describes, where
// fentry programs load), sorted, each probe with its verbose lines.
func all(w io.Writer, verbose bool) error {
	var b bytes.Buffer
	if err := tracefs.List(&b, "", verbose); err != nil {
		return err
	}
	if kprobe.Supported() == nil {
		if err := kprobe.List(&b, "kprobe", ""); err != nil {
			return err
		}
	}
	if bpf.HaveFentry() == nil {
		if err := btftp.ListFuncs(&b, "kfunc", "", verbose); err != nil {
			return err
		}
	}
	return writeSorted(w, probeBlocks(b.String()))
}

// notInSpec are the characters no probe spec has.
func notInSpec(r rune) bool {
	return r < 0x20 || r == 0x7f || strings.ContainsRune("\\\"'`;(){}#=<>|&^~%", r)
}
