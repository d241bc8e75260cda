package cpp

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

func fakeFS(files map[string]string) func(string) ([]byte, error) {
	return func(path string) ([]byte, error) {
		if s, ok := files[path]; ok {
			return []byte(s), nil
		}
		return nil, fs.ErrNotExist
	}
}

func TestProcess(t *testing.T) {
	files := fakeFS(map[string]string{
		"defs.h":                 "#ifndef DEFS\n#define DEFS\n/* a comment */\n#define PORT 80 // http\n#endif\n",
		"/usr/include/mine.h":    "#define MINE 7\n",
		"cycle.h":                "#include \"cycle.h\"\n",
		"/usr/include/decls.h":   "struct s { int a; };\n",
		"/usr/include/nested.h":  "#include <mine.h>\n#define NESTED MINE\n",
		"/usr/include/missing.h": "#include <nope.h>\n",
	})
	tests := []struct {
		name, src string
		btf       bool
		includes  []string
		want      string // the expanded text, or the error's text when it starts with "ERR "
	}{
		{"no directives unchanged", "BEGIN { @x = EPERM; }", false, nil, "BEGIN { @x = EPERM; }"},
		{"shebang kept", "#!/usr/bin/env bpftrace\n#define X 1\nBEGIN { X }", false, nil, "#!/usr/bin/env bpftrace\n\nBEGIN { 1 }"},
		{"object macro", "#define _UNDERSCORE 314\nBEGIN { printf(\"%d\\n\", _UNDERSCORE); }", false, nil, "\nBEGIN { printf(\"%d\\n\", 314); }"},
		{"not in strings, variables, maps, comments", "#define X 2\nBEGIN { $X = @X + X; \"X\"; // X\n/* X */ }", false, nil, "\nBEGIN { $X = @X + 2; \"X\"; // X\n/* X */ }"},
		{"function-like, nested", "#define ADD(a, b) ((a) + (b))\nADD(1, ADD(2, 3))", false, nil, "\n((1) + (((2) + (3))))"},
		{"function-like name alone", "#define F(x) x\nF + 1", false, nil, "\nF + 1"},
		{"stringify and paste", "#define S(x) #x\n#define P(a, b) a ## b\nS(hi) P(x, 1)", false, nil, "\n\n\"hi\" x1"},
		{"variadic", "#define V(f, ...) printf(f, __VA_ARGS__)\nV(\"%d %d\", 1, 2)", false, nil, "\nprintf(\"%d %d\", 1,2)"},
		{"recursion stops", "#define A A + 1\nA", false, nil, "\nA + 1"},
		{"mutual recursion stops", "#define A B\n#define B A\nA B", false, nil, "\n\nA B"},
		{"undef", "#define X 1\n#undef X\nX", false, nil, "\n\nX"},
		{"continuation keeps lines", "#define X 1 + \\\n 2\nX", false, nil, "\n\n1 +  2"},
		{"in a struct", "#define N 16\nstruct Foo { char name[N]; };", false, nil, "\nstruct Foo { char name[16]; };"},
		{"ifdef", "#ifdef X\na\n#else\nb\n#endif", false, nil, "\n\n\nb\n"},
		{"ifndef BTF without BTF", "#ifndef BPFTRACE_HAVE_BTF\na\n#else\nb\n#endif", false, nil, "\na\n\n\n"},
		{"ifndef BTF with BTF", "#ifndef BPFTRACE_HAVE_BTF\na\n#else\nb\n#endif", true, nil, "\n\n\nb\n"},
		{"if defined and arithmetic", "#define V 3\n#if defined(V) && V * 2 == 6 && !defined UNDEF\nyes\n#elif 1\nno\n#endif", false, nil, "\n\nyes\n\n\n"},
		{"elif taken", "#if 0\na\n#elif 2 > 1\nb\n#else\nc\n#endif", false, nil, "\n\n\nb\n\n\n"},
		{"nested inactive", "#if 0\n#if 1\na\n#endif\n#else\nb\n#endif", false, nil, "\n\n\n\n\nb\n"},
		{"directive in a block comment", "/*\n#define X 1\n*/ X", false, nil, "/*\n#define X 1\n*/ X"},
		{"errno.h", "#include <errno.h>\nEPERM ENOENT EWOULDBLOCK", false, nil, "\n1 2 11"},
		{"--include errno.h", "BEGIN { EPERM }", false, []string{"errno.h"}, "BEGIN { 1 }"},
		{"sys/socket.h", "#include <sys/socket.h>\nAF_INET AF_INET6", true, nil, "\n2 10"},
		{"linux/sched.h", "#include <linux/sched.h>\nTASK_RUNNING TASK_UNINTERRUPTIBLE CLONE_THREAD", true, nil, "\n0 2 65536"},
		{"kernel header with BTF", "#include <linux/sched.h>\n#include <net/sock.h>\nx", true, nil, "\n\nx"},
		{"header of defines", "#include \"defs.h\"\n#include \"defs.h\"\nPORT", false, nil, "\n\n80"},
		{"system header found", "#include <mine.h>\nMINE", false, nil, "\n7"},
		{"nested header", "#include <nested.h>\nNESTED", false, nil, "\n7"},
		{"kernel header without BTF", "#include <net/sock.h>", false, nil, "ERR 1:10: 'net/sock.h': tracebroker takes kernel types from BTF, and this kernel has none"},
		{"not found", "#include <lol/no.h>\nBEGIN { exit(); }", false, nil, "ERR 1:10: 'lol/no.h' file not found"},
		{"quoted not found", "BEGIN{}\n#include \"lol.h\"", false, nil, "ERR 2:10: 'lol.h' file not found"},
		{"--include not found", "BEGIN{}", false, []string{"nope.h"}, "ERR 'nope.h' file not found"},
		{"nested not found", "#include <missing.h>", false, nil, "ERR 1:10: in 'missing.h': 'nope.h' file not found"},
		{"header with declarations", "#include <decls.h>", false, nil, "ERR 1:10: /usr/include/decls.h:1: tracebroker reads only #define, #undef and #if lines from a header"},
		{"include cycle", "#include \"cycle.h\"", false, nil, "ERR 1:10: in 'cycle.h': 'cycle.h' includes itself"},
		{"unterminated if", "BEGIN {}\n#ifdef X\n", false, nil, "ERR 2:1: unterminated conditional directive"},
		{"endif without if", "#endif", false, nil, "ERR 1:1: #endif without #if"},
		{"else after else", "#if 1\n#else\n#else\n#endif", false, nil, "ERR 3:1: #else after #else"},
		{"bad directive", "#frobnicate", false, nil, "ERR 1:1: invalid preprocessing directive #frobnicate"},
		{"error directive", "#error no way", false, nil, "ERR 1:1: #error no way"},
		{"bad if", "#if 1 +\n#endif", false, nil, "ERR 1:5: invalid #if expression"},
		{"division by zero", "#if 1/0\n#endif", false, nil, "ERR 1:5: invalid #if expression: division by zero"},
		{"wrong arity", "#define F(a, b) a\nF(1)", false, nil, "ERR 2:1: macro \"F\" takes 2 arguments (1 given)"},
		{"unterminated call", "#define F(a) a\nF(1", false, nil, "ERR 2:1: unterminated argument list"},
		{"bad macro name", "#define 1X", false, nil, "ERR 1:9: macro name must be an identifier"},
		{"exponential", "#define A B B B B B B B B\n#define B C C C C C C C C\n#define C D D D D D D D D\n#define D E E E E E E E E\n#define E F F F F F F F F\n#define F G G G G G G G G\n#define G H H H H H H H H\nA", false, nil, "ERR 8:1: macro"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Process([]byte(tt.src), Options{Host: true, BTF: tt.btf, Includes: tt.includes, ReadFile: files})
			if want, ok := strings.CutPrefix(tt.want, "ERR "); ok {
				if err == nil {
					t.Fatalf("no error; got %q", r.Src)
				}
				var l syntax.ErrorList
				if !errors.As(err, &l) {
					t.Fatalf("error %T, not an ErrorList", err)
				}
				if got := l[0].Error(); !strings.HasPrefix(got, want) {
					t.Errorf("error %q, want prefix %q", got, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(r.Src) != tt.want {
				t.Errorf("got  %q\nwant %q", r.Src, tt.want)
			}
			if strings.Count(string(r.Src), "\n") != strings.Count(tt.src, "\n") {
				t.Errorf("lines moved: %d lines, the script has %d", strings.Count(string(r.Src), "\n"), strings.Count(tt.src, "\n"))
			}
		})
	}
}

// The daemon's preprocessor reads no file of the host's: a token holder
// must neither read the broker's files nor learn which exist.
func TestNoHostFiles(t *testing.T) {
	read := func(path string) ([]byte, error) {
		t.Errorf("read %s", path)
		return nil, fs.ErrNotExist
	}
	for _, src := range []string{`#include "/etc/shadow"`, "#include </etc/passwd>", "#include <stdio.h>", "#include \"defs.h\""} {
		_, err := Process([]byte(src), Options{ReadFile: read, BTF: true})
		if err == nil || !strings.Contains(err.Error(), "only built-in headers") {
			t.Errorf("%s: %v", src, err)
		}
	}
	if _, err := Process([]byte("#include <errno.h>\n#include <linux/fs.h>\nEPERM"), Options{ReadFile: read, BTF: true}); err != nil {
		t.Errorf("built-in and kernel headers: %v", err)
	}
}

// Positions in the expanded text map back to what the user wrote.
func TestPos(t *testing.T) {
	src := "#define LONGNAME 1\n#define F(x) (x + 100)\nBEGIN { LONGNAME + nosuch; F(2) + other; }"
	r, err := Process([]byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := string(r.Src)
	tests := []struct {
		word     string
		end      bool
		wantLine int
		wantCol  int
	}{
		{"nosuch", false, 3, 20},
		{"other", false, 3, 35},
		{"100", false, 3, 28},  // inside F's expansion: F itself
		{"100", true, 3, 32},   // its end: the call's end
		{"BEGIN", false, 3, 1}, // before any macro
	}
	for _, tt := range tests {
		off := strings.Index(out, tt.word)
		p := PosAt(r.Src, off)
		got := r.Pos(p, tt.end)
		if got.Line != tt.wantLine || got.Col != tt.wantCol {
			t.Errorf("%s (end %v): %d:%d, want %d:%d", tt.word, tt.end, got.Line, got.Col, tt.wantLine, tt.wantCol)
		}
		if src[got.Offset:got.Offset+1] != src[strings.Index(src, "BEGIN")+got.Col-1:][:1] {
			t.Errorf("%s: offset %d and column %d disagree", tt.word, got.Offset, got.Col)
		}
	}
}

var fuzzSeeds = []string{
	"#define _UNDERSCORE 314\nBEGIN { printf(\"%d\\n\", _UNDERSCORE); exit(); }",
	"#include <lol/no.h>\nBEGIN { exit(); }",
	"#ifndef BPFTRACE_HAVE_BTF\n#include <linux/socket.h>\n#else\n#include <sys/socket.h>\n#endif\nBEGIN { @ = AF_INET; }",
	"#define F(a, ...) a ## __VA_ARGS__ #a\nF(x, y, z) F(F(1))",
	"#if defined(X) || (1 << 3) % 5 ? 1 : 0\n#elif\n#else\n#endif",
	"#define A B B\n#define B A A\nA",
	"/* #define X\n */ X \"#define\" '#'",
	"#!/bin/bpftrace\n#define X \\\n 1\nX",
}

func FuzzProcess(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	files := fakeFS(map[string]string{"a.h": "#include \"a.h\"\n", "/usr/include/b.h": "#define B 1\n"})
	f.Fuzz(func(t *testing.T, src string) {
		start := time.Now()
		r, err := Process([]byte(src), Options{Host: true, BTF: true, ReadFile: files})
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v", d)
		}
		if err != nil {
			var l syntax.ErrorList
			if !errors.As(err, &l) || len(l) == 0 {
				t.Fatalf("error %v is not a list", err)
			}
			for _, e := range l {
				if e.From.IsValid() && (e.From.Offset < 0 || e.From.Offset > len(src)) {
					t.Fatalf("error outside the script: %+v", e)
				}
			}
			return
		}
		if len(r.Src) > maxOutput+len(src) {
			t.Fatalf("%d bytes out", len(r.Src))
		}
		// Every position of the expansion is one of the script's.
		for _, off := range []int{0, len(r.Src) / 2, len(r.Src)} {
			p := r.Pos(PosAt(r.Src, off), false)
			if p.Offset < 0 || p.Offset > len(src) {
				t.Fatalf("offset %d maps to %d, outside the script", off, p.Offset)
			}
		}
	})
}
