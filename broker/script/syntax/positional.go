package syntax

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// A positional parameter's value is fixed when the script is parsed
// (bpftrace's PositionalParameter is resolved as early): what follows
// sees an integer or a string literal, never a parameter.

// positional says which parameter a VAR token names: $1 is 1, $# is 0.
func positional(lit string) (int, bool) {
	if lit == "$#" {
		return 0, true
	}
	n, err := strconv.Atoi(lit[1:])
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

// positional is parameter n (0: $#) as a literal at from-to.
func (p *parser) positional(from, to Pos, n int) Expr {
	if n == 0 {
		return &IntLit{From: from, To: to, Raw: strconv.Itoa(len(p.args)), Value: uint64(len(p.args))}
	}
	if n > len(p.args) {
		// Not given: 0, or "" in str().
		return &IntLit{From: from, To: to, Raw: "0", Param: true, Unset: true}
	}
	arg := p.args[n-1]
	if v, err := strconv.ParseInt(arg, 0, 64); err == nil && numeric(arg) {
		if v < 0 {
			return &Paren{From: from, To: to, X: &Unary{Op: SUB, OpPos: from, X: &IntLit{From: from, To: to, Raw: strconv.FormatInt(-v, 10), Value: uint64(-v)}}}
		}
		return &IntLit{From: from, To: to, Raw: arg, Value: uint64(v), Param: true}
	}
	return &StrLit{From: from, To: to, Value: arg}
}

// numeric keeps to what bpftrace takes for a number (strtoll's forms):
// Go's base prefixes 0b and 0o and its digit separators are text.
func numeric(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if strings.ContainsRune(s, '_') {
		return false
	}
	if len(s) > 1 && s[0] == '0' && (s[1] == 'b' || s[1] == 'B' || s[1] == 'o' || s[1] == 'O') {
		return false
	}
	return s != ""
}

// paramString is str() of a positional parameter: str($1) is $1's text
// (a number's too), str($1 + n) its text from byte n, as
// bpftrace reads a string literal's address plus n. A parameter that
// was not given is "" in str().
func paramString(c *Call) (Expr, bool) {
	if len(c.Args) != 1 {
		return nil, false
	}
	switch a := unparenExpr(c.Args[0]).(type) {
	case *StrLit:
		return &StrLit{From: c.From, To: c.To, Value: a.Value}, true
	case *IntLit:
		switch {
		case a.Unset:
			return &StrLit{From: c.From, To: c.To, Value: ""}, true
		case a.Param:
			return &StrLit{From: c.From, To: c.To, Value: a.Raw}, true
		}
	case *Binary:
		s, ok := unparenExpr(a.X).(*StrLit)
		n, ok2 := unparenExpr(a.Y).(*IntLit)
		if ok && ok2 && a.Op == ADD {
			if n.Value > uint64(len(s.Value)) {
				return &StrLit{From: c.From, To: c.To, Value: ""}, true
			}
			return &StrLit{From: c.From, To: c.To, Value: s.Value[n.Value:]}, true
		}
	}
	return nil, false
}

func unparenExpr(e Expr) Expr {
	for {
		p, ok := e.(*Paren)
		if !ok {
			return e
		}
		e = p.X
	}
}

var specParam = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\$(\d+|#)`) })

// specArgs replaces $N and $# in a probe's spec by their text (a
// parameter not given by nothing).
func (p *parser) specArgs(spec string) string {
	return specParam().ReplaceAllStringFunc(spec, func(m string) string {
		n, _ := positional(m)
		if n == 0 {
			return strconv.Itoa(len(p.args))
		}
		if n > len(p.args) {
			return ""
		}
		return p.args[n-1]
	})
}
