package token

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// MaxPatternLen bounds a probe: or gen: pattern (and every other scope
// word) in bytes: real probe specs are far shorter, and the bound keeps
// matching cost (patterns × spec length) small.
const MaxPatternLen = 512

type globKind uint8

const (
	gLit   globKind = iota // one rune equal to r
	gOne                   // ?: one rune except '/'
	gClass                 // [...]: one rune except '/', in (or, negated, not in) ranges
	gStar                  // *: any run without '/'
	gDStar                 // **: any run
)

type runeRange struct{ lo, hi rune }

type globTok struct {
	kind   globKind
	r      rune
	neg    bool
	ranges []runeRange
}

// errBadPattern prefixes every compile error so they read alike.
var errBadPattern = errors.New("malformed pattern")

func badPattern(p string, format string, args ...any) error {
	return fmt.Errorf("%w %s: %s", errBadPattern, quote(p), fmt.Sprintf(format, args...))
}

// compileGlob turns a pattern into tokens, refusing everything the
// package doc calls malformed so that one spelling means one thing.
func compileGlob(p string) ([]globTok, error) {
	if len(p) > MaxPatternLen {
		return nil, badPattern(p, "longer than %d bytes", MaxPatternLen)
	}
	if !utf8.ValidString(p) {
		return nil, badPattern(p, "not valid UTF-8")
	}
	var toks []globTok
	for i := 0; i < len(p); {
		c, n := utf8.DecodeRuneInString(p[i:])
		switch c {
		case '*':
			run := 0
			for i < len(p) && p[i] == '*' {
				run++
				i++
			}
			if run > 2 {
				return nil, badPattern(p, "%d '*' in a row (use * or **)", run)
			}
			if run == 2 {
				toks = append(toks, globTok{kind: gDStar})
			} else {
				toks = append(toks, globTok{kind: gStar})
			}
			continue
		case '?':
			toks = append(toks, globTok{kind: gOne})
		case '[':
			t, end, err := compileClass(p, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, t)
			i = end
			continue
		case '\\':
			if i+n >= len(p) {
				return nil, badPattern(p, "trailing '\\'")
			}
			e, en := utf8.DecodeRuneInString(p[i+n:])
			toks = append(toks, globTok{kind: gLit, r: e})
			n += en
		default:
			toks = append(toks, globTok{kind: gLit, r: c})
		}
		i += n
	}
	return toks, nil
}

// compileClass parses the class starting at p[start] == '[' and returns
// the index just past its ']'.
func compileClass(p string, start int) (globTok, int, error) {
	t := globTok{kind: gClass}
	i := start + 1
	if i < len(p) && p[i] == '^' {
		t.neg = true
		i++
	}
	// classChar reads one possibly escaped character of the class.
	classChar := func() (rune, error) {
		if i >= len(p) {
			return 0, badPattern(p, "unterminated character class")
		}
		c, n := utf8.DecodeRuneInString(p[i:])
		switch c {
		case '\\':
			if i+n >= len(p) {
				return 0, badPattern(p, "trailing '\\'")
			}
			i += n
			c, n = utf8.DecodeRuneInString(p[i:])
		case '-':
			return 0, badPattern(p, "unescaped '-' in character class")
		case '[':
			return 0, badPattern(p, "unescaped '[' in character class")
		}
		if c == '/' {
			return 0, badPattern(p, "'/' in character class (a class never matches '/')")
		}
		i += n
		return c, nil
	}
	for {
		if i >= len(p) {
			return t, 0, badPattern(p, "unterminated character class")
		}
		if p[i] == ']' {
			if len(t.ranges) == 0 {
				return t, 0, badPattern(p, "empty character class")
			}
			return t, i + 1, nil
		}
		lo, err := classChar()
		if err != nil {
			return t, 0, err
		}
		hi := lo
		if i < len(p) && p[i] == '-' {
			i++
			if hi, err = classChar(); err != nil {
				return t, 0, err
			}
			if hi < lo {
				return t, 0, badPattern(p, "reversed range %c-%c in character class", lo, hi)
			}
		}
		t.ranges = append(t.ranges, runeRange{lo, hi})
	}
}

func (t *globTok) matchesOne(c rune) bool {
	switch t.kind {
	case gLit:
		return c == t.r
	case gOne:
		return c != '/'
	case gClass:
		if c == '/' {
			return false
		}
		in := false
		for _, r := range t.ranges {
			if r.lo <= c && c <= r.hi {
				in = true
				break
			}
		}
		return in != t.neg
	}
	return false
}

// matchGlob runs the pattern's NFA over s, keeping the set of pattern
// positions that the prefix read so far can have reached. Every rune of s
// costs one pass over the positions, so the work is bounded by
// (len(s)+1)·(len(toks)+1) whatever the pattern; steps, if not nil,
// counts the position visits so tests can check that bound.
func matchGlob(toks []globTok, s string, steps *int) bool {
	if !utf8.ValidString(s) {
		return false
	}
	cur, ok := runGlob(toks, s, steps)
	return ok && cur[len(toks)]
}

// runGlob is the set of positions the pattern can have reached after
// reading s, and false once there are none.
func runGlob(toks []globTok, s string, steps *int) ([]bool, bool) {
	cur := make([]bool, len(toks)+1)
	next := make([]bool, len(toks)+1)
	cur[0] = true
	closeStars(toks, cur)
	for _, c := range s {
		if !stepGlob(toks, cur, next, c, steps) {
			return nil, false
		}
		cur, next = next, cur
	}
	return cur, true
}

// stepGlob sets next to the positions that reading c leads to from the
// positions in cur, and reports whether there are any.
func stepGlob(toks []globTok, cur, next []bool, c rune, steps *int) bool {
	clear(next)
	alive := false
	for i := range toks {
		if steps != nil {
			*steps++
		}
		if !cur[i] {
			continue
		}
		switch t := &toks[i]; t.kind {
		case gStar:
			if c != '/' {
				next[i], alive = true, true
			}
		case gDStar:
			next[i], alive = true, true
		default:
			if t.matchesOne(c) {
				next[i+1], alive = true, true
			}
		}
	}
	closeStars(toks, next)
	return alive
}

// closeStars adds the positions reachable by letting a star match the
// empty run. Those edges only go forward, so one ascending pass follows
// chains of stars.
func closeStars(toks []globTok, set []bool) {
	for i, t := range toks {
		if set[i] && (t.kind == gStar || t.kind == gDStar) {
			set[i+1] = true
		}
	}
}

// Match reports whether the whole of s matches pattern (see the package
// doc for the syntax). A malformed pattern is an error, never a match.
func Match(pattern, s string) (bool, error) {
	toks, err := compileGlob(pattern)
	if err != nil {
		return false, err
	}
	return matchGlob(toks, s, nil), nil
}

// quote renders untrusted text for an error message: quoted, so control
// characters cannot forge lines, and cut short.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q…", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}
