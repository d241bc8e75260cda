package compile

import "github.com/tracebroker/tracebroker/broker/script/syntax"

// Chains of binary operators (`a + b + c`, `x && y && z`) nest on the left
// as deep as they are long, and their length is bounded only by the size
// of the tree (syntax.MaxNodes). Checking and generating code walk them
// with a loop over the chain, recursing only into right operands, whose
// depth the parser bounds, so that no chain can exhaust the stack.

// binary types a chain, operands left to right as recursion would.
func (c *compiler) binary(in *instance, e *syntax.Binary) ty {
	var buf [8]*syntax.Binary
	spine := syntax.LeftSpine(buf[:0], e)
	t := c.expr(in, spine[len(spine)-1].X)
	for i := len(spine) - 1; i >= 0; i-- {
		n := spine[i]
		t = c.binaryOf(in, n, t, c.expr(in, n.Y))
		if i > 0 {
			in.types[n] = t // c.expr records e's own
		}
	}
	return t
}

// binary evaluates a chain into rAcc. The code is what recursion would
// generate, labels numbered alike: && and || take theirs before their
// left operand is generated.
func (g *gen) binary(e *syntax.Binary) {
	var buf [8]*syntax.Binary
	spine := syntax.LeftSpine(buf[:0], e)
	labels := make([][2]string, len(spine))
	for i, n := range spine {
		if n.Op == syntax.LAND || n.Op == syntax.LOR {
			labels[i] = [2]string{g.newLabel(), g.newLabel()}
		}
	}
	i := len(spine) - 1
	if n := spine[i]; g.typeOf(n.X).k == kStr && g.typeOf(n.Y).k == kStr {
		// Only the innermost can compare strings: the others' left
		// operands are integers.
		g.strEqual(n)
		i--
	} else if isBuffer(g.typeOf(n.X)) && isBuffer(g.typeOf(n.Y)) || sameArrays(g.typeOf(n.X), g.typeOf(n.Y)) {
		g.bufEqual(n)
		i--
	} else {
		g.intExpr(n.X)
	}
	for ; i >= 0; i-- {
		g.binaryOf(spine[i], labels[i][0], labels[i][1])
	}
}

// varRefs are the scratch variables e reads where ctxPointer may look —
// through parentheses, ?:, [], unary operators and binary operators —
// found with a loop, since e may hold a chain (contextVars).
func varRefs(e syntax.Expr) []string {
	var out []string
	stack := []syntax.Expr{e}
	for len(stack) > 0 {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch e := e.(type) {
		case *syntax.VarExpr:
			out = append(out, e.Name)
		case *syntax.Paren:
			stack = append(stack, e.X)
		case *syntax.Ternary:
			stack = append(stack, e.Then, e.Else)
		case *syntax.Index:
			stack = append(stack, e.X)
		case *syntax.Unary:
			stack = append(stack, e.X)
		case *syntax.Binary:
			stack = append(stack, e.X, e.Y)
		}
	}
	return out
}
