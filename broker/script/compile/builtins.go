package compile

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// This file holds bpftrace's everyday builtins beyond the core language:
// stacks, symbols, user names, addresses, times, buffers, string and map
// tests, signal(), join() and time(). Values the kernel cannot render
// (a symbol, a stack) travel as kBlob bytes that the host resolves when it
// prints them.

const (
	// maxStackFrames is the kernel's default kernel.perf_event_max_stack,
	// which bounds what bpf_get_stackid can record.
	maxStackFrames = 127
	// stackMapEntries bounds the distinct stacks of one stack map.
	stackMapEntries = 4096
	// join() reads at most joinArgs strings of joinArgSize bytes, as
	// bpftrace 0.17 does.
	joinArgs    = 16
	joinArgSize = 1024
	// maxBuf is the largest buf(): bpftrace's BPFTRACE_STRLEN.
	maxBuf = 64
	// bpfFUserStack is BPF_F_USER_STACK for bpf_get_stackid.
	bpfFUserStack = 1 << 8
)

// Symbols answers the compile-time symbol lookups of kaddr() and uaddr().
type Symbols interface {
	// KernelAddr is the address of a kernel symbol (kallsyms).
	KernelAddr(name string) (uint64, error)
	// UserAddr is the address and size of a symbol in an ELF file.
	UserAddr(path, name string) (addr uint64, size int, err error)
}

func stackMapName(frames int) string { return fmt.Sprintf("stack_%d", frames) }

// stackType registers the stack map a stack of that many frames lives in.
func (c *compiler) stackType(user bool, frames int, perf bool) ty {
	if c.stacks == nil {
		c.stacks = map[int]bool{}
	}
	c.stacks[frames] = true
	t := blob(program.KStack)
	if user {
		t.blob = program.UStack
	}
	t.stackMap, t.frames, t.perf = stackMapName(frames), frames, perf
	return t
}

// builtinIdent types the identifiers of this file; ok is false for others.
func (c *compiler) builtinIdent(in *instance, e *syntax.Ident) (ty, bool) {
	switch e.Name {
	case "kstack", "ustack":
		return c.stackType(e.Name == "ustack", maxStackFrames, false), true
	case "username":
		return blob(program.Username), true
	case "cgroup":
		return tUint, true
	case "ctx":
		return c.ctxIdent(in, e), true
	}
	return c.enumIdent(e)
}

// builtinCall types the calls of this file; ok is false for other names.
func (c *compiler) builtinCall(in *instance, e *syntax.Call) (ty, bool) {
	bad := func(format string, args ...any) {
		c.errorf(e.From, e.To, format, args...)
	}
	// exact and nargs word a wrong argument count as bpftrace's
	// check_nargs and check_varargs do; each builtin uses the one
	// bpftrace uses for it.
	count := func(n int) string {
		switch n {
		case 0:
			return "no arguments"
		case 1:
			return "one argument"
		}
		return fmt.Sprintf("%d arguments", n)
	}
	exact := func(n int) bool {
		if len(e.Args) != n {
			bad("%s() requires %s (%d provided)", e.Name, count(n), len(e.Args))
			return false
		}
		return true
	}
	nargs := func(lo, hi int) bool {
		switch {
		case len(e.Args) < lo:
			bad("%s() requires at least %s (%d provided)", e.Name, count(lo), len(e.Args))
		case len(e.Args) > hi && hi == 0:
			bad("%s() requires no arguments (%d provided)", e.Name, len(e.Args))
		case len(e.Args) > hi:
			bad("%s() takes up to %s (%d provided)", e.Name, count(hi), len(e.Args))
		default:
			return true
		}
		return false
	}
	intArg := func(i int) bool {
		t := c.expr(in, e.Args[i])
		if !computable(t) {
			// bpftrace's wording: its check_arg, or the builtin's own.
			switch e.Name {
			case "ksym", "usym":
				c.errorf(e.Args[i].Pos(), e.Args[i].End(), "%s() expects an integer or pointer argument", e.Name)
			case "join":
				c.errorf(e.Args[i].Pos(), e.Args[i].End(), "%s() only supports int or pointer arguments (%s provided)", e.Name, typeClass(t))
			default:
				c.errorf(e.Args[i].Pos(), e.Args[i].End(), "%s() only supports integer arguments (%s provided)", e.Name, typeClass(t))
			}
			return false
		}
		return true
	}
	strLit := func(i int) (string, bool) {
		lit, ok := unparen(e.Args[i]).(*syntax.StrLit)
		if !ok {
			c.errorf(e.Args[i].Pos(), e.Args[i].End(), "%s() expects a string literal (%s provided)", e.Name, typeClass(c.expr(in, e.Args[i])))
			return "", false
		}
		in.types[e.Args[i]] = tStr(len(lit.Value) + 1)
		return lit.Value, true
	}
	switch e.Name {
	case "kstack", "ustack":
		return c.stackCall(in, e), true
	case "ksym", "usym":
		if exact(1) {
			intArg(0)
		}
		if e.Name == "ksym" {
			return blob(program.KSym), true
		}
		return blob(program.USym), true
	case "uptr", "kptr":
		// An address space annotation, as bpftrace's: uptr(x) is x as
		// a pointer into the traced process, kptr(x) into the kernel.
		if !exact(1) {
			return tUint, true
		}
		t := c.expr(in, e.Args[0])
		if !computable(t) {
			bad("%s() expects an integer or a pointer argument (%s provided)", e.Name, t)
			return tUint, true
		}
		t.user = e.Name == "uptr"
		return t, true
	case "kaddr", "uaddr":
		if !exact(1) {
			return tUint, true
		}
		name, ok := strLit(0)
		if !ok {
			return tUint, true
		}
		user := e.Name == "uaddr"
		if user && in.kind != program.Uprobe && in.kind != program.Uretprobe {
			bad("uaddr can only be used with 'uprobes' and 'usdt' probes")
			return tUint, true
		}
		if c.opts.Symbols == nil {
			bad("%s(): symbol addresses are not available here", e.Name)
			return tUint, true
		}
		if !user {
			addr, err := c.opts.Symbols.KernelAddr(name)
			if err != nil {
				bad("%v", err)
			}
			c.setConst(e, addr)
			return tUint, true
		}
		// bpftrace types uaddr() as a pointer to an integer of the
		// symbol's size (1, 2 or 4 bytes, else 8), so *uaddr("x") reads
		// the variable and uaddr("arr") + 1 steps by an element.
		t := ty{k: kInt, ptr: true, user: true, depth: 1, esize: 8, esigned: true}
		addr, size, err := c.opts.Symbols.UserAddr(in.path, name)
		if err != nil {
			bad("%v", err)
			return t, true
		}
		if size == 1 || size == 2 || size == 4 {
			t.esize = size
		}
		c.setConst(e, addr)
		return t, true
	case "pton":
		return c.ptonCall(in, e), true
	case "macaddr":
		return c.macaddrCall(in, e), true
	case "cgroup_path":
		return c.cgroupPathCall(in, e), true
	case "reg":
		return c.regCall(in, e), true
	case "ntop":
		if !nargs(1, 2) {
			return blob(program.Inet), true
		}
		if len(e.Args) == 2 {
			intArg(0)
		}
		a := e.Args[len(e.Args)-1]
		if f := c.arrayField(in, a); f != nil {
			if f.Size != 4 && f.Size != 16 {
				c.errorf(a.Pos(), a.End(), "ntop() expects an array of 4 or 16 bytes (%d provided)", f.Size)
			}
			in.types[a] = ty{k: kVoid}
		} else if t := c.expr(in, a); arrayValue(in, a, t) {
			if n, _ := arrayBytes(in, a, t); n != 4 && n != 16 {
				c.errorf(a.Pos(), a.End(), "ntop() expects an array of 4 or 16 bytes (%d provided)", n)
			}
		} else if !computable(t) {
			c.errorf(a.Pos(), a.End(), "ntop() expects an integer or an array of 4 or 16 bytes (%s provided)", t)
		}
		return blob(program.Inet), true
	case "strerror":
		if exact(1) {
			intArg(0)
		}
		return blob(program.Strerror), true
	case "strftime":
		t := blob(program.Timestamp)
		if nargs(2, 2) {
			t.format, _ = strLit(0)
			intArg(1)
		}
		return t, true
	case "buf":
		t := ty{k: kBlob, blob: program.Buffer, size: 8 + maxBuf}
		if !nargs(1, 2) {
			return t, true
		}
		n := maxBuf
		if f := c.arrayField(in, e.Args[0]); f != nil {
			in.types[e.Args[0]] = ty{k: kVoid}
			n = min(f.Size, maxBuf)
		} else if at := c.expr(in, e.Args[0]); at.k == kStr || at.k == kRecord {
			// A value's own bytes: a string ("ok", str(), a char
			// array), or an array or struct as the program lays it
			// out.
			n = min(at.size, maxBuf)
			mi, member := in.members[e.Args[0]]
			if member && at.k == kStr {
				// A char array's own size: its string type rounds
				// it up.
				n = min(mi.size, maxBuf)
			}
			if at.k == kStr && !member && len(e.Args) == 1 {
				// A char array field is an array; any other
				// string's length is not its type's.
				bad("buf() expects a length argument for non-array type string")
				return t, true
			}
		} else if !computable(at) {
			bad("buf() expects an integer, a string, an array or a struct (%s provided)", at)
			return t, true
		} else if len(e.Args) == 1 && at.k == kInt {
			bad("buf() requires a length for a pointer argument: buf(ptr, LEN)")
			return t, true
		}
		if len(e.Args) == 2 {
			if v, ok := constInt(e.Args[1]); ok {
				if v < 0 {
					c.errorf(e.Args[1].Pos(), e.Args[1].End(), "buf() length must not be negative")
				} else if v > maxBuf {
					c.warnf(e.From, e.To, "buf() length is too long and will be shortened to %d bytes (see BPFTRACE_STRLEN)", maxBuf)
				}
				n = int(min(max(v, 0), maxBuf))
			} else {
				intArg(1)
			}
		}
		t.size = 8 + align8(max(n, 1))
		return t, true
	case "sizeof":
		if !exact(1) {
			return tUint, true
		}
		c.setConst(e, uint64(c.sizeOf(in, e.Args[0])))
		return tUint, true
	case "offsetof":
		if !exact(2) {
			return tUint, true
		}
		if off, ok := c.offsetOf(in, e.Args[0], e.Args[1]); ok {
			c.setConst(e, uint64(off))
		}
		return tUint, true
	case "strncmp":
		if !exact(3) {
			return tInt, true
		}
		c.strArgs(in, e, 2)
		if n, ok := constInt(e.Args[2]); !ok || n < 0 {
			c.errorf(e.Args[2].Pos(), e.Args[2].End(), "strncmp() expects a non-negative integer literal as third argument")
		} else {
			in.types[e.Args[2]] = tInt
		}
		return tInt, true
	case "strcontains":
		if exact(2) {
			c.strArgs(in, e, 2)
		}
		return tUint, true
	case "bswap":
		if !exact(1) {
			return tUint, true
		}
		t := c.expr(in, e.Args[0])
		if !computable(t) {
			c.errorf(e.Args[0].Pos(), e.Args[0].End(), "bswap() only supports integer arguments (%s provided)", t)
			return ty{}, true
		}
		// The bytes of the argument's own width: bswap((int16)x)
		// swaps two.
		return ty{k: kInt, width: t.width}, true
	case "has_key":
		if len(e.Args) != 2 {
			bad("has_key() requires 2 arguments (%d provided)", len(e.Args))
			return tUint, true
		}
		m, ok := e.Args[0].(*syntax.MapExpr)
		if !ok || m.Keys != nil {
			c.errorf(e.Args[0].Pos(), e.Args[0].End(), "has_key() expects a map without a key as first argument")
			return tUint, true
		}
		mi := c.maps[m.Name]
		if mi == nil || !mi.known {
			if !c.lenient {
				c.errorf(m.From, m.To, "Undefined map: %s", m.Name)
			}
			return tUint, true
		}
		c.checkKeys(&syntax.MapExpr{From: m.From, To: e.Args[1].End(), Name: m.Name, Keys: []syntax.Expr{e.Args[1]}},
			mi, []ty{keyType(c.expr(in, e.Args[1]))})
		return tUint, true
	case "len":
		bad("len() is not supported: counting a map's elements needs a for-each callback in the kernel; print the map instead")
		return tUint, true
	case "signal":
		if !c.opts.Unsafe {
			bad("signal() is an unsafe function being used in safe mode")
			return tVoid, true
		}
		switch in.kind {
		case program.Begin, program.End:
			bad("signal can not be used with \"%s\" probes", in.spec.Provider)
			return tVoid, true
		}
		if !nargs(1, 1) {
			return tVoid, true
		}
		if lit, ok := unparen(e.Args[0]).(*syntax.StrLit); ok {
			name := strings.ToUpper(lit.Value)
			if !strings.HasPrefix(name, "SIG") {
				name = "SIG" + name
			}
			sig := unix.SignalNum(name)
			if sig == 0 {
				c.errorf(lit.From, lit.To, "signal(): unknown signal %q", lit.Value)
				return tVoid, true
			}
			in.types[e.Args[0]] = tVoid
			c.setConst(e, uint64(sig))
		} else if v, ok := constInt(e.Args[0]); ok {
			if v < 1 || v > 64 {
				c.errorf(e.Args[0].Pos(), e.Args[0].End(), "signal(): %d is not a valid signal (1-64)", v)
			}
			in.types[e.Args[0]] = tInt
			c.setConst(e, uint64(v))
		} else {
			intArg(0)
		}
		return tVoid, true
	case "join":
		if !nargs(1, 2) {
			return tVoid, true
		}
		intArg(0)
		if len(e.Args) == 2 {
			strLit(1)
		}
		return tVoid, true
	case "time":
		if nargs(0, 1) && len(e.Args) == 1 {
			strLit(0)
		}
		return tVoid, true
	}
	return ty{}, false
}

// typeClass names t's kind as bpftrace's "(… provided)" and "(… supplied)" do: its Type,
// without the size ("string", not "string[64]").
func typeClass(t ty) string {
	switch t.k {
	case kInt:
		if t.from != program.Plain {
			return aggName[t.from]
		}
		return "integer"
	case kStr:
		return "string"
	case kTuple:
		return "tuple"
	case kBlob:
		return blobName[t.blob]
	}
	return "none"
}

// stackCall types kstack(), kstack(N), kstack(MODE) and kstack(MODE, N).
func (c *compiler) stackCall(in *instance, e *syntax.Call) ty {
	perf, frames := false, maxStackFrames
	args := e.Args
	if len(args) > 2 {
		c.errorf(e.From, e.To, "%s() takes up to 2 arguments (%d provided)", e.Name, len(args))
		args = nil
	}
	if len(args) > 0 {
		if id, ok := args[0].(*syntax.Ident); ok {
			switch id.Name {
			case "perf":
				perf = true
			case "bpftrace":
			default:
				c.errorf(id.From, id.To, "%s(): unknown stack mode '%s' (bpftrace or perf)", e.Name, id.Name)
			}
			in.types[id] = tVoid
			args = args[1:]
		}
	}
	if len(args) == 1 {
		n, ok := constInt(args[0])
		switch {
		case !ok:
			c.errorf(args[0].Pos(), args[0].End(), "%s(): the number of frames must be an integer literal", e.Name)
		case n < 1 || n > maxStackFrames:
			c.errorf(args[0].Pos(), args[0].End(), "%s(): the number of frames must be between 1 and %d (kernel.perf_event_max_stack)", e.Name, maxStackFrames)
		default:
			frames = int(n)
		}
		in.types[args[0]] = tInt
	} else if len(args) > 1 {
		c.errorf(e.From, e.To, "%s(): expected %s(MODE, FRAMES)", e.Name, e.Name)
	}
	return c.stackType(e.Name == "ustack", frames, perf)
}

// strArgs checks that the first n arguments are strings.
func (c *compiler) strArgs(in *instance, e *syntax.Call, n int) {
	for _, a := range e.Args[:n] {
		if t := c.expr(in, a); t.k != kStr && t.k != kNone {
			c.errorf(a.Pos(), a.End(), "%s() only supports string arguments (%s provided)", e.Name, typeClass(t))
		}
	}
}

// arrayField returns the tracepoint field e names when it is a fixed
// array (u8 addr[4], char comm[16]): ntop() and buf() read its bytes.
func (c *compiler) arrayField(in *instance, e syntax.Expr) *Field {
	fa, ok := unparen(e).(*syntax.FieldAccess)
	if !ok || in.kind != program.Tracepoint {
		return nil
	}
	if id, ok := fa.X.(*syntax.Ident); !ok || id.Name != "args" {
		return nil
	}
	f := findField(in.fields, fa.Field)
	if f == nil || (f.Kind != FieldArray && f.Kind != FieldCharArray) {
		return nil
	}
	return f
}

// sizeOf is sizeof(TYPE) or sizeof(EXPR): integer types by their C size,
// tracepoint fields by their declared size, other values by their storage.
func (c *compiler) sizeOf(in *instance, e syntax.Expr) int {
	if id, ok := unparen(e).(*syntax.Ident); ok {
		if bits, _, ok := castType(id.Name); ok {
			in.types[e] = tVoid
			return bits / 8
		}
		if n, ok := c.sizeOfRecord(in, id); ok {
			return n
		}
	}
	if fa, ok := unparen(e).(*syntax.FieldAccess); ok && !onArgs(fa) {
		t := c.expr(in, e)
		if n, ok := tupleElemSizeof(in, fa); ok {
			return n
		}
		if n, ok := c.sizeOfMember(in, e); ok {
			return n
		}
		return t.storage()
	}
	if fa, ok := unparen(e).(*syntax.FieldAccess); ok && (in.kind == program.Tracepoint || btfContext(in.kind) || in.kind == program.Uprobe) {
		if in.kind == program.Uprobe {
			c.expr(in, e) // reads the parameters
		}
		if f := findField(in.fields, fa.Field); f != nil {
			c.expr(in, e)
			return f.Size
		}
	}
	t := c.expr(in, e)
	switch x := unparen(e).(type) {
	case *syntax.StrLit:
		// A literal's type is its own length with the NUL, not the
		// buffer it is stored in.
		return len(x.Value) + 1
	case *syntax.Call:
		// bpftrace's layouts: a timestamp holds a format id beside the
		// time; a buffer is a length byte and its bytes.
		switch {
		case t.k == kBlob && t.blob == program.Timestamp:
			return 16
		case t.k == kBlob && t.blob == program.Buffer:
			return c.bufLen(in, x) + 1
		case t.k == kBlob && t.blob == program.MacAddr:
			return macSize
		}
	}
	if t.k == kInt {
		return 8
	}
	if t.k == kTuple {
		return tupleSizeof(t)
	}
	return t.storage()
}

// bufLen is how many bytes buf() reads at most: an array field's size or
// a literal length, clamped to maxBuf.
func (c *compiler) bufLen(in *instance, e *syntax.Call) int {
	n := maxBuf
	if len(e.Args) > 0 {
		if f := c.arrayField(in, e.Args[0]); f != nil {
			n = min(f.Size, maxBuf)
		}
	}
	if len(e.Args) == 2 {
		if v, ok := constInt(e.Args[1]); ok {
			n = int(min(max(v, 0), int64(n)))
		}
	}
	return n
}

func (c *compiler) setConst(e *syntax.Call, v uint64) {
	if c.consts == nil {
		c.consts = map[*syntax.Call]uint64{}
	}
	c.consts[e] = v
}

// Code generation.

// intCall evaluates an integer-valued builtin call into rAcc.
func (g *gen) intCall(e *syntax.Call) {
	switch e.Name {
	case "uptr", "kptr":
		g.intExpr(e.Args[0])
	case "reg":
		g.regValue(e)
	case "kaddr", "uaddr", "sizeof", "offsetof":
		if e.Name == "kaddr" {
			g.noteKernelAddr(e, "kaddr() reveals a kernel address")
		}
		g.loadConst(rAcc, int64(g.c.consts[e]))
	case "strncmp":
		n, _ := constInt(e.Args[2])
		g.strCompare(e.Args[0], e.Args[1], int(n))
	case "strcontains":
		g.strContains(e.Args[0], e.Args[1])
	case "bswap":
		g.intExpr(e.Args[0])
		size, swap := map[int]asm.Size{0: asm.DWord, 2: asm.Half, 4: asm.Word, 8: asm.DWord}[g.typeOf(e).width]
		if swap {
			// BPF_END to the other byte order swaps on this host
			// (the v4 unconditional swap is not on every kernel).
			order := asm.BE
			if binary.NativeEndian.Uint16([]byte{0, 1}) == 1 {
				order = asm.LE
			}
			g.emit(asm.HostTo(order, rAcc, size))
		}
		if g.typeOf(e).width == 1 {
			g.emit(asm.And.Imm(rAcc, 0xff))
		}
	case "has_key":
		me := e.Args[0].(*syntax.MapExpr)
		m := g.c.maps[me.Name]
		key := g.key(m, []syntax.Expr{e.Args[1]}, false)
		g.mapPtr(asm.R1, bpfMapName(m.id))
		g.stackPtr(asm.R2, key)
		g.call(asm.FnMapLookupElem)
		g.boolOf(asm.JNE.Imm(asm.R0, 0, ""))
	default:
		panic(fmt.Sprintf("compile: intCall of %s", e.Name))
	}
}

// strCompare sets rAcc to 0 when the first n characters of a and b (up
// to a NUL) are equal, else 1: bpftrace's strncmp.
func (g *gen) strCompare(a, b syntax.Expr, n int) {
	pa, pb := g.memExpr(a), g.memExpr(b)
	n = min(n, g.typeOf(a).storage(), g.typeOf(b).storage())
	ne, done := g.newLabel(), g.newLabel()
	g.compareStrings(pa, pb, n, ne)
	g.emit(asm.Mov.Imm(rAcc, 0))
	g.emit(asm.Ja.Label(done))
	g.label(ne)
	g.emit(asm.Mov.Imm(rAcc, 1))
	g.label(done)
}

// strContains sets rAcc to 1 when needle occurs in haystack. The search
// is unrolled over every start position: both strings are bounded.
func (g *gen) strContains(hay, needle syntax.Expr) {
	ph, pn := g.memExpr(hay), g.memExpr(needle)
	nh, nn := g.typeOf(hay).storage(), g.typeOf(needle).storage()
	found, no, done := g.newLabel(), g.newLabel(), g.newLabel()
	// An empty needle is found everywhere.
	g.emit(asm.LoadMem(rAux, asm.R10, pn, asm.Byte))
	g.emit(asm.JEq.Imm(rAux, 0, found))
	for s := 0; s < nh; s++ {
		next := g.newLabel()
		// The haystack ended before this start: not found.
		g.emit(asm.LoadMem(rTmp, asm.R10, ph+int16(s), asm.Byte))
		g.emit(asm.JEq.Imm(rTmp, 0, no))
		for i := 0; i < nn && s+i < nh; i++ {
			g.emit(asm.LoadMem(rAux, asm.R10, pn+int16(i), asm.Byte))
			g.emit(asm.JEq.Imm(rAux, 0, found))
			g.emit(asm.LoadMem(rTmp, asm.R10, ph+int16(s+i), asm.Byte))
			g.emit(asm.JNE.Reg(rTmp, rAux, next))
		}
		if s+nn <= nh {
			// The needle's whole buffer matched without its NUL: it fills
			// its buffer, so it is found.
			g.emit(asm.Ja.Label(found))
		} else {
			g.emit(asm.Ja.Label(no))
		}
		g.label(next)
	}
	g.label(no)
	g.emit(asm.Mov.Imm(rAcc, 0))
	g.emit(asm.Ja.Label(done))
	g.label(found)
	g.emit(asm.Mov.Imm(rAcc, 1))
	g.label(done)
}

// blobInto writes a host-resolved value into the n bytes at off; ok is
// false when e is not one of this file's producers.
func (g *gen) blobInto(e syntax.Expr, off int16, n int) bool {
	t := g.typeOf(e)
	switch e := e.(type) {
	case *syntax.Ident:
		switch e.Name {
		case "kstack", "ustack":
			g.stackInto(t, off)
		case "username":
			g.builtin("uid")
			g.emit(asm.StoreMem(asm.R10, off, rAcc, asm.DWord))
		default:
			return false
		}
	case *syntax.Call:
		switch e.Name {
		case "kstack", "ustack":
			if t.perf && t.blob == program.KStack {
				g.noteKernelAddr(e, "kstack(perf) prints raw kernel addresses")
			}
			g.stackInto(t, off)
		case "ksym", "strftime", "strerror":
			if e.Name == "ksym" {
				g.noteKernelAddr(e, "ksym() names any address it is given, which reveals where the kernel lies")
			}
			g.intExpr(e.Args[len(e.Args)-1])
			g.emit(asm.StoreMem(asm.R10, off, rAcc, asm.DWord))
		case "usym":
			g.intExpr(e.Args[0])
			g.emit(asm.StoreMem(asm.R10, off, rAcc, asm.DWord))
			g.call(asm.FnGetCurrentPidTgid)
			g.emit(asm.RSh.Imm(asm.R0, 32))
			g.emit(asm.StoreMem(asm.R10, off+8, asm.R0, asm.DWord))
		case "ntop":
			g.ntopInto(e, off)
		case "macaddr":
			g.macaddrInto(e, off)
		case "cgroup_path":
			g.cgroupPathInto(e, off)
		case "buf":
			g.captureString(e.Args[0])
			g.bufInto(e, t, off)
		default:
			return false
		}
	default:
		return false
	}
	if n > t.storage() {
		g.zero(off+int16(t.storage()), n-t.storage())
	}
	return true
}

// stackInto takes the current stack with bpf_get_stackid. A user stack
// is packed with the pid whose address space it belongs to.
func (g *gen) stackInto(t ty, off int16) {
	g.emit(asm.Mov.Reg(asm.R1, rCtx))
	g.mapPtr(asm.R2, t.stackMap)
	flags := int32(0)
	if t.blob == program.UStack {
		flags = bpfFUserStack
		g.ustack = true
	} else {
		g.kstack = true
	}
	g.emit(asm.Mov.Imm(asm.R3, flags))
	g.call(asm.FnGetStackid)
	if t.blob == program.UStack {
		g.emit(asm.Mov.Reg(rAux, asm.R0))
		g.emit(asm.LSh.Imm(rAux, 32))
		g.emit(asm.RSh.Imm(rAux, 32))
		g.call(asm.FnGetCurrentPidTgid)
		g.emit(asm.RSh.Imm(asm.R0, 32))
		g.emit(asm.LSh.Imm(asm.R0, 32))
		g.emit(asm.Or.Reg(asm.R0, rAux))
	}
	g.emit(asm.StoreMem(asm.R10, off, asm.R0, asm.DWord))
}

// ntopInto writes {u64 family, 16 address bytes}: an integer is an IPv4
// address in network byte order, an array field is copied as it is.
func (g *gen) ntopInto(e *syntax.Call, off int16) {
	a := e.Args[len(e.Args)-1]
	g.zero(off, 24)
	family := func(def int32) {
		if len(e.Args) == 2 {
			g.intExpr(e.Args[0])
			g.emit(asm.StoreMem(asm.R10, off, rAcc, asm.DWord))
			return
		}
		g.emit(storeImm64(asm.R10, off, def))
	}
	if f := g.c.arrayField(g.in, a); f != nil {
		size := min(f.Size, 16)
		g.readCtx(off+8, f.Offset, size)
		if size == 16 {
			family(unix.AF_INET6)
		} else {
			family(unix.AF_INET)
		}
		return
	}
	if t := g.typeOf(a); arrayValue(g.in, a, t) {
		size, _ := arrayBytes(g.in, a, t)
		g.memInto(a, off+8, min(size, 16))
		if size == 16 {
			family(unix.AF_INET6)
		} else {
			family(unix.AF_INET)
		}
		return
	}
	g.intExpr(a)
	g.emit(asm.StoreMem(asm.R10, off+8, rAcc, asm.Word))
	family(unix.AF_INET)
}

// bufInto writes {u64 length, bytes}: buf(ptr, len) reads the target
// memory, buf(args->array) the array in the record.
func (g *gen) bufInto(e *syntax.Call, t ty, off int16) {
	limit := t.size - 8
	g.zero(off, t.size)
	if f := g.c.arrayField(g.in, e.Args[0]); f != nil {
		n := min(f.Size, limit)
		if len(e.Args) == 2 {
			if v, ok := constInt(e.Args[1]); ok {
				n = min(n, int(v))
			}
		}
		g.loadConst(rAcc, int64(n))
		g.emit(asm.StoreMem(asm.R10, off, rAcc, asm.DWord))
		g.readCtx(off+8, f.Offset, n)
		return
	}
	src := g.typeOf(e.Args[0])
	if src.k == kStr || src.k == kRecord {
		g.bufOfValue(e, src, off, limit)
		return
	}
	g.noteRead("buf()", e, e.Args[0], nil, src.user)
	g.intExpr(e.Args[0])
	tmp := g.alloc(8)
	g.emit(asm.StoreMem(asm.R10, tmp, rAcc, asm.DWord))
	g.bufLength(e.Args[1], limit)
	g.emit(asm.StoreMem(asm.R10, off, rAcc, asm.DWord))
	g.stackPtr(asm.R1, off+8)
	g.emit(asm.Mov.Reg(asm.R2, rAcc))
	g.emit(asm.LoadMem(asm.R3, asm.R10, tmp, asm.DWord))
	if src.user {
		g.call(asm.FnProbeReadUser)
	} else {
		g.call(asm.FnProbeReadKernel)
	}
}

// bufOfValue is buf() of a string, array or struct value: its bytes,
// limit at most, as many as a constant length asks (zeros past the
// value's end, as bpftrace gives them), or a run-time length clamped to
// them.
func (g *gen) bufOfValue(e *syntax.Call, src ty, off int16, limit int) {
	have := min(limit, src.size)
	if mi, ok := g.in.members[e.Args[0]]; ok && src.k == kStr {
		have = min(limit, mi.size)
	}
	g.memInto(e.Args[0], off+8, have)
	if len(e.Args) == 1 {
		g.loadConst(rAcc, int64(have))
	} else if _, ok := constInt(e.Args[1]); ok {
		// A constant length may ask for zeros past the value's end.
		g.bufLength(e.Args[1], limit)
	} else {
		g.bufLength(e.Args[1], have)
	}
	g.emit(asm.StoreMem(asm.R10, off, rAcc, asm.DWord))
}

// bufLength loads buf()'s length n into rAcc, 0 to limit: a constant
// as it is (clamped), a run-time one clamped in the program, so that the
// verifier can bound the read.
func (g *gen) bufLength(n syntax.Expr, limit int) {
	if v, ok := constInt(n); ok {
		g.loadConst(rAcc, min(max(v, 0), int64(limit)))
		return
	}
	g.intExpr(n)
	within, pos := g.newLabel(), g.newLabel()
	g.emit(asm.JSGE.Imm(rAcc, 0, pos))
	g.emit(asm.Mov.Imm(rAcc, 0))
	g.label(pos)
	g.emit(asm.JLE.Imm(rAcc, int32(limit), within))
	g.emit(asm.Mov.Imm(rAcc, int32(limit)))
	g.label(within)
}

// voidBuiltin generates the statements of this file; ok is false for
// other names.
func (g *gen) voidBuiltin(e *syntax.Call) bool {
	switch e.Name {
	case "zero":
		m := g.c.maps[e.Args[0].(*syntax.MapExpr).Name]
		g.event(program.EventZero, uint64(m.id))
	case "time":
		f := "%H:%M:%S\n"
		if len(e.Args) == 1 {
			f = unparen(e.Args[0]).(*syntax.StrLit).Value
		}
		id := len(g.c.formats)
		g.c.formats = append(g.c.formats, &program.Format{Fmt: f, Size: 16})
		g.event(program.EventTime, uint64(id))
	case "signal":
		if v, ok := g.c.consts[e]; ok {
			g.emit(asm.Mov.Imm(asm.R1, int32(v)))
		} else {
			g.intExpr(e.Args[0])
			g.emit(asm.Mov.Reg(asm.R1, rAcc))
		}
		g.call(asm.FnSendSignal)
	case "join":
		g.join(e)
	default:
		return false
	}
	return true
}

// join reads up to joinArgs strings through an array of pointers (argv)
// straight into a ring buffer reservation: 16 KiB does not fit the stack.
// Reading stops at the first NULL pointer; the record says how many
// strings it holds.
func (g *gen) join(e *syntax.Call) {
	delim := " "
	if len(e.Args) == 2 {
		delim = unparen(e.Args[1]).(*syntax.StrLit).Value
	}
	const head = 24
	f := &program.Format{Fmt: delim, Size: head + joinArgs*joinArgSize}
	for i := 0; i < joinArgs; i++ {
		f.Args = append(f.Args, program.Arg{Type: program.Type{Kind: program.String, Size: joinArgSize}, Offset: head + i*joinArgSize})
	}
	id := len(g.c.formats)
	g.c.formats = append(g.c.formats, f)
	user := g.typeOf(e.Args[0]).user
	g.captureString(&syntax.Index{X: e.Args[0], I: &syntax.IntLit{}})
	g.noteRead("join()", e, e.Args[0], nil, user)
	g.intExpr(e.Args[0])
	arr := g.alloc(8)
	g.emit(asm.StoreMem(asm.R10, arr, rAcc, asm.DWord))
	ptr := g.alloc(8)

	// rAux holds the reservation from here on: helpers keep r6-r9.
	lost, done := g.newLabel(), g.newLabel()
	g.c.emits = true
	g.mapPtr(asm.R1, program.EventsMap)
	g.emit(asm.Mov.Imm(asm.R2, int32(f.Size)))
	g.emit(asm.Mov.Imm(asm.R3, 0))
	g.call(asm.FnRingbufReserve)
	g.emit(asm.JEq.Imm(asm.R0, 0, lost))
	g.emit(asm.Mov.Reg(rAux, asm.R0))
	g.loadConst(rTmp, int64(program.EventJoin))
	g.emit(asm.StoreMem(rAux, 0, rTmp, asm.DWord))
	g.loadConst(rTmp, int64(id))
	g.emit(asm.StoreMem(rAux, 8, rTmp, asm.DWord))
	g.emit(storeImm64(rAux, 16, 0))
	filled := g.newLabel()
	for i := 0; i < joinArgs; i++ {
		slot := int32(head + i*joinArgSize)
		// The reservation is not zeroed: an empty string marks a slot
		// that a failed read left alone.
		g.emit(asm.StoreImm(rAux, int16(slot), 0, asm.Byte))
		// ptr = arr[i]
		g.stackPtr(asm.R1, ptr)
		g.emit(asm.Mov.Imm(asm.R2, 8))
		g.emit(asm.LoadMem(asm.R3, asm.R10, arr, asm.DWord))
		g.emit(asm.Add.Imm(asm.R3, int32(8*i)))
		if user {
			g.call(asm.FnProbeReadUser)
		} else {
			g.call(asm.FnProbeReadKernel)
		}
		g.emit(asm.JNE.Imm(asm.R0, 0, filled))
		g.emit(asm.LoadMem(asm.R3, asm.R10, ptr, asm.DWord))
		g.emit(asm.JEq.Imm(asm.R3, 0, filled))
		g.emit(asm.Mov.Reg(asm.R1, rAux))
		g.emit(asm.Add.Imm(asm.R1, slot))
		g.emit(asm.Mov.Imm(asm.R2, joinArgSize))
		if user {
			g.call(asm.FnProbeReadUserStr)
		} else {
			g.call(asm.FnProbeReadKernelStr)
		}
		g.emit(asm.Mov.Imm(rTmp, int32(i+1)))
		g.emit(asm.StoreMem(rAux, 16, rTmp, asm.DWord))
	}
	g.label(filled)
	g.emit(asm.Mov.Reg(asm.R1, rAux))
	g.emit(asm.Mov.Imm(asm.R2, 0))
	g.call(asm.FnRingbufSubmit)
	g.emit(asm.Ja.Label(done))
	g.label(lost)
	g.emit(asm.Mov.Imm(asm.R0, -1))
	g.countError(len(g.c.mapOrder))
	g.label(done)
}
