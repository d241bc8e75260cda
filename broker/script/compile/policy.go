package compile

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/gatekeeper/abi"
)

// TrustedKeysMap is the map a policy's trusted() looks keys up in: key
// id (abi.KeyIDSize bytes, NUL-padded) -> role bits. The gatekeeper fills
// it from the trust configuration, so policy is code and trust is data.
const TrustedKeysMap = "trusted_keys"

// TrustedKeysMax bounds the trusted keys a policy can see.
const TrustedKeysMax = 1024

// Policy compiles a gatekeeper policy: a file whose only block is
// `gatekeeper { … }`. The block reads the Request as `req.FIELD`, returns
// a verdict with `return deny|interpreter|jit|any;` (falling off the end
// denies) and may use scratch variables, if/else, bounded while, string
// comparison, has_prefix() and trusted(). The result is one probe of kind
// program.Gatekeeper and the trusted-keys map; it runs in the interpreter
// with the encoded Request as its context.
func Policy(f *syntax.File) (*program.Program, error) {
	c := &compiler{file: f, maps: map[string]*mapInfo{}}
	var in *instance
	for _, p := range f.Probes {
		for _, s := range p.Specs {
			switch {
			case s.Provider != "gatekeeper" || len(s.Parts) != 0:
				c.errorf(s.From, s.To, "a policy holds one gatekeeper { … } block and nothing else")
			case in != nil:
				c.errorf(s.From, s.To, "More than one gatekeeper block defined")
			case p.Pred != nil:
				c.errorf(p.Pred.Pos(), p.Pred.End(), "a gatekeeper block takes no predicate: use if")
			default:
				in = &instance{probe: p, spec: s, kind: program.Gatekeeper, name: "gatekeeper", fields: requestFields()}
			}
		}
	}
	if in == nil && len(c.errs) == 0 {
		c.errs = append(c.errs, &syntax.Error{Msg: "no gatekeeper { … } block"})
	}
	if len(c.errs) > 0 {
		return nil, syntax.ErrorList(c.errs)
	}
	lowerIncDec(in.probe.Body)
	c.check(in)
	if errs := c.errs.errorsOnly(); len(errs) > 0 {
		return nil, errs
	}
	prog := &program.Program{Source: string(f.Src), Generator: "policy"}
	if p, ok := c.generateBounded(in); ok {
		prog.Probes = []*program.Probe{p}
	}
	if errs := c.errs.errorsOnly(); len(errs) > 0 {
		return nil, errs
	}
	prog.Maps = []*ebpf.MapSpec{{
		Name: TrustedKeysMap, Type: ebpf.Hash, KeySize: abi.KeyIDSize, ValueSize: 8, MaxEntries: TrustedKeysMax,
	}}
	return prog, nil
}

// requestFields are the Request's fields as the checker sees a
// tracepoint's: integers (booleans are one-byte integers) and char arrays.
func requestFields() []Field {
	var fs []Field
	for _, f := range abi.Fields {
		fd := Field{Name: f.Name, Offset: f.Offset, Size: f.Size, Kind: FieldInt, Type: fmt.Sprintf("u%d", 8*f.Size)}
		if f.Kind == abi.String {
			fd.Kind, fd.Type = FieldCharArray, fmt.Sprintf("char[%d]", f.Size)
		}
		fs = append(fs, fd)
	}
	return fs
}

// policyIdent types the identifiers a policy may use: only the verdicts.
// Everything about the task (pid, comm, ...) would describe the broker,
// not the requester, so none of it is there.
func (c *compiler) policyIdent(in *instance, e *syntax.Ident) ty {
	if _, ok := abi.VerdictNames[e.Name]; ok {
		return tUint
	}
	if e.Name == "req" {
		c.errorf(e.From, e.To, "req must be followed by a field: req.NAME")
		return ty{}
	}
	c.errorf(e.From, e.To, "%s is not available in a gatekeeper policy (only req.FIELD, verdicts and scratch variables)", e.Name)
	return ty{}
}

// policyCall types the calls a policy may make: trusted(), has_prefix()
// and the string tests, which need no helper but the ctx read.
func (c *compiler) policyCall(in *instance, e *syntax.Call) ty {
	switch e.Name {
	case "trusted", "has_prefix":
		if len(e.Args) != 2 {
			c.errorf(e.From, e.To, "%s() requires 2 arguments (%d provided)", e.Name, len(e.Args))
			return tUint
		}
		if t := c.expr(in, e.Args[0]); t.k != kStr && t.k != kNone {
			c.errorf(e.Args[0].Pos(), e.Args[0].End(), "%s() expects a string as first argument (%s provided)", e.Name, t)
		}
		lit, ok := unparen(e.Args[1]).(*syntax.StrLit)
		if !ok {
			c.errorf(e.Args[1].Pos(), e.Args[1].End(), "%s() expects a string literal as second argument", e.Name)
			return tUint
		}
		in.types[e.Args[1]] = tStr(len(lit.Value) + 1)
		if e.Name == "trusted" {
			bits, ok := abi.RoleBits[lit.Value]
			if !ok {
				c.errorf(lit.From, lit.To, "unknown role %q (broker, generator, collector, policy, release)", lit.Value)
				return tUint
			}
			c.setConst(e, bits)
		}
		return tUint
	case "strncmp", "strcontains":
		t, _ := c.builtinCall(in, e)
		return t
	}
	for _, a := range e.Args {
		c.expr(in, a)
	}
	c.errorf(e.From, e.NameEnd, "%s() is not available in a gatekeeper policy (trusted, has_prefix, strncmp, strcontains)", e.Name)
	return ty{}
}

// policyReturn checks `return VERDICT;`.
func (c *compiler) policyReturn(in *instance, s *syntax.ReturnStmt) {
	if in.kind != program.Gatekeeper {
		c.errorf(s.Pos(), s.End(), "return is only allowed in a gatekeeper policy")
		return
	}
	if s.Value == nil {
		c.errorf(s.Pos(), s.End(), "a policy returns a verdict: return deny|interpreter|jit|any;")
		return
	}
	if t := c.expr(in, s.Value); t.k != kInt && t.k != kNone {
		c.errorf(s.Value.Pos(), s.Value.End(), "a policy returns a verdict, not %s", t)
	}
}

// genReturn ends the policy with the verdict in r0. A value outside the
// verdicts is the gatekeeper's to refuse (fail closed).
func (g *gen) genReturn(s *syntax.ReturnStmt) {
	g.intExpr(s.Value)
	g.emit(asm.Mov.Reg(asm.R0, rAcc))
	g.emit(asm.Ja.Label(g.ret))
	g.done = true
}

// policyIntCall evaluates trusted() and has_prefix() into rAcc.
func (g *gen) policyIntCall(e *syntax.Call) bool {
	switch e.Name {
	case "trusted":
		key := g.alloc(abi.KeyIDSize)
		g.memInto(e.Args[0], key, abi.KeyIDSize)
		g.mapPtr(asm.R1, TrustedKeysMap)
		g.stackPtr(asm.R2, key)
		g.call(asm.FnMapLookupElem)
		g.emit(asm.Mov.Imm(rAcc, 0))
		done := g.newLabel()
		g.emit(asm.JEq.Imm(asm.R0, 0, done))
		g.emit(asm.LoadMem(rTmp, asm.R0, 0, asm.DWord))
		g.loadConst(rAux, int64(g.c.consts[e]))
		g.emit(asm.And.Reg(rTmp, rAux))
		g.emit(asm.JEq.Imm(rTmp, 0, done))
		g.emit(asm.Mov.Imm(rAcc, 1))
		g.label(done)
	case "has_prefix":
		p := g.memExpr(e.Args[0])
		n := g.typeOf(e.Args[0]).storage()
		prefix := unparen(e.Args[1]).(*syntax.StrLit).Value
		if len(prefix) > n {
			// A string of n bytes cannot hold the prefix.
			g.emit(asm.Mov.Imm(rAcc, 0))
			return true
		}
		no, done := g.newLabel(), g.newLabel()
		for i := 0; i < len(prefix); i++ {
			g.emit(asm.LoadMem(rTmp, asm.R10, p+int16(i), asm.Byte))
			g.emit(asm.JNE.Imm(rTmp, int32(prefix[i]), no))
		}
		g.emit(asm.Mov.Imm(rAcc, 1))
		g.emit(asm.Ja.Label(done))
		g.label(no)
		g.emit(asm.Mov.Imm(rAcc, 0))
		g.label(done)
	default:
		return false
	}
	return true
}
