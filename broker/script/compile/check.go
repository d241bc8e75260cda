package compile

import (
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/broker/output"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// check infers and checks the types of one instance, recording them in
// in.types for the code generator, and establishes map types.
func (c *compiler) check(in *instance) {
	in.types = map[syntax.Expr]ty{}
	in.vars = map[string]ty{}
	if p := in.probe.Pred; p != nil {
		if t := c.expr(in, p); !computable(t) {
			c.errorf(p.Pos(), p.End(), "Invalid type for predicate: %s", t)
		}
	}
	c.block(in, in.probe.Body)
}

func (c *compiler) block(in *instance, b *syntax.Block) {
	for _, s := range b.Stmts {
		c.stmt(in, s)
	}
}

func (c *compiler) stmt(in *instance, s syntax.Stmt) {
	switch s := s.(type) {
	case *syntax.Block:
		c.block(in, s)
	case *syntax.ExprStmt:
		c.expr(in, s.X)
	case *syntax.AssignStmt:
		c.assign(in, s)
	case *syntax.IfStmt:
		if t := c.expr(in, s.Cond); !computable(t) {
			c.errorf(s.Cond.Pos(), s.Cond.End(), "Invalid condition in if(): %s", t)
		}
		c.block(in, s.Then)
		if s.Else != nil {
			c.stmt(in, s.Else)
		}
	case *syntax.WhileStmt:
		if t := c.expr(in, s.Cond); !computable(t) {
			c.errorf(s.Cond.Pos(), s.Cond.End(), "Invalid condition in while(): %s", t)
		}
		c.block(in, s.Body)
	case *syntax.UnrollStmt:
		if _, err := unrollCount(s); err != nil {
			c.errorf(s.Count.Pos(), s.Count.End(), "%v", err)
		}
		c.block(in, s.Body)
	case *syntax.ReturnStmt:
		c.policyReturn(in, s)
	default:
		c.errorf(s.Pos(), s.End(), "unsupported statement")
	}
}

// castType is the width and signedness of an integer cast's type.
func castType(name string) (bits int, signed bool, ok bool) {
	switch name {
	case "int8", "int16", "int32", "int64":
		signed = true
	case "uint8", "uint16", "uint32", "uint64":
	default:
		return 0, false, false
	}
	bits, _ = strconv.Atoi(strings.TrimPrefix(strings.TrimPrefix(name, "u"), "int"))
	return bits, signed, true
}

// castPointer types (intN *)x, (uintN **)x, ...: x as a pointer into
// the probe's address space (the traced process's for uprobes, as
// bpftrace 0.17 reads it), whose * and [] read the integer (or the
// pointer) it points to, and whose + and - move by that size.
func (c *compiler) castPointer(in *instance, e *syntax.Cast, base string, depth int) ty {
	bits, signed, ok := castType(base)
	if !ok {
		c.errorf(e.Pos(), e.End(), "Cannot cast to \"%s\": only integer types (int8-int64, uint8-uint64) and pointers to them are supported", e.Type)
		return ty{}
	}
	xt, ok := c.castFrom(in, e)
	if !ok {
		return ty{}
	}
	return ty{k: kInt, ptr: true, user: castUser(in, xt), depth: depth, esize: bits / 8, esigned: signed}
}

// castFrom types what a cast casts: an integer (or a pointer), or says
// why not.
func (c *compiler) castFrom(in *instance, e *syntax.Cast) (ty, bool) {
	xt := c.expr(in, e.X)
	if xt.k == kInt && !computable(xt) {
		c.errorf(e.Pos(), e.End(), "Casts are not supported for type: \"%s\"", xt)
		return ty{}, false
	}
	if !computable(xt) {
		c.errorf(e.Pos(), e.End(), "Cannot cast from \"%s\" to \"%s\"", xt, e.Type)
		return ty{}, false
	}
	return xt, true
}

// castUser says whether a pointer cast from xt points into the traced
// process: in a uprobe, or when xt is a user address already (a
// syscall's buffer, args->buf), as bpftrace reads it.
func castUser(in *instance, xt ty) bool { return userProbe(in) || xt.user }

// userProbe says whether in's pointers point into the traced process.
func userProbe(in *instance) bool {
	return in.kind == program.Uprobe || in.kind == program.Uretprobe
}

// unrollCount is unroll's count: an integer literal from 1 to 100, as
// bpftrace allows.
func unrollCount(s *syntax.UnrollStmt) (int, error) {
	lit, ok := unparen(s.Count).(*syntax.IntLit)
	switch {
	case !ok:
		return 0, errors.New("unroll count must be an integer literal")
	case lit.Value > 100:
		return 0, errors.New("unroll maximum value is 100")
	case lit.Value < 1:
		return 0, errors.New("unroll minimum value is 1")
	}
	return int(lit.Value), nil
}

func (c *compiler) assign(in *instance, s *syntax.AssignStmt) {
	var rt ty
	if call, ok := s.Rhs.(*syntax.Call); ok && isAgg(call.Name) && s.Op == syntax.ASSIGN {
		rt = c.aggCall(in, call)
		in.types[call] = rt
		if _, ok := s.Lhs.(*syntax.MapExpr); !ok {
			c.errorf(call.Pos(), call.End(), "%s() should be directly assigned to a map", call.Name)
			return
		}
	} else {
		rt = c.expr(in, s.Rhs)
		if s.Op != syntax.ASSIGN {
			lt := c.expr(in, s.Lhs)
			rt = c.arith(in, s.Op, lt, rt, s.Lhs, s.Rhs)
		}
	}
	if rt.k == kNone {
		return // already reported, or not yet known in a lenient pass
	}
	if rt.k == kVoid {
		c.errorf(s.Rhs.Pos(), s.Rhs.End(), "Invalid expression for assignment: %s", exprName(s.Rhs))
		return
	}
	if rt.k == kRecord {
		if why := storable(rt); why != "" {
			c.errorf(s.Rhs.Pos(), s.Rhs.End(), "%s", why)
			return
		}
	}
	switch lhs := s.Lhs.(type) {
	case *syntax.VarExpr:
		if rt.k == kAgg {
			return
		}
		if old, ok := in.vars[lhs.Name]; ok {
			if !assignable(old, rt) {
				c.errorf(s.Pos(), s.End(), "Type mismatch for %s: trying to assign value of type '%s' when variable already contains a value of type '%s'", lhs.Name, rt, old)
			}
			return
		}
		if rt.k == kStr {
			rt = tStr(max(rt.size, strLen))
		}
		in.vars[lhs.Name] = rt
		in.types[lhs] = rt
	case *syntax.MapExpr:
		if in.kind == program.Gatekeeper {
			c.errorf(lhs.From, lhs.To, "maps are not available in a gatekeeper policy: use scratch variables")
			return
		}
		keys := c.mapKeys(in, lhs)
		m := c.mapFor(lhs)
		if slices.ContainsFunc(keys, func(k ty) bool { return k.k == kNone }) {
			return // a key's type is not known yet (or already reported)
		}
		if !m.known {
			m.known, m.keyed, m.keys = true, lhs.Keys != nil, keys
			m.val = mapValueType(rt)
		} else {
			c.checkKeys(lhs, m, keys)
			if !assignable(m.val, rt) || (m.val.k == kAgg && rt.k != kAgg) {
				c.errorf(s.Pos(), s.End(), "Type mismatch for %s: trying to assign value of type '%s' when map already contains a value of type '%s'", lhs.Name, rt, m.val)
			}
		}
		m.assigned = true
		in.types[lhs] = m.val
	default:
		c.errorf(s.Lhs.Pos(), s.Lhs.End(), "Can only assign to a map or a scratch variable")
	}
}

// mapValueType widens strings so that later assignments of longer strings fit.
func mapValueType(t ty) ty {
	if t.k == kStr {
		return tStr(max(t.size, strLen))
	}
	return t
}

func assignable(old, nu ty) bool {
	if old.k != nu.k {
		return false
	}
	switch old.k {
	case kInt:
		return old.from == nu.from
	case kStr:
		return nu.size <= old.size
	case kAgg:
		return old.agg == nu.agg && (old.agg != program.Lhist ||
			(old.lmin == nu.lmin && old.lmax == nu.lmax && old.lstep == nu.lstep))
	case kTuple, kBlob, kRecord:
		return sameLayout(old, nu)
	}
	return true
}

func (c *compiler) mapFor(e *syntax.MapExpr) *mapInfo {
	m := c.maps[e.Name]
	if m == nil {
		m = &mapInfo{name: e.Name, pos: e.From, end: e.To}
		c.maps[e.Name] = m
		c.mapOrder = append(c.mapOrder, e.Name)
	}
	return m
}

// mapKeys types the subscript of a map access. String keys are widened to
// the default string size so that "ab" and a 64-byte str() share a map.
func (c *compiler) mapKeys(in *instance, e *syntax.MapExpr) []ty {
	var keys []ty
	for _, k := range e.Keys {
		t := c.expr(in, k)
		switch t.k {
		case kInt:
			if !computable(t) {
				// bpftrace 0.17 takes it, then fails printing the
				// map ("invalid mapkey argument type").
				c.errorf(k.Pos(), k.End(), "%s can not be used as a map key", t)
			}
		case kStr, kTuple, kBlob, kNone:
		case kRecord:
			if why := storable(t); why != "" {
				c.errorf(k.Pos(), k.End(), "%s", why)
			}
		default:
			c.errorf(k.Pos(), k.End(), "%s can not be used as a map key", t)
		}
		keys = append(keys, keyType(t))
	}
	return keys
}

func keyType(t ty) ty {
	switch t.k {
	case kStr:
		return tStr(max(t.size, strLen))
	case kTuple:
		out := ty{k: kTuple}
		for _, e := range t.elems {
			out.elems = append(out.elems, keyType(e))
		}
		return out
	case kInt:
		// A pointer key stays marked: bpftrace prints it in hex.
		return ty{k: kInt, signed: t.signed, ptr: t.ptr}
	}
	return t
}

func (c *compiler) checkKeys(e *syntax.MapExpr, m *mapInfo, keys []ty) {
	if m.keyed != (e.Keys != nil) {
		if m.keyed {
			c.errorf(e.From, e.To, "%s used as a map without an explicit key (scalar map), previously used with an explicit key (non-scalar map)", e.Name)
		} else {
			c.errorf(e.From, e.To, "%s used as a map with an explicit key (non-scalar map), previously used without an explicit key (scalar map)", e.Name)
		}
		return
	}
	if len(keys) != len(m.keys) {
		c.errorf(e.From, e.To, "Argument mismatch for %s: trying to access with %d arguments when %d were expected", e.Name, len(keys), len(m.keys))
		return
	}
	for i := range keys {
		if keys[i].k == kNone {
			continue
		}
		if !sameLayout(keys[i], m.keys[i]) {
			c.errorf(e.Keys[i].Pos(), e.Keys[i].End(), "Argument mismatch for %s: trying to access with arguments: [%s] when map expects arguments: [%s]", e.Name, keys[i], m.keys[i])
		}
	}
}

func isAgg(name string) bool {
	switch name {
	case "count", "sum", "min", "max", "avg", "stats", "hist", "lhist":
		return true
	}
	return false
}

func (c *compiler) aggCall(in *instance, call *syntax.Call) ty {
	want := map[string]int{"count": 0, "sum": 1, "min": 1, "max": 1, "avg": 1, "stats": 1, "hist": 1, "lhist": 4}[call.Name]
	if len(call.Args) != want {
		c.errorf(call.From, call.To, "%s() requires %d argument%s (%d provided)", call.Name, want, plural(want), len(call.Args))
		return ty{k: kAgg, agg: aggOf(call.Name)}
	}
	t := ty{k: kAgg, agg: aggOf(call.Name)}
	if call.Name == "count" {
		return t
	}
	at := c.expr(in, call.Args[0])
	if !computable(at) {
		c.errorf(call.Args[0].Pos(), call.Args[0].End(), "%s() only supports integer arguments (%s provided)", call.Name, at)
	}
	t.signed = at.signed
	if call.Name == "lhist" {
		var vals [3]int64
		for i, a := range call.Args[1:] {
			v, ok := constInt(a)
			if !ok {
				c.errorf(a.Pos(), a.End(), "lhist() %s must be an integer literal", []string{"min", "max", "step"}[i])
				return t
			}
			vals[i] = v
		}
		t.lmin, t.lmax, t.lstep = vals[0], vals[1], vals[2]
		switch {
		case t.lmin < 0:
			c.errorf(call.Args[1].Pos(), call.Args[1].End(), "lhist() min must be non-negative (provided min %d)", t.lmin)
		case t.lmin > t.lmax:
			c.errorf(call.From, call.To, "lhist() min must be less than max (provided min %d and max %d)", t.lmin, t.lmax)
		case t.lstep <= 0:
			c.errorf(call.Args[3].Pos(), call.Args[3].End(), "lhist() step must be >= 1 (%d provided)", t.lstep)
		case (t.lmax-t.lmin)/t.lstep > 1000:
			c.errorf(call.From, call.To, "lhist() too many buckets, must be <= 1000 (would need %d)", (t.lmax-t.lmin)/t.lstep)
		}
	}
	return t
}

func aggOf(name string) program.Agg {
	return map[string]program.Agg{"count": program.Count, "sum": program.Sum, "min": program.Min,
		"max": program.Max, "avg": program.Avg, "stats": program.Stats, "hist": program.Hist, "lhist": program.Lhist}[name]
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// constInt folds literal integer expressions (with unary minus).
func constInt(e syntax.Expr) (int64, bool) {
	switch e := e.(type) {
	case *syntax.IntLit:
		return int64(e.Value), true
	case *syntax.Paren:
		return constInt(e.X)
	case *syntax.Unary:
		if e.Op == syntax.SUB {
			v, ok := constInt(e.X)
			return -v, ok
		}
	}
	return 0, false
}

func exprName(e syntax.Expr) string {
	if call, ok := e.(*syntax.Call); ok {
		return call.Name + "()"
	}
	return "expression"
}

// expr types e, records it and returns it. kNone means "unknown, already
// reported" and silences follow-on errors.
func (c *compiler) expr(in *instance, e syntax.Expr) ty {
	t := c.expr1(in, e)
	in.types[e] = t
	return t
}

var builtinInts = map[string]bool{
	"pid": true, "tid": true, "uid": true, "gid": true, "cpu": true,
	"nsecs": true, "elapsed": true, "cpid": true, "rand": true, "numaid": true,
}

func (c *compiler) expr1(in *instance, e syntax.Expr) ty {
	switch e := e.(type) {
	case *syntax.IntLit:
		if e.Value > 1<<63-1 {
			return tUint
		}
		return tInt
	case *syntax.StrLit:
		return tStr(max(len(e.Value)+1, strLen))
	case *syntax.Paren:
		return c.expr(in, e.X)
	case *syntax.Ident:
		return c.ident(in, e)
	case *syntax.VarExpr:
		t, ok := in.vars[e.Name]
		if !ok {
			c.errorf(e.From, e.To, "Undefined or undeclared variable: %s", e.Name)
			return ty{}
		}
		return t
	case *syntax.MapExpr:
		if in.kind == program.Gatekeeper {
			c.errorf(e.From, e.To, "maps are not available in a gatekeeper policy: use scratch variables")
			return ty{}
		}
		keys := c.mapKeys(in, e)
		m := c.maps[e.Name]
		if m == nil || !m.known {
			if c.guessInt {
				return tInt
			}
			if c.lenient {
				return ty{}
			}
			c.errorf(e.From, e.To, "Undefined map: %s", e.Name)
			return ty{}
		}
		c.checkKeys(e, m, keys)
		if m.val.k == kAgg {
			switch m.val.agg {
			case program.Count, program.Sum, program.Min, program.Max, program.Avg:
				return ty{k: kInt, signed: m.val.signed || m.val.agg == program.Avg && m.val.signed, from: m.val.agg}
			}
			c.errorf(e.From, e.To, "%s of type %s cannot be used in an expression", e.Name, m.val)
			return ty{}
		}
		return m.val
	case *syntax.Call:
		return c.call(in, e)
	case *syntax.Binary:
		return c.binary(in, e)
	case *syntax.Unary:
		t := c.expr(in, e.X)
		switch e.Op {
		case syntax.NOT:
			if !computable(t) {
				c.errorf(e.Pos(), e.End(), "The ! operator can not be used on expressions of type '%s'", t)
			}
			return tUint
		case syntax.BITNOT, syntax.SUB:
			if !computable(t) {
				c.errorf(e.Pos(), e.End(), "The %s operator can not be used on expressions of type '%s'", e.Op, t)
				return ty{}
			}
			if e.Op == syntax.SUB {
				return tInt
			}
			return ty{k: kInt, signed: t.signed}
		}
		if e.Op == syntax.MUL {
			if t.k == kInt && !t.ptr && computable(t) {
				// bpftrace reads 8 bytes at an integer's address
				// (*arg0, loads.bt's *kaddr("avenrun")), as this
				// reads through a (uint64 *) cast of it.
				t = ty{k: kInt, ptr: true, user: castUser(in, t), depth: 1, esize: 8}
				in.types[e.X] = t
			}
			return c.deref(e, t)
		}
		c.errorf(e.OpPos, e.End(), "The unary %s operator is not supported yet", e.Op)
		return ty{}
	case *syntax.Ternary:
		ct := c.expr(in, e.Cond)
		if !computable(ct) {
			c.errorf(e.Cond.Pos(), e.Cond.End(), "Invalid condition in ternary: %s", ct)
		}
		a, b := c.expr(in, e.Then), c.expr(in, e.Else)
		if a.k == kNone || b.k == kNone {
			return ty{}
		}
		if a.k == kVoid && b.k == kVoid {
			// cond ? printf(...) : exit(): a statement, as bpftrace
			// takes it; its value is nothing anything can use.
			return tVoid
		}
		if a.k != b.k || (a.k != kInt && a.k != kStr) {
			c.errorf(e.Pos(), e.End(), "Ternary operator must return the same type: have '%s' and '%s'", a, b)
			return ty{}
		}
		if a.k == kStr {
			return tStr(max(a.size, b.size))
		}
		// Either of two user addresses is one: str() reads it from the
		// traced process.
		return ty{k: kInt, signed: a.signed && b.signed, user: a.user && b.user}
	case *syntax.FieldAccess:
		return c.field(in, e)
	case *syntax.Tuple:
		return c.tuple(in, e)
	case *syntax.IncDec:
		return c.incDec(in, e)
	case *syntax.Cast:
		if kind, _, _ := strings.Cut(e.Type, " "); kind == "struct" || kind == "union" || kind == "enum" {
			return c.castRecord(in, e)
		}
		if base, stars, ok := strings.Cut(e.Type, "*"); ok {
			return c.castPointer(in, e, strings.TrimSpace(base), 1+strings.Count(stars, "*"))
		}
		_, signed, ok := castType(e.Type)
		if !ok {
			c.errorf(e.Pos(), e.End(), "Cannot cast to \"%s\": only integer types (int8-int64, uint8-uint64) are supported", e.Type)
			return ty{}
		}
		if _, ok := c.castFrom(in, e); !ok {
			return ty{}
		}
		bits, _, _ := castType(e.Type)
		return ty{k: kInt, signed: signed, width: bits / 8}
	case *syntax.Index:
		t := c.expr(in, e.X)
		if _, ok := t.bt.(*btf.Array); ok && (t.k == kRecord || t.k == kStr) {
			return c.btfIndex(in, e, t)
		}
		if it := c.expr(in, e.I); !computable(it) {
			c.errorf(e.I.Pos(), e.I.End(), "The array index operator [] expects an integer index (%s provided)", it)
			return ty{}
		}
		return c.deref(e, t)
	}
	c.errorf(e.Pos(), e.End(), "unsupported expression")
	return ty{}
}

// incDec types ++x, x++, --x and x-- inside an expression as the
// assignment x += 1 (or -= 1) that they perform, kept for generation.
func (c *compiler) incDec(in *instance, e *syntax.IncDec) ty {
	switch e.X.(type) {
	case *syntax.VarExpr, *syntax.MapExpr:
	default:
		c.errorf(e.Pos(), e.End(), "The %s operator must be applied to a map or variable", e.Op)
		return ty{}
	}
	s := c.incdecs[e]
	if s == nil {
		op := syntax.ADD
		if e.Op == syntax.DEC {
			op = syntax.SUB
		}
		s = &syntax.AssignStmt{Lhs: e.X, Op: op, OpPos: e.OpPos, Rhs: &syntax.IntLit{From: e.OpPos, To: e.End(), Raw: "1", Value: 1}}
		if c.incdecs == nil {
			c.incdecs = map[*syntax.IncDec]*syntax.AssignStmt{}
		}
		c.incdecs[e] = s
	}
	c.assign(in, s)
	t := c.expr(in, e.X)
	if !computable(t) {
		c.errorf(e.Pos(), e.End(), "The %s operator can only be applied to integers (%s provided)", e.Op, t)
		return ty{}
	}
	// A pointer stays one: ($c++)->b reads the struct it pointed to.
	return t
}

// deref types *p and p[i]: p must be a pointer whose target is known.
func (c *compiler) deref(e syntax.Expr, p ty) ty {
	switch {
	case p.k == kNone:
		return ty{}
	case !p.ptr:
		c.errorf(e.Pos(), e.End(), "The * and [] operators can only be used on pointers (%s provided)", p)
		return ty{}
	case p.bt != nil && p.depth == 1:
		if _, ok := e.(*syntax.Unary); !ok {
			c.errorf(e.Pos(), e.End(), "The [] operator can not be used on a pointer to %s: use ->", recordName(p.bt))
			return ty{}
		}
		return p.elem()
	case p.elemSize() == 0:
		c.errorf(e.Pos(), e.End(), "Can not dereference a pointer to an unknown type")
		return ty{}
	}
	return p.elem()
}

func (c *compiler) ident(in *instance, e *syntax.Ident) ty {
	if in.kind == program.Gatekeeper {
		return c.policyIdent(in, e)
	}
	if in.kind == program.Fentry || in.kind == program.Fexit {
		if t, ok := c.fentryIdent(in, e); ok {
			return t
		}
	}
	switch {
	case builtinInts[e.Name]:
		if e.Name == "cpid" && !c.opts.HaveChild {
			c.errorf(e.From, e.To, "cpid cannot be used without child command")
		}
		return tUint
	case e.Name == "comm":
		return tStr(16)
	case e.Name == "curtask":
		return c.curtask(in)
	case e.Name == "probe":
		return tStr(strLen)
	case e.Name == "args":
		c.errorf(e.From, e.To, "args must be followed by a field: args->NAME or args.NAME")
		return ty{}
	case e.Name == "retval":
		if in.kind == program.Kretprobe {
			return tKernelWord
		}
		if in.kind != program.Uretprobe {
			c.errorf(e.From, e.To, "The retval builtin can only be used with 'kretprobe' and 'uretprobe' probes")
			return ty{}
		}
		return tUserWord
	case len(e.Name) >= 4 && e.Name[:3] == "arg" && isDigits(e.Name[3:]) && in.kind == program.TpBTF:
		return c.btfSlot(in, e)
	case len(e.Name) >= 4 && e.Name[:3] == "arg" && isDigits(e.Name[3:]) && in.kind == program.RawTracepoint:
		if n, _ := strconv.Atoi(e.Name[3:]); n >= maxRawArgs {
			c.errorf(e.From, e.To, "a raw tracepoint has at most %d arguments (arg0-arg%d)", maxRawArgs, maxRawArgs-1)
			return ty{}
		}
		return tUint
	case sargIndex(e.Name) >= 0:
		return c.checkSarg(in, e)
	case len(e.Name) >= 4 && e.Name[:3] == "arg" && isDigits(e.Name[3:]):
		if n := usdtArgIndex(in, e.Name); n >= 0 {
			return c.checkUSDTArg(in, e, n)
		}
		if in.kind != program.Uprobe && in.kind != program.Kprobe {
			c.errorf(e.From, e.To, "The %s builtin can only be used with 'kprobes', 'uprobes' and 'usdt' probes", e.Name)
			return ty{}
		}
		if _, ok := ptRegs[e.Name]; !ok {
			c.errorf(e.From, e.To, "x86_64 doesn't support %s", e.Name)
			return ty{}
		}
		if in.kind == program.Kprobe {
			return tKernelWord
		}
		return tUserWord
	case e.Name == "func":
		if in.kind == program.Uprobe || in.kind == program.Uretprobe || isKprobe(in.kind) {
			return tStr(strLen)
		}
		c.errorf(e.From, e.To, "The func builtin can only be used with 'kprobes', 'uprobes' and 'usdt' probes")
		return ty{}
	}
	if t, ok := c.builtinIdent(in, e); ok {
		return t
	}
	c.errorf(e.From, e.To, "Unknown identifier: '%s'", e.Name)
	return ty{}
}

// maxRawArgs is the kernel's bound on a raw tracepoint's arguments
// (MAX_BPF_FUNC_ARGS).
const maxRawArgs = 12

// tUserWord is a uprobe's argument or return value: a 64-bit integer
// that, used as an address (str(arg0)), points into the traced process.
var tUserWord = ty{k: kInt, user: true}

// tKernelWord is a kprobe's argument or return value: used as an address
// (str(arg0)), it points into the kernel, read with probe_read_kernel
// and classified read:kernel, as bpftrace 0.17 reads kprobe arguments.
var tKernelWord = ty{k: kInt}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func (c *compiler) field(in *instance, e *syntax.FieldAccess) ty {
	id, ok := e.X.(*syntax.Ident)
	if in.kind == program.Gatekeeper {
		if !ok || id.Name != "req" {
			c.errorf(e.Pos(), e.End(), "field access in a policy is only on the request (req.NAME)")
			return ty{}
		}
		f := findField(in.fields, e.Field)
		if f == nil {
			c.errorf(e.FieldPos, e.To, "the gatekeeper Request has no field named '%s' (see gatekeeper/ABI.md)", e.Field)
			return ty{}
		}
		if f.Kind == FieldCharArray {
			return tStr(f.Size)
		}
		return tUint
	}
	if _, tuple := tupleIndex(e); tuple && (!ok || id.Name != "args") {
		return c.tupleAccess(in, e)
	}
	if !ok || id.Name != "args" {
		return c.btfAccess(in, e)
	}
	if btfContext(in.kind) {
		return c.btfField(in, e)
	}
	if in.kind == program.Uprobe {
		return c.uprobeArg(in, e)
	}
	if in.kind != program.Tracepoint {
		c.errorf(e.Pos(), e.End(), "The args builtin can only be used with tracepoint/kfunc/uprobe probes (%s used here)", in.spec.Provider)
		return ty{}
	}
	f := findField(in.fields, e.Field)
	if f == nil {
		c.errorf(e.FieldPos, e.To, "Struct/union of type 'struct _tracepoint_%s_%s' does not contain a field named '%s'", in.cat, in.event, e.Field)
		return ty{}
	}
	switch f.Kind {
	case FieldInt:
		return ty{k: kInt, signed: f.Signed, width: f.Size}
	case FieldPtr:
		return c.tpPointer(f, in.cat == "syscalls")
	case FieldCharArray:
		return tStr(f.Size)
	case FieldDataLoc:
		return tStr(strLen)
	}
	c.errorf(e.FieldPos, e.To, "args->%s has type '%s', which is not supported yet", f.Name, f.Type)
	return ty{}
}

func findField(fields []Field, name string) *Field {
	for i := range fields {
		if fields[i].Name == name {
			return &fields[i]
		}
	}
	return nil
}

// binaryOf types e from the types of its operands (chains.go walks
// them).
func (c *compiler) binaryOf(in *instance, e *syntax.Binary, a, b ty) ty {
	if a.k == kNone || b.k == kNone {
		return ty{}
	}
	switch e.Op {
	case syntax.EQL, syntax.NEQ:
		if a.k == kStr && b.k == kStr || isBuffer(a) && isBuffer(b) {
			return tUint
		}
		if sameArrays(a, b) {
			// bpftrace compares two arrays of one type element by
			// element.
			return tUint
		}
		fallthrough
	case syntax.LSS, syntax.LEQ, syntax.GTR, syntax.GEQ:
		// An aggregation's value compares with its own kind only, as in
		// bpftrace 0.17 (@n == @n).
		if a.k != kInt || b.k != kInt || a.from != b.from {
			c.errorf(e.Pos(), e.End(), "Type mismatch for '%s': comparing '%s' with '%s'", e.Op, a, b)
			return ty{}
		}
		_, litX := unparen(e.X).(*syntax.IntLit)
		_, litY := unparen(e.Y).(*syntax.IntLit)
		// bpftrace does not warn when one side is a literal (pid > 0).
		if a.signed != b.signed && !a.ptr && !b.ptr && !litX && !litY && e.Op != syntax.EQL && e.Op != syntax.NEQ {
			c.warnf(e.OpPos, syntax.Pos{Offset: e.OpPos.Offset + len(e.Op.String()), Line: e.OpPos.Line, Col: e.OpPos.Col + len(e.Op.String())},
				"comparison of integers of different signs: '%s' and '%s' can lead to undefined behavior", intName(a), intName(b))
		}
		return tUint
	case syntax.LAND, syntax.LOR:
		if !computable(a) || !computable(b) {
			c.errorf(e.Pos(), e.End(), "Type mismatch for '%s': comparing '%s' with '%s'", e.Op, a, b)
			return ty{}
		}
		return tUint
	}
	return c.arith(in, e.Op, a, b, e.X, e.Y)
}

func intName(t ty) string {
	if t.signed {
		return "int64"
	}
	return "unsigned int64"
}

// arith types + - * / % & | ^ << >>: bpftrace keeps a result signed only
// when both operands are, and divides unsigned.
func (c *compiler) arith(in *instance, op syntax.Token, a, b ty, x, y syntax.Expr) ty {
	if a.k == kNone || b.k == kNone {
		return ty{}
	}
	if a.k == kInt && b.k == kInt && a.from != b.from {
		c.errorf(x.Pos(), y.End(), "Type mismatch for '%s': comparing '%s' with '%s'", op, a, b)
		return ty{}
	}
	if !computable(a) || !computable(b) {
		c.errorf(x.Pos(), y.End(), "The %s operator can not be used on expressions of types %s, %s", op, a, b)
		return ty{}
	}
	if (op == syntax.QUO || op == syntax.REM) && a.signed && b.signed {
		c.warnf(x.Pos(), y.End(), "signed operands for '%s' can lead to undefined behavior (cast to unsigned to silence warning)", op)
	}
	// Pointer arithmetic as in C and bpftrace: p + n, n + p and p - n stay
	// pointers and step by the target's size (gen scales n).
	if a.ptr && !b.ptr && (op == syntax.ADD || op == syntax.SUB) {
		return a
	}
	if b.ptr && !a.ptr && op == syntax.ADD {
		return b
	}
	// A uprobe's argument plus or minus an offset is still an address
	// in the traced process: str(arg0 + 8) reads user memory, as in
	// bpftrace.
	user := (a.user || b.user) && (op == syntax.ADD || op == syntax.SUB)
	return ty{k: kInt, signed: a.signed && b.signed, user: user}
}

func (c *compiler) call(in *instance, e *syntax.Call) ty {
	if in.kind == program.Gatekeeper {
		return c.policyCall(in, e)
	}
	argc := func(n int) bool {
		if len(e.Args) != n {
			c.errorf(e.From, e.To, "%s() requires %d argument%s (%d provided)", e.Name, n, plural(n), len(e.Args))
			return false
		}
		return true
	}
	mapArg := func(a syntax.Expr, keyed bool) *syntax.MapExpr {
		m, ok := a.(*syntax.MapExpr)
		if !ok {
			c.errorf(a.Pos(), a.End(), "%s() expects a map to be provided", e.Name)
			return nil
		}
		if !keyed && m.Keys != nil {
			c.errorf(a.Pos(), a.End(), "The map passed to %s() should not be indexed by a key", e.Name)
			return nil
		}
		mi := c.maps[m.Name]
		if mi == nil || !mi.known {
			if !c.lenient {
				c.errorf(m.From, m.To, "Undefined map: %s", m.Name)
			}
			return nil
		}
		return m
	}
	switch {
	case isAgg(e.Name):
		c.errorf(e.From, e.To, "%s() should be directly assigned to a map", e.Name)
		c.aggCall(in, e)
		return ty{}
	case e.Name == "str":
		if len(e.Args) != 1 && len(e.Args) != 2 {
			c.errorf(e.From, e.To, "str() requires at least 1 argument (%d provided)", len(e.Args))
			return tStr(strLen)
		}
		t := c.expr(in, e.Args[0])
		if _, field := unparen(e.Args[0]).(*syntax.FieldAccess); t.k == kStr && field && len(e.Args) == 1 {
			// str(args->name) of a char array or __data_loc string is the
			// string itself, as bpftrace scripts commonly write it.
			return t
		}
		if !computable(t) {
			c.errorf(e.From, e.To, "str() expects an integer or a pointer type as first argument (%s provided)", t)
		}
		if len(e.Args) == 2 {
			if t := c.expr(in, e.Args[1]); !computable(t) {
				c.errorf(e.Args[1].Pos(), e.Args[1].End(), "str() expects an integer second argument (%s provided)", t)
			}
		}
		return tStr(strLen)
	case e.Name == "printf":
		c.printf(in, e)
		return tVoid
	case e.Name == "debugf":
		c.debugf(in, e)
		return tVoid
	case e.Name == "cat" || e.Name == "system":
		// The host formats a path (cat) or a command line (system) as
		// printf formats its text, then reads the file or runs the
		// command: system() only under --unsafe, as in bpftrace.
		if e.Name == "system" && !c.opts.Unsafe {
			c.errorf(e.From, e.To, "system() is an unsafe function being used in safe mode")
		}
		c.printf(in, e)
		return tVoid
	case e.Name == "exit":
		argc(0)
		return tVoid
	case e.Name == "print":
		if len(e.Args) < 1 || len(e.Args) > 3 {
			c.errorf(e.From, e.To, "print() requires 1 to 3 arguments (%d provided)", len(e.Args))
			return tVoid
		}
		if _, ok := e.Args[0].(*syntax.MapExpr); !ok {
			return c.printValue(in, e)
		}
		mapArg(e.Args[0], false)
		for _, a := range e.Args[1:] {
			if _, ok := constInt(a); !ok {
				c.errorf(a.Pos(), a.End(), "print() top and div arguments must be integer literals")
			}
		}
		return tVoid
	case e.Name == "clear" || e.Name == "zero":
		if argc(1) {
			mapArg(e.Args[0], false)
		}
		return tVoid
	case e.Name == "delete":
		switch len(e.Args) {
		case 1:
			if m := mapArg(e.Args[0], true); m != nil {
				mi := c.maps[m.Name]
				if mi.keyed && m.Keys == nil {
					c.errorf(m.From, m.To, "delete() expects a map with explicit keys (%s[KEY])", m.Name)
					return tVoid
				}
				c.checkKeys(m, mi, c.mapKeys(in, m))
			}
		case 2:
			if m := mapArg(e.Args[0], false); m != nil {
				c.checkKeys(&syntax.MapExpr{From: m.From, To: e.Args[1].End(), Name: m.Name, Keys: []syntax.Expr{e.Args[1]}},
					c.maps[m.Name], []ty{keyType(c.expr(in, e.Args[1]))})
			}
		default:
			c.errorf(e.From, e.To, "delete() requires 1 or 2 arguments (%d provided)", len(e.Args))
		}
		return tVoid
	}
	if t, ok := c.builtinCall(in, e); ok {
		return t
	}
	for _, a := range e.Args {
		c.expr(in, a)
	}
	c.errorf(e.From, e.NameEnd, "Unknown function: %s", e.Name)
	return ty{}
}

func (c *compiler) printf(in *instance, e *syntax.Call) {
	if len(e.Args) == 0 {
		c.errorf(e.From, e.To, "%s() requires at least 1 argument (0 provided)", e.Name)
		return
	}
	lit, ok := e.Args[0].(*syntax.StrLit)
	if !ok {
		c.errorf(e.Args[0].Pos(), e.Args[0].End(), "%s() expects a string literal as first argument", e.Name)
		return
	}
	in.types[lit] = tVoid
	// Conversions are found exactly as the output stage (and bpftrace
	// 0.17) finds them, so that checking and printing cannot disagree.
	var verbs []string
	for _, sp := range output.ParseFormat(lit.Value) {
		verbs = append(verbs, sp.Verb)
	}
	args := e.Args[1:]
	if len(args) > len(verbs) {
		c.errorf(e.From, e.To, "%s: Too many arguments for format string (%d supplied, %d expected)", e.Name, len(args), len(verbs))
	} else if len(args) < len(verbs) {
		c.errorf(e.From, e.To, "%s: Not enough arguments for format string (%d supplied, %d expected)", e.Name, len(args), len(verbs))
	}
	for i, a := range args {
		t := c.expr(in, a)
		if i >= len(verbs) || t.k == kNone {
			continue
		}
		v := verbs[i]
		buffer := t.k == kBlob && t.blob == program.Buffer
		switch want := printfWants(v); {
		case want == "buffer" && !buffer && t.k != kStr,
			want == "string" && (t.k != kStr && t.k != kBlob || buffer) && !c.printsTuple(e, t),
			want == "integer" && !computable(t):
			c.errorf(a.Pos(), a.End(), "printf: %%%s specifier expects a value of type %s (%s supplied)", v[len(v)-1:], want, typeClass(t))
		}
	}
}

// printfWants is the kind of value a conversion prints.
func printfWants(verb string) string {
	switch verb {
	case "s":
		return "string"
	case "r", "rx", "rh":
		return "buffer"
	}
	return "integer"
}
