package syntax

import "fmt"

// Bounds on what the parser builds, so that no input can exhaust the
// stack of the parser or of the passes that walk the tree after it
// (checking, code generation), nor make them allocate without bound.
//
// Depth counts nesting: a block, an else-if, a parenthesised or
// bracketed expression, a function argument, a branch of ?:, a unary
// operator or cast, and a postfix ->, ., [] or ++. Chains of binary
// operators are left-deep trees of any length; they cost no depth here
// and the passes after the parser walk them with loops.
const (
	// MaxDepth: the deepest of bpftrace's tools and this project's
	// scripts nests 7 levels (TestRealScriptsWithinBounds measures
	// them). 128 is eighteen times that, and keeps the deepest recursion
	// of the passes after the parser within a few MB of stack.
	MaxDepth = 128
	// MaxNodes bounds the tree: the largest of the same scripts has 923
	// nodes. 32,768 is over thirty times that; the compiler bounds the
	// work of checking and generating code for each of them
	// (compile/limits.go).
	MaxNodes = 1 << 15
)

func (p *parser) enter() {
	p.depth++
	p.deepest = max(p.deepest, p.depth)
	if p.depth > MaxDepth {
		p.errorAt(p.pos, p.end, fmt.Sprintf("program is nested too deeply (more than %d levels)", MaxDepth))
	}
}

func (p *parser) leave() { p.depth-- }

// node counts one node of the tree about to be built.
func (p *parser) node() {
	p.nodes++
	if p.nodes > MaxNodes {
		p.errorAt(p.pos, p.end, fmt.Sprintf("program is too large (more than %d expressions, statements and probes)", MaxNodes))
	}
}
