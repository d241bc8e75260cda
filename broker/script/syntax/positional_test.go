package syntax

import (
	"fmt"
	"strings"
	"testing"
)

// TestPositional: $N, $# and str($N) become the literals bpftrace makes
// of the command line's words.
func TestPositional(t *testing.T) {
	for _, tc := range []struct {
		expr string
		args []string
		want string // the literal: int N or str "S"
	}{
		{"$1", []string{"42"}, "int 42"},
		{"$1", []string{"0x1f"}, "int 31"},
		{"$1", []string{"0775"}, "int 509"},
		{"$1", []string{"-4"}, "neg 4"},
		{"$1", []string{"0b11"}, `str "0b11"`}, // not strtoll's: text
		{"$1", []string{"1_000"}, `str "1_000"`},
		{"$1", []string{"hello"}, `str "hello"`},
		{"$2", []string{"hello"}, "int 0"},
		{"$#", []string{"a", "b", "c"}, "int 3"},
		{"$#", nil, "int 0"},
		{"str($1)", []string{"hello"}, `str "hello"`},
		{"str($1)", []string{"1"}, `str "1"`},
		{"str($2)", []string{"1"}, `str ""`},
		{"str($1 + 2)", []string{"hello"}, `str "llo"`},
		{"str(($1) + 9)", []string{"hello"}, `str ""`},
	} {
		src := "BEGIN { @ = " + tc.expr + "; }"
		f, err := ParseArgs("stdin", []byte(src), tc.args)
		if err != nil {
			t.Errorf("%s %q: %v", tc.expr, tc.args, err)
			continue
		}
		rhs := f.Probes[0].Body.Stmts[0].(*AssignStmt).Rhs
		if got := literal(rhs); got != tc.want {
			t.Errorf("%s with %q: %s, want %s", tc.expr, tc.args, got, tc.want)
		}
	}
}

func literal(e Expr) string {
	switch e := unparenExpr(e).(type) {
	case *IntLit:
		return fmt.Sprintf("int %d", e.Value)
	case *StrLit:
		return fmt.Sprintf("str %q", e.Value)
	case *Unary:
		if l, ok := e.X.(*IntLit); ok && e.Op == SUB {
			return fmt.Sprintf("neg %d", l.Value)
		}
	}
	return fmt.Sprintf("%T", e)
}

// TestPositionalSpec: a probe's spec takes the parameter's text.
func TestPositionalSpec(t *testing.T) {
	for _, tc := range []struct {
		src  string
		args []string
		want string
	}{
		{"i:ms:$1 { }", []string{"100"}, "interval:ms:100"},
		{"BEG$1 { }", []string{"IN"}, "BEGIN"},
		{"tracepoint:$1:$2 { }", []string{"syscalls", "sys_enter_openat"}, "tracepoint:syscalls:sys_enter_openat"},
	} {
		f, err := ParseArgs("stdin", []byte(tc.src), tc.args)
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		s := f.Probes[0].Specs[0]
		got := s.Provider
		if len(s.Parts) > 0 {
			got += ":" + strings.Join(s.Parts, ":")
		}
		if got != tc.want {
			t.Errorf("%s with %q: %s, want %s", tc.src, tc.args, got, tc.want)
		}
	}
}
