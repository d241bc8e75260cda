package compile

import (
	"fmt"
	"slices"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// Saved pointers. A stock tool saves a pointer at one probe and reads
// the string behind it at another: opensnoop saves args->filename at
// sys_enter_openat in @filename[tid] and prints str(@filename[tid]) at
// sys_exit_openat. In the kernel the later read finds the memory; in
// interpreter mode it runs over the exit's record, which holds only what
// the collector copied at the exit. So the pointer's memory is copied
// where the pointer is taken: for each str() whose pointer comes from a
// map, every context pointer stored into that map (directly, through
// scratch variables, or through other maps) is captured at the probe
// that stores it, marked Saved so that the interpreter keeps the copy
// by process and address for the later read. A read of such a value that
// no copy can answer — pointer arithmetic on it, bytes rather than a
// string (buf, *, []), a map that is also given values computed from
// integers — makes the reading probe one only the kernel can run
// (KernelOnly), naming the read. JIT mode's code is unchanged: the
// captures and the refusals concern the collector and the interpreter
// only.

// origin is where a value may come from, as far as this analysis follows
// it: capturable context pointers (with the probe that takes them), maps
// read as they are, maps read under arithmetic, and the first value
// computed otherwise.
type origin struct {
	ctx   []savedCtx
	maps  []string
	arith []string
	other syntax.Expr
}

// savedCtx is a context pointer of probe (an index into the compiler's
// instances and the program's probes).
type savedCtx struct {
	probe int
	cs    program.CtxString
}

func (o *origin) add(p origin) {
	for _, c := range p.ctx {
		if !slices.Contains(o.ctx, c) {
			o.ctx = append(o.ctx, c)
		}
	}
	for _, m := range p.maps {
		if !slices.Contains(o.maps, m) {
			o.maps = append(o.maps, m)
		}
	}
	for _, m := range p.arith {
		if !slices.Contains(o.arith, m) {
			o.arith = append(o.arith, m)
		}
	}
	if o.other == nil {
		o.other = p.other
	}
}

// flowScope is one probe's view: its generator (for types and context
// offsets) and its scratch variables' assignments.
type flowScope struct {
	g     *gen
	probe int
	vars  map[string][]syntax.Expr
	// computed names a variable given a value other than by plain
	// assignment ($x += 1, $x++).
	computed map[string]syntax.Expr
	// known are the variables' origins, each worked out once; busy
	// those being worked out: a variable met again inside its own
	// assignments ($x = $x + 1) adds nothing the outer look does not
	// find, and each variable is looked at once, however the script's
	// assignments nest.
	known map[string]origin
	busy  map[string]bool
}

func (f *flowScope) origin(e syntax.Expr) origin {
	switch e := e.(type) {
	case *syntax.Paren:
		return f.origin(e.X)
	case *syntax.Cast:
		return f.origin(e.X)
	case *syntax.IntLit:
		if e.Value == 0 && !e.Param {
			return origin{} // NULL: its reads fail in either mode
		}
		return origin{other: e}
	case *syntax.VarExpr:
		if o, ok := f.known[e.Name]; ok {
			return o
		}
		if f.busy[e.Name] {
			return origin{}
		}
		f.busy[e.Name] = true
		var o origin
		for _, a := range f.vars[e.Name] {
			o.add(f.origin(a))
		}
		if c := f.computed[e.Name]; c != nil && o.other == nil {
			o.other = c
		}
		delete(f.busy, e.Name)
		f.known[e.Name] = o
		return o
	case *syntax.MapExpr:
		return origin{maps: []string{e.Name}}
	case *syntax.Ternary:
		o := f.origin(e.Then)
		o.add(f.origin(e.Else))
		return o
	case *syntax.Binary:
		// The maps the arithmetic reads: a pointer saved elsewhere plus
		// an offset is memory no copy holds.
		o := origin{other: e}
		for _, x := range []syntax.Expr{e.X, e.Y} {
			in := f.origin(x)
			o.arith = append(o.arith, in.maps...)
			o.arith = append(o.arith, in.arith...)
		}
		return o
	case *syntax.FieldAccess, *syntax.Ident:
		if off := f.g.ctxPtrOff(e); off >= 0 {
			return origin{ctx: []savedCtx{{f.probe, program.CtxString{Off: off, User: f.g.typeOf(e).user}}}}
		}
	}
	return origin{other: e}
}

// read is a read of memory through a pointer: str(), or bytes (buf(), *,
// []), where the collector copies strings.
type read struct {
	scope *flowScope
	site  syntax.Expr // what a refusal names
	ptr   syntax.Expr
	bytes bool
}

// savedFlows is the analysis over all probes, run once they are
// generated: prog.Probes are parallel to c.instances.
func (c *compiler) savedFlows(prog *program.Program) {
	if len(prog.Probes) != len(c.instances) {
		return // generation stopped early; the error says why
	}
	scopes := make([]*flowScope, len(c.instances))
	// stores[m] are the values stored into map m, per probe scope.
	type store struct {
		scope *flowScope
		value syntax.Expr // nil: a value computed by the update itself
		at    syntax.Expr
	}
	stores := map[string][]store{}
	var reads []read
	for i, in := range c.instances {
		f := &flowScope{g: &gen{c: c, in: in}, probe: i, vars: map[string][]syntax.Expr{}, computed: map[string]syntax.Expr{}, known: map[string]origin{}, busy: map[string]bool{}}
		scopes[i] = f
		var stmt func(s syntax.Stmt)
		var expr func(e syntax.Expr)
		expr = func(e syntax.Expr) {
			walkExpr(e, func(x syntax.Expr) {
				switch x := x.(type) {
				case *syntax.Call:
					if len(x.Args) == 0 {
						return
					}
					switch x.Name {
					case "str":
						if f.g.typeOf(x.Args[0]).k != kStr {
							reads = append(reads, read{f, x, x.Args[0], false})
						}
					case "buf":
						reads = append(reads, read{f, x, x.Args[0], true})
					}
				case *syntax.Unary:
					if x.Op == syntax.MUL {
						reads = append(reads, read{f, x, x.X, true})
					}
				case *syntax.Index:
					if !f.g.isMember(x) {
						reads = append(reads, read{f, x, x.X, true})
					}
				case *syntax.IncDec:
					switch t := x.X.(type) {
					case *syntax.VarExpr:
						f.computed[t.Name] = x
					case *syntax.MapExpr:
						stores[t.Name] = append(stores[t.Name], store{f, nil, x})
					}
				}
			})
		}
		stmt = func(s syntax.Stmt) {
			switch s := s.(type) {
			case *syntax.Block:
				for _, x := range s.Stmts {
					stmt(x)
				}
			case *syntax.ExprStmt:
				expr(s.X)
			case *syntax.AssignStmt:
				expr(s.Rhs)
				switch l := s.Lhs.(type) {
				case *syntax.VarExpr:
					if s.Op == syntax.ASSIGN {
						f.vars[l.Name] = append(f.vars[l.Name], s.Rhs)
					} else {
						f.computed[l.Name] = s.Rhs
					}
				case *syntax.MapExpr:
					for _, k := range l.Keys {
						expr(k)
					}
					if s.Op == syntax.ASSIGN {
						stores[l.Name] = append(stores[l.Name], store{f, s.Rhs, s.Rhs})
					} else {
						// What a refusal names: the whole update,
						// which a Binary spans.
						stores[l.Name] = append(stores[l.Name], store{f, nil, &syntax.Binary{Op: s.Op, X: l, Y: s.Rhs}})
					}
				default:
					expr(s.Lhs)
				}
			case *syntax.IfStmt:
				expr(s.Cond)
				stmt(s.Then)
				if s.Else != nil {
					stmt(s.Else)
				}
			case *syntax.WhileStmt:
				expr(s.Cond)
				stmt(s.Body)
			case *syntax.UnrollStmt:
				stmt(s.Body)
			case *syntax.ReturnStmt:
				if s.Value != nil {
					expr(s.Value)
				}
			}
		}
		if in.probe.Pred != nil {
			expr(in.probe.Pred)
		}
		stmt(in.probe.Body)
	}

	// What each map may hold, maps stored into maps followed to a fixed
	// point (each round can only add, and there are finitely many
	// context pointers and maps).
	held := map[string]*origin{}
	for m, ss := range stores {
		o := &origin{}
		for _, s := range ss {
			if s.value == nil {
				if o.other == nil {
					o.other = s.at
				}
				continue
			}
			o.add(s.scope.origin(s.value))
		}
		held[m] = o
	}
	for changed := true; changed; {
		changed = false
		for _, o := range held {
			for _, m := range o.maps {
				from := held[m]
				if from == nil {
					continue
				}
				n, had := len(o.ctx), o.other != nil
				o.add(origin{ctx: from.ctx, other: from.other})
				changed = changed || len(o.ctx) != n || (o.other != nil) != had
			}
		}
	}

	for _, r := range reads {
		r.check(held, prog)
	}
}

// check captures what read r needs, or refuses its probe.
func (r read) check(held map[string]*origin, prog *program.Program) {
	text := func(e syntax.Expr, alt string) string { return r.scope.g.text(e, alt) }
	o := r.scope.origin(r.ptr)
	for _, m := range o.arith {
		if h := held[m]; h != nil && len(h.ctx) > 0 {
			r.refuse(prog, fmt.Sprintf("pointer arithmetic on a pointer %s saved at another probe: the collector copied what it pointed to, not what the sum does", m))
			return
		}
	}
	var saved []*origin
	names := ""
	for _, m := range o.maps {
		if h := held[m]; h != nil && (len(h.ctx) > 0 || h.other != nil) {
			saved = append(saved, h)
			names = m
		}
	}
	if len(saved) == 0 {
		// Not through a map: a context pointer of this probe is
		// captured where it is read, one held by a variable included;
		// memory reached otherwise is not copied, as always.
		if !r.bytes && len(o.ctx) > 0 && o.other == nil && len(o.maps) == 0 {
			capture(prog, o.ctx, false)
		}
		return
	}
	var from []savedCtx
	for _, h := range saved {
		switch {
		case r.bytes && len(h.ctx) > 0:
			r.refuse(prog, fmt.Sprintf("a read of bytes through a pointer %s saved at another probe, where the collector copies only the string behind it", names))
			return
		case r.bytes:
			return // memory no collector copies, as always
		case h.other != nil:
			r.refuse(prog, fmt.Sprintf("a read through %s, which holds %s, an address the collector cannot copy behind", names, text(h.other, "a computed value")))
			return
		}
		from = append(from, h.ctx...)
	}
	if o.other != nil {
		r.refuse(prog, fmt.Sprintf("a read through a pointer saved at another probe or %s, an address the collector cannot copy behind", text(o.other, "a computed value")))
		return
	}
	if !capture(prog, append(from, o.ctx...), true) {
		r.refuse(prog, fmt.Sprintf("a read through a pointer saved at another probe, which copies more than the %d strings a collector copies per event", maxCtxStrings))
	}
}

func (r read) refuse(prog *program.Program, why string) {
	p := prog.Probes[r.scope.probe]
	if p.KernelOnly == "" {
		p.KernelOnly = fmt.Sprintf("%s (%s)", r.scope.g.text(r.site, "a read"), why)
	}
}

// capture asks each pointer's probe to copy its string, Saved when the
// read is at another probe's event; false if a probe has no room left.
func capture(prog *program.Program, from []savedCtx, saved bool) bool {
	ok := true
	for _, s := range from {
		p := prog.Probes[s.probe]
		i := slices.IndexFunc(p.CtxStrings, func(h program.CtxString) bool { return h.Off == s.cs.Off })
		switch {
		case i >= 0:
			p.CtxStrings[i].Saved = p.CtxStrings[i].Saved || saved
		case len(p.CtxStrings) < maxCtxStrings:
			cs := s.cs
			cs.Saved = saved
			p.CtxStrings = append(p.CtxStrings, cs)
		default:
			ok = false
		}
	}
	return ok
}

// walkExpr calls fn on e and every expression inside it.
func walkExpr(e syntax.Expr, fn func(syntax.Expr)) {
	if e == nil {
		return
	}
	fn(e)
	switch e := e.(type) {
	case *syntax.MapExpr:
		for _, k := range e.Keys {
			walkExpr(k, fn)
		}
	case *syntax.Call:
		for _, a := range e.Args {
			walkExpr(a, fn)
		}
	case *syntax.Binary:
		walkExpr(e.X, fn)
		walkExpr(e.Y, fn)
	case *syntax.Unary:
		walkExpr(e.X, fn)
	case *syntax.IncDec:
		walkExpr(e.X, fn)
	case *syntax.Ternary:
		walkExpr(e.Cond, fn)
		walkExpr(e.Then, fn)
		walkExpr(e.Else, fn)
	case *syntax.FieldAccess:
		walkExpr(e.X, fn)
	case *syntax.Index:
		walkExpr(e.X, fn)
		walkExpr(e.I, fn)
	case *syntax.Tuple:
		for _, x := range e.Elems {
			walkExpr(x, fn)
		}
	case *syntax.Cast:
		walkExpr(e.X, fn)
	case *syntax.Paren:
		walkExpr(e.X, fn)
	}
}
