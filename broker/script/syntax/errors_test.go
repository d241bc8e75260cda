package syntax

import (
	"fmt"
	"strings"
	"testing"
)

func TestFormatError(t *testing.T) {
	src := []byte("BEGIN { @x = count2(); }\n\tif (x) {\n  é @y = 1\r\n")
	p := func(off int) Pos {
		line, col := 1, 1
		for _, c := range src[:off] {
			if c == '\n' {
				line, col = line+1, 1
			} else {
				col++
			}
		}
		return Pos{off, line, col}
	}
	tests := []struct {
		e    Error
		want string
	}{
		{Error{From: p(13), To: p(19), Msg: "Unknown function: count2"},
			"stdin:1:14-20: ERROR: Unknown function: count2\n" +
				"BEGIN { @x = count2(); }\n" +
				"             ^~~~~~"},
		{Error{From: p(13), To: p(14), Msg: "one", Warning: true},
			"stdin:1:14-15: WARNING: one\n" +
				"BEGIN { @x = count2(); }\n" +
				"             ^"},
		// An empty range still gets a caret.
		{Error{From: p(0), To: p(0), Msg: "empty"},
			"stdin:1:1-2: ERROR: empty\n" +
				"BEGIN { @x = count2(); }\n" +
				"^"},
		// A range running onto later lines is cut at the end of the first.
		{Error{From: p(6), To: p(40), Msg: "multi"},
			"stdin:1:7-25: ERROR: multi\n" +
				"BEGIN { @x = count2(); }\n" +
				"      ^~~~~~~~~~~~~~~~~~"},
		// Tabs are reproduced so that the caret lines up.
		{Error{From: p(29), To: p(30), Msg: "tab"},
			"stdin:2:5-6: ERROR: tab\n" +
				"\tif (x) {\n" +
				"\t   ^"},
		// Columns count bytes, the caret line counts characters; CR is dropped.
		{Error{From: p(40), To: p(42), Msg: "utf8"},
			"stdin:3:6-8: ERROR: utf8\n" +
				"  é @y = 1\n" +
				"    ^~"},
		// No position: no source line.
		{Error{Msg: "no position"}, "stdin: ERROR: no position"},
	}
	for _, tt := range tests {
		if got := FormatError("stdin", src, &tt.e); got != tt.want {
			t.Errorf("FormatError(%q):\n got:\n%s\nwant:\n%s", tt.e.Msg, got, tt.want)
		}
	}

	// Positions from another version of the source must not panic.
	for _, e := range []*Error{
		{From: Pos{1000, 9, 9}, To: Pos{2000, 9, 20}, Msg: "beyond"},
		{From: Pos{-5, 1, 1}, To: Pos{-1, 1, 3}, Msg: "negative"},
		{From: Pos{3, 1, 4}, To: Pos{1, 1, 2}, Msg: "backwards"},
	} {
		_ = FormatError("stdin", src, e)
	}
}

func TestErrorList(t *testing.T) {
	src := []byte("BEGIN { x }")
	l := ErrorList{
		{From: Pos{8, 1, 9}, To: Pos{9, 1, 10}, Msg: "first"},
		{From: Pos{0, 1, 1}, To: Pos{5, 1, 6}, Msg: "second", Warning: true},
	}
	want := "stdin:1:9-10: ERROR: first\nBEGIN { x }\n        ^\n" +
		"stdin:1:1-6: WARNING: second\nBEGIN { x }\n^~~~~\n"
	if got := l.Format("stdin", src); got != want {
		t.Errorf("Format:\n got:\n%s\nwant:\n%s", got, want)
	}
	if got := l.Error(); got != "1:9: first (and 1 more error)" {
		t.Errorf("Error() = %q", got)
	}
	if got := l[:1].Error(); got != "1:9: first" {
		t.Errorf("Error() = %q", got)
	}
	var _ error = l
	var _ error = l[0]
}

// TestFormatErrorEscapes: what a script holds reaches a terminal as
// visible text — in the quoted line, the message and the name — with
// the caret still under the right character.
func TestFormatErrorEscapes(t *testing.T) {
	src := []byte("BEGIN { @x = \"\x1b]0;pwned\x07\xff\"; nosuch(); }")
	at := strings.Index(string(src), "nosuch")
	e := &Error{From: Pos{at, 1, at + 1}, To: Pos{at + 6, 1, at + 7}, Msg: "Unknown function: nosuch \x1b[2J"}
	want := fmt.Sprintf("evil\\x1b.bt:1:%d-%d: ERROR: Unknown function: nosuch \\x1b[2J\n", at+1, at+7) +
		`BEGIN { @x = "\x1b]0;pwned\x07\xff"; nosuch(); }` + "\n" +
		strings.Repeat(" ", len(`BEGIN { @x = "\x1b]0;pwned\x07\xff"; `)) + "^~~~~~"
	if got := FormatError("evil\x1b.bt", src, e); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if got := e.Error(); strings.ContainsRune(got, 0x1b) {
		t.Errorf("Error() = %q", got)
	}
}

// TestFormatErrorLongLine: a line longer than maxShown is cut around
// the caret.
func TestFormatErrorLongLine(t *testing.T) {
	long := strings.Repeat("@a = 1; ", 100_000)
	src := []byte("BEGIN { " + long + "nosuch(); " + long + "}")
	at := strings.Index(string(src), "nosuch")
	e := &Error{From: Pos{at, 1, at + 1}, To: Pos{at + 6, 1, at + 7}, Msg: "Unknown function: nosuch"}
	got := FormatError("stdin", src, e)
	lines := strings.Split(got, "\n")
	if len(got) > 3*maxShown || len(lines) != 3 {
		t.Fatalf("%d bytes:\n%.1000s", len(got), got)
	}
	if !strings.HasPrefix(lines[1], "...") || !strings.HasSuffix(lines[1], "...") {
		t.Errorf("line not marked as cut: %q", lines[1])
	}
	caret := strings.IndexByte(lines[2], '^')
	if !strings.HasPrefix(lines[1][caret:], "nosuch") || !strings.HasSuffix(lines[2], "^~~~~~") {
		t.Errorf("caret at %d:\n%s\n%s", caret, lines[1], lines[2])
	}
	// At the start or the end of the line, one side only is cut.
	e = &Error{From: Pos{0, 1, 1}, To: Pos{5, 1, 6}, Msg: "start"}
	if got := strings.Split(FormatError("stdin", src, e), "\n"); strings.HasPrefix(got[1], "...") || got[2] != "^~~~~" {
		t.Errorf("at the start:\n%s", strings.Join(got, "\n"))
	}
}

// TestFormatManyErrors: Format stops after maxFormatted errors.
func TestFormatManyErrors(t *testing.T) {
	src := []byte("BEGIN { }")
	var l ErrorList
	for range 100 {
		l = append(l, &Error{From: Pos{0, 1, 1}, To: Pos{5, 1, 6}, Msg: "again"})
	}
	got := l.Format("stdin", src)
	if n := strings.Count(got, "ERROR: again"); n != maxFormatted {
		t.Errorf("%d errors formatted", n)
	}
	if !strings.HasSuffix(got, "stdin: ERROR: too many errors emitted, stopping now (80 more)\n") {
		t.Errorf("got:\n%s", got)
	}
}
