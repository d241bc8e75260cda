package syntax

import "strings"

// providerAliases maps every spelling bpftrace accepts to the long name the
// compiler switches on.
var providerAliases = map[string]string{
	"BEGIN": "BEGIN", "begin": "BEGIN",
	"END": "END", "end": "END",
	"t": "tracepoint", "tracepoint": "tracepoint",
	"rt": "rawtracepoint", "rawtracepoint": "rawtracepoint",
	"k": "kprobe", "kprobe": "kprobe",
	"kr": "kretprobe", "kretprobe": "kretprobe",
	"u": "uprobe", "uprobe": "uprobe",
	"ur": "uretprobe", "uretprobe": "uretprobe",
	"i": "interval", "interval": "interval",
	"p": "profile", "profile": "profile",
	"s": "software", "software": "software",
	"h": "hardware", "hardware": "hardware",
	"U": "usdt", "usdt": "usdt",
	// kfunc/kretfunc are bpftrace 0.17's names, fentry/fexit the newer
	// spellings of the same probes.
	"f": "kfunc", "fentry": "kfunc", "kfunc": "kfunc",
	"fr": "kretfunc", "fexit": "kretfunc", "kretfunc": "kretfunc",
	"w": "watchpoint", "watchpoint": "watchpoint",
}

var intTypes = map[string]bool{
	"int8": true, "int16": true, "int32": true, "int64": true,
	"uint8": true, "uint16": true, "uint32": true, "uint64": true,
}

// recordKeywords start a C type naming a struct, union or enum in a
// cast or sizeof: (struct task_struct *)x, sizeof(struct task_struct).
var recordKeywords = map[string]bool{"struct": true, "union": true, "enum": true}

// recordType parses "struct NAME" and any "*" after it into an Ident
// spelling it as C does ("struct task_struct *").
func (p *parser) recordType() *Ident {
	p.node()
	id := &Ident{From: p.pos, Name: p.lit}
	p.next()
	if p.tok != IDENT {
		p.unexpected("identifier")
	}
	id.Name += " " + p.lit
	id.To = p.end
	p.next()
	stars := ""
	for p.tok == MUL {
		stars += "*"
		id.To = p.end
		p.next()
	}
	if stars != "" {
		id.Name += " " + stars
	}
	return id
}

var assignOps = map[Token]Token{
	ASSIGN:     ASSIGN,
	ADD_ASSIGN: ADD,
	SUB_ASSIGN: SUB,
	MUL_ASSIGN: MUL,
	QUO_ASSIGN: QUO,
	REM_ASSIGN: REM,
	AND_ASSIGN: AND,
	OR_ASSIGN:  OR,
	XOR_ASSIGN: XOR,
	SHL_ASSIGN: SHL,
	SHR_ASSIGN: SHR,
}

// bailout unwinds the parser at the first error; bpftrace also stops there,
// and error recovery would only produce follow-on noise.
type bailout struct{}

type parser struct {
	s    Scanner
	errs ErrorList
	args []string // the positional parameters
	// depth is the current nesting, deepest the most it reached, and
	// nodes counts the tree built so far (limits.go).
	depth, deepest int
	nodes          int

	// The current token; end is one past it.
	pos, end Pos
	tok      Token
	lit      string

	// inPred makes a '/' followed by '{' close the predicate instead of
	// dividing, which is how bpftrace tells `/a / b/ {` apart.
	inPred bool
}

// Parse parses a whole script. name is only recorded in the File (for error
// messages). On failure the error is an ErrorList and the File is nil.
func Parse(name string, src []byte) (f *File, err error) {
	f, _, err = parse(name, src, nil)
	return f, err
}

// ParseArgs is Parse with the script's positional parameters, the
// command line's words after the script: $1, $2, ... are args[0],
// args[1], ..., and $# is len(args). As in bpftrace, a parameter that is
// a number (123, 0775, 0x1f, -4) is that integer, anything else a
// string literal that str() takes (str($1), str($1 + 2) for its tail);
// one not given is 0, or "" in str(). In a probe's spec $N is replaced
// by its text (i:ms:$1, BEG$1).
func ParseArgs(name string, src []byte, args []string) (f *File, err error) {
	f, _, err = parse(name, src, args)
	if err == nil && args == nil {
		f.Args = nil
	}
	return f, err
}

// parse is Parse, which also returns the parser to let tests see how
// deep and how large the tree grew.
func parse(name string, src []byte, args []string) (f *File, p *parser, err error) {
	p = &parser{args: args}
	p.s.Init(src)
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(bailout); !ok {
				panic(r)
			}
			f, err = nil, p.errs
		}
	}()
	f = &File{Name: name, Src: src, Args: args}
	p.nextSpec()
	// C definitions come first, as in bpftrace: `struct` at the start
	// of a probe's place is one.
	for p.tok == PROBE && recordKeywords[p.lit] {
		f.Defs = append(f.Defs, p.parseCDef())
	}
	for p.tok != EOF {
		f.Probes = append(f.Probes, p.parseProbe())
	}
	return f, p, nil
}

func (p *parser) next()     { p.set(p.s.Scan()) }
func (p *parser) nextSpec() { p.set(p.s.ScanProbeSpec()) }

func (p *parser) set(pos Pos, tok Token, lit string) {
	if len(p.s.Errors) > 0 {
		p.errs = append(p.errs, p.s.Errors[0])
		panic(bailout{})
	}
	p.pos, p.tok, p.lit = pos, tok, lit
	p.end = Pos{Offset: pos.Offset + len(lit), Line: pos.Line, Col: pos.Col + len(lit)}
}

// peek returns the token after the current one without consuming anything.
func (p *parser) peek() (Token, string) {
	saved := p.s
	_, tok, lit := p.s.Scan()
	p.s = saved
	return tok, lit
}

func (p *parser) errorAt(from, to Pos, msg string) {
	p.errs = append(p.errs, &Error{From: from, To: to, Msg: msg})
	panic(bailout{})
}

// unexpected reports the current token in bison's words, since users (and
// tests ported from bpftrace) recognise those messages.
func (p *parser) unexpected(expecting string) {
	msg := "syntax error, unexpected " + tokDesc(p.tok)
	if expecting != "" {
		msg += ", expecting " + expecting
	}
	p.errorAt(p.pos, p.end, msg)
}

// tokDesc quotes "," as bison does for names containing a comma.
func tokDesc(t Token) string {
	if t == COMMA {
		return `","`
	}
	return t.String()
}

func (p *parser) expect(tok Token, expecting string) {
	if p.tok != tok {
		p.unexpected(expecting)
	}
	p.next()
}

func (p *parser) parseProbe() *Probe {
	p.node()
	start := p.nodes
	probe := &Probe{}
	for {
		if p.tok != PROBE {
			if p.tok == EOF {
				p.errorAt(probe.Specs[0].From, p.pos, "unexpected end of file, expected {")
			}
			p.unexpected("")
		}
		probe.Specs = append(probe.Specs, p.parseSpec())
		p.next()
		if p.tok != COMMA {
			break
		}
		p.nextSpec()
	}
	if p.tok == EOF {
		p.errorAt(probe.Specs[0].From, p.pos, "unexpected end of file, expected {")
	}
	if p.tok == QUO {
		p.next()
		p.inPred = true
		probe.Pred = p.parseExpr()
		p.inPred = false
		p.expect(QUO, "/")
	}
	probe.Body = p.parseBlock(true)
	probe.Nodes = p.nodes - start + 1
	return probe
}

// parseCDef takes a C definition, from struct, union or enum to its
// closing brace and the ';' after it, as one piece of text.
func (p *parser) parseCDef() *CDef {
	p.node()
	from := p.pos
	end, ok := p.s.skipCDef()
	if !ok {
		p.errorAt(from, end, "unterminated "+p.lit+" definition: no closing }")
	}
	d := &CDef{From: from, To: end, Text: string(p.s.src[from.Offset:end.Offset])}
	p.nextSpec()
	return d
}

func (p *parser) parseSpec() *ProbeSpec {
	p.node()
	if strings.Contains(p.lit, "$") {
		p.lit = p.specArgs(p.lit)
	}
	fields := SplitSpec(p.lit)
	spec := &ProbeSpec{Raw: p.lit, Provider: fields[0], From: p.pos, To: p.end}
	if long, ok := providerAliases[spec.Provider]; ok {
		spec.Provider = long
	}
	if len(fields) > 1 {
		spec.Parts = fields[1:]
	}
	return spec
}

// parseBlock parses `{ stmts }`. A probe body (top) is followed by the next
// probe's spec, which needs the spec scanner.
func (p *parser) parseBlock(top bool) *Block {
	p.enter()
	defer p.leave()
	if p.tok != LBRACE {
		p.unexpected("{")
	}
	p.node()
	b := &Block{Lbrace: p.pos}
	p.next()
	for p.tok != RBRACE {
		s := p.parseStmt()
		b.Stmts = append(b.Stmts, s)
		switch s.(type) {
		case *IfStmt, *WhileStmt, *UnrollStmt:
			// bpftrace neither needs nor allows ';' after these.
			continue
		}
		if p.tok == SEMI {
			p.next()
		} else if p.tok != RBRACE {
			p.unexpected("}")
		}
	}
	b.Rbrace = p.pos
	if top {
		p.nextSpec()
	} else {
		p.next()
	}
	return b
}

func (p *parser) parseStmt() Stmt {
	if p.tok == IF {
		return p.parseIf()
	}
	p.node()
	switch p.tok {
	case WHILE:
		s := &WhileStmt{While: p.pos}
		p.next()
		s.Cond = p.parseCond()
		s.Body = p.parseBlock(false)
		return s
	case UNROLL:
		s := &UnrollStmt{Unroll: p.pos}
		p.next()
		s.Count = p.parseCond()
		s.Body = p.parseBlock(false)
		return s
	case RETURN:
		s := &ReturnStmt{Return: p.pos, Semi: p.end}
		p.next()
		if p.startsExpr() {
			s.Value = p.parseExpr()
			s.Semi = s.Value.End()
		}
		return s
	}
	if !p.startsExpr() {
		// bison's wording: an empty statement list may end here.
		p.unexpected("}")
	}
	x := p.parseExpr()
	if op, ok := assignOps[p.tok]; ok {
		switch x.(type) {
		case *MapExpr, *VarExpr:
			s := &AssignStmt{Lhs: x, Op: op, OpPos: p.pos}
			p.next()
			s.Rhs = p.parseExpr()
			return s
		}
		// Anything else is left for parseBlock to report, as bpftrace
		// does: "unexpected =, expecting }".
	}
	return &ExprStmt{X: x}
}

func (p *parser) parseIf() *IfStmt {
	p.node()
	s := &IfStmt{If: p.pos}
	p.next()
	s.Cond = p.parseCond()
	s.Then = p.parseBlock(false)
	if p.tok == ELSE {
		p.next()
		if p.tok == IF {
			// An else-if chain is a nesting, however flat it looks.
			p.enter()
			s.Else = p.parseIf()
			p.leave()
		} else {
			s.Else = p.parseBlock(false)
		}
	}
	return s
}

func (p *parser) parseCond() Expr {
	p.expect(LPAREN, "(")
	x := p.parseExpr()
	p.expect(RPAREN, ")")
	return x
}

func (p *parser) startsExpr() bool {
	switch p.tok {
	case INT, STRING, IDENT, VAR, MAP, LPAREN, NOT, BITNOT, SUB, MUL, AND, INC, DEC:
		return true
	}
	return false
}

// parseExpr parses a full expression: a ternary, right-associative.
func (p *parser) parseExpr() Expr {
	p.enter()
	defer p.leave()
	x := p.parseBinary(1)
	if p.tok != QUEST {
		return x
	}
	p.node()
	p.next()
	then := p.parseExpr()
	p.expect(COLON, ":")
	return &Ternary{Cond: x, Then: then, Else: p.parseExpr()}
}

func (p *parser) binaryPrec() int {
	switch p.tok {
	case LOR:
		return 1
	case LAND:
		return 2
	case OR:
		return 3
	case XOR:
		return 4
	case AND:
		return 5
	case EQL, NEQ:
		return 6
	case LSS, LEQ, GTR, GEQ:
		return 7
	case SHL, SHR:
		return 8
	case ADD, SUB:
		return 9
	case QUO:
		if p.inPred {
			if next, _ := p.peek(); next == LBRACE {
				return 0
			}
		}
		return 10
	case MUL, REM:
		return 10
	}
	return 0
}

// parseBinary is precedence climbing over C's binary operators: loops for
// left associativity, recursion only to climb, so depth is bounded by the
// number of precedence levels.
func (p *parser) parseBinary(prec1 int) Expr {
	x := p.parseUnary()
	for {
		prec := p.binaryPrec()
		if prec < prec1 {
			return x
		}
		p.node()
		b := &Binary{Op: p.tok, OpPos: p.pos, X: x}
		p.next()
		b.Y = p.parseBinary(prec + 1)
		x = b
	}
}

func (p *parser) parseUnary() Expr {
	switch p.tok {
	case NOT, BITNOT, SUB, MUL, AND:
		p.node()
		u := &Unary{Op: p.tok, OpPos: p.pos}
		p.next()
		p.enter()
		u.X = p.parseUnary()
		p.leave()
		return u
	case INC, DEC:
		// bpftrace only increments variables and maps.
		p.node()
		e := &IncDec{Op: p.tok, OpPos: p.pos}
		p.next()
		if p.tok != VAR && p.tok != MAP {
			p.unexpected("")
		}
		e.X = p.parsePrimary()
		return e
	case LPAREN:
		if tok, lit := p.peek(); tok == IDENT && (intTypes[lit] || recordKeywords[lit]) {
			p.node()
			c := &Cast{From: p.pos}
			p.next()
			if recordKeywords[p.lit] {
				c.Type = p.recordType().Name
			} else {
				c.Type = p.lit
				p.next()
				for p.tok == MUL {
					c.Type += "*"
					p.next()
				}
			}
			p.expect(RPAREN, ")")
			p.enter()
			c.X = p.parseUnary()
			p.leave()
			return c
		}
	}
	return p.parsePostfix(p.parsePrimary())
}

// parsePostfix loops, but each postfix operator nests the tree one level
// deeper on its left, so each counts towards the depth bound as a unary
// operator does.
func (p *parser) parsePostfix(x Expr) Expr {
	depth := p.depth
	for {
		switch p.tok {
		case ARROW, DOT:
			p.node()
			p.enter()
			arrow := p.tok == ARROW
			p.next()
			switch p.tok {
			case IDENT, IF, ELSE, WHILE, UNROLL, RETURN:
				// Keywords are fine as field names: args->return.
			case INT:
				if arrow {
					p.unexpected("identifier")
				}
			default:
				p.unexpected("")
			}
			x = &FieldAccess{X: x, Arrow: arrow, Field: p.lit, FieldPos: p.pos, To: p.end}
			p.next()
		case LBRACK:
			p.node()
			p.next()
			ix := &Index{X: x, I: p.parseExpr(), To: p.end}
			p.expect(RBRACK, "]")
			x = ix
			p.enter()
		case INC, DEC:
			switch x.(type) {
			case *VarExpr, *MapExpr:
			default:
				p.depth = depth
				return x
			}
			p.node()
			p.enter()
			x = &IncDec{Op: p.tok, OpPos: p.pos, Post: true, X: x}
			p.next()
		default:
			p.depth = depth
			return x
		}
	}
}

func (p *parser) parsePrimary() Expr {
	from, to, lit := p.pos, p.end, p.lit
	switch p.tok {
	case INT, STRING, VAR, IDENT, MAP, LPAREN:
		p.node()
	}
	switch p.tok {
	case INT:
		p.next()
		// The scanner has already rejected literals that do not parse.
		v, _ := parseInt(lit)
		return &IntLit{From: from, To: to, Raw: lit, Value: v}
	case STRING:
		p.next()
		v, _, _, _ := unquote(lit)
		return &StrLit{From: from, To: to, Value: v}
	case VAR:
		p.next()
		if n, ok := positional(lit); ok {
			return p.positional(from, to, n)
		}
		return &VarExpr{From: from, To: to, Name: lit}
	case IDENT:
		p.next()
		if p.tok != LPAREN {
			return &Ident{From: from, To: to, Name: lit}
		}
		c := &Call{From: from, Name: lit, NameEnd: to}
		p.next()
		if (lit == "sizeof" || lit == "offsetof") && p.tok == IDENT && recordKeywords[p.lit] {
			// sizeof(struct NAME), offsetof(struct NAME, FIELD): the
			// type is an identifier, as it is to bpftrace ("Unknown
			// identifier: 'struct nosuch'").
			c.Args = []Expr{p.recordType()}
			if lit == "offsetof" && p.tok == COMMA {
				p.next()
				c.Args = append(c.Args, p.parseExpr())
			}
		} else if p.tok != RPAREN {
			c.Args = p.parseList()
		}
		c.To = p.end
		p.expect(RPAREN, `) or ","`)
		if lit == "str" {
			if s, ok := paramString(c); ok {
				return s
			}
		}
		return c
	case MAP:
		p.next()
		m := &MapExpr{From: from, To: to, Name: lit}
		if p.tok == LBRACK {
			p.next()
			m.Keys = p.parseList()
			m.To = p.end
			p.expect(RBRACK, `] or ","`)
		}
		return m
	case LPAREN:
		p.next()
		elems := p.parseList()
		to := p.end
		p.expect(RPAREN, `) or ","`)
		if len(elems) > 1 {
			return &Tuple{From: from, To: to, Elems: elems}
		}
		return &Paren{From: from, To: to, X: elems[0]}
	}
	p.unexpected("")
	return nil
}

func (p *parser) parseList() []Expr {
	list := []Expr{p.parseExpr()}
	for p.tok == COMMA {
		p.next()
		list = append(list, p.parseExpr())
	}
	return list
}
