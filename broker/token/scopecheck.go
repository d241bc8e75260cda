package token

import (
	"fmt"
	"slices"
	"strings"
)

// The verifier keeps a scope word it does not know (Scopes.Other) and
// grants nothing for it: another issuer's tokens carry words of their
// own. An issuer of tracebroker's tokens, though, wants to hear at once
// that "prob:tracepoint:*" or "probe:t:syscalls:*" grants nothing, not
// when a responder is refused mid-incident. CheckScopes is that stricter
// reading, on top of ParseScopes.

// ScopeKinds lists the scope words tracebroker knows, for messages.
const ScopeKinds = "trace, probe:PATTERN, gen:PATTERN, read:user, read:kernel"

// ProbeTypes are the probe types a probe: scope can grant: every type a
// script may attach whose name the daemon checks against the scopes
// (BEGIN and END need no scope). A probe's name starts with its type and
// a colon ("tracepoint:syscalls:sys_enter_openat").
//
// kfunc and kretfunc are the canonical types of fentry and fexit probes,
// bpftrace 0.17's names, and their probe names always carry the module:
// kfunc:vmlinux:vfs_read, however the script spelt it (fentry:vfs_read,
// f:vfs_read).
var ProbeTypes = []string{"interval", "kfunc", "kprobe", "kretfunc", "kretprobe", "profile", "rawtracepoint", "software", "tp_btf", "tracepoint", "uprobe", "uretprobe"}

// probeTypeAliases are bpftrace's short spellings of ProbeTypes; scopes
// match the long names that probe names carry, so a short one grants
// nothing.
var probeTypeAliases = map[string]string{"t": "tracepoint", "rt": "rawtracepoint", "u": "uprobe", "ur": "uretprobe", "i": "interval", "p": "profile", "s": "software",
	"f": "kfunc", "fentry": "kfunc", "fr": "kretfunc", "fexit": "kretfunc", "k": "kprobe", "kr": "kretprobe"}

// CheckScopes parses a scope claim as ParseScopes does and also refuses
// what would grant nothing that was meant: a word of no known kind, and
// a probe: pattern that can match no probe tracebroker attaches.
func CheckScopes(s string) (Scopes, error) {
	sc, err := ParseScopes(s)
	if err != nil {
		return Scopes{}, err
	}
	if len(sc.Other) > 0 {
		w := sc.Other[0]
		msg := fmt.Sprintf("unknown scope %s: the scopes are %s", quote(w), ScopeKinds)
		if fix := closeKind(w); fix != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", quote(fix))
		}
		return Scopes{}, fmt.Errorf("%s", msg)
	}
	for _, p := range sc.Probes {
		if err := checkProbeType(p); err != nil {
			return Scopes{}, err
		}
	}
	return sc, nil
}

// checkProbeType refuses a probe: pattern that matches no name of a
// known probe type: no "TYPE:" prefix of ProbeTypes leaves the pattern
// anything more to match.
func checkProbeType(p string) error {
	toks, err := compileGlob(p)
	if err != nil {
		return err
	}
	for _, typ := range ProbeTypes {
		if canContinue(toks, typ+":") {
			return checkFuncScope(p)
		}
	}
	typ, _, _ := strings.Cut(p, ":")
	if long, ok := probeTypeAliases[typ]; ok {
		return fmt.Errorf("scope %s matches no probe: probe names use the long type name, %s (write probe:%s%s)", quote("probe:"+p), long, long, strings.TrimPrefix(p, typ))
	}
	return fmt.Errorf("scope %s matches no probe tracebroker attaches: the probe types are %s", quote("probe:"+p), strings.Join(ProbeTypes, ", "))
}

// canContinue reports whether the pattern, having read prefix, can still
// match something longer: some position short of its end is reachable.
// Every token matches at least one rune, so such a position always leads
// to a match.
func canContinue(toks []globTok, prefix string) bool {
	cur, ok := runGlob(toks, prefix, nil)
	return ok && slices.Contains(cur[:len(toks)], true)
}

// closeKind is the known kind a misspelt word was likely meant as: its
// part before the first ':' (or the whole word) within two edits of a
// kind's.
func closeKind(w string) string {
	head, rest, colon := strings.Cut(w, ":")
	best, bestD := "", 3
	for _, k := range []string{"trace", "probe", "gen", "read"} {
		if (k == "trace") == colon {
			continue
		}
		if d := editDistance(head, k); d < bestD {
			best, bestD = k, d
		}
	}
	switch {
	case best == "":
		return ""
	case best == "trace":
		return best
	}
	return best + ":" + rest
}

// editDistance is Levenshtein's distance, for short words.
func editDistance(a, b string) int {
	if len(a) > 16 || len(b) > 16 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
