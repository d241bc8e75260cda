package compile

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// Interpreter mode runs a probe over what its collector copied at the
// event, so a read of kernel memory through a pointer (a struct field
// through BTF, a kfunc argument's pointee) finds its bytes only if the
// collector read them too. The generator notes each such read with the
// expression whose value is the pointer it reads through; once the probe
// is generated, when every assignment to its scratch variables is known,
// each is spelled as the chains of reads that compute that pointer from
// something the collector has at the event — the current task, or a
// pointer in the context — (program.KRead), which the collector then
// makes step by step. A read through a pointer computed otherwise (a map
// value, arithmetic) cannot be made ahead: the probe is then one only
// the kernel can run (program.Probe.KernelOnly).

// pendingKRead is one read through a pointer, spelled as chains where
// the generator met it, with the variables as they are there.
type pendingKRead struct {
	site   syntax.Expr // what KernelOnly names
	chains []kchain
	off    int    // past the chains' pointer
	why    string // why it cannot be spelled
	size   int
	str    bool
	// must: a read that cannot be spelled makes the probe KernelOnly
	// (struct fields, kfunc arguments); else it fails in the
	// interpreter as a faulting read does, counted in the run's
	// warning, as reads through other pointers always have.
	must bool
}

// kchain is the value of a pointer as the collector computes it: the
// task, or the pointer at context offset ctx, then one pointer read per
// offset, each at the previous pointer plus the offset.
type kchain struct {
	task bool
	ctx  int
	offs []int
}

// maxKChains bounds the chains one expression may take (a variable
// assigned in several places takes one per assignment), and
// maxKDepth the variables and casts a chain is followed through.
const (
	maxKChains = program.MaxKReadSteps
	maxKDepth  = 32
	// maxKVars: a probe's scratch variables fit in its stack.
	maxKVars = maxStack / 8
)

// noteKRead records a read of size bytes at off past where base is (the
// pointer, or the struct value whose address it is).
func (g *gen) noteKRead(site, base syntax.Expr, off, size int, str, must bool) {
	chains, at, why := g.structChains(base, 0)
	g.kreads = append(g.kreads, pendingKRead{site: site, chains: chains, off: at + off, why: why, size: size, str: str, must: must})
}

// finishKReads spells the probe's reads as p.KReads, or names the first
// that cannot be in p.KernelOnly.
func (g *gen) finishKReads(p *program.Probe) {
	if g.in.kind == program.Begin || g.in.kind == program.End {
		// Interpreter mode runs BEGIN and END in the broker, with no
		// event and no collector: no task, no reads.
		if p.KernelOnly != "" {
			return
		}
		for _, r := range g.kreads {
			if r.must {
				p.KernelOnly = fmt.Sprintf("%s (in %s, which interpreter mode runs with no event)", g.text(r.site, "a read of kernel memory"), g.in.kind)
				return
			}
		}
		if g.task {
			p.KernelOnly = fmt.Sprintf("curtask (in %s, which interpreter mode runs with no event)", g.in.kind)
		}
		return
	}
	p.Task = g.task
	var out []program.KRead
	steps := 0
	for _, r := range g.kreads {
		chains, off, why := r.chains, r.off, r.why
		if why == "" && r.size > program.MaxKReadSize {
			why = fmt.Sprintf("a read of %d bytes, more than the %d interpreter mode's collector copies", r.size, program.MaxKReadSize)
		}
		if why != "" {
			if r.must && p.KernelOnly == "" {
				p.KernelOnly = fmt.Sprintf("%s (through %s)", g.text(r.site, "a read of kernel memory"), why)
			}
			continue
		}
		for _, c := range chains {
			kr := program.KRead{Task: c.task, Ctx: c.ctx, Offs: append(append([]int(nil), c.offs...), off), Size: r.size, Str: r.str}
			if kr.Offs[len(kr.Offs)-1] >= program.MaxKReadOffset || kr.Offs[len(kr.Offs)-1] < 0 {
				if r.must && p.KernelOnly == "" {
					p.KernelOnly = fmt.Sprintf("%s (at an offset of %d bytes)", g.text(r.site, "a read of kernel memory"), kr.Offs[len(kr.Offs)-1])
				}
				continue
			}
			out = addKRead(out, kr)
		}
	}
	for _, r := range out {
		steps += len(r.Offs)
	}
	if steps > program.MaxKReadSteps && p.KernelOnly == "" {
		p.KernelOnly = fmt.Sprintf("its reads of kernel memory (%d reads at each event, more than the %d interpreter mode's collector makes)", steps, program.MaxKReadSteps)
	}
	if p.KernelOnly == "" {
		p.KReads = out
	}
}

// addKRead adds r to rs unless a read there makes its reads already,
// and drops those r makes.
func addKRead(rs []program.KRead, r program.KRead) []program.KRead {
	for _, have := range rs {
		if have.Covers(r) {
			return rs
		}
	}
	out := rs[:0]
	for _, have := range rs {
		if !r.Covers(have) {
			out = append(out, have)
		}
	}
	return append(out, r)
}

// structChains is where x is: the chains of the pointer it is (or that
// leads to the struct value it is), and its offset from that pointer,
// as recordAddr computes it.
func (g *gen) structChains(x syntax.Expr, depth int) ([]kchain, int, string) {
	if depth > maxKDepth {
		return nil, 0, "a chain of pointers too long to follow"
	}
	if g.typeOf(x).k != kRecord {
		cs, why := g.ptrChains(x, depth+1)
		return cs, 0, why
	}
	switch x := unparen(x).(type) {
	case *syntax.FieldAccess:
		cs, off, why := g.structChains(x.X, depth+1)
		return cs, off + g.in.members[x].off, why
	case *syntax.Index:
		cs, off, why := g.structChains(x.X, depth+1)
		return cs, off + g.in.members[x].off, why
	case *syntax.Unary:
		cs, why := g.ptrChains(x.X, depth+1)
		return cs, 0, why
	}
	return nil, 0, "a struct value the collector cannot find"
}

// ptrChains are the chains whose values x, a pointer, may have: why says
// why x is not such a value.
func (g *gen) ptrChains(x syntax.Expr, depth int) ([]kchain, string) {
	if depth > maxKDepth {
		return nil, "a chain of pointers too long to follow"
	}
	deref := func(cs []kchain, off int) []kchain {
		out := make([]kchain, len(cs))
		for i, c := range cs {
			out[i] = kchain{task: c.task, ctx: c.ctx, offs: append(append([]int(nil), c.offs...), off)}
		}
		return out
	}
	switch x := unparen(x).(type) {
	case *syntax.Cast:
		return g.ptrChains(x.X, depth+1)
	case *syntax.Ident:
		if x.Name == "curtask" {
			return []kchain{{task: true}}, ""
		}
		if off, ok := g.ctxPointerOff(x.Name); ok {
			return []kchain{{ctx: off}}, ""
		}
	case *syntax.FieldAccess:
		if g.isMember(x) {
			cs, off, why := g.structChains(x.X, depth+1)
			if why != "" {
				return nil, why
			}
			return deref(cs, off+g.in.members[x].off), ""
		}
		if onArgs(x) {
			if f := findField(g.in.fields, x.Field); f != nil && (f.Kind == FieldPtr || f.Size == 8) && f.Offset+8 <= program.MaxContext {
				return []kchain{{ctx: f.Offset}}, ""
			}
		}
	case *syntax.Index:
		if g.isMember(x) {
			cs, off, why := g.structChains(x.X, depth+1)
			if why != "" {
				return nil, why
			}
			return deref(cs, off+g.in.members[x].off), ""
		}
		if n, ok := constInt(x.I); ok && n >= 0 && n < program.MaxKReadOffset/8 && g.typeOf(x.X).depth > 1 && !g.typeOf(x.X).user {
			cs, why := g.ptrChains(x.X, depth+1)
			if why != "" {
				return nil, why
			}
			return deref(cs, int(n)*8), ""
		}
	case *syntax.Unary:
		if x.Op == syntax.MUL && g.typeOf(x.X).depth > 1 && !g.typeOf(x.X).user {
			cs, why := g.ptrChains(x.X, depth+1)
			if why != "" {
				return nil, why
			}
			return deref(cs, 0), ""
		}
	case *syntax.Ternary:
		a, why := g.ptrChains(x.Then, depth+1)
		if why != "" {
			return nil, why
		}
		b, why := g.ptrChains(x.Else, depth+1)
		if why != "" {
			return nil, why
		}
		if len(a)+len(b) > maxKChains {
			return nil, "too many pointers to follow"
		}
		return append(a, b...), ""
	case *syntax.VarExpr:
		v, ok := g.kget(x.Name)
		if !ok {
			return nil, x.Name + ", which holds no pointer"
		}
		return v.cs, v.why
	}
	return nil, g.operand(x)
}

// The scratch variables' pointers are followed along the code as it is
// generated (flow-sensitively): an assignment gives its variable the
// chains of its value where it stands, branches join theirs, and a
// variable assigned in a while loop holds, in and after it, what no
// chain spells (each pass would follow the pointer once more). unroll
// generates its body each time, which follows it each time.

// kvar is what a scratch variable's pointer is: its chains, or why it
// has none.
type kvar struct {
	cs  []kchain
	why string
}

// kassign notes the assignment s to the scratch variable name.
func (g *gen) kassign(name string, s *syntax.AssignStmt) {
	var v kvar
	if s.Op != syntax.ASSIGN {
		v.why = name + ", which is computed"
	} else if t := g.typeOf(s.Rhs); t.k != kInt {
		v.why = name + ", which holds no pointer"
	} else {
		v.cs, v.why = g.ptrChains(s.Rhs, 0)
	}
	g.kset(name, v)
}

// kenv is the variables' pointers at a point of the code. Branches share
// it until one assigns (copy on write), so that a probe's ifs cost what
// their branches assign, not its variables each.
type kenv struct {
	vars   map[string]kvar
	frozen bool // shared with a branch: copied before a write
}

func (g *gen) kget(name string) (kvar, bool) {
	if g.kenv == nil {
		return kvar{}, false
	}
	v, ok := g.kenv.vars[name]
	return v, ok
}

func (g *gen) kset(name string, v kvar) {
	if _, ok := g.kget(name); !ok && g.kenv != nil && len(g.kenv.vars) >= maxKVars {
		// More variables than the BPF stack holds: the probe fails to
		// compile anyway, and the copies stay small.
		return
	}
	switch {
	case g.kenv == nil:
		g.kenv = &kenv{vars: map[string]kvar{}}
	case g.kenv.frozen:
		g.kenv = &kenv{vars: maps.Clone(g.kenv.vars)}
	}
	g.kenv.vars[name] = v
}

// kfork is the variables' state before a branch.
func (g *gen) kfork() *kenv {
	if g.kenv != nil {
		g.kenv.frozen = true
	}
	return g.kenv
}

// kjoin joins the state a branch left with g.kenv, the other's: a
// variable either may hold what either gave it.
func (g *gen) kjoin(other *kenv) {
	if other == nil || other == g.kenv {
		return
	}
	for name, o := range other.vars {
		v, ok := g.kget(name)
		switch {
		case !ok:
			g.kset(name, o) // else NULL, whose reads fail
		case v.why != "":
		case o.why != "":
			g.kset(name, o)
		default:
			cs := slices.Clone(v.cs)
			for _, c := range o.cs {
				if !slices.ContainsFunc(cs, func(h kchain) bool { return h.equal(c) }) {
					cs = append(cs, c)
				}
			}
			if len(cs) > maxKChains {
				g.kset(name, kvar{why: "too many pointers to follow"})
			} else {
				g.kset(name, kvar{cs: cs})
			}
		}
	}
}

// kloop marks the variables assigned in a while loop's body, its
// condition included: statements, and ++ and -- inside expressions
// (found by position among the compiler's).
func (g *gen) kloop(s *syntax.WhileStmt) {
	mark := func(name string) { g.kset(name, kvar{why: name + ", which a while loop assigns"}) }
	var stmt func(syntax.Stmt)
	stmt = func(st syntax.Stmt) {
		switch st := st.(type) {
		case *syntax.Block:
			for _, x := range st.Stmts {
				stmt(x)
			}
		case *syntax.AssignStmt:
			if v, ok := st.Lhs.(*syntax.VarExpr); ok {
				mark(v.Name)
			}
		case *syntax.IfStmt:
			stmt(st.Then)
			if st.Else != nil {
				stmt(st.Else)
			}
		case *syntax.WhileStmt:
			stmt(st.Body)
		case *syntax.UnrollStmt:
			stmt(st.Body)
		}
	}
	stmt(s.Body)
	from, to := s.Pos().Offset, s.End().Offset
	for e := range g.c.incdecs {
		if v, ok := e.X.(*syntax.VarExpr); ok && e.Pos().Offset >= from && e.End().Offset <= to {
			mark(v.Name)
		}
	}
}

func (c kchain) equal(o kchain) bool {
	return c.task == o.task && c.ctx == o.ctx && slices.Equal(c.offs, o.offs)
}

// ctxPointerOff is where in the probe's context its argument name (a
// register of a kprobe or uprobe, a raw tracepoint's argN, a kretfunc's
// retval) is.
func (g *gen) ctxPointerOff(name string) (int, bool) {
	switch g.in.kind {
	case program.Uprobe, program.Uretprobe, program.Kprobe, program.Kretprobe:
		o, ok := ptRegs[name]
		return int(o), ok
	case program.RawTracepoint, program.TpBTF:
		if n, err := strconv.Atoi(strings.TrimPrefix(name, "arg")); err == nil && strings.HasPrefix(name, "arg") && n >= 0 && n < 12 {
			return 8 * n, true
		}
	case program.Fexit:
		if f := findField(g.in.fields, retvalField); f != nil && name == "retval" {
			return f.Offset, true
		}
	}
	return 0, false
}
