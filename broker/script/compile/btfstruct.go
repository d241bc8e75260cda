package compile

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/bpf/btftp"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// Struct access through BTF, as bpftrace 0.17 has it: curtask (a struct
// task_struct *), casts to struct and union pointers, -> and . chains,
// sizeof(struct NAME), and the pointer arguments of tp_btf probes (and,
// through the same types, any probe whose arguments come from BTF).
//
// Offsets are the running kernel's, read from its BTF when the script is
// compiled. That is what CO-RE relocation would give: CO-RE rewrites a
// program's offsets against the BTF of the kernel that loads it, and
// here the compiler and the kernel that loads the program are the same
// host, at the same boot (the broker compiles where it runs, the daemon
// too, and programs are never shipped to another kernel: a recording is
// replayed through the interpreter, whose reads are the recording's).
// So the offsets are final when emitted, and the program needs no
// relocation records. Every pointer step is read with probe_read_kernel,
// as bpftrace does: a NULL or stale pointer reads zeros, never faults.

// Types is what the compiler needs to know about the kernel's types: its
// BTF, for struct access.
type Types interface {
	// Type returns the struct, union or enum named name (kind "struct",
	// "union", "enum"), or the typedef (kind ""). An unknown name is an
	// error wrapping btf.ErrNotFound.
	Type(kind, name string) (btf.Type, error)
}

// member is what the generator needs to read one field reached by -> or
// ., recorded when it is checked.
type member struct {
	off  int // bytes from the start of the struct
	size int // bytes read: the field's, or the bitfield's container
	// A bitfield: the bits are at bitOff within the size bytes read.
	bitOff, bits int
	signed       bool
}

// recordName spells a struct, union, enum or array type as bpftrace's
// messages do ("struct task_struct").
func recordName(t btf.Type) string { return btftp.CType(t) }

// complete resolves a forward declaration to the kernel's definition, so
// that a pointer to a struct declared only ahead still reaches its fields.
func (c *compiler) complete(t btf.Type) btf.Type {
	fwd, ok := t.(*btf.Fwd)
	if !ok || c.opts.Types == nil {
		return t
	}
	if full, err := c.opts.Types.Type(fwd.Kind.String(), fwd.Name); err == nil {
		return btf.UnderlyingType(full)
	}
	return t
}

// lookupRecord finds "struct NAME" / "union NAME" for a cast or sizeof.
func (c *compiler) lookupRecord(spelled string) (btf.Type, error) {
	kind, name, _ := strings.Cut(spelled, " ")
	if c.opts.Types == nil {
		return nil, errors.New("struct types are not available: the kernel's BTF is not loaded")
	}
	t, err := c.opts.Types.Type(kind, name)
	if err != nil {
		return nil, err
	}
	t = btf.UnderlyingType(t)
	c.noteType(t)
	return t, nil
}

// namedRecord looks up the type spelled ("struct NAME") that the
// identifier id names in sizeof or offsetof, saying at id why it can not
// be found as bpftrace does ("Unknown identifier: 'struct nosuch'").
func (c *compiler) namedRecord(id *syntax.Ident, spelled string) (btf.Type, bool) {
	t, err := c.lookupRecord(spelled)
	switch {
	case errors.Is(err, btf.ErrNotFound):
		c.errorf(id.From, id.To, "Unknown identifier: '%s'", id.Name)
	case err != nil:
		c.errorf(id.From, id.To, "%v", err)
	}
	return t, err == nil
}

// noteType notes a struct, union or enum the script reads through.
func (c *compiler) noteType(t btf.Type) {
	if !slices.Contains(c.types, t) {
		c.types = append(c.types, t)
	}
}

// structPtr is the type of a pointer to the struct or union t, through
// depth levels of pointers.
func structPtr(t btf.Type, depth int) ty {
	return ty{k: kInt, ptr: true, depth: depth, bt: t}
}

// curtask types the builtin: a struct task_struct * in the kernel.
func (c *compiler) curtask(in *instance) ty {
	t, err := c.lookupRecord("struct task_struct")
	if err != nil {
		c.typesErr = err
		return ty{k: kInt, ptr: true, depth: 1}
	}
	return structPtr(t, 1)
}

// castRecord types (struct NAME *)x: the value of x as a pointer to NAME.
func (c *compiler) castRecord(in *instance, e *syntax.Cast) ty {
	spelled, stars, _ := strings.Cut(e.Type, " *")
	if !strings.Contains(e.Type, "*") {
		c.errorf(e.Pos(), e.End(), "Cannot cast to struct type \"%s\"", e.Type)
		return ty{}
	}
	depth := 1 + len(stars)
	t, err := c.lookupRecord(spelled)
	if err != nil {
		if errors.Is(err, btf.ErrNotFound) {
			c.errorf(e.Pos(), e.End(), "Unknown struct/union: '%s'", spelled)
		} else {
			c.errorf(e.Pos(), e.End(), "%v", err)
		}
		return ty{}
	}
	xt, ok := c.castFrom(in, e)
	if !ok {
		return ty{}
	}
	t2 := structPtr(t, depth)
	t2.user = castUser(in, xt)
	return t2
}

// btfAccess types x->f and x.f on struct values and pointers to them.
func (c *compiler) btfAccess(in *instance, e *syntax.FieldAccess) ty {
	xt := c.expr(in, e.X)
	var base btf.Type
	switch {
	case xt.k == kNone:
		return ty{}
	case xt.k == kRecord:
		if e.Arrow {
			c.errorf(e.Pos(), e.End(), "Can not dereference struct/union of type '%s'. It is not a pointer.", recordName(xt.bt))
			return ty{}
		}
		base = xt.bt
	case xt.k == kInt && xt.ptr && xt.bt != nil && xt.depth == 1:
		if !e.Arrow {
			c.errorf(e.Pos(), e.End(), "Can not access field '%s' on type '%s *'. Try dereferencing it first, or using '->'", e.Field, recordName(xt.bt))
			return ty{}
		}
		base = xt.bt
	case xt.k == kTuple && !e.Arrow:
		c.errorf(e.Pos(), e.End(), "Tuples must be indexed with a constant and non-negative integer")
		return ty{}
	default:
		msg := fmt.Sprintf("Can not access field '%s' on expression of type '%s'", e.Field, bpfTypeName(xt))
		if xt.ptr && xt.bt == nil && c.typesErr != nil {
			msg += ": " + c.typesErr.Error()
		}
		c.errorf(e.Pos(), e.End(), "%s", msg)
		return ty{}
	}
	base = c.complete(base)
	c.noteType(base)
	m, off, ok := findMember(base, e.Field, 0)
	if !ok {
		c.errorf(e.Pos(), e.End(), "Struct/union of type '%s' does not contain a field named '%s'", recordName(base), e.Field)
		return ty{}
	}
	t, mi, why := c.memberType(m, off)
	if why != "" {
		c.errorf(e.Pos(), e.End(), "Struct/union field '%s' of '%s' has type '%s', which %s", e.Field, recordName(base), btftp.CType(m.Type), why)
		return ty{}
	}
	// A struct in the traced process's memory holds its pointers, and
	// its nested structs are there too.
	t.user = xt.user
	in.setMember(e, mi)
	return t
}

func (in *instance) setMember(e syntax.Expr, mi member) {
	if in.members == nil {
		in.members = map[syntax.Expr]member{}
	}
	in.members[e] = mi
}

// btfIndex types a[N] on an array field: N must be a literal within the
// array, as bpftrace 0.17 has it.
func (c *compiler) btfIndex(in *instance, e *syntax.Index, at ty) ty {
	arr := at.bt.(*btf.Array)
	n, ok := constInt(e.I)
	if !ok {
		c.errorf(e.Pos(), e.End(), "The array index operator [] only accepts literal integer indices.")
		return ty{}
	}
	if n < 0 || n >= int64(arr.Nelems) {
		c.errorf(e.Pos(), e.End(), "the index %d is out of bounds for array of size %d", n, arr.Nelems)
		return ty{}
	}
	size, err := btf.Sizeof(arr.Type)
	if err != nil {
		c.errorf(e.Pos(), e.End(), "%s: %v", btftp.CType(arr), err)
		return ty{}
	}
	t, mi, why := c.memberType(btf.Member{Type: arr.Type}, btf.Bits(8*int(n)*size))
	if why == "" && t.k == kStr {
		why = "is an array of strings: not supported yet"
	}
	if why != "" {
		c.errorf(e.Pos(), e.End(), "The elements of '%s' have type '%s', which %s", btftp.CType(arr), btftp.CType(arr.Type), why)
		return ty{}
	}
	t.user = at.user
	in.setMember(e, mi)
	return t
}

// bpfTypeName names a value's type as bpftrace's messages do.
func bpfTypeName(t ty) string {
	if t.k == kInt {
		return intName(t)
	}
	return t.String()
}

// findMember finds field name in the struct or union t, looking into
// anonymous members as C does; off is t's offset in bits.
func findMember(t btf.Type, name string, off btf.Bits) (btf.Member, btf.Bits, bool) {
	return findMemberIn(t, name, off, 0)
}

// maxAnonymous bounds the anonymous members looked into: BTF from a file
// (a recording's) could make a struct its own anonymous member.
const maxAnonymous = 64

func findMemberIn(t btf.Type, name string, off btf.Bits, depth int) (btf.Member, btf.Bits, bool) {
	if depth > maxAnonymous {
		return btf.Member{}, 0, false
	}
	members := membersOf(t)
	for _, m := range members {
		if m.Name == name {
			return m, off + m.Offset, true
		}
	}
	for _, m := range members {
		if m.Name != "" {
			continue
		}
		if found, at, ok := findMemberIn(btf.UnderlyingType(m.Type), name, off+m.Offset, depth+1); ok {
			return found, at, true
		}
	}
	return btf.Member{}, 0, false
}

// memberType is the type of a field at bit offset off, and how to read
// it; why says why it can not be read.
func (c *compiler) memberType(m btf.Member, off btf.Bits) (ty, member, string) {
	mi := member{off: int(off / 8)}
	switch u := btf.UnderlyingType(m.Type).(type) {
	case *btf.Int:
		mi.size, mi.signed = int(u.Size), u.Encoding&btf.Signed != 0
	case *btf.Enum:
		mi.size, mi.signed = int(u.Size), u.Signed
	case *btf.Pointer:
		mi.size = 8
		t := ty{k: kInt, ptr: true, depth: 1}
		elem := btf.UnderlyingType(u.Target)
		for {
			p, ok := elem.(*btf.Pointer)
			if !ok {
				break
			}
			t.depth++
			elem = btf.UnderlyingType(p.Target)
		}
		switch e := elem.(type) {
		case *btf.Int:
			t.esize, t.esigned = int(e.Size), e.Encoding&btf.Signed != 0
		case *btf.Enum:
			t.esize, t.esigned = int(e.Size), e.Signed
		case *btf.Struct, *btf.Union, *btf.Fwd:
			t.bt = elem
		}
		return t, mi, ""
	case *btf.Array:
		if e, ok := btf.UnderlyingType(u.Type).(*btf.Int); ok && e.Size == 1 {
			// char[N] reads as a string, as bpftrace prints comm.
			mi.size = int(u.Nelems)
			if mi.size == 0 {
				return ty{}, mi, "is empty"
			}
			// Still the array: b[0] reads one of its bytes.
			t := tStr(mi.size)
			t.bt = u
			return t, mi, ""
		}
		// Other arrays are read element by element (bits[0]).
		n, _ := btf.Sizeof(u)
		mi.size = n
		return ty{k: kRecord, bt: u, size: n}, mi, ""
	case *btf.Struct, *btf.Union:
		n, _ := btf.Sizeof(u)
		mi.size = n
		return ty{k: kRecord, bt: u, size: n}, mi, ""
	default:
		return ty{}, mi, "can not be read"
	}
	if mi.size > 8 {
		return ty{}, mi, "is wider than 64 bits"
	}
	if m.BitfieldSize > 0 {
		mi.bits = int(m.BitfieldSize)
		start := int(off) / 8
		mi.bitOff = int(off) % 8
		n := (mi.bitOff + mi.bits + 7) / 8
		switch {
		case n <= 1:
			n = 1
		case n <= 2:
			n = 2
		case n <= 4:
			n = 4
		default:
			n = 8
		}
		if mi.bitOff+mi.bits > 64 {
			return ty{}, mi, "is a bitfield across 64 bits"
		}
		mi.off, mi.size = start, n
		// A bitfield's bits are shifted out and masked, as bpftrace
		// does, never sign-extended.
		return ty{k: kInt}, mi, ""
	}
	return ty{k: kInt, signed: mi.signed}, mi, ""
}

// fieldPointer types a pointer argument (of tp_btf, fentry) that points to
// a struct or union: "struct task_struct *" gets its BTF type, so that
// args->prev->pid reads through it.
func (c *compiler) fieldPointer(t ty, ctype string) ty {
	if c.opts.Types == nil || t.depth == 0 {
		return t
	}
	base := strings.TrimSpace(strings.NewReplacer("const", " ", "volatile", " ", "__user", " ", "*", " ").Replace(ctype))
	base = strings.Join(strings.Fields(base), " ")
	if kind, _, _ := strings.Cut(base, " "); kind != "struct" && kind != "union" {
		return t
	}
	rt, err := c.lookupRecord(base)
	if err != nil {
		return t
	}
	t.bt = rt
	return t
}

// sizeOfRecord is sizeof(struct NAME) or sizeof(struct NAME *).
func (c *compiler) sizeOfRecord(in *instance, id *syntax.Ident) (int, bool) {
	spelled, stars, _ := strings.Cut(id.Name, " *")
	if kind, _, _ := strings.Cut(spelled, " "); kind != "struct" && kind != "union" && kind != "enum" {
		return 0, false
	}
	in.types[id] = tVoid
	t, ok := c.namedRecord(id, spelled)
	if !ok {
		return 0, true
	}
	if stars != "" || strings.HasSuffix(id.Name, "*") {
		return 8, true
	}
	n, err := btf.Sizeof(t)
	if err != nil {
		c.errorf(id.From, id.To, "sizeof(%s): %v", id.Name, err)
		return 0, true
	}
	return n, true
}

// sizeOfMember is sizeof(x->f): the field's C size, as bpftrace gives it.
func (c *compiler) sizeOfMember(in *instance, e syntax.Expr) (int, bool) {
	fa := unparen(e)
	mi, ok := in.members[fa]
	if !ok {
		return 0, false
	}
	if t := in.types[fa]; t.ptr {
		return 8, true
	}
	if mi.bits > 0 {
		return (mi.bits + 7) / 8, true
	}
	return mi.size, true
}

// isMember reports whether e is a field (or an array field's element)
// read through BTF.
func (g *gen) isMember(e syntax.Expr) bool {
	_, ok := g.in.members[e]
	return ok
}

// recordAddr puts into rAcc the address of the pointer that leads to the
// struct value x is (or that x is), and returns x's offset from it: the
// embedded structs of a chain (curtask->se.load) add up when compiling.
func (g *gen) recordAddr(x syntax.Expr) int {
	if t := g.typeOf(x); t.k != kRecord && !isCharArray(t) {
		g.intExpr(x) // a pointer: its value is the address
		return 0
	}
	if g.isTupleAccess(x) { // a tuple's element: its copy on the stack
		g.stackPtr(rAcc, g.memExpr(x))
		return 0
	}
	switch x := unparen(x).(type) {
	case *syntax.FieldAccess:
		return g.recordAddr(x.X) + g.in.members[x].off
	case *syntax.Index: // an array's element
		return g.recordAddr(x.X) + g.in.members[x].off
	case *syntax.Unary: // *p
		g.intExpr(x.X)
		return 0
	case *syntax.VarExpr: // a record stored in a scratch variable
		g.stackPtr(rAcc, g.vars[x.Name])
		return 0
	case *syntax.MapExpr, *syntax.Call: // a record stored in a map, or pton()'s: its copy on the stack
		n := g.typeOf(x).size
		slot := g.alloc(n)
		g.memInto(x, slot, n)
		g.stackPtr(rAcc, slot)
		return 0
	}
	panic(fmt.Sprintf("compile: recordAddr of %T", x))
}

// stackRooted reports whether the record x is (in) a scratch variable or
// a map value: its fields are read from the stack, where the variable
// keeps its copy (and a map value is copied), not from the kernel.
func (g *gen) stackRooted(x syntax.Expr) bool {
	for {
		if t := g.typeOf(x); t.k != kRecord && !isCharArray(t) {
			return false
		}
		if g.isTupleAccess(x) {
			return true // tuples live on the stack and in maps
		}
		switch e := unparen(x).(type) {
		case *syntax.FieldAccess:
			x = e.X
		case *syntax.Index:
			x = e.X
		case *syntax.VarExpr, *syntax.MapExpr:
			return true
		default:
			return isPton(e)
		}
	}
}

// userRecord says whether the struct value (or pointer to one) x is in
// the traced process's memory: a struct pointer a uprobe cast, and what
// is reached through it.
func (g *gen) userRecord(x syntax.Expr) bool {
	return g.typeOf(x).user && !g.stackRooted(x)
}

// readRecordMem calls the helper that reads the memory x's fields are
// in: the traced process's (probe_read_user) or the kernel's.
func (g *gen) readRecordMem(x syntax.Expr) {
	if g.userRecord(x) {
		g.call(asm.FnProbeReadUser)
	} else {
		g.call(asm.FnProbeReadKernel)
	}
}

// noteRecordRead classifies a read of n bytes at off in the struct x for
// the gatekeeper and interpreter mode: the kernel's memory (a chain the
// collector copies), or the traced process's, which no collector copies.
func (g *gen) noteRecordRead(site, x syntax.Expr, off, n int, str bool, what string) {
	if g.stackRooted(x) {
		return
	}
	if g.userRecord(x) {
		g.rd.sites = append(g.rd.sites, pendingRead{site: site, class: program.ReadsUser,
			what: what + ", read through a pointer, is the traced process's memory"})
		if g.kernelOnly == "" {
			g.kernelOnly = g.text(site, "a struct field") + " (a struct in the traced process's memory)"
		}
		return
	}
	g.rd.sites = append(g.rd.sites, pendingRead{site: site, class: program.ReadsKernel,
		what: what + ", read through BTF, is kernel memory"})
	g.noteKRead(site, x, off, n, str, true)
}

// recordInto copies the struct, union or array value e (n bytes at
// most) from the kernel to the stack at off, as storing it in a map or a
// variable does; a variable's copy is copied from the stack.
func (g *gen) recordInto(e syntax.Expr, off int16, n int) {
	size := min(g.typeOf(e).size, n)
	g.noteRecordRead(e, e, 0, size, false, recordName(g.typeOf(e).bt))
	if n > size {
		g.zero(off+int16(size), n-size)
	}
	at := g.recordAddr(e)
	g.stackPtr(asm.R1, off)
	g.emit(asm.Mov.Imm(asm.R2, int32(size)))
	g.emit(asm.Mov.Reg(asm.R3, rAcc))
	g.emit(asm.Add.Imm(asm.R3, int32(at)))
	g.readRecordMem(e)
}

// memberRead loads the integer or pointer field e into rAcc, read with
// probe_read_kernel at its address.
func (g *gen) memberRead(e syntax.Expr) {
	mi := g.in.members[e]
	if off, ok := g.ctxMember(e); ok && mi.bits == 0 && mi.size <= 8 {
		g.ctxMemberRead(e, off)
		return
	}
	// The slots of the chain's earlier steps are dead once their value
	// is in rAcc: a long chain takes one slot, not one a step.
	mark := g.sp
	defer func() { g.sp = mark }()
	g.noteRecordRead(e, memberOf(e), mi.off, mi.size, false, g.memberName(e))
	off := g.recordAddr(memberOf(e)) + mi.off
	slot := g.alloc(8)
	g.emit(storeImm64(asm.R10, slot, 0))
	g.stackPtr(asm.R1, slot)
	g.emit(asm.Mov.Imm(asm.R2, int32(mi.size)))
	g.emit(asm.Mov.Reg(asm.R3, rAcc))
	g.emit(asm.Add.Imm(asm.R3, int32(off)))
	g.readRecordMem(memberOf(e))
	size := map[int]asm.Size{1: asm.Byte, 2: asm.Half, 4: asm.Word, 8: asm.DWord}[mi.size]
	switch {
	case mi.bits > 0:
		g.emit(asm.LoadMem(rAcc, asm.R10, slot, size))
		if mi.bitOff > 0 {
			g.emit(asm.RSh.Imm(rAcc, int32(mi.bitOff)))
		}
		if mi.bits < 64 {
			// Shift left then right: a mask wider than 31 bits does
			// not fit an immediate.
			g.emit(asm.LSh.Imm(rAcc, int32(64-mi.bits)))
			g.emit(asm.RSh.Imm(rAcc, int32(64-mi.bits)))
		}
	case mi.signed && mi.size < 8 && !g.typeOf(e).ptr:
		g.loadSX(rAcc, asm.R10, slot, size)
	default:
		g.emit(asm.LoadMem(rAcc, asm.R10, slot, size))
	}
}

// memberString copies the char array e, NUL-padded, into the n bytes at
// off.
func (g *gen) memberString(e syntax.Expr, off int16, n int) {
	mi := g.in.members[e]
	g.zero(off, n)
	g.noteRecordRead(e, memberOf(e), mi.off, min(mi.size, n), false, g.memberName(e))
	at := g.recordAddr(memberOf(e)) + mi.off
	g.stackPtr(asm.R1, off)
	g.emit(asm.Mov.Imm(asm.R2, int32(min(mi.size, n))))
	g.emit(asm.Mov.Reg(asm.R3, rAcc))
	g.emit(asm.Add.Imm(asm.R3, int32(at)))
	g.readRecordMem(memberOf(e))
}

// memberName names the field (or element) e for the gatekeeper's
// reasons.
func (g *gen) memberName(e syntax.Expr) string {
	switch e := e.(type) {
	case *syntax.FieldAccess:
		return fmt.Sprintf("field '%s' of %s", e.Field, recordName(g.typeOf(e.X).bt))
	case *syntax.Index:
		return "an element of " + recordName(g.typeOf(e.X).bt)
	}
	return "a field"
}

// curtaskValue loads the current task's address into rAcc.
func (g *gen) curtaskValue(e *syntax.Ident) {
	g.noteKernelAddr(e, "curtask reveals the current task's kernel address")
	g.task = true
	g.call(asm.FnGetCurrentTask)
	g.emit(asm.Mov.Reg(rAcc, asm.R0))
}

// onArgs reports whether e is args->NAME (args.NAME): a field of the
// probe's context, not of a struct.
func onArgs(e *syntax.FieldAccess) bool {
	id, ok := e.X.(*syntax.Ident)
	return ok && id.Name == "args"
}

// btfValue types a value whose C type the kernel's BTF gives, whatever
// the probe (a fentry argument, a return value): integers, enums and
// pointers as struct access types them, so that a pointer to a struct
// reaches its fields with ->. why says why such a value can not be read.
func (c *compiler) btfValue(t btf.Type) (ty, string) {
	v, _, why := c.memberType(btf.Member{Type: t}, 0)
	if why == "" && v.k != kInt {
		// A struct, union or char array is memory: only a pointer to
		// it is a value a probe is given.
		why = "is not an integer or a pointer"
	}
	return v, why
}

// memberOf is the struct (or array) whose field (element) e is.
func memberOf(e syntax.Expr) syntax.Expr {
	switch e := e.(type) {
	case *syntax.FieldAccess:
		return e.X
	case *syntax.Index:
		return e.X
	}
	panic(fmt.Sprintf("compile: memberOf %T", e))
}

// maxStoredRecord bounds a struct or array stored in a map or a
// variable: it is copied through the BPF stack, and interpreter mode's
// collector reads it at the event (program.MaxKReadSize).
const maxStoredRecord = program.MaxKReadSize

// storable says why a struct, union or array value of type t can not be
// stored in a map or a variable ("" if it can).
func storable(t ty) string {
	if t.size > maxStoredRecord {
		return fmt.Sprintf("%s is %d bytes: at most %d can be stored in a map or a variable; store its fields", t, t.size, maxStoredRecord)
	}
	if _, why := recordSchema(t.bt); why != "" {
		return fmt.Sprintf("%s can not be stored: %s", t, why)
	}
	return ""
}

// recordSchema is how a stored struct, union or array is printed: its
// members (those of anonymous members as its own), each as print()
// prints it — integers and enums by their sign, pointers as signed
// decimals, char arrays as strings, bitfields unsigned.
func recordSchema(t btf.Type) (program.Type, string) {
	values := 0
	var walk func(t btf.Type, depth int) (program.Type, string)
	walk = func(t btf.Type, depth int) (program.Type, string) {
		if depth > 8 {
			return program.Type{}, "it nests more than 8 levels deep"
		}
		size, err := btf.Sizeof(t)
		if err != nil {
			return program.Type{}, err.Error()
		}
		switch u := btf.UnderlyingType(t).(type) {
		case *btf.Struct, *btf.Union:
			rt := program.Type{Kind: program.Record, Size: size}
			var fields func(t btf.Type, base btf.Bits) string
			fields = func(t btf.Type, base btf.Bits) string {
				for _, m := range membersOf(t) {
					off := base + m.Offset
					if m.Name == "" {
						if why := fields(btf.UnderlyingType(m.Type), off); why != "" {
							return why
						}
						continue
					}
					var et program.Type
					var why string
					if m.BitfieldSize > 0 {
						_, mi, w := (&compiler{}).memberType(m, off)
						if w != "" {
							return w
						}
						et = program.Type{Kind: program.Int, Size: mi.size, BitOff: mi.bitOff, Bits: mi.bits}
						rt.Offs = append(rt.Offs, mi.off)
						values++
					} else {
						et, why = walk(m.Type, depth+1)
						if why != "" {
							return why
						}
						rt.Offs = append(rt.Offs, int(off/8))
					}
					rt.Names = append(rt.Names, m.Name)
					rt.Elems = append(rt.Elems, et)
				}
				return ""
			}
			if why := fields(u, 0); why != "" {
				return program.Type{}, why
			}
			if len(rt.Elems) == 0 {
				return program.Type{}, "it has no members"
			}
			return rt, ""
		case *btf.Array:
			if byteString(u) {
				values++
				return program.Type{Kind: program.String, Size: size}, ""
			}
			if u.Nelems == 0 {
				return program.Type{}, "it is an empty array"
			}
			if e, ok := btf.UnderlyingType(u.Type).(*btf.Array); ok {
				if c, ok := btf.UnderlyingType(e.Type).(*btf.Int); ok && c.Size == 1 {
					return program.Type{}, "it is an array of strings, which can not be stored yet"
				}
			}
			rt := program.Type{Kind: program.Array, Size: size}
			esize := size / int(u.Nelems)
			for i := range int(u.Nelems) {
				et, why := walk(u.Type, depth+1)
				if why != "" {
					return program.Type{}, why
				}
				rt.Elems, rt.Offs = append(rt.Elems, et), append(rt.Offs, i*esize)
				if values > maxPrintValues {
					break
				}
			}
			return rt, ""
		case *btf.Int:
			values++
			if size != 1 && size != 2 && size != 4 && size != 8 {
				return program.Type{}, fmt.Sprintf("a %d-byte integer can not be printed", size)
			}
			return program.Type{Kind: program.Int, Size: size, Signed: u.Encoding&btf.Signed != 0}, ""
		case *btf.Enum:
			values++
			return program.Type{Kind: program.Int, Size: size, Signed: u.Signed}, ""
		case *btf.Pointer:
			values++
			return program.Type{Kind: program.Int, Size: 8, Signed: true}, "" // as bpftrace prints a record's pointers
		}
		return program.Type{}, "a field has type '" + btftp.CType(t) + "', which can not be printed"
	}
	rt, why := walk(t, 0)
	if why == "" && values > maxPrintValues {
		why = fmt.Sprintf("it has more than %d values", maxPrintValues)
	}
	return rt, why
}

// membersOf is a struct's or union's members; nil for any other type.
func membersOf(t btf.Type) []btf.Member {
	switch v := t.(type) {
	case *btf.Struct:
		return v.Members
	case *btf.Union:
		return v.Members
	}
	return nil
}

// offsetOf is offsetof(TYPE, FIELD) as newer bpftrace has it: TYPE is
// "struct NAME" / "union NAME" or an expression whose value is a struct
// (*curtask), FIELD a member's name or a path through embedded structs
// (se.load.weight), anonymous members looked into as C does. The offset
// is in bytes, a constant of the running kernel's BTF.
func (c *compiler) offsetOf(in *instance, of, field syntax.Expr) (int, bool) {
	var base btf.Type
	if id, ok := of.(*syntax.Ident); ok && strings.ContainsRune(id.Name, ' ') {
		in.types[id] = tVoid
		if strings.Contains(id.Name, "*") {
			c.errorf(id.From, id.To, "offsetof() of '%s', a pointer: it takes a struct or union type", id.Name)
			return 0, false
		}
		t, ok := c.namedRecord(id, id.Name)
		if !ok {
			return 0, false
		}
		base = t
	} else {
		t := c.expr(in, of)
		if t.k == kNone {
			return 0, false
		}
		if t.k != kRecord {
			what := bpfTypeName(t)
			if t.ptr && t.bt != nil {
				what = recordName(t.bt) + " *"
			}
			c.errorf(of.Pos(), of.End(), "offsetof() takes a struct or union, not '%s'", what)
			return 0, false
		}
		base = t.bt
	}
	// The path, outermost name first: a.b.c parses as ((a).b).c.
	var path []string
	for x := field; ; {
		switch f := x.(type) {
		case *syntax.FieldAccess:
			if f.Arrow {
				c.errorf(field.Pos(), field.End(), "offsetof() takes a member's name or a path of names joined by '.'")
				return 0, false
			}
			path = append(path, f.Field)
			x = f.X
			continue
		case *syntax.Ident:
			path = append(path, f.Name)
		default:
			c.errorf(field.Pos(), field.End(), "offsetof() takes a member's name or a path of names joined by '.'")
			return 0, false
		}
		break
	}
	in.types[field] = tVoid
	var off btf.Bits
	for i := len(path) - 1; i >= 0; i-- {
		rec := c.complete(btf.UnderlyingType(base))
		if membersOf(rec) == nil {
			c.errorf(field.Pos(), field.End(), "'%s' is not a struct or union: it has no field '%s'", btftp.CType(base), path[i])
			return 0, false
		}
		m, at, ok := findMember(rec, path[i], off)
		if !ok {
			c.errorf(field.Pos(), field.End(), "Struct/union of type '%s' does not contain a field named '%s'", recordName(rec), path[i])
			return 0, false
		}
		c.noteType(rec)
		base, off = m.Type, at
	}
	return int(off / 8), true
}

// isCharArray: t is a char array field, a string that is still its
// array (memberType): its bytes are indexed as an array's elements.
func isCharArray(t ty) bool {
	_, ok := t.bt.(*btf.Array)
	return t.k == kStr && ok
}
