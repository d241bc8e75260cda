package cpp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// evalIf evaluates #if's expression as C does: defined(X) first, then
// macros, then any name left is 0; integers are 64 bits.
func (p *pp) evalIf(text string) (int64, error) {
	toks := tokens(text)
	var b strings.Builder
	for i := 0; i < len(toks); i++ {
		if toks[i] != "defined" {
			b.WriteString(toks[i])
			continue
		}
		k := i + 1
		skip := func() {
			for k < len(toks) && strings.TrimSpace(toks[k]) == "" {
				k++
			}
		}
		skip()
		paren := k < len(toks) && toks[k] == "("
		if paren {
			k++
			skip()
		}
		if k >= len(toks) || !isName(toks[k]) {
			return 0, errors.New("defined needs a macro name")
		}
		_, ok := p.macros[toks[k]]
		if paren {
			k++
			skip()
			if k >= len(toks) || toks[k] != ")" {
				return 0, errors.New("missing ')' after defined")
			}
		}
		if ok {
			b.WriteString(" 1 ")
		} else {
			b.WriteString(" 0 ")
		}
		i = k
	}
	exp, err := p.rescan(b.String(), map[string]bool{}, 0)
	if err != nil {
		return 0, err
	}
	e := &ifParser{}
	for _, t := range tokens(exp) {
		if t = strings.TrimSpace(t); t != "" {
			e.toks = append(e.toks, t)
		}
	}
	// Two-character operators arrive as single characters.
	e.toks = joinOps(e.toks)
	if len(e.toks) == 0 {
		return 0, errors.New("no expression")
	}
	v := e.ternary(0)
	if e.err == nil && e.i < len(e.toks) {
		e.err = fmt.Errorf("unexpected %q", e.toks[e.i])
	}
	return v, e.err
}

func joinOps(toks []string) []string {
	var out []string
	for i := 0; i < len(toks); i++ {
		if i+1 < len(toks) {
			switch two := toks[i] + toks[i+1]; two {
			case "&&", "||", "==", "!=", "<=", ">=", "<<", ">>":
				out = append(out, two)
				i++
				continue
			}
		}
		out = append(out, toks[i])
	}
	return out
}

type ifParser struct {
	toks []string
	i    int
	err  error
}

func (e *ifParser) peek() string {
	if e.i < len(e.toks) {
		return e.toks[e.i]
	}
	return ""
}

var binPrec = map[string]int{
	"||": 1, "&&": 2, "|": 3, "^": 4, "&": 5, "==": 6, "!=": 6,
	"<": 7, ">": 7, "<=": 7, ">=": 7, "<<": 8, ">>": 8, "+": 9, "-": 9,
	"*": 10, "/": 10, "%": 10,
}

func (e *ifParser) ternary(depth int) int64 {
	if depth > 100 {
		e.fail(errors.New("expression nested too deep"))
		return 0
	}
	c := e.binary(1, depth)
	if e.peek() != "?" {
		return c
	}
	e.i++
	a := e.ternary(depth + 1)
	if e.peek() != ":" {
		e.fail(errors.New("expected ':'"))
		return 0
	}
	e.i++
	b := e.ternary(depth + 1)
	if c != 0 {
		return a
	}
	return b
}

func (e *ifParser) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

func (e *ifParser) binary(prec, depth int) int64 {
	l := e.unary(depth)
	for e.err == nil {
		op := e.peek()
		pr, ok := binPrec[op]
		if !ok || pr < prec {
			return l
		}
		e.i++
		r := e.binary(pr+1, depth)
		l = apply(op, l, r, e)
	}
	return l
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func apply(op string, l, r int64, e *ifParser) int64 {
	switch op {
	case "||":
		return b2i(l != 0 || r != 0)
	case "&&":
		return b2i(l != 0 && r != 0)
	case "|":
		return l | r
	case "^":
		return l ^ r
	case "&":
		return l & r
	case "==":
		return b2i(l == r)
	case "!=":
		return b2i(l != r)
	case "<":
		return b2i(l < r)
	case ">":
		return b2i(l > r)
	case "<=":
		return b2i(l <= r)
	case ">=":
		return b2i(l >= r)
	case "<<":
		return l << (uint64(r) & 63)
	case ">>":
		return l >> (uint64(r) & 63)
	case "+":
		return l + r
	case "-":
		return l - r
	case "*":
		return l * r
	case "/", "%":
		if r == 0 {
			e.fail(errors.New("division by zero"))
			return 0
		}
		if op == "/" {
			return l / r
		}
		return l % r
	}
	return 0
}

func (e *ifParser) unary(depth int) int64 {
	if depth > 100 {
		e.fail(errors.New("expression nested too deep"))
		return 0
	}
	t := e.peek()
	e.i++
	switch {
	case t == "":
		e.fail(errors.New("unexpected end of expression"))
	case t == "!":
		return b2i(e.unary(depth+1) == 0)
	case t == "~":
		return ^e.unary(depth + 1)
	case t == "-":
		return -e.unary(depth + 1)
	case t == "+":
		return e.unary(depth + 1)
	case t == "(":
		v := e.ternary(depth + 1)
		if e.peek() != ")" {
			e.fail(errors.New("expected ')'"))
			return 0
		}
		e.i++
		return v
	case t[0] >= '0' && t[0] <= '9':
		s := strings.TrimRight(strings.ToLower(t), "ul")
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil && len(s) > 1 && s[0] == '0' && s[1] != 'x' && s[1] != 'b' {
			v, err = strconv.ParseUint(s[1:], 8, 64)
		}
		if err != nil {
			e.fail(fmt.Errorf("invalid number %q", t))
		}
		return int64(v)
	case t[0] == '\'' && len(t) >= 3:
		return int64(t[1])
	case isName(t):
		// A name no macro defines is 0 in #if.
		return 0
	default:
		e.fail(fmt.Errorf("unexpected %q", t))
	}
	return 0
}
