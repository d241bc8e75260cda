package syntax

import "testing"

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
