// Package escape makes text that others control safe to show on a
// terminal. A terminal acts on the control characters in what it is
// shown (ESC starts sequences that move the cursor, retitle the window,
// rewrite the screen, answer back as if typed), so a request name, a
// traced process's comm or a file name must reach it as visible text:
// each control character is shown escaped, as Go quotes it.
//
// What is escaped: C0 controls (U+0000–U+001F) and DEL as \xNN (\n, \t
// and \r by name), C1 controls (U+0080–U+009F: 8-bit CSI and OSC among
// them) and the bidirectional overrides that make text read other than
// it is (U+202A–U+202E, U+2066–U+2069) as \uNNNN, and every byte that is
// not valid UTF-8 as \xNN, since a terminal in another encoding may take
// it for a C1 control. Everything else — printable text in any script,
// and the backslash itself — is kept as it is.
package escape

import (
	"fmt"
	"io"
	"sync"
	"unicode/utf8"
)

// String escapes every control character of s, newlines and tabs too:
// for a field of a listing, which must stay on its line and in its
// column.
func String(s string) string {
	if clean(s, false) {
		return s
	}
	return string(appendEscaped(nil, []byte(s), false))
}

// Text escapes the control characters of s but newlines and tabs: for
// text that is laid out in lines, such as a message with a quoted line
// of a script and a caret under it.
func Text(s string) string {
	if clean(s, true) {
		return s
	}
	return string(appendEscaped(nil, []byte(s), true))
}

// Width is how many columns s takes once Text escapes it, counting a
// rune as one column: for placing a caret under escaped text.
func Width(s string) int {
	n := 0
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		if e := escapeRune(r, size, s[0], true); e != "" {
			n += len(e)
		} else {
			n++
		}
		s = s[size:]
	}
	return n
}

// clean reports whether s needs no escape, the common case, without
// allocating.
func clean(s string, layout bool) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 || c == 0x7f) && !(layout && (c == '\n' || c == '\t')) {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if escapeRune(r, size, c, layout) != "" {
			return false
		}
		i += size
	}
	return true
}

// appendEscaped appends p to b, escaped; layout keeps \n and \t.
func appendEscaped(b, p []byte, layout bool) []byte {
	for len(p) > 0 {
		r, size := utf8.DecodeRune(p)
		if e := escapeRune(r, size, p[0], layout); e != "" {
			b = append(b, e...)
		} else {
			b = append(b, p[:size]...)
		}
		p = p[size:]
	}
	return b
}

// escapeRune is how the rune r, size bytes long and starting with the
// byte first, is shown, or "" for itself. An invalid byte decodes as
// utf8.RuneError of size 1.
func escapeRune(r rune, size int, first byte, layout bool) string {
	switch {
	case r == utf8.RuneError && size == 1:
		return fmt.Sprintf(`\x%02x`, first)
	case r == '\n' || r == '\t':
		if layout {
			return ""
		}
		if r == '\n' {
			return `\n`
		}
		return `\t`
	case r == '\r':
		return `\r`
	case r < 0x20 || r == 0x7f:
		return fmt.Sprintf(`\x%02x`, r)
	case Unicode(r):
		return fmt.Sprintf(`\u%04x`, r)
	}
	return ""
}

// Unicode reports whether r is one of the characters above U+007F that
// a terminal acts on, and that are therefore shown as \uNNNN: a C1
// control (U+0080–U+009F, 8-bit CSI and OSC among them) or a
// bidirectional override (U+202A–U+202E, U+2066–U+2069). A JSON
// encoder that writes them raw needs the same set.
func Unicode(r rune) bool {
	return r >= 0x80 && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

// Writer escapes what it writes through as Text does, for a stream of
// output shown on a terminal. A character cut in two by the end of a
// write is completed by the next one; Flush ends the stream. It is safe
// for concurrent use.
type Writer struct {
	mu      sync.Mutex
	w       io.Writer
	pending []byte // the start of a character the next write completes
	buf     []byte
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write escapes p and writes it. It reports len(p) written when the
// escaped text was.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if len(w.pending) > 0 {
		p = append(w.pending, p...)
		w.pending = nil
	}
	// Keep a trailing incomplete character for the next write.
	if cut := incompleteTail(p); cut > 0 {
		w.pending = append([]byte(nil), p[len(p)-cut:]...)
		p = p[:len(p)-cut]
	}
	w.buf = appendEscaped(w.buf[:0], p, true)
	if _, err := w.w.Write(w.buf); err != nil {
		return 0, err
	}
	return n, nil
}

// Flush writes what is left of a character cut off at the end of the
// stream, escaped as the invalid bytes it is.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) == 0 {
		return nil
	}
	w.buf = appendEscaped(w.buf[:0], w.pending, true)
	w.pending = nil
	_, err := w.w.Write(w.buf)
	return err
}

// incompleteTail is how many bytes at the end of p start a character
// that is not complete yet (0 to 3).
func incompleteTail(p []byte) int {
	for i := 1; i <= 3 && i <= len(p); i++ {
		c := p[len(p)-i]
		if c < 0x80 {
			return 0 // ASCII: nothing is cut
		}
		if c >= 0xc0 { // a leading byte
			if !utf8.FullRune(p[len(p)-i:]) {
				return i
			}
			return 0
		}
	}
	return 0
}
