package compile

import (
	"fmt"
	"maps"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// A token's probe: scopes grant a probe's context and the user memory the
// context's user pointers reach; reading any other memory, or handing out
// kernel addresses, needs a scope of its own. So the generator notes every
// expression it emits a memory read for (str, buf, join, *, []) and every
// value that reveals a kernel address (kaddr, ksym, kstack(perf)), and
// classifies them once the probe is generated, when every assignment to
// its scratch variables is known (program.Reads).
//
// A user read is of the context's memory only when its address is a
// pointer taken from the context as it is — a tracepoint's pointer field,
// a uprobe's argument or return value, a raw or BTF tracepoint's argument
// — or an element at a constant index below program.ContextArrayLen of
// an array such a pointer points to (argv[1]), or a scratch variable that
// is only ever assigned such pointers. Anything else can be made to point
// anywhere: arithmetic, a variable index, an integer, a map value (a
// pointer saved by one task and read in another's address space, after an
// exec of a setuid binary for one), uaddr(). Every kernel read but the
// context's is kernel memory: the verifier keeps no script from
// computing a kernel address.

// pendingRead is one read site, classified when the probe is done.
type pendingRead struct {
	op    string      // "str()", "buf()", "join()", "*", "[]"
	site  syntax.Expr // what an error points at
	addr  syntax.Expr // the address read; nil for a fixed class
	index syntax.Expr // p[i]'s i
	user  bool        // read with a user-memory helper
	// A fixed class (kernel addresses) and what to say about it.
	class program.Reads
	what  string
}

// readNotes is what the generator noted about one probe's reads.
type readNotes struct {
	sites []pendingRead
	// assigns are the assignments generated to each scratch variable.
	assigns map[string][]*syntax.AssignStmt
	// ctxHelper: the context was read with probe_read_kernel (char
	// arrays, __data_loc strings, tp_btf pointer slots).
	ctxHelper bool
}

// noteRead records a read of memory at addr (addr[index] for p[i]) with
// a user or kernel helper, for the expression site.
func (g *gen) noteRead(op string, site, addr, index syntax.Expr, user bool) {
	g.rd.sites = append(g.rd.sites, pendingRead{op: op, site: site, addr: addr, index: index, user: user})
}

// noteKernelAddr records a value that reveals kernel addresses.
func (g *gen) noteKernelAddr(site syntax.Expr, what string) {
	g.rd.sites = append(g.rd.sites, pendingRead{site: site, class: program.ReadsKernelAddr, what: what})
}

// noteAssign records an assignment to scratch variable name.
func (g *gen) noteAssign(name string, s *syntax.AssignStmt) {
	if g.rd.assigns == nil {
		g.rd.assigns = map[string][]*syntax.AssignStmt{}
	}
	g.rd.assigns[name] = append(g.rd.assigns[name], s)
}

// noteContextRead records a read of the context through a helper.
func (g *gen) noteContextRead() { g.rd.ctxHelper = true }

// finishReads classifies the probe's reads into p.Reads and p.ReadSites.
func (g *gen) finishReads(p *program.Probe) {
	vars := g.contextVars()
	first := map[program.Reads]program.ReadSite{}
	var reads program.Reads
	for _, r := range g.rd.sites {
		class, what := r.class, r.what
		if class == 0 {
			class, what = g.classify(r, vars)
		}
		reads |= class
		if class == program.ReadsUserContext {
			continue // granted with the probe: nothing to point at
		}
		note := func(class program.Reads, what string) {
			s := program.ReadSite{Class: class, What: what, From: pos(r.site.Pos()), To: pos(r.site.End())}
			if have, ok := first[class]; !ok || program.SiteBefore(s, have) {
				first[class] = s
			}
		}
		note(class, what)
		if class == program.ReadsUser && (g.in.kind == program.Begin || g.in.kind == program.End) {
			// BEGIN and END run in the broker: the user memory they read
			// is the daemon's own, where its keys and its callers'
			// tokens are. That is as good as root, so it is kernel
			// memory too.
			reads |= program.ReadsKernel
			note(program.ReadsKernel, fmt.Sprintf("%s in %s reads the broker's own memory", g.describe(r, vars), g.in.kind))
		}
	}
	if g.rd.ctxHelper {
		reads |= program.ReadsContext
	}
	for _, ins := range g.insns {
		if ins.Src == rCtx {
			reads |= program.ReadsContext // a direct load, or the context handed to a helper
		}
	}
	// What the helpers called could read bounds what was noted: a read
	// the notes do not account for (a construct that forgot to note
	// one) counts as the widest class its helper allows, so that a
	// missing note can never narrow what a program is judged by.
	h := program.HelperReads(g.insns)
	if h&program.ReadsUser != 0 && reads&(program.ReadsUser|program.ReadsUserContext) == 0 {
		reads |= program.ReadsUser
	}
	if h&program.ReadsKernel != 0 && reads&program.ReadsKernel == 0 && !g.rd.ctxHelper {
		reads |= program.ReadsKernel
	}
	reads |= h & program.ReadsKernelAddr
	p.Reads = reads
	for _, c := range reads.Classes() {
		if s, ok := first[c]; ok {
			p.ReadSites = append(p.ReadSites, s)
		}
	}
}

func pos(p syntax.Pos) program.Pos { return program.Pos{Offset: p.Offset, Line: p.Line, Col: p.Col} }

// classify is the class of a read at an address, and what an error
// says about it.
func (g *gen) classify(r pendingRead, vars map[string]bool) (program.Reads, string) {
	if r.user {
		if g.inContext(r.addr, r.index, vars) {
			return program.ReadsUserContext, ""
		}
		return program.ReadsUser, g.describe(r, vars) + " reads arbitrary user memory"
	}
	if r.index == nil && g.ctxPointer(r.addr, vars) {
		return program.ReadsKernel, fmt.Sprintf("%s of %s, a kernel pointer, reads kernel memory", r.op, g.text(r.addr, "the context's pointer"))
	}
	return program.ReadsKernel, g.describe(r, vars) + " reads arbitrary kernel memory"
}

// inContext reports whether reading at base (base[index]) reads what a
// context pointer reaches: the pointer itself, or its array at a
// constant index (also written base + index).
func (g *gen) inContext(base, index syntax.Expr, vars map[string]bool) bool {
	if index == nil {
		if b, ok := unparen(base).(*syntax.Binary); ok && b.Op == syntax.ADD {
			switch {
			case g.typeOf(b.X).ptr && !g.typeOf(b.Y).ptr:
				base, index = b.X, b.Y
			case g.typeOf(b.Y).ptr && !g.typeOf(b.X).ptr:
				base, index = b.Y, b.X
			}
		}
	}
	if index != nil {
		n, ok := constInt(index)
		if !ok || n < 0 || n >= program.ContextArrayLen {
			return false
		}
	}
	return g.ctxPointer(base, vars)
}

// ctxPointer reports whether e's value is a pointer the context gives, as
// it is: a pointer field or argument, a variable that only ever holds
// such pointers, or a pointer read from a context pointer's array at a
// constant index (argv[1]).
func (g *gen) ctxPointer(e syntax.Expr, vars map[string]bool) bool {
	switch e := unparen(e).(type) {
	case *syntax.FieldAccess:
		// Only args->NAME is the context's: a struct's field of the
		// same name, read through BTF, is not.
		if (g.in.kind != program.Tracepoint && g.in.kind != program.Uprobe && !btfContext(g.in.kind)) || !onArgs(e) {
			return false
		}
		f := findField(g.in.fields, e.Field)
		return f != nil && f.Kind == FieldPtr
	case *syntax.Ident:
		return ctxArgument(g.in.kind, e.Name)
	case *syntax.VarExpr:
		return vars[e.Name]
	case *syntax.Index:
		return g.typeOf(e.X).depth > 1 && g.inContext(e.X, e.I, vars)
	case *syntax.Unary:
		return e.Op == syntax.MUL && g.typeOf(e.X).depth > 1 && g.inContext(e.X, nil, vars)
	case *syntax.Ternary:
		return g.ctxPointer(e.Then, vars) && g.ctxPointer(e.Else, vars)
	case *syntax.Call:
		// uptr() only says which memory a context pointer is.
		return e.Name == "uptr" && g.ctxPointer(e.Args[0], vars)
	}
	return false
}

// ctxArgument reports whether name is an argument the context of a
// probe of kind holds: a uprobe's argN and retval (its pt_regs), a raw or
// BTF tracepoint's argN.
func ctxArgument(kind program.ProbeKind, name string) bool {
	switch kind {
	case program.Uprobe, program.Uretprobe, program.Kprobe, program.Kretprobe:
		_, ok := ptRegs[name]
		return ok
	case program.RawTracepoint, program.TpBTF:
		return len(name) > 3 && name[:3] == "arg" && isDigits(name[3:])
	case program.Fexit:
		return name == "retval"
	}
	return false
}

// contextVars says which scratch variables only ever hold context
// pointers: every assignment generated to them is a plain `=` of one.
// Variables start as zero, a NULL pointer, which reads nothing. The
// largest such set is found by striking out, until nothing changes,
// every variable with an assignment that is not (so `$a = $b; $b = $a;`
// holds nothing but zero, and stays).
//
// It strikes with a worklist: a variable is looked at again only when a
// variable its assignments read was struck, so that a chain of
// thousands of variables ($b = $a; $c = $b; …) costs their number, not
// its square.
func (g *gen) contextVars() map[string]bool {
	vars := map[string]bool{}
	readers := map[string][]string{} // variable -> those assigned from it
	var queue []string
	for name, ss := range g.rd.assigns {
		vars[name] = true
		queue = append(queue, name)
		for _, s := range ss {
			for _, v := range varRefs(s.Rhs) {
				readers[v] = append(readers[v], name)
			}
		}
	}
	queued := maps.Clone(vars)
	for len(queue) > 0 {
		name := queue[len(queue)-1]
		queue, queued[name] = queue[:len(queue)-1], false
		for _, s := range g.rd.assigns[name] {
			if s.Op != syntax.ASSIGN || !g.ctxPointer(s.Rhs, vars) {
				vars[name] = false
				for _, r := range readers[name] {
					if vars[r] && !queued[r] {
						queue, queued[r] = append(queue, r), true
					}
				}
				break
			}
		}
	}
	return vars
}

// describe says what a read reads through, for an error: "buf() of an
// integer", "[] with an index that is not a constant from 0 to 15".
func (g *gen) describe(r pendingRead, vars map[string]bool) string {
	if r.index != nil {
		if g.ctxPointer(r.addr, vars) {
			return fmt.Sprintf("[] with an index that is not a constant from 0 to %d", program.ContextArrayLen-1)
		}
		return "[] of " + g.operand(r.addr)
	}
	return r.op + " of " + g.operand(r.addr)
}

// operand names what an address is, as the error states it.
func (g *gen) operand(e syntax.Expr) string {
	switch e := unparen(e).(type) {
	case *syntax.IntLit:
		return "an integer"
	case *syntax.Unary:
		if e.Op == syntax.SUB || e.Op == syntax.BITNOT {
			return "an integer"
		}
		return "a pointer read from memory"
	case *syntax.Call:
		switch e.Name {
		case "kaddr", "uaddr":
			return e.Name + "()"
		}
		return "the value of " + e.Name + "()"
	case *syntax.Cast:
		if g.typeOf(e).ptr {
			return "an integer cast to a pointer"
		}
		return "an integer"
	case *syntax.MapExpr:
		return "a map value"
	case *syntax.VarExpr:
		return e.Name + ", which holds more than the context's pointers,"
	case *syntax.Binary:
		if g.typeOf(e).ptr {
			return "pointer arithmetic"
		}
		return "a computed address"
	case *syntax.Index:
		return "a pointer read from memory"
	case *syntax.FieldAccess, *syntax.Ident:
		if g.typeOf(e).ptr || g.typeOf(e).user {
			return g.text(e, "a pointer")
		}
		return "an integer"
	}
	return "a computed address"
}

// text is e's source text when it is short enough for a message, else
// alt.
func (g *gen) text(e syntax.Expr, alt string) string {
	src := g.c.file.Src
	from, to := e.Pos().Offset, e.End().Offset
	if from < 0 || to > len(src) || from >= to || to-from > 40 {
		return alt
	}
	return string(src[from:to])
}
