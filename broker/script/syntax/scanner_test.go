package syntax

import (
	"fmt"
	"strings"
	"testing"
)

// scanAll renders every token as KIND or KIND:lit (for literal kinds).
func scanAll(src string) (string, ErrorList) {
	var s Scanner
	s.Init([]byte(src))
	var out []string
	for {
		_, tok, lit := s.Scan()
		switch tok {
		case IDENT, VAR, MAP, INT, STRING, ILLEGAL:
			out = append(out, fmt.Sprintf("%s:%s", tok, lit))
		default:
			out = append(out, tok.String())
		}
		if tok == EOF || tok == ILLEGAL {
			return strings.Join(out, " "), s.Errors
		}
	}
}

func TestScanTokens(t *testing.T) {
	tests := []struct{ src, want string }{
		{"", "end of file"},
		{"  \t\n\r\n ", "end of file"},
		{"pid comm_2 _x A9", "identifier:pid identifier:comm_2 identifier:_x identifier:A9 end of file"},
		{"if else while unroll return iff", "if else while unroll return identifier:iff end of file"},
		{"$x $_1 $0 $9 $10 $#", "variable:$x variable:$_1 variable:$0 variable:$9 variable:$10 variable:$# end of file"},
		{"@ @x @_y9 @[", "map:@ map:@x map:@_y9 map:@ [ end of file"},
		{"0 42 0x2a 0XfF 1_000 1e6 1E3 0777", "integer:0 integer:42 integer:0x2a integer:0XfF integer:1_000 integer:1e6 integer:1E3 integer:0777 end of file"},
		{`"" "a b" "\n\t\\\""`, `string:"" string:"a b" string:"\n\t\\\"" end of file`},
		{"+ - * / % & | ^ << >>", "+ - * / % & | ^ << >> end of file"},
		{"&& || ! ~ == != < <= > >=", "&& || ! ~ == != < <= > >= end of file"},
		{"= ++ -- -> . , ; : ?", "= ++ -- -> . , ; : ? end of file"},
		{"( ) [ ] { }", "( ) [ ] { } end of file"},
		{"+= -= *= /= %= &= |= ^= <<= >>=", "+= -= *= /= %= &= |= ^= <<= >>= end of file"},
		{"a+++b", "identifier:a ++ + identifier:b end of file"},
		{"a->b-->c", "identifier:a -> identifier:b -- > identifier:c end of file"},
		{"<<<=>>>=", "<< <= >> >= end of file"},
		{"a // comment\nb", "identifier:a identifier:b end of file"},
		{"a /* multi\nline */ b /**/c", "identifier:a identifier:b identifier:c end of file"},
		{"#!/usr/bin/env bpftrace\nBEGIN", "identifier:BEGIN end of file"},
		{"$t.0.1", "variable:$t . integer:0 . integer:1 end of file"},
		{"12abc", "ILLEGAL:12abc"},
		{"#include", "ILLEGAL:#"},
		{`"abc`, `ILLEGAL:"abc`},
	}
	for _, tt := range tests {
		got, _ := scanAll(tt.src)
		if got != tt.want {
			t.Errorf("scan %q:\n got %s\nwant %s", tt.src, got, tt.want)
		}
	}
}

func TestScanPositions(t *testing.T) {
	var s Scanner
	src := "a\n  $bb /* x\n y */ \"s\"\n\t@m"
	s.Init([]byte(src))
	want := []Pos{{0, 1, 1}, {4, 2, 3}, {19, 3, 7}, {24, 4, 2}, {26, 4, 4}}
	for i, w := range want {
		pos, tok, lit := s.Scan()
		if pos != w {
			t.Errorf("token %d (%s %q): pos %+v, want %+v", i, tok, lit, pos, w)
		}
		if tok != EOF && src[pos.Offset:pos.Offset+len(lit)] != lit {
			t.Errorf("token %d: lit %q is not the source text at its offset", i, lit)
		}
	}
}

func TestUnquote(t *testing.T) {
	tests := []struct{ lit, want string }{
		{`"plain"`, "plain"},
		{`"\n\t\r\\\"\'"`, "\n\t\r\\\"'"},
		{`"\0\101\x41\x4\x4g\3777"`, "\x00AA\x04\x04g\xff7"},
		{`"héllo"`, "héllo"},
	}
	for _, tt := range tests {
		got, _, _, msg := unquote(tt.lit)
		if msg != "" || got != tt.want {
			t.Errorf("unquote(%s) = %q, %q; want %q", tt.lit, got, msg, tt.want)
		}
	}
}

func TestParseInt(t *testing.T) {
	tests := []struct {
		lit  string
		want uint64
		msg  string
	}{
		{"0", 0, ""},
		{"1_000_000", 1000000, ""},
		{"1__0", 10, ""},
		{"0x2A", 42, ""},
		{"0xffffffffffffffff", 1<<64 - 1, ""},
		{"18446744073709551615", 1<<64 - 1, ""},
		{"0777", 511, ""},
		{"1e6", 1000000, ""},
		{"1e1_0", 10000000000, ""},
		{"0e999", 0, ""},
		{"1e19", 10000000000000000000, ""},
		{"2e19", 0, "integer literal out of range: 2e19"},
		{"1e100", 0, "integer literal out of range: 1e100"},
		{"18446744073709551616", 0, "integer literal out of range: 18446744073709551616"},
		{"0x10000000000000000", 0, "integer literal out of range: 0x10000000000000000"},
		{"08", 0, "invalid digit '8' in octal literal: 08"},
		{"0x", 0, "invalid integer literal: 0x"},
		{"0x1_f", 0, "invalid integer literal: 0x1_f"},
		{"1_", 0, "invalid integer literal: 1_"},
		{"1e", 0, "invalid integer literal: 1e"},
		{"1e_1", 0, "invalid integer literal: 1e_1"},
		{"12abc", 0, "invalid integer literal: 12abc"},
	}
	for _, tt := range tests {
		got, msg := parseInt(tt.lit)
		if got != tt.want || msg != tt.msg {
			t.Errorf("parseInt(%s) = %d, %q; want %d, %q", tt.lit, got, msg, tt.want, tt.msg)
		}
	}
}

func TestScanProbeSpec(t *testing.T) {
	tests := []struct {
		src  string
		want []string // the spec, then the tokens that follow it
	}{
		{"BEGIN {", []string{"BEGIN", "{"}},
		{"BEGIN{", []string{"BEGIN", "{"}},
		{"  // c\n/* c */ END\n{", []string{"END", "{"}},
		{"tracepoint:syscalls:sys_enter_openat /pid == 1/ {", []string{"tracepoint:syscalls:sys_enter_openat", "/"}},
		{"t:syscalls:sys_enter_openat/pid==1/{", []string{"t:syscalls:sys_enter_openat", "/"}},
		{"uprobe:/bin/bash:readline {", []string{"uprobe:/bin/bash:readline", "{"}},
		{"uprobe:/bin/bash:readline/pid/{", []string{"uprobe:/bin/bash:readline", "/"}},
		{"uprobe:bin/work:f /pid/ {", []string{"uprobe:bin/work:f", "/"}},
		{"u:bin/work:f/pid/{", []string{"u:bin/work:f", "/"}},
		{"t:a/b:c", []string{"t:a", "/"}},
		{"uprobe:./a.out:main {", []string{"uprobe:./a.out:main", "{"}},
		{"usdt:/usr/lib/libc.so.6:libc:setjmp{", []string{"usdt:/usr/lib/libc.so.6:libc:setjmp", "{"}},
		{"kprobe:vfs_[rw]*,kprobe:do_sys_open? {", []string{"kprobe:vfs_[rw]*", ","}},
		{"BEGIN// comment\n{", []string{"BEGIN", "{"}},
		{"BEGIN/* comment */{", []string{"BEGIN", "{"}},
		{"BEGIN}", []string{"BEGIN", "}"}},
		{"BEGIN;", []string{"BEGIN", ";"}},
		{`uprobe:/bin/bash:"echo_builtin"+0 {`, []string{`uprobe:/bin/bash:"echo_builtin"+0`, "{"}},
		{`usdt:./p:t:"\"p 1\"",BEGIN`, []string{`usdt:./p:t:"\"p 1\""`, ","}},
		{`uprobe:lib:"a{b}/c"/pid/{`, []string{`uprobe:lib:"a{b}/c"`, "/"}},
		{`BEGIN"x"`, []string{"BEGIN", "string"}},
	}
	for _, tt := range tests {
		var s Scanner
		s.Init([]byte(tt.src))
		_, tok, lit := s.ScanProbeSpec()
		if tok != PROBE || lit != tt.want[0] {
			t.Errorf("ScanProbeSpec(%q) = %s %q, want probe %q", tt.src, tok, lit, tt.want[0])
			continue
		}
		if _, tok, _ := s.Scan(); tok.String() != tt.want[1] {
			t.Errorf("after spec in %q: got %s, want %s", tt.src, tok, tt.want[1])
		}
	}

	// What cannot start a spec is an ordinary token, for the parser to report.
	for src, want := range map[string]Token{"": EOF, "}": RBRACE, "/x/": QUO, "1": INT, "@x": MAP} {
		var s Scanner
		s.Init([]byte(src))
		if _, tok, _ := s.ScanProbeSpec(); tok != want {
			t.Errorf("ScanProbeSpec(%q) = %s, want %s", src, tok, want)
		}
	}
}
