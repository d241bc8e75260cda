// Package syntax is the front end of the tracebroker script language, a
// dialect of bpftrace: positions, the lexer, the parser and the syntax tree.
// It knows nothing about types or eBPF; package compile does.
package syntax

import "strings"

import "fmt"

// Pos is a position in a script. Line and Col are 1-based; Col counts bytes.
// The zero Pos means "unknown".
type Pos struct {
	Offset int
	Line   int
	Col    int
}

func (p Pos) IsValid() bool { return p.Line > 0 }

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// Node is any node of the tree. End is the position just past the node.
type Node interface {
	Pos() Pos
	End() Pos
}

// File is a parsed script.
type File struct {
	Name   string // as shown in errors: a path, or "stdin" for -e
	Src    []byte
	Args   []string // the positional parameters the file was parsed with (ParseArgs)
	Defs   []*CDef  // the C type definitions before the probes
	Probes []*Probe
}

// CDef is a C type definition a script starts with, `struct Foo { int
// m; };`, kept as its text: C is for package ctypes to read.
type CDef struct {
	From, To Pos
	Text     string
}

func (d *CDef) Pos() Pos { return d.From }
func (d *CDef) End() Pos { return d.To }

// PosAt is where byte off of the definition's text is in the file.
func (d *CDef) PosAt(off int) Pos {
	off = max(0, min(off, len(d.Text)))
	p := Pos{Offset: d.From.Offset + off, Line: d.From.Line, Col: d.From.Col + off}
	if i := strings.LastIndexByte(d.Text[:off], '\n'); i >= 0 {
		p.Line += strings.Count(d.Text[:off], "\n")
		p.Col = off - i
	}
	return p
}

// Probe is one block: `spec, spec /pred/ { body }`.
type Probe struct {
	Specs []*ProbeSpec
	Pred  Expr // nil when there is no predicate
	Body  *Block
	// Nodes is the size of the block's tree, which passes repeated for
	// each attach point of its specs cost each time.
	Nodes int
}

func (p *Probe) Pos() Pos { return p.Specs[0].Pos() }
func (p *Probe) End() Pos { return p.Body.End() }

// ProbeSpec is one attach point as written, e.g. `tracepoint:syscalls:sys_enter_*`,
// `t:syscalls:sys_enter_openat`, `interval:s:1`, `BEGIN`.
// Provider is normalised to its long name ("tracepoint", "interval",
// "BEGIN", "END", "kprobe", "uprobe", ...); short aliases and lower-case
// begin/end are resolved by the parser. Parts are the colon-separated fields
// after the provider, verbatim (wildcards included).
type ProbeSpec struct {
	Raw      string
	Provider string
	Parts    []string
	From, To Pos
}

func (s *ProbeSpec) Pos() Pos { return s.From }
func (s *ProbeSpec) End() Pos { return s.To }

// Stmt is a statement.
type Stmt interface {
	Node
	stmtNode()
}

type Block struct {
	Lbrace, Rbrace Pos // Rbrace is the position of '}'; End is one past it
	Stmts          []Stmt
}

// ExprStmt is an expression evaluated for its effect: a call, `$x++`.
type ExprStmt struct {
	X Expr
}

// AssignStmt is `LHS = RHS` or a compound assignment `LHS op= RHS`.
// LHS is a *MapExpr or a *VarExpr. Op is ASSIGN for plain assignment,
// otherwise the binary operator of the compound form (ADD for +=, ...).
type AssignStmt struct {
	Lhs   Expr
	Op    Token
	OpPos Pos
	Rhs   Expr
}

type IfStmt struct {
	If   Pos
	Cond Expr
	Then *Block
	Else Stmt // nil, *Block or *IfStmt
}

type WhileStmt struct {
	While Pos
	Cond  Expr
	Body  *Block
}

type UnrollStmt struct {
	Unroll Pos
	Count  Expr
	Body   *Block
}

// ReturnStmt is `return;` or `return EXPR;` (gatekeeper policies).
type ReturnStmt struct {
	Return Pos
	Value  Expr // may be nil
	Semi   Pos  // end of the statement
}

func (b *Block) Pos() Pos { return b.Lbrace }
func (b *Block) End() Pos { return Pos{b.Rbrace.Offset + 1, b.Rbrace.Line, b.Rbrace.Col + 1} }

func (s *ExprStmt) Pos() Pos   { return s.X.Pos() }
func (s *ExprStmt) End() Pos   { return s.X.End() }
func (s *AssignStmt) Pos() Pos { return s.Lhs.Pos() }
func (s *AssignStmt) End() Pos { return s.Rhs.End() }
func (s *IfStmt) Pos() Pos     { return s.If }
func (s *IfStmt) End() Pos {
	if s.Else != nil {
		return s.Else.End()
	}
	return s.Then.End()
}
func (s *WhileStmt) Pos() Pos  { return s.While }
func (s *WhileStmt) End() Pos  { return s.Body.End() }
func (s *UnrollStmt) Pos() Pos { return s.Unroll }
func (s *UnrollStmt) End() Pos { return s.Body.End() }
func (s *ReturnStmt) Pos() Pos { return s.Return }
func (s *ReturnStmt) End() Pos { return s.Semi }

func (*Block) stmtNode()      {}
func (*ExprStmt) stmtNode()   {}
func (*AssignStmt) stmtNode() {}
func (*IfStmt) stmtNode()     {}
func (*WhileStmt) stmtNode()  {}
func (*UnrollStmt) stmtNode() {}
func (*ReturnStmt) stmtNode() {}

// Expr is an expression.
type Expr interface {
	Node
	exprNode()
}

// IntLit is a decimal or hex integer literal (also 1_000, 1e6 as bpftrace allows).
type IntLit struct {
	From, To Pos
	Raw      string
	Value    uint64
	// Param marks a positional parameter's value ($1 given as 42): Raw
	// is its text, which str() takes. Unset is one the command line did
	// not give ($2 of one word): 0, or "" in str().
	Param, Unset bool
}

// StrLit is a string literal; Value has escapes (\n \t \\ \" \xNN \NNN) resolved.
type StrLit struct {
	From, To Pos
	Value    string
}

// Ident is a bare identifier: a builtin (pid, comm, args, ...), or a keyword
// value used as an expression.
type Ident struct {
	From, To Pos
	Name     string
}

// VarExpr is a scratch variable; Name includes the '$'.
type VarExpr struct {
	From, To Pos
	Name     string
}

// MapExpr is `@name` or `@name[k1, k2]`; Name includes the '@' ("@" for the
// anonymous map). Keys is nil when there is no subscript.
type MapExpr struct {
	From, To Pos
	Name     string
	Keys     []Expr
}

// Call is `name(args)`: functions such as count(), printf(), str().
type Call struct {
	From, To Pos // From: start of the name; To: one past ')'
	Name     string
	NameEnd  Pos
	Args     []Expr
}

type Binary struct {
	Op    Token
	OpPos Pos
	X, Y  Expr
}

// Unary is a prefix operator: ! ~ - * &.
type Unary struct {
	Op    Token
	OpPos Pos
	X     Expr
}

// IncDec is ++/-- before (Post=false) or after (Post=true) X.
type IncDec struct {
	Op    Token // INC or DEC
	OpPos Pos
	Post  bool
	X     Expr
}

type Ternary struct {
	Cond, Then, Else Expr
}

// FieldAccess is `X->Field` (Arrow) or `X.Field`; Field may be a number for
// tuple access (`$t.0`).
type FieldAccess struct {
	X        Expr
	Arrow    bool
	Field    string
	FieldPos Pos
	To       Pos
}

// Index is `X[I]` on something that is not a map.
type Index struct {
	X  Expr
	I  Expr
	To Pos
}

// Tuple is `(a, b, ...)` with at least two elements.
type Tuple struct {
	From, To Pos
	Elems    []Expr
}

// Cast is `(type)X`, e.g. `(uint8)$x`.
type Cast struct {
	From Pos
	Type string
	X    Expr
}

// Paren records explicit parentheses so that errors can point at them.
type Paren struct {
	From, To Pos
	X        Expr
}

func (e *IntLit) Pos() Pos      { return e.From }
func (e *IntLit) End() Pos      { return e.To }
func (e *StrLit) Pos() Pos      { return e.From }
func (e *StrLit) End() Pos      { return e.To }
func (e *Ident) Pos() Pos       { return e.From }
func (e *Ident) End() Pos       { return e.To }
func (e *VarExpr) Pos() Pos     { return e.From }
func (e *VarExpr) End() Pos     { return e.To }
func (e *MapExpr) Pos() Pos     { return e.From }
func (e *MapExpr) End() Pos     { return e.To }
func (e *Call) Pos() Pos        { return e.From }
func (e *Call) End() Pos        { return e.To }
func (e *Binary) Pos() Pos      { return LeftOperand(e).Pos() }
func (e *Binary) End() Pos      { return e.Y.End() }
func (e *Unary) Pos() Pos       { return e.OpPos }
func (e *Unary) End() Pos       { return e.X.End() }
func (e *Ternary) Pos() Pos     { return e.Cond.Pos() }
func (e *Ternary) End() Pos     { return e.Else.End() }
func (e *FieldAccess) Pos() Pos { return e.X.Pos() }
func (e *FieldAccess) End() Pos { return e.To }
func (e *Index) Pos() Pos       { return e.X.Pos() }
func (e *Index) End() Pos       { return e.To }
func (e *Tuple) Pos() Pos       { return e.From }
func (e *Tuple) End() Pos       { return e.To }
func (e *Cast) Pos() Pos        { return e.From }
func (e *Cast) End() Pos        { return e.X.End() }
func (e *Paren) Pos() Pos       { return e.From }
func (e *Paren) End() Pos       { return e.To }
func (e *IncDec) Pos() Pos {
	if e.Post {
		return e.X.Pos()
	}
	return e.OpPos
}
func (e *IncDec) End() Pos {
	if e.Post {
		return Pos{e.OpPos.Offset + 2, e.OpPos.Line, e.OpPos.Col + 2}
	}
	return e.X.End()
}

func (*IntLit) exprNode()      {}
func (*StrLit) exprNode()      {}
func (*Ident) exprNode()       {}
func (*VarExpr) exprNode()     {}
func (*MapExpr) exprNode()     {}
func (*Call) exprNode()        {}
func (*Binary) exprNode()      {}
func (*Unary) exprNode()       {}
func (*IncDec) exprNode()      {}
func (*Ternary) exprNode()     {}
func (*FieldAccess) exprNode() {}
func (*Index) exprNode()       {}
func (*Tuple) exprNode()       {}
func (*Cast) exprNode()        {}
func (*Paren) exprNode()       {}

// LeftOperand is the first operand of a chain of binary operators
// (`a` of `a + b - c`): such chains nest on the left as deep as they are
// long, so everything that walks one loops rather than recurses.
func LeftOperand(e *Binary) Expr {
	x := e.X
	for {
		b, ok := x.(*Binary)
		if !ok {
			return x
		}
		x = b.X
	}
}

// LeftSpine appends to spine e and the binary operators below it on the
// left, from e down: for `a + b - c` (parsed as (a + b) - c), the - and
// then the +. The last one's X is LeftOperand(e). Passes over the tree
// use it to walk such a chain with a loop.
func LeftSpine(spine []*Binary, e *Binary) []*Binary {
	for {
		spine = append(spine, e)
		x, ok := e.X.(*Binary)
		if !ok {
			return spine
		}
		e = x
	}
}
