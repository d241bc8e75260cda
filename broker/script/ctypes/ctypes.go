// Package ctypes reads the C type definitions a bpftrace script may start
// with (`struct Foo { int m; char s[8]; struct Foo *next; };`) into BTF
// types laid out as the x86-64 System V C ABI lays them out, the layout
// of the programs a script reads: the compiler then reaches their fields
// as it reaches the kernel's.
//
// bpftrace hands these definitions to clang. This is the part of C they
// use: struct, union and enum definitions, named or anonymous and
// nested; members of integer types (spelt as C spells them, as stdint.h
// and the kernel name them), pointers, arrays of any dimension and
// bitfields; pointers to types defined nowhere (incomplete, as in C).
// What else C has (function pointers, typedefs of one's own, floating
// point) is refused with the place and the reason.
package ctypes

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/cilium/ebpf/btf"
)

// Limits on what one script may define: a definition is read from the
// user, and each name or nesting costs the compiler.
const (
	MaxDepth   = 32      // nested struct definitions and array dimensions
	MaxMembers = 1024    // members of one struct
	MaxSize    = 1 << 24 // bytes of one type
)

// Error is a definition that is not C this package reads: Off is the byte
// offset in the definition's text where it goes wrong.
type Error struct {
	Off int
	Msg string
}

func (e *Error) Error() string { return e.Msg }

// Types are the types a script defines, by their C names ("struct Foo",
// "union U", "enum E").
type Types map[string]btf.Type

// Parse reads one definition, text (`struct NAME { ... }` with or without
// its ';'), adding what it defines to into (which earlier definitions
// filled: they may be named here).
func Parse(text string, into Types) (err error) {
	return ParseResolving(text, into, nil)
}

// Resolver finds a struct or union (kind "struct" or "union") the script
// names but does not define: the kernel's, from its BTF. nil: none.
type Resolver func(kind, name string) btf.Type

// ParseResolving is Parse where a member of a struct the script names
// but does not define (struct foo { struct task_struct t; }) takes its
// type from resolve, as bpftrace completes such types from the kernel's
// BTF. As in bpftrace 0.17, a definition that redefines a type resolve
// knows (struct task_struct { struct thread_info x; }) has its members'
// types completed by none: they must be the script's.
func ParseResolving(text string, into Types, resolve Resolver) (err error) {
	p := &parser{src: text, types: into, resolve: resolve}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(bail); !ok {
				panic(r)
			}
			err = p.err
		}
	}()
	p.next()
	t := p.typeSpec(0)
	if p.tok.kind == tkPunct && p.tok.text == ";" {
		p.next()
	}
	if p.tok.kind != tkEOF {
		p.fail("expected the end of the definition, found %s", p.tok)
	}
	if t == nil {
		p.fail("expected a struct, union or enum definition")
	}
	return p.err
}

type tokKind int

const (
	tkEOF tokKind = iota
	tkIdent
	tkNum
	tkPunct
)

type token struct {
	kind tokKind
	text string
	off  int
}

func (t token) String() string {
	if t.kind == tkEOF {
		return "the end of the definition"
	}
	return "'" + t.text + "'"
}

type parser struct {
	src   string
	off   int
	tok   token
	types Types
	err   error
	// open are the structs and unions whose '}' is still to come: as
	// in C, they are incomplete until then, and can not be their own
	// members (whose size would be their own).
	open map[btf.Type]bool
	// resolve completes undefined member types (ParseResolving); nil
	// once the definition turns out to redefine one of its types.
	resolve Resolver
}

// bail unwinds the parser at its first error.
type bail struct{}

func (p *parser) fail(format string, args ...any) {
	if p.err == nil {
		p.err = &Error{Off: p.tok.off, Msg: fmt.Sprintf(format, args...)}
	}
	panic(bail{})
}

func (p *parser) next() {
	src := p.src
	for p.off < len(src) {
		c := src[p.off]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			p.off++
			continue
		case strings.HasPrefix(src[p.off:], "//"):
			for p.off < len(src) && src[p.off] != '\n' {
				p.off++
			}
			continue
		case strings.HasPrefix(src[p.off:], "/*"):
			end := strings.Index(src[p.off+2:], "*/")
			if end < 0 {
				p.tok = token{kind: tkEOF, off: p.off}
				p.fail("unterminated comment")
			}
			p.off += end + 4
			continue
		}
		break
	}
	start := p.off
	if p.off >= len(src) {
		p.tok = token{kind: tkEOF, off: start}
		return
	}
	c := src[p.off]
	switch {
	case isLetter(c):
		for p.off < len(src) && (isLetter(src[p.off]) || isDigit(src[p.off])) {
			p.off++
		}
		p.tok = token{kind: tkIdent, text: src[start:p.off], off: start}
	case isDigit(c):
		for p.off < len(src) && (isLetter(src[p.off]) || isDigit(src[p.off])) {
			p.off++
		}
		p.tok = token{kind: tkNum, text: src[start:p.off], off: start}
	default:
		p.off++
		p.tok = token{kind: tkPunct, text: src[start:p.off], off: start}
	}
}

func isLetter(c byte) bool { return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

func (p *parser) is(text string) bool {
	return p.tok.kind != tkEOF && p.tok.kind != tkNum && p.tok.text == text
}

func (p *parser) expect(text string) {
	if !p.is(text) {
		p.fail("expected '%s', found %s", text, p.tok)
	}
	p.next()
}

// typeSpec reads a type specifier: qualifiers, then a struct, union or
// enum (defined here or named), an integer type or a known name.
func (p *parser) typeSpec(depth int) btf.Type {
	if depth > MaxDepth {
		p.fail("definitions nest more than %d deep", MaxDepth)
	}
	p.qualifiers()
	var t btf.Type
	switch {
	case p.is("struct"), p.is("union"):
		t = p.record(depth)
	case p.is("enum"):
		t = p.enum()
	case p.is("void"):
		p.next()
		t = (*btf.Void)(nil)
	case p.tok.kind == tkIdent:
		t = p.named()
	default:
		p.fail("expected a type, found %s", p.tok)
	}
	p.qualifiers()
	return t
}

func (p *parser) qualifiers() {
	for p.is("const") || p.is("volatile") || p.is("restrict") || p.is("__restrict") {
		p.next()
	}
}

// record reads `struct NAME`, `struct NAME { ... }` or `struct { ... }`.
func (p *parser) record(depth int) btf.Type {
	kind := p.tok.text
	at := p.tok.off
	p.next()
	name := ""
	if p.tok.kind == tkIdent {
		name = p.tok.text
		p.next()
	}
	key := kind + " " + name
	if !p.is("{") {
		if name == "" {
			p.fail("expected a name or '{' after '%s'", kind)
		}
		if t, ok := p.types[key]; ok {
			return t
		}
		// Named, not defined: incomplete, as in C. A pointer to it is
		// fine; a member of it is not (sizeOf says so).
		fk := btf.FwdStruct
		if kind == "union" {
			fk = btf.FwdUnion
		}
		return &btf.Fwd{Name: name, Kind: fk}
	}
	p.next()
	var t btf.Type
	var members *[]btf.Member
	var size *uint32
	if kind == "struct" {
		s := &btf.Struct{Name: name}
		t, members, size = s, &s.Members, &s.Size
	} else {
		u := &btf.Union{Name: name}
		t, members, size = u, &u.Members, &u.Size
	}
	if name != "" {
		if old, ok := p.types[key]; ok && !isFwd(old) {
			p.tok.off = at
			p.fail("redefinition of '%s'", key)
		}
		if depth == 0 && p.resolve != nil && p.resolve(kind, name) != nil {
			p.resolve = nil
		}
		// Defined from here on: a member may point to it.
		p.types[key] = t
	}
	if p.open == nil {
		p.open = map[btf.Type]bool{}
	}
	p.open[t] = true
	defer delete(p.open, t)
	var l layout
	for !p.is("}") {
		if p.tok.kind == tkEOF {
			p.fail("expected '}' to end '%s'", strings.TrimSpace(key))
		}
		p.member(depth, kind == "union", &l, members)
		if len(*members) > MaxMembers {
			p.fail("'%s' has more than %d members", strings.TrimSpace(key), MaxMembers)
		}
	}
	p.next()
	if len(*members) == 0 {
		p.tok.off = at
		p.fail("'%s' has no members", strings.TrimSpace(key))
	}
	*size = uint32(l.finish())
	return t
}

func isFwd(t btf.Type) bool { _, ok := t.(*btf.Fwd); return ok }

// member reads one declaration, `TYPE a, *b, c[4], d:3;` (the last ';'
// before '}' may be missing, as clang allows), and lays its members out.
func (p *parser) member(depth int, union bool, l *layout, members *[]btf.Member) {
	base := p.typeSpec(depth + 1)
	if p.is(";") || p.is("}") {
		// An anonymous struct or union member: its fields are the
		// outer one's.
		if isRecord(base) && base.TypeName() == "" {
			off := l.place(p, base, union)
			*members = append(*members, btf.Member{Type: base, Offset: btf.Bits(off)})
		}
		if p.is(";") {
			p.next()
		}
		return
	}
	for {
		at := p.tok.off
		t, name, bits, hasBits := p.declarator(base)
		t = p.resolveMember(t, 0)
		// What is wrong with the member's type is said at its name.
		next := p.tok
		p.tok.off = at
		var off int
		if hasBits {
			off = l.placeBits(p, t, bits, union)
		} else {
			off = l.place(p, t, union)
		}
		p.tok = next
		if name != "" || hasBits && bits > 0 {
			m := btf.Member{Name: name, Type: t, Offset: btf.Bits(off)}
			if hasBits {
				m.BitfieldSize = btf.Bits(bits)
			}
			*members = append(*members, m)
		}
		if !p.is(",") {
			break
		}
		p.next()
	}
	if p.is(";") {
		p.next()
	} else if !p.is("}") {
		p.fail("expected ';' after a member, found %s", p.tok)
	}
}

// resolveMember replaces an incomplete struct or union member type (or
// an array of one) with the one resolve knows.
func (p *parser) resolveMember(t btf.Type, depth int) btf.Type {
	if p.resolve == nil || depth > MaxDepth {
		return t
	}
	switch u := t.(type) {
	case *btf.Fwd:
		kind := "struct"
		if u.Kind == btf.FwdUnion {
			kind = "union"
		}
		if r := p.resolve(kind, u.Name); r != nil {
			return r
		}
	case *btf.Array:
		if e := p.resolveMember(u.Type, depth+1); e != u.Type {
			return &btf.Array{Index: u.Index, Type: e, Nelems: u.Nelems}
		}
	}
	return t
}

func isRecord(t btf.Type) bool {
	switch t.(type) {
	case *btf.Struct, *btf.Union:
		return true
	}
	return false
}

// declarator reads `*NAME[N][M]:BITS` after a type: the member's type,
// name and bitfield width.
func (p *parser) declarator(base btf.Type) (t btf.Type, name string, bits int, hasBits bool) {
	t = base
	for p.is("*") {
		p.next()
		p.qualifiers()
		t = &btf.Pointer{Target: t}
	}
	if p.is("(") {
		p.fail("function pointers and parenthesized declarators are not supported")
	}
	if p.tok.kind == tkIdent {
		name = p.tok.text
		p.next()
	}
	var dims []uint32
	for p.is("[") {
		p.next()
		n := p.number("array size")
		if n < 0 {
			p.fail("an array size can not be negative")
		}
		dims = append(dims, uint32(n))
		if len(dims) > MaxDepth {
			p.fail("arrays of more than %d dimensions", MaxDepth)
		}
		p.expect("]")
	}
	// int x[2][3] is an array of 2 arrays of 3 ints.
	for i := len(dims) - 1; i >= 0; i-- {
		t = &btf.Array{Index: u32, Type: t, Nelems: dims[i]}
	}
	if p.is(":") {
		p.next()
		bits = int(p.number("bitfield width"))
		hasBits = true
	}
	return t, name, bits, hasBits
}

var u32 = &btf.Int{Name: "unsigned int", Size: 4}

// number reads an integer literal (decimal, 0x hex or 0 octal).
func (p *parser) number(what string) int64 {
	neg := false
	if p.is("-") {
		neg = true
		p.next()
	}
	if p.tok.kind != tkNum {
		p.fail("expected a number for the %s, found %s", what, p.tok)
	}
	text := strings.TrimRight(p.tok.text, "uUlL")
	n, err := strconv.ParseInt(text, 0, 64)
	if err != nil || n > MaxSize {
		p.fail("%s %s is not a number this reads (at most %d)", what, p.tok.text, MaxSize)
	}
	p.next()
	if neg {
		return -n
	}
	return n
}

// enum reads `enum NAME`, `enum NAME { A, B = 3 }` or `enum { ... }`.
func (p *parser) enum() btf.Type {
	p.next()
	name := ""
	if p.tok.kind == tkIdent {
		name = p.tok.text
		p.next()
	}
	key := "enum " + name
	if !p.is("{") {
		if t, ok := p.types[key]; ok && name != "" {
			return t
		}
		p.fail("enum %s is not defined", name)
	}
	p.next()
	e := &btf.Enum{Name: name, Size: 4, Signed: true}
	var v int64
	for !p.is("}") {
		if p.tok.kind != tkIdent {
			p.fail("expected an enumerator, found %s", p.tok)
		}
		n := p.tok.text
		p.next()
		if p.is("=") {
			p.next()
			v = p.number("enumerator value")
		}
		e.Values = append(e.Values, btf.EnumValue{Name: n, Value: uint64(v)})
		if len(e.Values) > MaxMembers {
			p.fail("'%s' has more than %d enumerators", key, MaxMembers)
		}
		v++
		if !p.is(",") {
			break
		}
		p.next()
	}
	p.expect("}")
	if name != "" {
		p.types[key] = e
	}
	return e
}

// named reads an integer type as C spells it (unsigned long int), or a
// name stdint.h or the kernel gives one (uint32_t, u32, size_t).
func (p *parser) named() btf.Type {
	start := p.tok
	var words []string
	for p.tok.kind == tkIdent && cWords[p.tok.text] {
		words = append(words, p.tok.text)
		p.next()
		p.qualifiers()
	}
	if len(words) > 0 {
		t, ok := cInteger(words)
		if !ok {
			p.tok = start
			p.fail("'%s' is not a type", strings.Join(words, " "))
		}
		return t
	}
	if t, ok := typedefs()[p.tok.text]; ok {
		p.next()
		return t
	}
	p.fail("unknown type name '%s'", p.tok.text)
	return nil
}

var cWords = map[string]bool{"signed": true, "unsigned": true, "char": true, "short": true, "int": true, "long": true, "_Bool": true, "bool": true}

func cInteger(words []string) (btf.Type, bool) {
	var signed, unsigned, char, short, integer, boolean bool
	long := 0
	for _, w := range words {
		switch w {
		case "signed":
			signed = true
		case "unsigned":
			unsigned = true
		case "char":
			char = true
		case "short":
			short = true
		case "int":
			integer = true
		case "long":
			long++
		case "_Bool", "bool":
			boolean = true
		}
	}
	switch {
	case signed && unsigned, long > 2, boolean && len(words) > 1,
		char && (short || long > 0 || integer), short && long > 0:
		return nil, false
	case boolean:
		return &btf.Int{Name: "_Bool", Size: 1, Encoding: btf.Bool}, true
	case char:
		return intType(1, !unsigned), true
	case short:
		return intType(2, !unsigned), true
	case long > 0:
		return intType(8, !unsigned), true
	}
	return intType(4, !unsigned), true
}

var intNames = map[[2]int]string{
	{1, 1}: "char", {1, 0}: "unsigned char", {2, 1}: "short", {2, 0}: "unsigned short",
	{4, 1}: "int", {4, 0}: "unsigned int", {8, 1}: "long", {8, 0}: "unsigned long",
}

func intType(size int, signed bool) *btf.Int {
	s := 0
	enc := btf.Unsigned
	if signed {
		s, enc = 1, btf.Signed
	}
	return &btf.Int{Name: intNames[[2]int{size, s}], Size: uint32(size), Encoding: enc}
}

// typedefs are the names a script may use without defining them: what
// bpftrace's clang finds in stdint.h and the kernel's headers.
var typedefs = sync.OnceValue(func() map[string]btf.Type {
	typedefs := map[string]btf.Type{}
	for _, n := range []struct {
		names  string
		size   int
		signed bool
	}{
		{"int8_t s8 __s8", 1, true}, {"uint8_t u8 __u8", 1, false},
		{"int16_t s16 __s16", 2, true}, {"uint16_t u16 __u16", 2, false},
		{"int32_t s32 __s32 pid_t key_t clockid_t", 4, true}, {"uint32_t u32 __u32 uid_t gid_t dev_t mode_t", 4, false},
		{"int64_t s64 __s64 ssize_t loff_t off_t intptr_t ptrdiff_t time_t", 8, true},
		{"uint64_t u64 __u64 size_t uintptr_t", 8, false},
	} {
		for _, name := range strings.Fields(n.names) {
			t := intType(n.size, n.signed)
			typedefs[name] = &btf.Typedef{Name: name, Type: t}
		}
	}
	return typedefs
})

// layout places members one after another as the ABI does: each at a
// multiple of its alignment, bitfields packed into units of their type.
type layout struct {
	bits  int // the next free bit
	size  int // bytes, for a union the largest member
	align int
}

// place places a member of type t, returning its offset in bits.
func (l *layout) place(p *parser, t btf.Type, union bool) int {
	size, align := p.sizeAlign(t)
	l.align = max(l.align, align)
	if union {
		l.size = max(l.size, size)
		return 0
	}
	start := roundUp((l.bits+7)/8, align)
	l.bits = 8 * (start + size)
	if l.bits/8 > MaxSize {
		p.fail("the struct is larger than %d bytes", MaxSize)
	}
	return 8 * start
}

// placeBits places a bitfield of width bits of type t: in the t-sized,
// t-aligned unit where the last one ended if it fits there, else at the
// next unit; a zero width only moves to the next unit.
func (l *layout) placeBits(p *parser, t btf.Type, bits int, union bool) int {
	size, align := p.sizeAlign(t)
	if _, ok := btf.UnderlyingType(t).(*btf.Int); !ok {
		if _, ok := btf.UnderlyingType(t).(*btf.Enum); !ok {
			p.fail("a bitfield must have an integer type")
		}
	}
	unit := 8 * size
	if bits < 0 || bits > unit {
		p.fail("a bitfield of %d bits in a %d-bit type", bits, unit)
	}
	if union {
		l.align = max(l.align, align)
		l.size = max(l.size, size)
		return 0
	}
	if bits == 0 {
		l.bits = roundUp(l.bits, unit)
		return l.bits
	}
	l.align = max(l.align, align)
	if l.bits/unit != (l.bits+bits-1)/unit {
		l.bits = roundUp(l.bits, unit)
	}
	off := l.bits
	l.bits += bits
	return off
}

func (l *layout) finish() int {
	if l.align == 0 {
		l.align = 1
	}
	size := max(l.size, (l.bits+7)/8)
	return roundUp(size, l.align)
}

func roundUp(n, to int) int { return (n + to - 1) / to * to }

// sizeAlign is a member type's size and alignment; an incomplete type
// (a struct declared, not defined) has none and can not be a member.
func (p *parser) sizeAlign(t btf.Type) (int, int) {
	switch u := btf.UnderlyingType(t).(type) {
	case *btf.Int:
		return int(u.Size), int(u.Size)
	case *btf.Enum:
		return int(u.Size), int(u.Size)
	case *btf.Float:
		// Only in the kernel's types a member resolves to.
		return int(u.Size), int(u.Size)
	case *btf.Pointer:
		return 8, 8
	case *btf.Array:
		n, a := p.sizeAlign(u.Type)
		if int64(n)*int64(u.Nelems) > MaxSize {
			p.fail("an array larger than %d bytes", MaxSize)
		}
		return n * int(u.Nelems), a
	case *btf.Struct:
		p.complete(u, "struct", u.Name)
		return int(u.Size), recordAlign(p, u.Members)
	case *btf.Union:
		p.complete(u, "union", u.Name)
		return int(u.Size), recordAlign(p, u.Members)
	case *btf.Fwd:
		kind := "struct"
		if u.Kind == btf.FwdUnion {
			kind = "union"
		}
		p.fail("field has incomplete type '%s %s' (define it before this one)", kind, u.Name)
	case *btf.Void:
		p.fail("field has incomplete type 'void'")
	}
	p.fail("a member of type %s", t)
	return 0, 0
}

// complete fails for a struct or union whose definition is not over.
func (p *parser) complete(t btf.Type, kind, name string) {
	if p.open[t] {
		p.fail("field has incomplete type '%s %s'", kind, name)
	}
}

func recordAlign(p *parser, ms []btf.Member) int {
	a := 1
	for _, m := range ms {
		_, ma := p.sizeAlign(m.Type)
		a = max(a, ma)
	}
	return a
}
