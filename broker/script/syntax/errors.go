package syntax

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Error is a diagnostic about a range of a script. To is exclusive; a zero
// or non-advancing To means the error points at the single character at From.
type Error struct {
	From, To Pos
	Msg      string
	Warning  bool
}

func (e *Error) Error() string {
	if !e.From.IsValid() {
		return e.Msg
	}
	return e.From.String() + ": " + e.Msg
}

// ErrorList is what Parse returns on failure; the compiler appends its own
// diagnostics to one so that the CLI prints them all the same way.
type ErrorList []*Error

func (l ErrorList) Error() string {
	switch len(l) {
	case 0:
		return "no errors"
	case 1:
		return l[0].Error()
	case 2:
		return fmt.Sprintf("%s (and 1 more error)", l[0])
	}
	return fmt.Sprintf("%s (and %d more errors)", l[0], len(l)-1)
}

// Format renders every error as FormatError does, one after the other.
func (l ErrorList) Format(name string, src []byte) string {
	var b strings.Builder
	for _, e := range l {
		b.WriteString(FormatError(name, src, e))
		b.WriteByte('\n')
	}
	return b.String()
}

// FormatError renders e the way bpftrace does, so that users and tools used to
// bpftrace's output read ours without surprise:
//
//	stdin:1:14-20: ERROR: Unknown function: count2
//	BEGIN { @x = count2(); }
//	             ^~~~~~
//
// Offsets are trusted over Line/Col for slicing src, and clamped, because
// positions may come from a different version of the source than src.
func FormatError(name string, src []byte, e *Error) string {
	kind := "ERROR"
	if e.Warning {
		kind = "WARNING"
	}
	if !e.From.IsValid() {
		return fmt.Sprintf("%s: %s: %s", name, kind, e.Msg)
	}

	from := min(max(e.From.Offset, 0), len(src))
	lineStart := from
	for lineStart > 0 && src[lineStart-1] != '\n' {
		lineStart--
	}
	lineEnd := from
	for lineEnd < len(src) && src[lineEnd] != '\n' {
		lineEnd++
	}
	line := src[lineStart:lineEnd]
	// A CRLF file would otherwise print a stray carriage return that moves
	// the terminal cursor back to column 0.
	line = []byte(strings.TrimSuffix(string(line), "\r"))

	// The underline stops at the end of the first line; an empty range or one
	// that points at the newline/EOF is still shown as one caret.
	to := e.To.Offset
	if !e.To.IsValid() || e.To.Line != e.From.Line || to > lineEnd {
		to = lineEnd
	}
	if to <= from {
		to = from + 1
	}
	colTo := e.From.Col + (to - from)

	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d:%d-%d: %s: %s\n", name, e.From.Line, e.From.Col, colTo, kind, e.Msg)
	b.Write(line)
	b.WriteByte('\n')
	// Mirror tabs and count runes, not bytes, so the caret sits under the
	// character on the user's terminal.
	rel := min(from-lineStart, len(line))
	for _, r := range string(line[:rel]) {
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	b.WriteByte('^')
	relTo := min(to-lineStart, len(line))
	if relTo > rel {
		n := utf8.RuneCount(line[rel:relTo])
		if n > 1 {
			b.WriteString(strings.Repeat("~", n-1))
		}
	}
	return b.String()
}
