package syntax

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tracebroker/tracebroker/internal/escape"
)

// Error is a diagnostic about a range of a script. To is exclusive; a zero
// or non-advancing To means the error points at the single character at From.
type Error struct {
	From, To Pos
	Msg      string
	Warning  bool
	// Clang marks an error in the script's C definitions, which bpftrace
	// has clang report: "stdin:1:41: error: field has incomplete type
	// 'struct thread_info'", its position a point, not a range.
	Clang bool
}

func (e *Error) Error() string {
	if !e.From.IsValid() {
		return escape.Text(e.Msg)
	}
	return e.From.String() + ": " + escape.Text(e.Msg)
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

// maxFormatted bounds the errors Format renders, each with its line of
// the script: the compiler keeps up to a hundred.
const maxFormatted = 20

// Format renders every error as FormatError does, one after the other,
// up to a bound, as bpftrace stops after many errors.
func (l ErrorList) Format(name string, src []byte) string {
	var b strings.Builder
	for i, e := range l {
		if i == maxFormatted {
			fmt.Fprintf(&b, "%s: ERROR: too many errors emitted, stopping now (%d more)\n", escape.String(name), len(l)-i)
			break
		}
		b.WriteString(FormatError(name, src, e))
		b.WriteByte('\n')
	}
	return b.String()
}

// maxShown bounds the bytes of a script's line an error shows: a
// one-liner is shown whole, as bpftrace shows it, and a one-line script
// of megabytes shows what lies around the caret.
const maxShown = 1024

// FormatError renders e the way bpftrace does, so that users and tools used to
// bpftrace's output read ours without surprise:
//
//	stdin:1:14-20: ERROR: Unknown function: count2
//	BEGIN { @x = count2(); }
//	             ^~~~~~
//
// Offsets are trusted over Line/Col for slicing src, and clamped, because
// positions may come from a different version of the source than src.
// What the script holds reaches a terminal here, so its control
// characters are shown escaped, and the caret still points where it
// should; a line longer than maxShown is cut around the caret, "..."
// marking each cut.
func FormatError(name string, src []byte, e *Error) string {
	kind := "ERROR"
	if e.Warning {
		kind = "WARNING"
	}
	if !e.From.IsValid() {
		return fmt.Sprintf("%s: %s: %s", escape.String(name), kind, escape.Text(e.Msg))
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
	if e.Clang {
		fmt.Fprintf(&b, "%s:%d:%d: %s: %s\n", escape.String(name), e.From.Line, e.From.Col, strings.ToLower(kind), escape.Text(e.Msg))
	} else {
		fmt.Fprintf(&b, "%s:%d:%d-%d: %s: %s\n", escape.String(name), e.From.Line, e.From.Col, colTo, kind, escape.Text(e.Msg))
	}
	rel := min(from-lineStart, len(line))
	relTo := min(to-lineStart, len(line))
	var before, after string
	if len(line) > maxShown {
		start := max(0, rel-maxShown/2)
		for start > 0 && !utf8.RuneStart(line[start]) {
			start--
		}
		end := min(len(line), start+maxShown)
		for end < len(line) && !utf8.RuneStart(line[end]) {
			end++
		}
		if start > 0 {
			before = "..."
		}
		if end < len(line) {
			after = "..."
		}
		line, rel, relTo = line[start:end], rel-start, min(relTo, end)-start
	}
	b.WriteString(before)
	b.WriteString(escape.Text(string(line)))
	b.WriteString(after)
	b.WriteByte('\n')
	// Mirror tabs and count what each character shows as, not bytes, so
	// the caret sits under the character on the user's terminal.
	b.WriteString(strings.Repeat(" ", len(before)))
	for i := 0; i < rel; {
		_, size := utf8.DecodeRune(line[i:rel])
		if line[i] == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteString(strings.Repeat(" ", escape.Width(string(line[i:i+size]))))
		}
		i += size
	}
	b.WriteByte('^')
	if relTo > rel {
		if n := escape.Width(string(line[rel:relTo])); n > 1 {
			b.WriteString(strings.Repeat("~", n-1))
		}
	}
	return b.String()
}
