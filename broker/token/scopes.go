package token

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tracebroker/tracebroker/gatekeeper/abi"
)

// MaxScopes bounds the words of a scope claim: a responder's token names
// a handful of probe families and generators, and matching costs grow
// with the count.
const MaxScopes = 64

const (
	scopeTrace      = "trace"
	probePrefix     = "probe:"
	genPrefix       = "gen:"
	readPrefix      = "read:"
	scopeReadKernel = readPrefix + "kernel"
	scopeReadUser   = readPrefix + "user"
)

// Scopes is what a token grants. Probes and Gens hold the patterns
// without their "probe:" and "gen:" prefixes.
//
// A probe: scope grants the probe's context and the user memory its
// user pointers reach; memory beyond that needs a read: scope.
type Scopes struct {
	Trace  bool     // "trace": may run traces
	Probes []string // "probe:PATTERN": probe specs it may attach to
	Gens   []string // "gen:PATTERN": generator plugins it may run
	// ReadUser ("read:user"): may read any user memory of the processes
	// its probes fire in, at any address (pointer arithmetic, map
	// values, uaddr()), and of the broker's own in BEGIN and END.
	ReadUser bool
	// ReadKernel ("read:kernel"): may read any kernel memory and learn
	// kernel addresses (kaddr(), ksym(), kstack(perf)).
	ReadKernel bool
	Other      []string // unknown words: kept for display, grant nothing
}

// ParseScopes parses a space-separated scope claim. Words are separated
// by runs of white space; duplicates collapse. A bad probe: or gen:
// pattern makes the whole claim an error rather than being skipped, so
// an issuer's typo cannot silently narrow or widen a grant.
func ParseScopes(s string) (Scopes, error) {
	var sc Scopes
	words := strings.Fields(s)
	if len(words) > MaxScopes {
		return Scopes{}, fmt.Errorf("scope has %d words; the limit is %d", len(words), MaxScopes)
	}
	for _, w := range words {
		if len(w) > len(probePrefix)+MaxPatternLen {
			return Scopes{}, fmt.Errorf("scope word %s is longer than %d bytes", quote(w), len(probePrefix)+MaxPatternLen)
		}
		switch {
		case w == scopeTrace:
			sc.Trace = true
		case strings.HasPrefix(w, probePrefix):
			p, err := scopePattern(w, probePrefix)
			if err != nil {
				return Scopes{}, err
			}
			sc.Probes = append(sc.Probes, p)
		case strings.HasPrefix(w, genPrefix):
			p, err := scopePattern(w, genPrefix)
			if err != nil {
				return Scopes{}, err
			}
			sc.Gens = append(sc.Gens, p)
		case w == scopeReadUser:
			sc.ReadUser = true
		case w == scopeReadKernel:
			sc.ReadKernel = true
		case strings.HasPrefix(w, readPrefix):
			// A misspelt memory scope is refused rather than kept as an
			// unknown word, so an issuer learns at once it granted
			// nothing.
			return Scopes{}, fmt.Errorf("unknown scope %s: the memory scopes are %s and %s", quote(w), scopeReadUser, scopeReadKernel)
		default:
			sc.Other = append(sc.Other, w)
		}
	}
	sc.Probes = sortedSet(sc.Probes)
	sc.Gens = sortedSet(sc.Gens)
	sc.Other = sortedSet(sc.Other)
	return sc, nil
}

func scopePattern(word, prefix string) (string, error) {
	p := strings.TrimPrefix(word, prefix)
	if p == "" {
		return "", fmt.Errorf("scope %s has an empty pattern", quote(word))
	}
	if _, err := compileGlob(p); err != nil {
		return "", fmt.Errorf("scope %s: %w", quote(word), err)
	}
	return p, nil
}

func sortedSet(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	return slices.Compact(s)
}

// AllowsProbe reports whether some probe: pattern matches the canonical
// probe spec. It does not look at Trace: the caller requires both. A
// malformed pattern (possible only in a Scopes built by hand) matches
// nothing.
func (s Scopes) AllowsProbe(spec string) bool {
	return anyMatch(s.Probes, spec)
}

// AllowsGen reports whether some gen: pattern matches the generator name.
func (s Scopes) AllowsGen(name string) bool {
	return anyMatch(s.Gens, name)
}

func anyMatch(patterns []string, s string) bool {
	for _, p := range patterns {
		if ok, err := Match(p, s); err == nil && ok {
			return true
		}
	}
	return false
}

// Bits is the token_scope field of the gatekeeper Request.
func (s Scopes) Bits() uint64 {
	var b uint64
	if s.Trace {
		b |= abi.ScopeTrace
	}
	if len(s.Probes) > 0 {
		b |= abi.ScopeProbe
	}
	if len(s.Gens) > 0 {
		b |= abi.ScopeGen
	}
	if s.ReadUser {
		b |= abi.ScopeReadUser
	}
	if s.ReadKernel {
		b |= abi.ScopeReadKernel
	}
	return b
}

// Grants reports whether the scopes grant anything at all.
func (s Scopes) Grants() bool {
	return s.Bits() != 0
}

// String is the canonical claim: trace, then the probe: and gen: words,
// read:user, read:kernel and other words, each group sorted and without
// duplicates. ParseScopes of it
// gives back the same Scopes.
func (s Scopes) String() string {
	var w []string
	if s.Trace {
		w = append(w, scopeTrace)
	}
	for _, p := range sortedSet(slices.Clone(s.Probes)) {
		w = append(w, probePrefix+p)
	}
	for _, g := range sortedSet(slices.Clone(s.Gens)) {
		w = append(w, genPrefix+g)
	}
	if s.ReadUser {
		w = append(w, scopeReadUser)
	}
	if s.ReadKernel {
		w = append(w, scopeReadKernel)
	}
	w = append(w, sortedSet(slices.Clone(s.Other))...)
	return strings.Join(w, " ")
}
