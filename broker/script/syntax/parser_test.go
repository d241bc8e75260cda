package syntax

import (
	"reflect"
	"testing"
)

func TestParseTree(t *testing.T) {
	tests := []struct{ src, want string }{
		// Probes, spec lists, predicates.
		{"", ""},
		{"BEGIN {}", "(probe BEGIN {})"},
		{"BEGIN{}END{}", "(probe BEGIN {})\n(probe END {})"},
		{"BEGIN,\nEND { exit() }", "(probe BEGIN END {exit()})"},
		{"k:f, kr:f /pid == 1/ { }", "(probe kprobe:f kretprobe:f (pred (== pid 1)) {})"},
		{"t:syscalls:sys_enter_openat/pid==1/{@[comm]=count()}",
			"(probe tracepoint:syscalls:sys_enter_openat (pred (== pid 1)) {(= (@ comm) count())})"},
		{"i:s:1 /@x / 2/ { }", "(probe interval:s:1 (pred (/ @x 2)) {})"},
		{"BEGIN /$1 / 2 / /* why not */ {}", "(probe BEGIN (pred (/ 0 2)) {})"},
		{"#!/usr/bin/env bpftrace\nBEGIN {}", "(probe BEGIN {})"},

		// Statements and separators.
		{"BEGIN { @x = 1; @y = 2 }", "(probe BEGIN {(= @x 1) (= @y 2)})"},
		{"BEGIN { @x = 1; @y = 2; }", "(probe BEGIN {(= @x 1) (= @y 2)})"},
		{"BEGIN { if (1) { } @y = 1; }", "(probe BEGIN {(if 1 {}) (= @y 1)})"},
		{"BEGIN { if ($x) { @a = 1 } else { @b = 2 } }", "(probe BEGIN {(if $x {(= @a 1)} {(= @b 2)})})"},
		{"BEGIN { if (a) {} else if (b) {} else {} }", "(probe BEGIN {(if a {} (if b {} {}))})"},
		{"BEGIN { while ($i < 10) { $i++ } unroll(3) { @x++ } }",
			"(probe BEGIN {(while (< $i 10) {($i ++)}) (unroll 3 {(@x ++)})})"},
		{"gatekeeper { return; }", "(probe gatekeeper {(return)})"},
		{"gatekeeper { return 1 }", "(probe gatekeeper {(return 1)})"},
		{"gatekeeper { if (uid == 0) { return 0 } return -1; }",
			"(probe gatekeeper {(if (== uid 0) {(return 0)}) (return (- 1))})"},
		{"BEGIN { $x += 1; @y[1, 2] -= 2; $z *= 3; $z /= 4; $z %= 5 }",
			"(probe BEGIN {(+= $x 1) (-= (@y 1 2) 2) (*= $z 3) (/= $z 4) (%= $z 5)})"},
		{"BEGIN { $z &= 1; $z |= 2; $z ^= 3; $z <<= 4; $z >>= 5 }",
			"(probe BEGIN {(&= $z 1) (|= $z 2) (^= $z 3) (<<= $z 4) (>>= $z 5)})"},
		{"BEGIN { @ = 1; @[1] = 2 }", "(probe BEGIN {(= @ 1) (= (@ 1) 2)})"},
		{`BEGIN { printf("%d %s\n", pid, comm); }`, `(probe BEGIN {printf("%d %s\n", pid, comm)})`},

		// Precedence and associativity.
		{"BEGIN { $x = 1 + 2 * 3 - 4 / 5 % 6 }", "(probe BEGIN {(= $x (- (+ 1 (* 2 3)) (% (/ 4 5) 6)))})"},
		{"BEGIN { $x = a || b && c | d ^ e & f == g < h << i + j * k }",
			"(probe BEGIN {(= $x (|| a (&& b (| c (^ d (& e (== f (< g (<< h (+ i (* j k)))))))))))})"},
		{"BEGIN { $x = a * b + c << d > e != f & g ^ h | i && j || k }",
			"(probe BEGIN {(= $x (|| (&& (| (^ (& (!= (> (<< (+ (* a b) c) d) e) f) g) h) i) j) k))})"},
		{"BEGIN { $x = 1 - 2 - 3; $y = a == b != c; $z = a <= b >= c }",
			"(probe BEGIN {(= $x (- (- 1 2) 3)) (= $y (!= (== a b) c)) (= $z (>= (<= a b) c))})"},
		{"BEGIN { $x = a ? b : c ? d : e }", "(probe BEGIN {(= $x (? a b (? c d e)))})"},
		{"BEGIN { $x = a || b ? c + 1 : d }", "(probe BEGIN {(= $x (? (|| a b) (+ c 1) d))})"},
		{"BEGIN { $x = a ? b ? c : d : e }", "(probe BEGIN {(= $x (? a (? b c d) e))})"},

		// Unary, casts, postfix.
		{"BEGIN { $x = -1; $y = !~-*&$z }", "(probe BEGIN {(= $x (- 1)) (= $y (! (~ (- (* (& $z))))))})"},
		{"BEGIN { $x = - -1 }", "(probe BEGIN {(= $x (- (- 1)))})"},
		{"BEGIN { ++$x; --@y[1]; $x++; @y--; @z = $x++ + 1 }",
			"(probe BEGIN {(++ $x) (-- (@y 1)) ($x ++) (@y --) (= @z (+ ($x ++) 1))})"},
		{"BEGIN { $x = (uint8)$y + 1 }", "(probe BEGIN {(= $x (+ (cast uint8 $y) 1))})"},
		{"BEGIN { $x = (int64 **)-1; $y = (uint16)$p->f }",
			"(probe BEGIN {(= $x (cast int64** (- 1))) (= $y (cast uint16 (-> $p f)))})"},
		{"BEGIN { $x = ((struct task_struct *)curtask)->real_parent->pid; $y = (union u**)$p }",
			"(probe BEGIN {(= $x (-> (-> (paren (cast struct task_struct * curtask)) real_parent) pid)) (= $y (cast union u ** $p))})"},
		{"BEGIN { $x = (struct s *)$p->f; $y = sizeof(struct task_struct) + sizeof(struct s *) + sizeof($x) }",
			"(probe BEGIN {(= $x (cast struct s * (-> $p f))) (= $y (+ (+ sizeof(struct task_struct) sizeof(struct s *)) sizeof($x)))})"},
		{"BEGIN { $x = (int8)(uint32)1 }", "(probe BEGIN {(= $x (cast int8 (cast uint32 1)))})"},
		{"BEGIN { $x = (foo)+1 }", "(probe BEGIN {(= $x (+ (paren foo) 1))})"},
		{"BEGIN { $x = *$p->a.b[2]->c }", "(probe BEGIN {(= $x (* (-> (index (. (-> $p a) b) 2) c)))})"},
		{"BEGIN { print($t.0); $u = $t.1.2 }", "(probe BEGIN {print((. $t 0)) (= $u (. (. $t 1) 2))})"},
		{"t:x:y { @[args->filename] = count() }", "(probe tracepoint:x:y {(= (@ (-> args filename)) count())})"},
		{"BEGIN { $x = args.return + args->if }", "(probe BEGIN {(= $x (+ (. args return) (-> args if)))})"},
		{"BEGIN { @x = @m[1][2] }", "(probe BEGIN {(= @x (index (@m 1) 2))})"},
		{"BEGIN { @x = *(&$y) }", "(probe BEGIN {(= @x (* (paren (& $y))))})"},

		// Primaries.
		{"BEGIN { $t = (1, \"a\", (2, 3)) }", `(probe BEGIN {(= $t (tuple 1 "a" (tuple 2 3)))})`},
		{"BEGIN { $p = (1) }", "(probe BEGIN {(= $p (paren 1))})"},
		{"BEGIN { @x = 0x10 + 1_000 + 1e3 + 010 }", "(probe BEGIN {(= @x (+ (+ (+ 16 1000) 1000) 8))})"},
		{`BEGIN { @s = "\x41\102\t" }`, `(probe BEGIN {(= @s "AB\t")})`},
		{"BEGIN { @h = hist(nsecs - @start[tid]); delete(@start[tid]); exit() }",
			"(probe BEGIN {(= @h hist((- nsecs (@start tid)))) delete((@start tid)) exit()})"},
		{"BEGIN { @x = $1 + $# }", "(probe BEGIN {(= @x (+ 0 0))})"},
	}
	for _, tt := range tests {
		f, err := Parse("test", []byte(tt.src))
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.src, err)
			continue
		}
		if got := dumpFile(f); got != tt.want {
			t.Errorf("Parse(%q):\n got %s\nwant %s", tt.src, got, tt.want)
		}
	}
}

func TestParseProbeSpecs(t *testing.T) {
	tests := []struct {
		raw, provider string
		parts         []string
	}{
		{"BEGIN", "BEGIN", nil},
		{"begin", "BEGIN", nil},
		{"END", "END", nil},
		{"end", "END", nil},
		{"t:syscalls:sys_enter_*", "tracepoint", []string{"syscalls", "sys_enter_*"}},
		{"tracepoint:sched:sched_switch", "tracepoint", []string{"sched", "sched_switch"}},
		{"rt:sys_enter", "rawtracepoint", []string{"sys_enter"}},
		{"rawtracepoint:sys_enter", "rawtracepoint", []string{"sys_enter"}},
		{"k:do_nanosleep", "kprobe", []string{"do_nanosleep"}},
		{"kprobe:vfs_[rw]*", "kprobe", []string{"vfs_[rw]*"}},
		{"kr:do_sys_open?", "kretprobe", []string{"do_sys_open?"}},
		{"kretprobe:f", "kretprobe", []string{"f"}},
		{"u:/bin/bash:readline", "uprobe", []string{"/bin/bash", "readline"}},
		{"uprobe:/usr/lib/x86_64-linux-gnu/libc.so.6:malloc", "uprobe", []string{"/usr/lib/x86_64-linux-gnu/libc.so.6", "malloc"}},
		{"ur:/bin/bash:readline", "uretprobe", []string{"/bin/bash", "readline"}},
		{"uretprobe:bash:readline", "uretprobe", []string{"bash", "readline"}},
		{"i:s:1", "interval", []string{"s", "1"}},
		{"interval:ms:100", "interval", []string{"ms", "100"}},
		{"p:hz:99", "profile", []string{"hz", "99"}},
		{"profile:hz:99", "profile", []string{"hz", "99"}},
		{"s:cpu-clock:1000", "software", []string{"cpu-clock", "1000"}},
		{"software:faults:1", "software", []string{"faults", "1"}},
		{"h:cache-misses:1000000", "hardware", []string{"cache-misses", "1000000"}},
		{"hardware:cycles:1e6", "hardware", []string{"cycles", "1e6"}},
		{"U:/bin/x:prov:probe", "usdt", []string{"/bin/x", "prov", "probe"}},
		{"usdt:/bin/x:probe", "usdt", []string{"/bin/x", "probe"}},
		{"f:vfs_read", "kfunc", []string{"vfs_read"}},
		{"fentry:vfs_read", "kfunc", []string{"vfs_read"}},
		{"kfunc:vmlinux:vfs_read", "kfunc", []string{"vmlinux", "vfs_read"}},
		{"fr:vfs_read", "kretfunc", []string{"vfs_read"}},
		{"fexit:vfs_read", "kretfunc", []string{"vfs_read"}},
		{"kretfunc:vfs_read", "kretfunc", []string{"vfs_read"}},
		{"w:0x10000000:8:rw", "watchpoint", []string{"0x10000000", "8", "rw"}},
		{"watchpoint:0x1:4:w", "watchpoint", []string{"0x1", "4", "w"}},
		{"tp_btf:sched_switch", "tp_btf", []string{"sched_switch"}},
		{"gatekeeper", "gatekeeper", nil},
		{"bogus:x", "bogus", []string{"x"}},
		{"Begin", "Begin", nil},
		{"kprobe:", "kprobe", []string{""}},
	}
	for _, tt := range tests {
		src := tt.raw + " {}"
		f, err := Parse("test", []byte(src))
		if err != nil {
			t.Errorf("Parse(%q): %v", src, err)
			continue
		}
		s := f.Probes[0].Specs[0]
		if s.Raw != tt.raw || s.Provider != tt.provider || !reflect.DeepEqual(s.Parts, tt.parts) {
			t.Errorf("spec %q = {%q %q %q}, want {%q %q %q}", tt.raw, s.Raw, s.Provider, s.Parts, tt.raw, tt.provider, tt.parts)
		}
		if want := (Pos{0, 1, 1}); s.From != want {
			t.Errorf("spec %q From = %v", tt.raw, s.From)
		}
		if want := (Pos{len(tt.raw), 1, len(tt.raw) + 1}); s.To != want {
			t.Errorf("spec %q To = %v, want %v", tt.raw, s.To, want)
		}
	}
}

// TestParseErrors checks the complete rendered diagnostic, caret and all,
// because that is what users see.
func TestParseErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"BEGIN { $x = 1 + ; }",
			"stdin:1:18-19: ERROR: syntax error, unexpected ;\n" +
				"BEGIN { $x = 1 + ; }\n" +
				"                 ^"},
		{"BEGIN { @x = 1",
			"stdin:1:15-16: ERROR: syntax error, unexpected end of file, expecting }\n" +
				"BEGIN { @x = 1\n" +
				"              ^"},
		{"BEGIN { @x = 1 @y = 2 }",
			"stdin:1:16-18: ERROR: syntax error, unexpected map, expecting }\n" +
				"BEGIN { @x = 1 @y = 2 }\n" +
				"               ^~"},
		{"BEGIN { ; }",
			"stdin:1:9-10: ERROR: syntax error, unexpected ;, expecting }\n" +
				"BEGIN { ; }\n" +
				"        ^"},
		{"BEGIN { @x = 1;; }",
			"stdin:1:16-17: ERROR: syntax error, unexpected ;, expecting }\n" +
				"BEGIN { @x = 1;; }\n" +
				"               ^"},
		{"BEGIN { if (1) {}; }",
			"stdin:1:18-19: ERROR: syntax error, unexpected ;, expecting }\n" +
				"BEGIN { if (1) {}; }\n" +
				"                 ^"},
		{"BEGIN { 1 = 2; }",
			"stdin:1:11-12: ERROR: syntax error, unexpected =, expecting }\n" +
				"BEGIN { 1 = 2; }\n" +
				"          ^"},
		{"BEGIN { @x = -1++ }",
			"stdin:1:16-18: ERROR: syntax error, unexpected ++, expecting }\n" +
				"BEGIN { @x = -1++ }\n" +
				"               ^~"},
		{"BEGIN { @x = ++1 }",
			"stdin:1:16-17: ERROR: syntax error, unexpected integer\n" +
				"BEGIN { @x = ++1 }\n" +
				"               ^"},
		{"BEGIN { @x = (1 }",
			"stdin:1:17-18: ERROR: syntax error, unexpected }, expecting ) or \",\"\n" +
				"BEGIN { @x = (1 }\n" +
				"                ^"},
		{"BEGIN { @x = foo(1 ; }",
			"stdin:1:20-21: ERROR: syntax error, unexpected ;, expecting ) or \",\"\n" +
				"BEGIN { @x = foo(1 ; }\n" +
				"                   ^"},
		{"BEGIN { @x[1 = 2; }",
			"stdin:1:14-15: ERROR: syntax error, unexpected =, expecting ] or \",\"\n" +
				"BEGIN { @x[1 = 2; }\n" +
				"             ^"},
		{"BEGIN { @x = $y[1 ; }",
			"stdin:1:19-20: ERROR: syntax error, unexpected ;, expecting ]\n" +
				"BEGIN { @x = $y[1 ; }\n" +
				"                  ^"},
		{"BEGIN { @x = , }",
			"stdin:1:14-15: ERROR: syntax error, unexpected \",\"\n" +
				"BEGIN { @x = , }\n" +
				"             ^"},
		{"BEGIN { @x = 1 ? 2 ; }",
			"stdin:1:20-21: ERROR: syntax error, unexpected ;, expecting :\n" +
				"BEGIN { @x = 1 ? 2 ; }\n" +
				"                   ^"},
		{"BEGIN { if 1 { } }",
			"stdin:1:12-13: ERROR: syntax error, unexpected integer, expecting (\n" +
				"BEGIN { if 1 { } }\n" +
				"           ^"},
		{"BEGIN { while (1 { } }",
			"stdin:1:18-19: ERROR: syntax error, unexpected {, expecting )\n" +
				"BEGIN { while (1 { } }\n" +
				"                 ^"},
		{"BEGIN { if (1) @x = 1; }",
			"stdin:1:16-18: ERROR: syntax error, unexpected map, expecting {\n" +
				"BEGIN { if (1) @x = 1; }\n" +
				"               ^~"},
		{"BEGIN { $x->1 }",
			"stdin:1:13-14: ERROR: syntax error, unexpected integer, expecting identifier\n" +
				"BEGIN { $x->1 }\n" +
				"            ^"},
		{"BEGIN { $x.; }",
			"stdin:1:12-13: ERROR: syntax error, unexpected ;\n" +
				"BEGIN { $x.; }\n" +
				"           ^"},
		{"BEGIN { $x = (uint8 1 }",
			"stdin:1:21-22: ERROR: syntax error, unexpected integer, expecting )\n" +
				"BEGIN { $x = (uint8 1 }\n" +
				"                    ^"},
		{"BEGIN { else }",
			"stdin:1:9-13: ERROR: syntax error, unexpected else, expecting }\n" +
				"BEGIN { else }\n" +
				"        ^~~~"},

		// Top level.
		{"BEGIN",
			"stdin:1:1-6: ERROR: unexpected end of file, expected {\n" +
				"BEGIN\n" +
				"^~~~~"},
		{"BEGIN,\n",
			"stdin:1:1-7: ERROR: unexpected end of file, expected {\n" +
				"BEGIN,\n" +
				"^~~~~~"},
		{"BEGIN { } }",
			"stdin:1:11-12: ERROR: syntax error, unexpected }\n" +
				"BEGIN { } }\n" +
				"          ^"},
		{"BEGIN;",
			"stdin:1:6-7: ERROR: syntax error, unexpected ;, expecting {\n" +
				"BEGIN;\n" +
				"     ^"},
		{"BEGIN\nEND {}",
			"stdin:2:1-4: ERROR: syntax error, unexpected identifier, expecting {\n" +
				"END {}\n" +
				"^~~"},
		{"BEGIN /1/",
			"stdin:1:10-11: ERROR: syntax error, unexpected end of file\n" +
				"BEGIN /1/\n" +
				"         ^"},
		{"BEGIN /1 {}",
			"stdin:1:10-11: ERROR: syntax error, unexpected {, expecting /\n" +
				"BEGIN /1 {}\n" +
				"         ^"},
		{"/1/ {}",
			"stdin:1:1-2: ERROR: syntax error, unexpected /\n" +
				"/1/ {}\n" +
				"^"},

		// Lexical errors.
		{"BEGIN { @x = \"abc }",
			"stdin:1:14-20: ERROR: unterminated string\n" +
				"BEGIN { @x = \"abc }\n" +
				"             ^~~~~~"},
		{"BEGIN { @x = \"abc\n\" }",
			"stdin:1:14-18: ERROR: unterminated string\n" +
				"BEGIN { @x = \"abc\n" +
				"             ^~~~"},
		{`BEGIN { @x = "a\qb" }`,
			`stdin:1:16-18: ERROR: invalid escape character '\q'` + "\n" +
				`BEGIN { @x = "a\qb" }` + "\n" +
				"               ^~"},
		{`BEGIN { @x = "\777" }`,
			`stdin:1:15-19: ERROR: octal escape sequence out of range '\777'` + "\n" +
				`BEGIN { @x = "\777" }` + "\n" +
				"              ^~~~"},
		{`BEGIN { @x = "\xg" }`,
			`stdin:1:15-17: ERROR: invalid escape sequence '\x': expected hex digits` + "\n" +
				`BEGIN { @x = "\xg" }` + "\n" +
				"              ^~"},
		{"BEGIN /* never\nends",
			"stdin:1:7-15: ERROR: end of file during comment\n" +
				"BEGIN /* never\n" +
				"      ^~~~~~~~"},
		{"BEGIN { @x = 99999999999999999999999; }",
			"stdin:1:14-37: ERROR: integer literal out of range: 99999999999999999999999\n" +
				"BEGIN { @x = 99999999999999999999999; }\n" +
				"             ^~~~~~~~~~~~~~~~~~~~~~~"},
		{"BEGIN { @x = 0x1_f; }",
			"stdin:1:14-19: ERROR: invalid integer literal: 0x1_f\n" +
				"BEGIN { @x = 0x1_f; }\n" +
				"             ^~~~~"},
		{"BEGIN { @x = 08; }",
			"stdin:1:14-16: ERROR: invalid digit '8' in octal literal: 08\n" +
				"BEGIN { @x = 08; }\n" +
				"             ^~"},
		{"#include <linux/sched.h>\nBEGIN {}",
			"stdin:1:1-2: ERROR: invalid character '#'\n" +
				"#include <linux/sched.h>\n" +
				"^"},
		{"BEGIN { @x = 1 € }",
			"stdin:1:16-19: ERROR: invalid character '€'\n" +
				"BEGIN { @x = 1 € }\n" +
				"               ^"},
		{"BEGIN { $ }",
			"stdin:1:9-10: ERROR: invalid character '$'\n" +
				"BEGIN { $ }\n" +
				"        ^"},

		// Tabs before the error are kept so the caret lines up.
		{"BEGIN {\n\t\t@x = count2(;\n}",
			"stdin:2:15-16: ERROR: syntax error, unexpected ;\n" +
				"\t\t@x = count2(;\n" +
				"\t\t            ^"},
	}
	for _, tt := range tests {
		f, err := Parse("stdin", []byte(tt.src))
		if err == nil {
			t.Errorf("Parse(%q) = %s, want an error", tt.src, dumpFile(f))
			continue
		}
		list, ok := err.(ErrorList)
		if !ok || len(list) != 1 {
			t.Errorf("Parse(%q): error %T %v, want an ErrorList of one", tt.src, err, err)
			continue
		}
		if got := FormatError("stdin", []byte(tt.src), list[0]); got != tt.want {
			t.Errorf("Parse(%q):\n got:\n%s\nwant:\n%s", tt.src, got, tt.want)
		}
	}
}

func repeat(s string, n int) string {
	b := make([]byte, 0, len(s)*n)
	for range n {
		b = append(b, s...)
	}
	return string(b)
}

func TestPositions(t *testing.T) {
	src := "kprobe:f /pid/ {\n\t@x[comm, 1] = count();\n\t$t = (1, (uint8)-2);\n  if ($t.0 > 1) { @y++ } else { return }\n}\n"
	f, err := Parse("t", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	text := func(n Node) string { return src[n.Pos().Offset:n.End().Offset] }
	p := f.Probes[0]
	body := p.Body.Stmts
	assign := body[0].(*AssignStmt)
	tuple := body[1].(*AssignStmt).Rhs.(*Tuple)
	cast := tuple.Elems[1].(*Cast)
	ifs := body[2].(*IfStmt)
	cmp := ifs.Cond.(*Binary)
	field := cmp.X.(*FieldAccess)
	inc := ifs.Then.Stmts[0].(*ExprStmt).X.(*IncDec)
	ret := ifs.Else.(*Block).Stmts[0].(*ReturnStmt)

	checks := []struct {
		n           Node
		text        string
		line, col   int
		eline, ecol int
	}{
		{p, src[:len(src)-1], 1, 1, 5, 2},
		{p.Specs[0], "kprobe:f", 1, 1, 1, 9},
		{p.Pred, "pid", 1, 11, 1, 14},
		{p.Body, src[15 : len(src)-1], 1, 16, 5, 2},
		{assign, "@x[comm, 1] = count()", 2, 2, 2, 23},
		{assign.Lhs, "@x[comm, 1]", 2, 2, 2, 13},
		{assign.Rhs, "count()", 2, 16, 2, 23},
		{tuple, "(1, (uint8)-2)", 3, 7, 3, 21},
		{cast, "(uint8)-2", 3, 11, 3, 20},
		{cast.X, "-2", 3, 18, 3, 20},
		{ifs, "if ($t.0 > 1) { @y++ } else { return }", 4, 3, 4, 41},
		{cmp, "$t.0 > 1", 4, 7, 4, 15},
		{field, "$t.0", 4, 7, 4, 11},
		{inc, "@y++", 4, 19, 4, 23},
		{ret, "return", 4, 33, 4, 39},
	}
	for _, c := range checks {
		if got := text(c.n); got != c.text {
			t.Errorf("%T: text %q, want %q", c.n, got, c.text)
		}
		if pos := c.n.Pos(); pos.Line != c.line || pos.Col != c.col {
			t.Errorf("%T %q: Pos %v, want %d:%d", c.n, c.text, pos, c.line, c.col)
		}
		if end := c.n.End(); end.Line != c.eline || end.Col != c.ecol {
			t.Errorf("%T %q: End %v, want %d:%d", c.n, c.text, end, c.eline, c.ecol)
		}
	}
	if cmp.OpPos != (Pos{74, 4, 12}) {
		t.Errorf("Binary.OpPos = %+v", cmp.OpPos)
	}
	if assign.OpPos != (Pos{30, 2, 14}) {
		t.Errorf("AssignStmt.OpPos = %+v", assign.OpPos)
	}
	if field.FieldPos != (Pos{72, 4, 10}) {
		t.Errorf("FieldAccess.FieldPos = %+v", field.FieldPos)
	}
	call := assign.Rhs.(*Call)
	if call.NameEnd != (Pos{37, 2, 21}) {
		t.Errorf("Call.NameEnd = %+v", call.NameEnd)
	}
	checkTree(t, src, f)
}
