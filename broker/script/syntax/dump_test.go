package syntax

import (
	"fmt"
	"strconv"
	"strings"
)

// Dump renders a tree as a compact S-expression so that parser tests can
// state the expected shape in one line.
func Dump(n Node) string {
	var b strings.Builder
	dump(&b, n)
	return b.String()
}

func dumpFile(f *File) string {
	var parts []string
	for _, p := range f.Probes {
		parts = append(parts, Dump(p))
	}
	return strings.Join(parts, "\n")
}

func dump(b *strings.Builder, n Node) {
	list := func(head string, xs ...Node) {
		b.WriteString("(" + head)
		for _, x := range xs {
			b.WriteByte(' ')
			dump(b, x)
		}
		b.WriteByte(')')
	}
	switch n := n.(type) {
	case *Probe:
		b.WriteString("(probe")
		for _, s := range n.Specs {
			b.WriteByte(' ')
			dump(b, s)
		}
		if n.Pred != nil {
			b.WriteByte(' ')
			list("pred", n.Pred)
		}
		b.WriteByte(' ')
		dump(b, n.Body)
		b.WriteByte(')')
	case *ProbeSpec:
		b.WriteString(strings.Join(append([]string{n.Provider}, n.Parts...), ":"))
	case *Block:
		b.WriteByte('{')
		for i, s := range n.Stmts {
			if i > 0 {
				b.WriteByte(' ')
			}
			dump(b, s)
		}
		b.WriteByte('}')
	case *ExprStmt:
		dump(b, n.X)
	case *AssignStmt:
		op := "="
		if n.Op != ASSIGN {
			op = n.Op.String() + "="
		}
		list(op, n.Lhs, n.Rhs)
	case *IfStmt:
		if n.Else != nil {
			list("if", n.Cond, n.Then, n.Else)
		} else {
			list("if", n.Cond, n.Then)
		}
	case *WhileStmt:
		list("while", n.Cond, n.Body)
	case *UnrollStmt:
		list("unroll", n.Count, n.Body)
	case *ReturnStmt:
		if n.Value != nil {
			list("return", n.Value)
		} else {
			b.WriteString("(return)")
		}
	case *IntLit:
		b.WriteString(strconv.FormatUint(n.Value, 10))
	case *StrLit:
		b.WriteString(strconv.Quote(n.Value))
	case *Ident:
		b.WriteString(n.Name)
	case *VarExpr:
		b.WriteString(n.Name)
	case *MapExpr:
		if n.Keys == nil {
			b.WriteString(n.Name)
		} else {
			list(n.Name, exprNodes(n.Keys)...)
		}
	case *Call:
		b.WriteString(n.Name + "(")
		for i, a := range n.Args {
			if i > 0 {
				b.WriteString(", ")
			}
			dump(b, a)
		}
		b.WriteByte(')')
	case *Binary:
		list(n.Op.String(), n.X, n.Y)
	case *Unary:
		list(n.Op.String(), n.X)
	case *IncDec:
		if n.Post {
			b.WriteByte('(')
			dump(b, n.X)
			b.WriteString(" " + n.Op.String() + ")")
		} else {
			list(n.Op.String(), n.X)
		}
	case *Ternary:
		list("?", n.Cond, n.Then, n.Else)
	case *FieldAccess:
		op := "."
		if n.Arrow {
			op = "->"
		}
		b.WriteString("(" + op + " ")
		dump(b, n.X)
		b.WriteString(" " + n.Field + ")")
	case *Index:
		list("index", n.X, n.I)
	case *Tuple:
		list("tuple", exprNodes(n.Elems)...)
	case *Cast:
		list("cast "+n.Type, n.X)
	case *Paren:
		list("paren", n.X)
	default:
		fmt.Fprintf(b, "<%T>", n)
	}
}

func exprNodes(xs []Expr) []Node {
	ns := make([]Node, len(xs))
	for i, x := range xs {
		ns[i] = x
	}
	return ns
}

// children lists a node's direct children, for walking the whole tree.
func children(n Node) []Node {
	var out []Node
	add := func(xs ...Node) { out = append(out, xs...) }
	switch n := n.(type) {
	case *Probe:
		for _, s := range n.Specs {
			add(s)
		}
		if n.Pred != nil {
			add(n.Pred)
		}
		add(n.Body)
	case *Block:
		for _, s := range n.Stmts {
			add(s)
		}
	case *ExprStmt:
		add(n.X)
	case *AssignStmt:
		add(n.Lhs, n.Rhs)
	case *IfStmt:
		add(n.Cond, n.Then)
		if n.Else != nil {
			add(n.Else)
		}
	case *WhileStmt:
		add(n.Cond, n.Body)
	case *UnrollStmt:
		add(n.Count, n.Body)
	case *ReturnStmt:
		if n.Value != nil {
			add(n.Value)
		}
	case *MapExpr:
		add(exprNodes(n.Keys)...)
	case *Call:
		add(exprNodes(n.Args)...)
	case *Binary:
		add(n.X, n.Y)
	case *Unary:
		add(n.X)
	case *IncDec:
		add(n.X)
	case *Ternary:
		add(n.Cond, n.Then, n.Else)
	case *FieldAccess:
		add(n.X)
	case *Index:
		add(n.X, n.I)
	case *Tuple:
		add(exprNodes(n.Elems)...)
	case *Cast:
		add(n.X)
	case *Paren:
		add(n.X)
	}
	return out
}

// walk calls fn for n and, depth first, for every node below it, with the
// node's parent (nil for n).
func walk(n Node, parent Node, fn func(n, parent Node)) {
	fn(n, parent)
	for _, c := range children(n) {
		walk(c, n, fn)
	}
}
