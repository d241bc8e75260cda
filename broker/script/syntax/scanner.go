package syntax

import (
	"bytes"
	"fmt"
	"math/bits"
	"strings"
	"unicode/utf8"
)

// Scanner splits a script into tokens. Every token lies on one line (strings
// may not contain newlines and probe specs stop at whitespace), which lets
// callers compute a token's end as its Pos plus len(lit).
//
// Lexical errors are appended to Errors and the offending token is returned
// as ILLEGAL; the parser stops at the first one, as bpftrace does.
type Scanner struct {
	src       []byte
	off       int // next unread byte
	line      int
	lineStart int // offset of the first byte of the current line

	Errors ErrorList
}

// Init prepares s to scan src from the beginning.
func (s *Scanner) Init(src []byte) {
	*s = Scanner{src: src, line: 1}
	// Scripts run as executables start with "#!/usr/bin/env bpftrace";
	// bpftrace ignores that line, so must we.
	if bytes.HasPrefix(src, []byte("#!")) {
		for s.off < len(src) && src[s.off] != '\n' {
			s.off++
		}
	}
}

// pos is only correct for offsets on the current line, which is all the
// scanner ever needs because tokens never span lines.
func (s *Scanner) pos(off int) Pos {
	return Pos{Offset: off, Line: s.line, Col: off - s.lineStart + 1}
}

func (s *Scanner) errorf(from, to Pos, format string, args ...any) {
	s.Errors = append(s.Errors, &Error{From: from, To: to, Msg: fmt.Sprintf(format, args...)})
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func (s *Scanner) skipSpace() {
	for s.off < len(s.src) {
		c := s.src[s.off]
		switch {
		case c == '\n':
			s.off++
			s.line++
			s.lineStart = s.off
		case isSpace(c):
			s.off++
		case c == '/' && s.off+1 < len(s.src) && s.src[s.off+1] == '/':
			for s.off < len(s.src) && s.src[s.off] != '\n' {
				s.off++
			}
		case c == '/' && s.off+1 < len(s.src) && s.src[s.off+1] == '*':
			from := s.pos(s.off)
			s.off += 2
			for {
				if s.off >= len(s.src) {
					s.errorf(from, s.pos(s.off), "end of file during comment")
					return
				}
				if s.src[s.off] == '*' && s.off+1 < len(s.src) && s.src[s.off+1] == '/' {
					s.off += 2
					break
				}
				if s.src[s.off] == '\n' {
					s.line++
					s.lineStart = s.off + 1
				}
				s.off++
			}
		default:
			return
		}
	}
}

var keywords = map[string]Token{
	"if":     IF,
	"else":   ELSE,
	"while":  WHILE,
	"unroll": UNROLL,
	"return": RETURN,
}

// Scan returns the next token. lit is the token's source text ("" at EOF).
func (s *Scanner) Scan() (pos Pos, tok Token, lit string) {
	s.skipSpace()
	start := s.off
	pos = s.pos(start)
	if start >= len(s.src) {
		return pos, EOF, ""
	}
	c := s.src[start]
	s.off++
	switch {
	case isLetter(c):
		s.identRest()
		lit = string(s.src[start:s.off])
		if kw, ok := keywords[lit]; ok {
			return pos, kw, lit
		}
		return pos, IDENT, lit
	case isDigit(c):
		return s.scanNumber(start)
	}

	tok = ILLEGAL
	switch c {
	case '$':
		switch {
		case s.off < len(s.src) && isLetter(s.src[s.off]):
			s.identRest()
			tok = VAR
		case s.off < len(s.src) && isDigit(s.src[s.off]):
			// Positional parameters $1, $2, ...
			for s.off < len(s.src) && isDigit(s.src[s.off]) {
				s.off++
			}
			tok = VAR
		case s.off < len(s.src) && s.src[s.off] == '#':
			// $# is the number of positional parameters.
			s.off++
			tok = VAR
		default:
			s.errorf(pos, s.pos(s.off), "invalid character '$'")
		}
	case '@':
		if s.off < len(s.src) && isLetter(s.src[s.off]) {
			s.identRest()
		}
		tok = MAP
	case '"':
		return s.scanString(start)
	case '+':
		tok = s.choose(ADD, "+=", INC, ADD_ASSIGN)
	case '-':
		tok = s.choose(SUB, "-=>", DEC, SUB_ASSIGN, ARROW)
	case '*':
		tok = s.choose(MUL, "=", MUL_ASSIGN)
	case '/':
		tok = s.choose(QUO, "=", QUO_ASSIGN)
	case '%':
		tok = s.choose(REM, "=", REM_ASSIGN)
	case '&':
		tok = s.choose(AND, "&=", LAND, AND_ASSIGN)
	case '|':
		tok = s.choose(OR, "|=", LOR, OR_ASSIGN)
	case '^':
		tok = s.choose(XOR, "=", XOR_ASSIGN)
	case '=':
		tok = s.choose(ASSIGN, "=", EQL)
	case '!':
		tok = s.choose(NOT, "=", NEQ)
	case '<':
		if tok = s.choose(LSS, "=<", LEQ, SHL); tok == SHL {
			tok = s.choose(SHL, "=", SHL_ASSIGN)
		}
	case '>':
		if tok = s.choose(GTR, "=>", GEQ, SHR); tok == SHR {
			tok = s.choose(SHR, "=", SHR_ASSIGN)
		}
	case '~':
		tok = BITNOT
	case '.':
		tok = DOT
	case ',':
		tok = COMMA
	case ';':
		tok = SEMI
	case ':':
		tok = COLON
	case '?':
		tok = QUEST
	case '(':
		tok = LPAREN
	case ')':
		tok = RPAREN
	case '[':
		tok = LBRACK
	case ']':
		tok = RBRACK
	case '{':
		tok = LBRACE
	case '}':
		tok = RBRACE
	default:
		s.off = start + s.illegalChar(start)
		s.errorf(pos, s.pos(s.off), "invalid character %s", describeChar(s.src[start:]))
	}
	return pos, tok, string(s.src[start:s.off])
}

// choose consumes the next byte if it is next[i] and returns toks[i];
// otherwise it returns def.
func (s *Scanner) choose(def Token, next string, toks ...Token) Token {
	if s.off < len(s.src) {
		if i := strings.IndexByte(next, s.src[s.off]); i >= 0 {
			s.off++
			return toks[i]
		}
	}
	return def
}

func (s *Scanner) identRest() {
	for s.off < len(s.src) && (isLetter(s.src[s.off]) || isDigit(s.src[s.off])) {
		s.off++
	}
}

// illegalChar is the byte length of the character at off, so that a stray
// UTF-8 character is reported (and skipped) whole.
func (s *Scanner) illegalChar(off int) int {
	_, n := utf8.DecodeRune(s.src[off:])
	return max(n, 1)
}

func describeChar(b []byte) string {
	r, n := utf8.DecodeRune(b)
	if r == utf8.RuneError && n <= 1 {
		return fmt.Sprintf("'\\x%02x'", b[0])
	}
	return fmt.Sprintf("%q", r)
}

// scanNumber takes the whole alphanumeric run so that `12abc` or `0x` is
// reported as one bad literal rather than as a number followed by a
// confusing identifier.
func (s *Scanner) scanNumber(start int) (Pos, Token, string) {
	s.identRest()
	lit := string(s.src[start:s.off])
	if _, msg := parseInt(lit); msg != "" {
		s.errorf(s.pos(start), s.pos(s.off), "%s", msg)
		return s.pos(start), ILLEGAL, lit
	}
	return s.pos(start), INT, lit
}

// parseInt evaluates an integer literal the way bpftrace does: decimal with
// '_' separators, 0x hex, a leading 0 for octal (bpftrace uses strtoull with
// base 0) and an integer-valued scientific form such as 1e6. msg is non-empty
// when lit is malformed or does not fit in 64 bits.
func parseInt(lit string) (v uint64, msg string) {
	invalid := "invalid integer literal: " + lit
	tooBig := "integer literal out of range: " + lit
	if len(lit) > 2 && lit[0] == '0' && (lit[1] == 'x' || lit[1] == 'X') {
		for i := 2; i < len(lit); i++ {
			d, ok := digitVal(lit[i])
			if !ok || d >= 16 {
				return 0, invalid
			}
			if v>>60 != 0 {
				return 0, tooBig
			}
			v = v<<4 | d
		}
		return v, ""
	}

	mant, exp, hasExp := lit, "", false
	if i := strings.IndexAny(lit, "eE"); i >= 0 {
		mant, exp, hasExp = lit[:i], lit[i+1:], true
	}
	if !validDecimal(mant) || hasExp && !validDecimal(exp) {
		return 0, invalid
	}
	mant = strings.ReplaceAll(mant, "_", "")
	base := uint64(10)
	if !hasExp && len(mant) > 1 && mant[0] == '0' {
		base = 8
	}
	for i := 0; i < len(mant); i++ {
		d := uint64(mant[i] - '0')
		if d >= base {
			return 0, fmt.Sprintf("invalid digit '%c' in octal literal: %s", mant[i], lit)
		}
		hi, lo := bits.Mul64(v, base)
		if hi != 0 || lo+d < lo {
			return 0, tooBig
		}
		v = lo + d
	}
	if !hasExp {
		return v, ""
	}
	exp = strings.ReplaceAll(exp, "_", "")
	// Count the exponent as a number only once it is known to be small,
	// so that 1e99999999999999999999 is "out of range", not a wrap-around.
	if len(strings.TrimLeft(exp, "0")) > 2 {
		if v == 0 {
			return 0, ""
		}
		return 0, tooBig
	}
	n := 0
	for i := 0; i < len(exp); i++ {
		n = n*10 + int(exp[i]-'0')
	}
	for ; n > 0 && v != 0; n-- {
		hi, lo := bits.Mul64(v, 10)
		if hi != 0 {
			return 0, tooBig
		}
		v = lo
	}
	return v, ""
}

// validDecimal reports whether s matches [0-9]([0-9_]*[0-9])?, bpftrace's
// rule for where separators may go.
func validDecimal(s string) bool {
	if s == "" || !isDigit(s[0]) || !isDigit(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) && s[i] != '_' {
			return false
		}
	}
	return true
}

func digitVal(c byte) (uint64, bool) {
	switch {
	case '0' <= c && c <= '9':
		return uint64(c - '0'), true
	case 'a' <= c && c <= 'f':
		return uint64(c - 'a' + 10), true
	case 'A' <= c && c <= 'F':
		return uint64(c - 'A' + 10), true
	}
	return 0, false
}

func (s *Scanner) scanString(start int) (Pos, Token, string) {
	pos := s.pos(start)
	for {
		if s.off >= len(s.src) || s.src[s.off] == '\n' {
			s.errorf(pos, s.pos(s.off), "unterminated string")
			return pos, ILLEGAL, string(s.src[start:s.off])
		}
		c := s.src[s.off]
		s.off++
		if c == '"' {
			break
		}
		// Skip the escaped byte so that \" does not end the string; a
		// backslash before a newline leaves the newline to be reported.
		if c == '\\' && s.off < len(s.src) && s.src[s.off] != '\n' {
			s.off++
		}
	}
	lit := string(s.src[start:s.off])
	if _, at, n, msg := unquote(lit); msg != "" {
		s.errorf(s.pos(start+at), s.pos(start+at+n), "%s", msg)
		return pos, ILLEGAL, lit
	}
	return pos, STRING, lit
}

// unquote decodes a string literal including its quotes. On a bad escape it
// returns the offset and length of the escape within lit and a message.
func unquote(lit string) (val string, at, n int, msg string) {
	body := lit[1 : len(lit)-1]
	if !strings.Contains(body, `\`) {
		return body, 0, 0, ""
	}
	var b strings.Builder
	for i := 0; i < len(body); {
		c := body[i]
		if c != '\\' {
			b.WriteByte(c)
			i++
			continue
		}
		// body cannot end in a lone backslash: the scanner would have
		// taken the closing quote as escaped.
		e := body[i+1]
		switch e {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '\\', '"', '\'':
			b.WriteByte(e)
		case 'x':
			j := i + 2
			var v uint64
			for j < len(body) && j < i+4 {
				d, ok := digitVal(body[j])
				if !ok {
					break
				}
				v = v<<4 | d
				j++
			}
			if j == i+2 {
				return "", 1 + i, 2, `invalid escape sequence '\x': expected hex digits`
			}
			b.WriteByte(byte(v))
			i = j
			continue
		default:
			if '0' <= e && e <= '7' {
				j := i + 1
				v := 0
				for j < len(body) && j < i+4 && '0' <= body[j] && body[j] <= '7' {
					v = v*8 + int(body[j]-'0')
					j++
				}
				if v > 0xff {
					return "", 1 + i, j - i, fmt.Sprintf("octal escape sequence out of range '%s'", body[i:j])
				}
				b.WriteByte(byte(v))
				i = j
				continue
			}
			_, size := utf8.DecodeRuneInString(body[i+1:])
			return "", 1 + i, 1 + size, fmt.Sprintf("invalid escape character '%s'", body[i:i+1+size])
		}
		i += 2
	}
	return b.String(), 0, 0, ""
}

// pathProviders are the probe types whose second field is a file.
var pathProviders = map[string]bool{"uprobe": true, "uretprobe": true, "u": true, "ur": true, "usdt": true, "U": true}

// ScanProbeSpec returns the next token as a probe spec (PROBE), for use
// where the grammar expects one: at the start of a probe and after a ',' in
// a spec list. A spec is a run of non-blank characters up to ',' '{' or '/';
// a '/' that starts a ':'-separated field begins a path (uprobe:/bin/bash:readline)
// which runs to the next ':', so that both `kprobe:f /pred/ {` and
// `kprobe:f/pred/{` split where users expect. Anything that cannot start a
// spec is scanned as an ordinary token so the parser can report it.
func (s *Scanner) ScanProbeSpec() (pos Pos, tok Token, lit string) {
	s.skipSpace()
	if s.off >= len(s.src) || !isLetter(s.src[s.off]) {
		return s.Scan()
	}
	start := s.off
	fieldStart, inPath := true, false
	field := 0
loop:
	for s.off < len(s.src) {
		c := s.src[s.off]
		switch {
		case isSpace(c):
			break loop
		case c == '"' && field > 0:
			// bpftrace takes a quoted part of a spec (a function or
			// usdt probe name) literally, ':' and blanks included:
			// uprobe:/bin/bash:"echo_builtin"+0, usdt:f:p:"\"n\"".
			if !s.skipSpecString() {
				break loop
			}
			fieldStart = false
			continue
		case strings.IndexByte(",{};()\"", c) >= 0:
			// Besides ',' and '{', these cannot be part of any spec;
			// stopping at them gives `BEGIN}` a sensible error.
			break loop
		case c == ':':
			fieldStart, inPath = true, false
			field++
			// A uprobe's second field is a file, relative ones too
			// (uprobe:bin/work:f): its '/' cannot start a predicate.
			if field == 1 && pathProviders[string(s.src[start:s.off])] {
				inPath = true
			}
			s.off++
			continue
		case c == '/' && !fieldStart && !inPath:
			break loop
		case fieldStart && (c == '/' || c == '.'):
			inPath = true
		}
		fieldStart = false
		s.off++
	}
	return s.pos(start), PROBE, string(s.src[start:s.off])
}

// skipSpecString moves past the string literal that starts at s.off in
// a probe spec. A bad one is reported, and ok is false.
func (s *Scanner) skipSpecString() (ok bool) {
	start := s.off
	s.off++
	if _, tok, _ := s.scanString(start); tok != STRING {
		return false
	}
	return true
}

// SplitSpec splits a probe spec at its ':'s, as bpftrace's attach point
// parser does, but not at those of a quoted part, whose quotes are
// removed and escapes decoded: `uprobe:lib:"a:b"+1` is uprobe, lib, a:b+1.
func SplitSpec(spec string) []string {
	var fields []string
	var b strings.Builder
	for i := 0; i < len(spec); {
		switch c := spec[i]; c {
		case ':':
			fields = append(fields, b.String())
			b.Reset()
			i++
		case '"':
			j := i + 1
			for j < len(spec) && spec[j] != '"' {
				if spec[j] == '\\' && j+1 < len(spec) {
					j++
				}
				j++
			}
			if j >= len(spec) {
				// Unterminated: the scanner reported it; the rest
				// is the name as written.
				b.WriteString(spec[i:])
				i = len(spec)
				continue
			}
			val, _, _, msg := unquote(spec[i : j+1])
			if msg != "" {
				val = spec[i+1 : j]
			}
			b.WriteString(val)
			i = j + 1
		default:
			b.WriteByte(c)
			i++
		}
	}
	return append(fields, b.String())
}

// skipCDef moves past a C definition whose keyword was just scanned: to
// its first '{', the matching '}' (comments skipped) and a ';' after it.
// It stops at a ';' before any '{' (a declaration, not a definition: the
// parser says it is not a probe). ok is false at the end of the input.
func (s *Scanner) skipCDef() (end Pos, ok bool) {
	depth := 0
	for s.off < len(s.src) {
		c := s.src[s.off]
		if isSpace(c) || c == '/' && s.off+1 < len(s.src) && (s.src[s.off+1] == '/' || s.src[s.off+1] == '*') {
			// Lines are counted, and comments (with their braces)
			// skipped, as between tokens.
			s.skipSpace()
			continue
		}
		switch {
		case c == ';' && depth == 0:
			s.off++
			return s.pos(s.off), true
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth == 0 {
				s.off++
				// The ';' that may end it, on the same line.
				i := s.off
				for i < len(s.src) && (s.src[i] == ' ' || s.src[i] == '\t') {
					i++
				}
				if i < len(s.src) && s.src[i] == ';' {
					s.off = i + 1
				}
				return s.pos(s.off), true
			}
		}
		s.off++
	}
	s.off = len(s.src)
	return s.pos(s.off), false
}
