package escape

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	for _, tt := range []struct{ in, str, text string }{
		{"plain name", "plain name", "plain name"},
		{"ünïcødé 名前 ✓", "ünïcødé 名前 ✓", "ünïcødé 名前 ✓"},
		{"back\\slash", "back\\slash", "back\\slash"},
		{"\x1b]0;owned\x07", `\x1b]0;owned\x07`, `\x1b]0;owned\x07`},
		{"\x1b[2J\x1b[H", `\x1b[2J\x1b[H`, `\x1b[2J\x1b[H`},
		{"a\nb\tc\rd", `a\nb\tc\rd`, "a\nb\tc\\rd"},
		{"nul\x00del\x7f", `nul\x00del\x7f`, `nul\x00del\x7f`},
		{"c1 \u009b2J \u0085", `c1 \u009b2J \u0085`, `c1 \u009b2J \u0085`},
		{"bidi \u202eevil\u2066", `bidi \u202eevil\u2066`, `bidi \u202eevil\u2066`},
		{"bad \xff\x9b utf8 \xe2\x82", `bad \xff\x9b utf8 \xe2\x82`, `bad \xff\x9b utf8 \xe2\x82`},
	} {
		if got := String(tt.in); got != tt.str {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.str)
		}
		if got := Text(tt.in); got != tt.text {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.text)
		}
		if got, want := Width(tt.in), utf8.RuneCountInString(tt.text); got != want {
			t.Errorf("Width(%q) = %d, want %d", tt.in, got, want)
		}
	}
}

// TestWriter: a stream escapes as Text does, wherever the writes cut
// it, characters cut in two included.
func TestWriter(t *testing.T) {
	in := "comm \x1b[31mred\x1b[0m naïve 名前 \xff\xfe end\x00\n\tdone é"
	want := Text(in)
	for size := 1; size <= len(in); size++ {
		var out bytes.Buffer
		w := NewWriter(&out)
		for i := 0; i < len(in); i += size {
			p := []byte(in[i:min(len(in), i+size)])
			if n, err := w.Write(p); n != len(p) || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Fatalf("writes of %d: %q, want %q", size, out.String(), want)
		}
	}
	// A character still cut at the end is shown as its bytes.
	var out bytes.Buffer
	w := NewWriter(&out)
	w.Write([]byte("x\xe5\x90"))
	if out.String() != "x" {
		t.Errorf("before Flush: %q", out.String())
	}
	w.Flush()
	if out.String() != `x\xe5\x90` {
		t.Errorf("after Flush: %q", out.String())
	}
}

func FuzzText(f *testing.F) {
	f.Add("\x1b[31m名\xff\n\t\u009b")
	f.Fuzz(func(t *testing.T, s string) {
		for _, got := range []string{String(s), Text(s)} {
			if !utf8.ValidString(got) {
				t.Fatalf("%q is not UTF-8", got)
			}
			for _, r := range got {
				if escapeRune(r, utf8.RuneLen(r), 0, true) != "" {
					t.Fatalf("%q keeps %U", got, r)
				}
			}
		}
		if strings.ContainsAny(String(s), "\n\t") {
			t.Fatalf("String(%q) keeps a newline or a tab", s)
		}
	})
}
