// Package cpp is the C preprocessor bpftrace scripts are written for.
// bpftrace runs clang's over a script; tracebroker has no clang and must
// not need one, so this is the part of it scripts use: #define (object-
// and function-like) with the expansion of the script's identifiers,
// #undef, #if/#ifdef/#ifndef/#elif/#else/#endif, and #include of the
// headers it knows (errno.h and sys/socket.h built in, kernel headers
// taken as read from BTF) or of files of #define lines.
//
// Lines stay where they are: a directive becomes an empty line, so the
// parser's line numbers are the script's, and Result.Pos maps any other
// position of the expanded text back to the script's text, so an error
// points at what the user wrote.
package cpp

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// Bounds on what a script can make the preprocessor do: its input is
// untrusted (through the daemon, a token holder's), and macros expand
// exponentially (#define A B B, #define B C C, ...) or forever.
const (
	maxOutput   = 1 << 20 // bytes of expanded script
	maxDepth    = 64      // macros expanding inside macros
	maxIncludes = 64      // headers read, in all
	maxNesting  = 16      // headers including headers
	maxCond     = 256     // #if inside #if
	maxMacros   = 10000
	maxHeader   = 1 << 20 // bytes of one header file
)

// Options says what a script's #include may read.
type Options struct {
	// Includes are the CLI's --include FILEs, included before the
	// script as clang's -include does.
	Includes []string
	// Host lets #include read the host's files: a "file.h" next to the
	// working directory and system headers that are not built in. The
	// daemon leaves it false: a token holder must not read the broker's
	// files, nor learn which exist.
	Host bool
	// BTF says that the kernel's types come from its BTF: kernel
	// headers are satisfied by it, and BPFTRACE_HAVE_BTF is defined, as
	// bpftrace defines it then.
	BTF bool
	// ReadFile reads a header; nil is os.ReadFile.
	ReadFile func(string) ([]byte, error)
}

// Result is a preprocessed script.
type Result struct {
	// Src is the text the parser reads.
	Src  []byte
	orig []byte
	segs []seg
}

// A seg is a run of Src: copied from the script at orig, or a macro's
// expansion of the script's orig..origEnd.
type seg struct {
	out, orig, origEnd int
	macro              bool
}

// Pos is where the expanded text's p lies in the script: a position in
// a macro's expansion is the macro's name in the script (its end, for
// the end of a range).
func (r *Result) Pos(p syntax.Pos, end bool) syntax.Pos {
	if r == nil || len(r.segs) == 0 || !p.IsValid() {
		return p
	}
	i := sort.Search(len(r.segs), func(i int) bool { return r.segs[i].out > p.Offset }) - 1
	if end {
		// An exclusive end that is a segment's start ends the one before.
		j := sort.Search(len(r.segs), func(i int) bool { return r.segs[i].out >= p.Offset }) - 1
		if j >= 0 && r.segs[j].macro {
			i = j
		}
	}
	if i < 0 {
		return p
	}
	s := r.segs[i]
	off := s.orig + p.Offset - s.out
	if s.macro {
		off = s.orig
		if end {
			off = s.origEnd
		}
	}
	return PosAt(r.orig, off)
}

// Errors maps a list of the expanded text's diagnostics to the script's.
func (r *Result) Errors(l syntax.ErrorList) syntax.ErrorList {
	if r == nil || len(r.segs) == 0 {
		return l
	}
	out := make(syntax.ErrorList, len(l))
	for i, e := range l {
		c := *e
		c.From, c.To = r.Pos(e.From, false), r.Pos(e.To, true)
		out[i] = &c
	}
	return out
}

// PosAt is the line and column of offset off in src.
func PosAt(src []byte, off int) syntax.Pos {
	off = min(max(off, 0), len(src))
	line := 1 + bytes.Count(src[:off], []byte{'\n'})
	start := bytes.LastIndexByte(src[:off], '\n') + 1
	return syntax.Pos{Offset: off, Line: line, Col: off - start + 1}
}

// Process preprocesses a script. Its error is a syntax.ErrorList whose
// positions are the script's. A script with no directive and no macro
// comes back as it is.
func Process(src []byte, opts Options) (*Result, error) {
	p := &pp{opts: opts, macros: map[string]*macro{}, script: src}
	if opts.BTF {
		p.macros["BPFTRACE_HAVE_BTF"] = &macro{name: "BPFTRACE_HAVE_BTF", body: "1"}
	}
	if !p.needed(src) {
		return &Result{Src: src, orig: src}, nil
	}
	for _, inc := range opts.Includes {
		p.include(inc, false, syntax.Pos{}, syntax.Pos{}, true)
		if len(p.errs) > 0 {
			return nil, p.errs
		}
	}
	p.file(&file{name: "", src: src, script: true})
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return &Result{Src: p.out, orig: src, segs: p.segs}, nil
}

// needed reports whether src can be other than its expansion: it has a
// line that starts with '#' (other than "#!"), or a macro is defined.
func (p *pp) needed(src []byte) bool {
	if len(p.opts.Includes) > 0 {
		return true
	}
	for i, line := range bytes.Split(src, []byte{'\n'}) {
		line = bytes.TrimLeft(line, " \t\f\v\r")
		if len(line) > 0 && line[0] == '#' && (i > 0 || !bytes.HasPrefix(line, []byte("#!"))) {
			return true
		}
	}
	// BPFTRACE_HAVE_BTF alone: only a script that names it changes.
	return bytes.Contains(src, []byte("BPFTRACE_HAVE_BTF"))
}

type macro struct {
	name     string
	fn       bool // function-like: NAME(params)
	params   []string
	variadic bool
	body     string
}

// file is the text being read: the script, or a header.
type file struct {
	name   string
	src    []byte
	script bool
	// site is where the script includes it (the outermost #include),
	// siteEnd the end of that directive's operand.
	site, siteEnd syntax.Pos
}

type cond struct {
	at            syntax.Pos
	active, taken bool // this branch; some branch so far
	parentActive  bool
	sawElse       bool
}

type pp struct {
	opts   Options
	macros map[string]*macro
	script []byte
	out    []byte
	segs   []seg
	errs   syntax.ErrorList

	includes, nesting int
	// pending holds the files being included, against cycles.
	pending []string
}

func (p *pp) errorf(f *file, from, to int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if len(p.errs) >= 10 {
		return
	}
	e := &syntax.Error{Msg: msg}
	if f.script {
		e.From, e.To = PosAt(f.src, from), PosAt(f.src, to)
	} else {
		line := 1 + bytes.Count(f.src[:min(from, len(f.src))], []byte{'\n'})
		e.Msg = fmt.Sprintf("%s:%d: %s", f.name, line, msg)
		e.From, e.To = f.site, f.siteEnd
	}
	p.errs = append(p.errs, e)
}

func (p *pp) copyOut(f *file, from, to int) {
	if !f.script || from >= to {
		return
	}
	if n := len(p.segs); n == 0 || p.segs[n-1].macro || p.segs[n-1].orig+len(p.out)-p.segs[n-1].out != from {
		p.segs = append(p.segs, seg{out: len(p.out), orig: from})
	}
	p.out = append(p.out, f.src[from:to]...)
}

func (p *pp) macroOut(text string, from, to int) {
	if text == "" {
		return
	}
	p.segs = append(p.segs, seg{out: len(p.out), orig: from, origEnd: to, macro: true})
	p.out = append(p.out, text...)
}

func isIdentStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
}
func isIdent(c byte) bool { return isIdentStart(c) || '0' <= c && c <= '9' }

// file reads one file: the script, copied with its macros expanded, or a
// header, of which only directives are read.
func (p *pp) file(f *file) {
	var conds []cond
	active := func() bool { return len(conds) == 0 || conds[len(conds)-1].active }
	start := 0
	if f.script && bytes.HasPrefix(f.src, []byte("#!")) {
		// The scanner skips the shebang line itself.
		start = bytes.IndexByte(f.src, '\n')
		if start < 0 {
			start = len(f.src)
		}
		p.copyOut(f, 0, start)
	}
	p.body(f, start, &conds, active)
}

func (p *pp) body(f *file, i int, conds *[]cond, active func() bool) {
	src := f.src
	lineStart := true
	for i < len(src) && len(p.errs) == 0 {
		if lineStart {
			j := i
			for j < len(src) && (src[j] == ' ' || src[j] == '\t' || src[j] == '\f' || src[j] == '\v' || src[j] == '\r') {
				j++
			}
			if j < len(src) && src[j] == '#' {
				end := directiveEnd(src, j)
				p.directive(f, j, end, conds)
				// The directive's lines stay, empty.
				for k := i; k < end; k++ {
					if src[k] == '\n' {
						p.copyOut(f, k, k+1)
					}
				}
				i = end
				continue
			}
			if !active() {
				end := bytes.IndexByte(src[i:], '\n')
				if end < 0 {
					return
				}
				p.copyOut(f, i+end, i+end+1)
				i += end + 1
				continue
			}
			lineStart = false
		}
		c := src[i]
		switch {
		case c == '\n':
			p.copyOut(f, i, i+1)
			i++
			lineStart = true
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			end := bytes.IndexByte(src[i:], '\n')
			if end < 0 {
				end = len(src) - i
			}
			p.copyOut(f, i, i+end)
			i += end
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := bytes.Index(src[i+2:], []byte("*/"))
			if end < 0 {
				// The parser reports the unterminated comment.
				p.copyOut(f, i, len(src))
				return
			}
			p.copyOut(f, i, i+2+end+2)
			i += 2 + end + 2
		case c == '"' || c == '\'':
			end := quoteEnd(src, i)
			p.text(f, i, end)
			i = end
		case isIdentStart(c):
			j := i
			for j < len(src) && isIdent(src[j]) {
				j++
			}
			name := string(src[i:j])
			m := p.macros[name]
			if m == nil || (i > 0 && (src[i-1] == '$' || src[i-1] == '@')) {
				p.text(f, i, j)
				i = j
				continue
			}
			i = p.invoke(f, m, i, j)
		case '0' <= c && c <= '9':
			// A number's letters (0x1f, 10ul) are not identifiers.
			j := i
			for j < len(src) && (isIdent(src[j]) || src[j] == '.') {
				j++
			}
			p.text(f, i, j)
			i = j
		case c == ' ' || c == '\t' || c == '\r':
			p.copyOut(f, i, i+1)
			i++
		default:
			p.text(f, i, i+1)
			i++
		}
	}
	if len(*conds) > 0 && len(p.errs) == 0 {
		c := (*conds)[len(*conds)-1]
		p.errorAt(f, c.at, "unterminated conditional directive")
	}
}

func (p *pp) errorAt(f *file, at syntax.Pos, msg string) {
	p.errorf(f, at.Offset, at.Offset+1, "%s", msg)
}

// text copies the script's text from..to; a header may hold nothing but
// directives and comments, since its C would reach no parser.
func (p *pp) text(f *file, from, to int) {
	if f.script {
		p.copyOut(f, from, to)
		return
	}
	if !p.opts.Host {
		p.errorf(f, from, to, "only #define lines are read from headers")
		return
	}
	p.errorf(f, from, to, "tracebroker reads only #define, #undef and #if lines from a header, and this one has C declarations (kernel types come from BTF; put a struct in the script itself)")
}

// quoteEnd is the end of the string or character literal at i: its
// closing quote, or the end of the line.
func quoteEnd(src []byte, i int) int {
	q := src[i]
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '\\':
			j++
		case q:
			return j + 1
		case '\n':
			return j
		}
	}
	return len(src)
}

// directiveEnd is the end of the directive at i, past its newline: lines
// joined by a backslash, and a block comment that starts on it, are one.
func directiveEnd(src []byte, i int) int {
	for i < len(src) {
		switch {
		case src[i] == '\\' && i+1 < len(src) && src[i+1] == '\n':
			i += 2
		case src[i] == '\\' && i+2 < len(src) && src[i+1] == '\r' && src[i+2] == '\n':
			i += 3
		case src[i] == '/' && i+1 < len(src) && src[i+1] == '*':
			end := bytes.Index(src[i+2:], []byte("*/"))
			if end < 0 {
				return len(src)
			}
			i += 2 + end + 2
		case src[i] == '"' || src[i] == '\'':
			i = quoteEnd(src, i)
		case src[i] == '\n':
			return i + 1
		default:
			i++
		}
	}
	return len(src)
}

// logical is a directive's text as one line: continuations joined,
// comments a space.
func logical(text []byte) string {
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		switch {
		case text[i] == '\\' && i+1 < len(text) && text[i+1] == '\n':
			i++
		case text[i] == '\\' && i+2 < len(text) && text[i+1] == '\r' && text[i+2] == '\n':
			i += 2
		case text[i] == '/' && i+1 < len(text) && text[i+1] == '/':
			return strings.TrimRight(b.String(), " \t\r\n")
		case text[i] == '/' && i+1 < len(text) && text[i+1] == '*':
			end := bytes.Index(text[i+2:], []byte("*/"))
			b.WriteByte(' ')
			if end < 0 {
				return strings.TrimRight(b.String(), " \t\r\n")
			}
			i += 2 + end + 1
		case text[i] == '"' || text[i] == '\'':
			end := quoteEnd(text, i)
			b.Write(text[i:end])
			i = end - 1
		default:
			b.WriteByte(text[i])
		}
	}
	return strings.TrimRight(b.String(), " \t\r\n")
}

func (p *pp) directive(f *file, at, end int, conds *[]cond) {
	line := logical(f.src[at+1 : end])
	rest := strings.TrimLeft(line, " \t\f\v")
	k := 0
	for k < len(rest) && isIdent(rest[k]) {
		k++
	}
	name, arg := rest[:k], strings.TrimSpace(rest[k:])
	pos := PosAt(f.src, at)
	// Where the directive's operand starts, for carets.
	argAt := at + 1 + strings.Index(string(f.src[at+1:end]), arg)
	if arg == "" {
		argAt = at
	}
	active := len(*conds) == 0 || (*conds)[len(*conds)-1].active
	top := func() *cond {
		if len(*conds) == 0 {
			p.errorf(f, at, at+1+len(name), "#%s without #if", name)
			return nil
		}
		return &(*conds)[len(*conds)-1]
	}
	switch name {
	case "if", "ifdef", "ifndef":
		if len(*conds) >= maxCond {
			p.errorf(f, at, end, "#if nested more than %d deep", maxCond)
			return
		}
		c := cond{at: pos, parentActive: active}
		if active {
			c.active = p.condition(f, name, arg, argAt)
			c.taken = c.active
		}
		*conds = append(*conds, c)
	case "elif":
		c := top()
		if c == nil {
			return
		}
		if c.sawElse {
			p.errorf(f, at, at+5, "#elif after #else")
			return
		}
		c.active = false
		if c.parentActive && !c.taken {
			c.active = p.condition(f, "if", arg, argAt)
			c.taken = c.active
		}
	case "else":
		c := top()
		if c == nil {
			return
		}
		if c.sawElse {
			p.errorf(f, at, at+5, "#else after #else")
			return
		}
		c.sawElse = true
		c.active = c.parentActive && !c.taken
		c.taken = true
	case "endif":
		if top() != nil {
			*conds = (*conds)[:len(*conds)-1]
		}
	default:
		if !active {
			return
		}
		switch name {
		case "":
			if arg != "" {
				p.errorf(f, at, end-1, "invalid preprocessing directive")
			}
		case "define":
			p.define(f, arg, argAt)
		case "undef":
			if !isName(arg) {
				p.errorf(f, argAt, argAt+max(len(arg), 1), "macro name must be an identifier")
				return
			}
			delete(p.macros, arg)
		case "include":
			p.includeDirective(f, arg, argAt)
		case "error":
			p.errorf(f, at, at+len(rest)+1, "#error %s", arg)
		case "warning", "pragma", "line", "ident":
			// Nothing for a script to act on.
		default:
			p.errorf(f, at, at+1+len(rest), "invalid preprocessing directive #%s", name)
		}
	}
}

func isName(s string) bool {
	if s == "" || !isIdentStart(s[0]) {
		return false
	}
	for i := range len(s) {
		if !isIdent(s[i]) {
			return false
		}
	}
	return true
}

func (p *pp) define(f *file, arg string, at int) {
	k := 0
	for k < len(arg) && isIdent(arg[k]) {
		k++
	}
	name := arg[:k]
	if !isName(name) {
		p.errorf(f, at, at+max(k, 1), "macro name must be an identifier")
		return
	}
	if name == "defined" {
		p.errorf(f, at, at+k, "'defined' cannot be used as a macro name")
		return
	}
	if len(p.macros) >= maxMacros {
		p.errorf(f, at, at+k, "more than %d macros", maxMacros)
		return
	}
	m := &macro{name: name}
	rest := arg[k:]
	if strings.HasPrefix(rest, "(") {
		m.fn = true
		end := strings.IndexByte(rest, ')')
		if end < 0 {
			p.errorf(f, at+k, at+len(arg), "missing ')' in macro parameter list")
			return
		}
		if params := strings.TrimSpace(rest[1:end]); params != "" {
			for _, prm := range strings.Split(params, ",") {
				prm = strings.TrimSpace(prm)
				switch {
				case prm == "...":
					m.variadic = true
					prm = "__VA_ARGS__"
				case !isName(prm) || m.variadic:
					p.errorf(f, at+k, at+k+end+1, "invalid macro parameter %q", prm)
					return
				}
				m.params = append(m.params, prm)
			}
		}
		rest = rest[end+1:]
	}
	m.body = strings.TrimSpace(rest)
	p.macros[name] = m
}

// condition evaluates #if, #ifdef or #ifndef's operand.
func (p *pp) condition(f *file, kind, arg string, at int) bool {
	switch kind {
	case "ifdef", "ifndef":
		if !isName(arg) {
			p.errorf(f, at, at+max(len(arg), 1), "macro name must be an identifier")
			return false
		}
		_, ok := p.macros[arg]
		return ok == (kind == "ifdef")
	}
	v, err := p.evalIf(arg)
	if err != nil {
		p.errorf(f, at, at+max(len(arg), 1), "invalid #if expression: %v", err)
		return false
	}
	return v != 0
}

// invoke expands the macro whose name is src[i:j] in the script (or a
// header's text, an error), and returns where the script goes on.
func (p *pp) invoke(f *file, m *macro, i, j int) int {
	src := f.src
	end := j
	var args []string
	if m.fn {
		k := j
		for k < len(src) && (src[k] == ' ' || src[k] == '\t' || src[k] == '\n' || src[k] == '\r') {
			k++
		}
		if k >= len(src) || src[k] != '(' {
			// A function-like macro's name alone is a name.
			p.text(f, i, j)
			return j
		}
		var ok bool
		args, end, ok = collectArgs(src, k)
		if !ok {
			p.errorf(f, i, j, "unterminated argument list invoking macro %q", m.name)
			return len(src)
		}
	}
	if !f.script {
		p.text(f, i, end)
		return end
	}
	text, err := p.expand(m, args, map[string]bool{}, 0)
	if err != nil {
		p.errorf(f, i, j, "%v", err)
		return len(src)
	}
	if len(p.out)+len(text) > maxOutput {
		p.errorf(f, i, j, "macro expansion makes the script larger than %d bytes", maxOutput)
		return len(src)
	}
	// An empty expansion still needs a space, so "A B" stays two tokens.
	if text == "" {
		text = " "
	}
	p.macroOut(text, i, end)
	// Lines an invocation's arguments spanned stay lines.
	for k := j; k < end; k++ {
		if src[k] == '\n' {
			p.macroOut("\n", i, end)
		}
	}
	return end
}

// collectArgs reads a macro's arguments from the '(' at k: the text
// between commas at the top level, and the end past the ')'.
func collectArgs(src []byte, k int) (args []string, end int, ok bool) {
	depth := 0
	start := k + 1
	for i := k; i < len(src); i++ {
		switch src[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				args = append(args, strings.TrimSpace(string(src[start:i])))
				return args, i + 1, true
			}
		case ',':
			if depth == 1 {
				args = append(args, strings.TrimSpace(string(src[start:i])))
				start = i + 1
			}
		case '"', '\'':
			i = quoteEnd(src, i) - 1
		}
	}
	return nil, len(src), false
}

var errTooDeep = errors.New("macros expand more than 64 levels deep")

// expand is m's body with args in place, rescanned with m hidden, as
// C expands it.
func (p *pp) expand(m *macro, args []string, hide map[string]bool, depth int) (string, error) {
	if depth > maxDepth {
		return "", errTooDeep
	}
	body := m.body
	if m.fn {
		if len(args) == 1 && args[0] == "" && len(m.params) == 0 {
			args = nil
		}
		switch {
		case m.variadic && len(args) >= len(m.params)-1:
			if len(args) >= len(m.params) {
				va := strings.Join(args[len(m.params)-1:], ",")
				args = append(args[:len(m.params)-1:len(m.params)-1], va)
			} else {
				args = append(args, "")
			}
		case len(args) != len(m.params):
			return "", fmt.Errorf("macro %q takes %d arguments (%d given)", m.name, len(m.params), len(args))
		}
		var err error
		if body, err = p.substitute(m, args, hide, depth); err != nil {
			return "", err
		}
	}
	hide[m.name] = true
	defer delete(hide, m.name)
	return p.rescan(body, hide, depth+1)
}

// substitute puts a function-like macro's arguments in its body: #x is
// x's text quoted, an operand of ## x's text, any other x its expansion;
// then ## joins what is around it.
func (p *pp) substitute(m *macro, args []string, hide map[string]bool, depth int) (string, error) {
	toks := tokens(m.body)
	param := func(s string) int {
		for i, prm := range m.params {
			if prm == s {
				return i
			}
		}
		return -1
	}
	nonSpace := func(i, step int) string {
		for i += step; i >= 0 && i < len(toks); i += step {
			if strings.TrimSpace(toks[i]) != "" {
				return toks[i]
			}
		}
		return ""
	}
	var b strings.Builder
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t == "#" {
			k := i + 1
			for k < len(toks) && strings.TrimSpace(toks[k]) == "" {
				k++
			}
			if k < len(toks) && param(toks[k]) >= 0 {
				b.WriteString(quote(args[param(toks[k])]))
				i = k
				continue
			}
		}
		n := param(t)
		if n < 0 {
			b.WriteString(t)
			continue
		}
		if nonSpace(i, -1) == "##" || nonSpace(i, 1) == "##" {
			b.WriteString(args[n])
			continue
		}
		exp, err := p.rescan(args[n], hide, depth+1)
		if err != nil {
			return "", err
		}
		b.WriteString(exp)
		if b.Len() > maxOutput {
			return "", fmt.Errorf("macro %q expands to more than %d bytes", m.name, maxOutput)
		}
	}
	out := b.String()
	if strings.Contains(out, "##") {
		var j strings.Builder
		for k, part := range strings.Split(out, "##") {
			if k > 0 {
				part = strings.TrimLeft(part, " \t")
			}
			j.WriteString(strings.TrimRight(part, " \t"))
		}
		out = j.String()
	}
	return out, nil
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// tokens splits a macro's text into identifiers, numbers, literals,
// runs of space, "##" and single characters.
func tokens(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		j := i + 1
		switch c := s[i]; {
		case isIdentStart(c):
			for j < len(s) && isIdent(s[j]) {
				j++
			}
		case '0' <= c && c <= '9':
			for j < len(s) && (isIdent(s[j]) || s[j] == '.') {
				j++
			}
		case c == '"' || c == '\'':
			j = quoteEnd([]byte(s), i)
		case c == ' ' || c == '\t':
			for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
				j++
			}
		case c == '#' && j < len(s) && s[j] == '#':
			j++
		}
		out = append(out, s[i:j])
		i = j
	}
	return out
}

// rescan expands the macros in text that hide does not hold.
func (p *pp) rescan(text string, hide map[string]bool, depth int) (string, error) {
	if depth > maxDepth {
		return "", errTooDeep
	}
	toks := tokens(text)
	var b strings.Builder
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		m := p.macros[t]
		prev := ""
		if i > 0 {
			prev = toks[i-1]
		}
		if m == nil || hide[t] || prev == "$" || prev == "@" {
			b.WriteString(t)
			continue
		}
		var args []string
		if m.fn {
			k := i + 1
			for k < len(toks) && strings.TrimSpace(toks[k]) == "" {
				k++
			}
			if k >= len(toks) || toks[k] != "(" {
				b.WriteString(t)
				continue
			}
			rest := strings.Join(toks[k:], "")
			a, end, ok := collectArgs([]byte(rest), 0)
			if !ok {
				return "", fmt.Errorf("unterminated argument list invoking macro %q", t)
			}
			args = a
			// Skip the tokens the arguments took.
			used := 0
			for i = k; i < len(toks) && used < end; i++ {
				used += len(toks[i])
			}
			i--
		}
		exp, err := p.expand(m, args, hide, depth)
		if err != nil {
			return "", err
		}
		b.WriteString(exp)
		if b.Len() > maxOutput {
			return "", fmt.Errorf("macro %q expands to more than %d bytes", t, maxOutput)
		}
	}
	return b.String(), nil
}

// includeDirective reads #include's operand: <name> or "name".
func (p *pp) includeDirective(f *file, arg string, at int) {
	var name string
	system := false
	switch {
	case strings.HasPrefix(arg, "<") && strings.Contains(arg, ">"):
		name, system = arg[1:strings.IndexByte(arg, '>')], true
	case strings.HasPrefix(arg, `"`) && strings.Count(arg, `"`) >= 2:
		name = arg[1 : 1+strings.IndexByte(arg[1:], '"')]
	default:
		p.errorf(f, at, at+max(len(arg), 1), `#include expects "FILENAME" or <FILENAME>`)
		return
	}
	if name == "" {
		p.errorf(f, at, at+len(arg), "empty filename in #include")
		return
	}
	site, siteEnd := f.site, f.siteEnd
	if f.script {
		site, siteEnd = PosAt(f.src, at), PosAt(f.src, at+len(arg))
	}
	p.include(name, system, site, siteEnd, false)
}

// systemDirs are where clang looks for <headers> on this platform.
var systemDirs = []string{"/usr/local/include", "/usr/include/x86_64-linux-gnu", "/usr/include"}

// include reads the header name: one built in, a kernel header BTF
// satisfies, or (with Host) a file.
func (p *pp) include(name string, system bool, site, siteEnd syntax.Pos, cli bool) {
	at := &file{site: site, siteEnd: siteEnd, script: false}
	fail := func(format string, args ...any) {
		e := &syntax.Error{From: site, To: siteEnd, Msg: fmt.Sprintf(format, args...)}
		p.errs = append(p.errs, e)
	}
	if p.includes++; p.includes > maxIncludes {
		fail("more than %d headers included", maxIncludes)
		return
	}
	if defs, ok := builtinHeaders[name]; ok {
		for _, d := range defs() {
			p.macros[d.Name] = &macro{name: d.Name, body: fmt.Sprint(d.Value)}
		}
		return
	}
	if btfHeader(name) {
		if !p.opts.BTF {
			fail("'%s': tracebroker takes kernel types from BTF, and this kernel has none", name)
		}
		return
	}
	var paths []string
	if !system || cli {
		paths = append(paths, name)
	}
	if !filepath.IsAbs(name) {
		for _, d := range systemDirs {
			paths = append(paths, filepath.Join(d, name))
		}
	}
	if !p.opts.Host {
		fail("'%s': only built-in headers (%s) and kernel headers can be included here", name, strings.Join(builtinNames(), ", "))
		return
	}
	read := p.opts.ReadFile
	if read == nil {
		read = os.ReadFile
	}
	for _, path := range paths {
		b, err := read(path)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, os.ErrInvalid) {
			continue
		}
		if err != nil {
			fail("'%s': %v", name, err)
			return
		}
		if len(b) > maxHeader {
			fail("'%s' is larger than %d bytes", name, maxHeader)
			return
		}
		for _, q := range p.pending {
			if q == path {
				fail("'%s' includes itself", name)
				return
			}
		}
		if len(p.pending) >= maxNesting {
			fail("headers nested more than %d deep at '%s'", maxNesting, name)
			return
		}
		p.pending = append(p.pending, path)
		at.name, at.src = path, b
		n := len(p.errs)
		p.file(at)
		p.pending = p.pending[:len(p.pending)-1]
		if len(p.errs) > n && len(p.pending) == 0 {
			// Say which of the script's headers led there.
			for _, e := range p.errs[n:] {
				if !strings.HasPrefix(e.Msg, path+":") {
					e.Msg = fmt.Sprintf("in '%s': %s", name, e.Msg)
				}
			}
		}
		return
	}
	// clang's wording, which bpftrace shows.
	fail("'%s' file not found", name)
}
