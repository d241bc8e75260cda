package script

import (
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"/etc/passwd", `"/etc/passwd"`},
		{`a"b`, `"a\"b"`},
		{`a\b`, `"a\\b"`},
		{`\"`, `"\\\""`},
		{"a\nb\tc", `"a\x0ab\x09c"`},
		{"\x00", `"\x00"`},
		{"\x7f1", `"\x7f1"`},      // the digit after the escape stays a digit
		{"café", `"caf\xc3\xa9"`}, // UTF-8 byte by byte
		{`"); exit(); printf("`, `"\"); exit(); printf(\""`},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// FuzzQuote: whatever the bytes, the literal parses back to exactly them.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", `a"b\c`, "\n\x00\xff", `"); exit(); //`, "\\x41", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		src := "BEGIN { @s = " + Quote(s) + "; }"
		file, err := syntax.Parse("quote", []byte(src))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		stmts := file.Probes[0].Body.Stmts
		if len(file.Probes) != 1 || len(stmts) != 1 {
			t.Fatalf("%s: parsed as %d probes, %d statements", src, len(file.Probes), len(stmts))
		}
		lit, ok := stmts[0].(*syntax.AssignStmt).Rhs.(*syntax.StrLit)
		if !ok || lit.Value != s {
			t.Fatalf("%s: parsed back as %#v, want %q", src, stmts[0].(*syntax.AssignStmt).Rhs, s)
		}
	})
}

func TestCheckString(t *testing.T) {
	for _, tc := range []struct {
		s       string
		max     int
		wantErr string // "" for valid
	}{
		{"bash", CommLen, ""},
		{strings.Repeat("x", 15), CommLen, ""},
		{strings.Repeat("x", 16), CommLen, "is 16 bytes long; at most 15 can match"},
		{strings.Repeat("/", 63), StrLen, ""},
		{strings.Repeat("/", 64), StrLen, "is 64 bytes long; at most 63 can match"},
		{"", CommLen, "must not be empty"},
		{"a\x00b", CommLen, "contains a NUL byte"},
	} {
		err := CheckString("p", tc.s, tc.max)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("CheckString(%q, %d) = %v, want %q", tc.s, tc.max, err, tc.wantErr)
		}
	}
}

func TestCheckPID(t *testing.T) {
	for pid, ok := range map[int64]bool{1: true, 4194304: true, 0: false, -1: false, 4194305: false} {
		if err := CheckPID("pid", pid); (err == nil) != ok {
			t.Errorf("CheckPID(%d) = %v", pid, err)
		}
	}
}
