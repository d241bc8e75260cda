package syntax

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// nested builds a script with n levels of one form of nesting.
var nested = []struct {
	name string
	src  func(n int) string
}{
	{"parentheses", func(n int) string { return "BEGIN { @x = " + repeat("(", n) + "1" + repeat(")", n) + " }" }},
	{"unary", func(n int) string { return "BEGIN { @x = " + repeat("- ", n) + "1 }" }},
	{"not", func(n int) string { return "BEGIN { @x = " + repeat("!", n) + "1 }" }},
	{"casts", func(n int) string { return "BEGIN { @x = " + repeat("(uint8)", n) + "1 }" }},
	{"ternary", func(n int) string { return "BEGIN { @x = " + repeat("1 ? 2 : ", n) + "1 }" }},
	{"ternary_then", func(n int) string { return "BEGIN { @x = " + repeat("1 ? ", n) + "1" + repeat(" : 2", n) + " }" }},
	{"nested_if", func(n int) string { return "BEGIN { " + repeat("if (1) { ", n) + repeat("} ", n) + "}" }},
	{"else_if", func(n int) string { return "BEGIN { " + repeat("if (1) {} else ", n) + "{} }" }},
	{"while", func(n int) string { return "BEGIN { " + repeat("while (1) { ", n) + repeat("} ", n) + "}" }},
	{"index", func(n int) string { return "BEGIN { @x = $p" + repeat("[0]", n) + " }" }},
	{"index_inside", func(n int) string { return "BEGIN { @x = " + repeat("$p[", n) + "0" + repeat("]", n) + " }" }},
	{"fields", func(n int) string { return "BEGIN { @x = args" + repeat("->a", n) + " }" }},
	{"calls", func(n int) string { return "BEGIN { @x = " + repeat("f(", n) + "1" + repeat(")", n) + " }" }},
	{"map_keys", func(n int) string { return "BEGIN { @x = " + repeat("@m[", n) + "1" + repeat("]", n) + " }" }},
	{"tuples", func(n int) string { return "BEGIN { @x = " + repeat("(1, ", n) + "1" + repeat(")", n) + " }" }},
	{"predicate", func(n int) string { return "BEGIN /" + repeat("(", n) + "1" + repeat(")", n) + "/ { }" }},
}

// TestNestingLimit: every form of nesting, however long, ends in the
// positioned depth error; half the bound is fine.
func TestNestingLimit(t *testing.T) {
	for _, tt := range nested {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse("stdin", []byte(tt.src(MaxDepth/2))); err != nil {
				t.Errorf("%d levels: %v", MaxDepth/2, err)
			}
			for _, n := range []int{MaxDepth + 1, 100_000} {
				src := tt.src(n)
				_, err := Parse("stdin", []byte(src))
				var list ErrorList
				if !errors.As(err, &list) || len(list) != 1 || list[0].Msg != fmt.Sprintf("program is nested too deeply (more than %d levels)", MaxDepth) {
					t.Fatalf("%d levels: got %v", n, err)
				}
				if e := list[0]; e.From.Offset >= len(src) || e.To.Offset <= e.From.Offset {
					t.Errorf("%d levels: error at %d..%d of %d bytes", n, e.From.Offset, e.To.Offset, len(src))
				}
			}
		})
	}
}

func TestNestingError(t *testing.T) {
	src := "BEGIN {\n  @x = " + repeat("!", MaxDepth+5) + "1;\n}"
	_, err := Parse("deep.bt", []byte(src))
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatal(err)
	}
	col := 7 + MaxDepth
	want := fmt.Sprintf("deep.bt:2:%d-%d: ERROR: program is nested too deeply (more than %d levels)\n  @x = %s1;\n%s^",
		col, col+1, MaxDepth, repeat("!", MaxDepth+5), repeat(" ", col-1))
	if got := FormatError("deep.bt", []byte(src), list[0]); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// wide builds a script of about n nodes of one flat form.
var wide = []struct {
	name string
	src  func(n int) string
}{
	{"plus", func(n int) string { return "BEGIN { @x = 1" + repeat(" + 1", n) + " }" }},
	{"and", func(n int) string { return "BEGIN { @x = 1" + repeat(" && 1", n) + " }" }},
	{"mixed", func(n int) string { return "BEGIN { @x = 1" + repeat(" * 2 + 3 << 1 | 4", n/4) + " }" }},
	{"statements", func(n int) string { return "BEGIN { " + repeat("@x = 1; ", n) + "}" }},
	{"if_statements", func(n int) string { return "BEGIN { " + repeat("if (1) { } ", n) + "}" }},
	{"probes", func(n int) string { return repeat("BEGIN { } ", n) }},
	{"specs", func(n int) string { return "BEGIN" + repeat(", END", n) + " { }" }},
	{"call_args", func(n int) string { return "BEGIN { printf(\"\"" + repeat(", 1", n) + "); }" }},
	{"tuple", func(n int) string { return "BEGIN { @x = (1" + repeat(", 1", n) + "); }" }},
}

// TestSizeLimit: flat inputs are bounded by their size, with the error
// where the bound is reached.
func TestSizeLimit(t *testing.T) {
	for _, tt := range wide {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse("stdin", []byte(tt.src(MaxNodes/8))); err != nil {
				t.Errorf("%d: %v", MaxNodes/8, err)
			}
			src := tt.src(100_000)
			_, err := Parse("stdin", []byte(src))
			var list ErrorList
			if !errors.As(err, &list) || len(list) != 1 || list[0].Msg != fmt.Sprintf("program is too large (more than %d expressions, statements and probes)", MaxNodes) {
				t.Fatalf("got %v", err)
			}
			if e := list[0]; e.From.Offset >= len(src) || e.From.Offset < len(src)/20 {
				t.Errorf("error at %d of %d bytes", e.From.Offset, len(src))
			}
		})
	}
}

// TestRealScriptsWithinBounds: the bounds leave room for every real
// script at hand — this repository's and, where installed, bpftrace's
// tools — and MaxDepth's comment says how much.
func TestRealScriptsWithinBounds(t *testing.T) {
	var files []string
	for _, g := range []string{"../../../testdata/*/*.bt", "../../../testdata/*/*/*.bt", "../../*/testdata/*.bt", "../../*/*/testdata/*.bt", "/usr/sbin/*.bt", "/usr/share/bpftrace/tools/*.bt"} {
		m, _ := filepath.Glob(g)
		files = append(files, m...)
	}
	if len(files) < 40 {
		t.Fatalf("found only %d scripts", len(files))
	}
	deepest, largest := 0, 0
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		_, p, err := parse(name, b, nil)
		if err != nil {
			continue // scripts of what this parser does not take (kprobe structs, #include)
		}
		deepest, largest = max(deepest, p.deepest), max(largest, p.nodes)
	}
	t.Logf("%d scripts: deepest %d levels (bound %d), largest %d nodes (bound %d)", len(files), deepest, MaxDepth, largest, MaxNodes)
	if deepest > MaxDepth/8 || largest > MaxNodes/16 {
		t.Errorf("a real script comes within 8x of the depth bound or 16x of the size bound: deepest %d, largest %d", deepest, largest)
	}
}

// TestLeftChainPositions: a chain of binary operators as long as the
// bounds allow answers Pos without recursing through it.
func TestLeftChainPositions(t *testing.T) {
	src := "BEGIN { @x = a" + strings.Repeat(" + b", MaxNodes/2-10) + "; }"
	f, err := Parse("stdin", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	rhs := f.Probes[0].Body.Stmts[0].(*AssignStmt).Rhs.(*Binary)
	if rhs.Pos().Offset != strings.Index(src, "a") || rhs.End().Offset != len(src)-3 {
		t.Errorf("chain at %v..%v", rhs.Pos(), rhs.End())
	}
	if spine := LeftSpine(nil, rhs); len(spine) != MaxNodes/2-10 || LeftOperand(rhs) != spine[len(spine)-1].X {
		t.Errorf("spine of %d", len(spine))
	}
}
