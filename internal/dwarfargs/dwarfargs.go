// Package dwarfargs reads what a uprobe needs from a binary's DWARF:
// a function's parameters, in order, with their C types, and the named
// structs, unions, enums and typedefs the binary defines, as bpftrace
// 0.17 reads them (uprobe args, -lv, casts to a struct the binary
// defines). Types come out as cilium/ebpf BTF types, the compiler's
// one representation of C types, whichever of the kernel's BTF, a
// script's definitions or a binary's DWARF they were read from.
//
// The file is untrusted input (a token holder may name any binary its
// scope allows): the sections read are bounded in size before they are
// decompressed, the type graph converted is bounded in nesting and in
// count, and a panic of the DWARF reader is an error, never a crash.
package dwarfargs

import (
	"bytes"
	"debug/dwarf"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// ErrNoDebugInfo is the error of a file without DWARF.
var ErrNoDebugInfo = errors.New("no debug info")

// ErrNoFunc is the error of a function the DWARF does not define.
var ErrNoFunc = errors.New("no such function in the debug info")

// Bounds on what one file makes the reader do.
const (
	// MaxSection bounds each DWARF section, as it is once decompressed:
	// a small compressed section can claim any size.
	MaxSection = 256 << 20
	// MaxDebugInfo bounds all the DWARF sections read, together.
	MaxDebugInfo = 512 << 20
	// maxDeflate is deflate's greatest ratio of output to input.
	maxDeflate = 1032
	// maxNesting bounds how deep types nest by value (a struct in an
	// array in a struct...): past it, a pointer's target is left a
	// forward declaration, which the compiler looks up by name when it
	// is read through, and any other type is an error.
	maxNesting = 32
	// maxTypes bounds the types one file converts in all.
	maxTypes = 1 << 16
	// maxMembers bounds a struct's, union's or enum's members.
	maxMembers = 1 << 14
	// maxParams bounds a function's parameters.
	maxParams = 256
)

// Param is one formal parameter of a function.
type Param struct {
	Name string
	// CType is the type as bpftrace 0.17 spells it in -lv listings
	// ("int*", "struct Foo*", "const char*", "<unknown type>").
	CType string
	Type  btf.Type
}

// Info is one file's DWARF, indexed by name. It is not safe for
// concurrent use.
type Info struct {
	d *dwarf.Data
	// funcs are the offsets of the subprograms defined, by name and by
	// linkage name; the first definition of a name wins.
	funcs map[string]dwarf.Offset
	// types are the offsets of the named types defined at the top of a
	// compilation unit, by "struct NAME", "union NAME", "enum NAME" and
	// " NAME" (a typedef).
	types map[string]dwarf.Offset

	conv  map[dwarf.Type]btf.Type
	count int
}

// Load reads the DWARF of the ELF file r. A file without a .debug_info
// section gives ErrNoDebugInfo.
func Load(r io.ReaderAt) (info *Info, err error) {
	defer func() {
		if p := recover(); p != nil {
			info, err = nil, fmt.Errorf("malformed DWARF: %v", p)
		}
	}()
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	has := false
	var total uint64
	for _, s := range f.Sections {
		if !strings.HasPrefix(s.Name, ".debug_") && !strings.HasPrefix(s.Name, ".zdebug_") {
			continue
		}
		if s.Name == ".debug_info" || s.Name == ".zdebug_info" {
			has = s.Type != elf.SHT_NOBITS
		}
		if s.Type == elf.SHT_NOBITS {
			continue
		}
		n, err := sectionSize(s)
		switch {
		case err != nil:
			return nil, fmt.Errorf("section %s: %w", s.Name, err)
		case n > MaxSection:
			return nil, fmt.Errorf("section %s is %d bytes, more than %d", s.Name, n, MaxSection)
		case compressed(s) && n > maxDeflate*s.FileSize+64:
			// What decompressing allocates is what the header claims:
			// deflate can not claim more than this for what is there.
			return nil, fmt.Errorf("section %s claims %d bytes, more than its %d compressed bytes can hold", s.Name, n, s.FileSize)
		}
		total += n
		if total > MaxDebugInfo {
			return nil, fmt.Errorf("the DWARF sections take more than %d bytes", MaxDebugInfo)
		}
	}
	if !has {
		return nil, ErrNoDebugInfo
	}
	d, err := f.DWARF()
	if err != nil {
		return nil, err
	}
	info = &Info{d: d, funcs: map[string]dwarf.Offset{}, types: map[string]dwarf.Offset{}, conv: map[dwarf.Type]btf.Type{}}
	if err := info.index(); err != nil {
		return nil, err
	}
	return info, nil
}

// sectionSize is how many bytes a section holds once decompressed.
func sectionSize(s *elf.Section) (uint64, error) {
	if strings.HasPrefix(s.Name, ".zdebug_") {
		// GNU's older compression: "ZLIB" and the size, big-endian.
		var h [12]byte
		if _, err := s.ReadAt(h[:], 0); err != nil {
			return 0, err
		}
		if !bytes.Equal(h[:4], []byte("ZLIB")) {
			return s.FileSize, nil
		}
		return binary.BigEndian.Uint64(h[4:]), nil
	}
	// debug/elf gives a SHF_COMPRESSED section the size its header
	// claims, which is what decompressing it allocates.
	return s.Size, nil
}

func compressed(s *elf.Section) bool {
	return s.Flags&elf.SHF_COMPRESSED != 0 || strings.HasPrefix(s.Name, ".zdebug_")
}

// index records where each function and each named type is defined.
func (in *Info) index() error {
	r := in.d.Reader()
	depth := 0
	for {
		e, err := r.Next()
		if err != nil {
			return err
		}
		if e == nil {
			return nil
		}
		if e.Tag == 0 {
			depth--
			continue
		}
		level := depth
		if e.Children {
			depth++
		}
		switch e.Tag {
		case dwarf.TagCompileUnit, dwarf.TagPartialUnit:
			continue
		case dwarf.TagSubprogram:
			if decl, _ := e.Val(dwarf.AttrDeclaration).(bool); !decl {
				for _, a := range []dwarf.Attr{dwarf.AttrName, dwarf.AttrLinkageName} {
					if name, _ := e.Val(a).(string); name != "" {
						if _, seen := in.funcs[name]; !seen {
							in.funcs[name] = e.Offset
						}
					}
				}
			}
		case dwarf.TagStructType, dwarf.TagUnionType, dwarf.TagEnumerationType, dwarf.TagTypedef:
			name, _ := e.Val(dwarf.AttrName).(string)
			decl, _ := e.Val(dwarf.AttrDeclaration).(bool)
			if level == 1 && name != "" && !decl {
				key := map[dwarf.Tag]string{dwarf.TagStructType: "struct", dwarf.TagUnionType: "union", dwarf.TagEnumerationType: "enum"}[e.Tag] + " " + name
				if _, seen := in.types[key]; !seen {
					in.types[key] = e.Offset
				}
			}
		}
		if e.Children && level >= 1 {
			// Nothing inside a function or a type is indexed: the
			// parameters are read when asked for, and types local to a
			// function are not the binary's names.
			r.SkipChildren()
			depth--
		}
	}
}

// HasFunc says whether the file defines a function named name.
func (in *Info) HasFunc(name string) bool {
	_, ok := in.funcs[name]
	return ok
}

// Params returns the parameters of the function named name (its name or
// its linkage name), in order. An unnamed parameter has Name "".
func (in *Info) Params(name string) (params []Param, err error) {
	defer func() {
		if p := recover(); p != nil {
			params, err = nil, fmt.Errorf("malformed DWARF of %s: %v", name, p)
		}
	}()
	off, ok := in.funcs[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, ErrNoFunc)
	}
	r := in.d.Reader()
	r.Seek(off)
	fn, err := r.Next()
	if err != nil {
		return nil, err
	}
	if fn == nil || !fn.Children {
		return nil, nil
	}
	for {
		e, err := r.Next()
		if err != nil {
			return nil, err
		}
		if e == nil || e.Tag == 0 {
			return params, nil
		}
		if e.Tag == dwarf.TagFormalParameter {
			if len(params) == maxParams {
				return nil, fmt.Errorf("%s has more than %d parameters", name, maxParams)
			}
			p, err := in.param(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			params = append(params, p)
		}
		if e.Children {
			r.SkipChildren()
		}
	}
}

func (in *Info) param(e *dwarf.Entry) (Param, error) {
	name, _ := e.Val(dwarf.AttrName).(string)
	off, ok := e.Val(dwarf.AttrType).(dwarf.Offset)
	if !ok {
		return Param{Name: name, CType: "<unknown type>", Type: &btf.Void{}}, nil
	}
	dt, err := in.d.Type(off)
	if err != nil {
		return Param{}, err
	}
	t, err := in.convert(dt, 0)
	if err != nil {
		return Param{}, err
	}
	return Param{Name: name, CType: CName(dt), Type: t}, nil
}

// Type returns the named type: kind "struct", "union" or "enum", or ""
// for a typedef. An unknown name is an error wrapping btf.ErrNotFound.
func (in *Info) Type(kind, name string) (t btf.Type, err error) {
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, fmt.Errorf("malformed DWARF of %s %s: %v", kind, name, p)
		}
	}()
	off, ok := in.types[kind+" "+name]
	if !ok {
		return nil, fmt.Errorf("%s %s: %w", kind, name, btf.ErrNotFound)
	}
	dt, err := in.d.Type(off)
	if err != nil {
		return nil, err
	}
	return in.convert(dt, 0)
}

// CName spells a DWARF type as bpftrace 0.17 does in its listings. It
// knows base types, typedefs, structs, unions, enums, pointers and
// const; anything else (volatile, arrays, functions) it calls
// "<unknown type>", as bpftrace does.
func CName(t dwarf.Type) string { return cname(t, 0) }

func cname(t dwarf.Type, depth int) string {
	if depth > maxNesting {
		return "<unknown type>"
	}
	switch t := t.(type) {
	case *dwarf.TypedefType:
		return t.Name
	case *dwarf.StructType:
		switch t.Kind {
		case "struct", "union":
			return t.Kind + " " + t.StructName
		}
	case *dwarf.EnumType:
		return "enum " + t.EnumName
	case *dwarf.PtrType:
		if isVoid(t.Type) {
			return "void*"
		}
		return cname(t.Type, depth+1) + "*"
	case *dwarf.QualType:
		if t.Qual != "const" {
			break
		}
		if isVoid(t.Type) {
			return "const void"
		}
		if _, ptr := t.Type.(*dwarf.PtrType); ptr {
			return cname(t.Type, depth+1) + " const"
		}
		return "const " + cname(t.Type, depth+1)
	case *dwarf.IntType, *dwarf.UintType, *dwarf.CharType, *dwarf.UcharType,
		*dwarf.BoolType, *dwarf.FloatType, *dwarf.ComplexType, *dwarf.AddrType:
		return t.Common().Name
	}
	return "<unknown type>"
}

func isVoid(t dwarf.Type) bool {
	switch t.(type) {
	case nil, *dwarf.VoidType:
		return true
	}
	return false
}

// errTooMany is the error of a file whose types exceed maxTypes.
var errTooMany = fmt.Errorf("more than %d types", maxTypes)

// convert makes t a BTF type; depth counts the types it is nested in by
// value.
func (in *Info) convert(t dwarf.Type, depth int) (btf.Type, error) {
	if isVoid(t) {
		return &btf.Void{}, nil
	}
	if b, ok := in.conv[t]; ok {
		return b, nil
	}
	if depth > maxNesting {
		return nil, fmt.Errorf("types nested more than %d deep", maxNesting)
	}
	if in.count >= maxTypes {
		return nil, errTooMany
	}
	in.count++
	switch t := t.(type) {
	case *dwarf.IntType, *dwarf.CharType, *dwarf.UintType, *dwarf.UcharType, *dwarf.BoolType, *dwarf.AddrType:
		size := t.Size()
		if size <= 0 || size > 16 {
			return nil, fmt.Errorf("integer type %s of %d bytes", t.Common().Name, size)
		}
		b := &btf.Int{Name: t.Common().Name, Size: uint32(size)}
		switch t.(type) {
		case *dwarf.IntType:
			b.Encoding = btf.Signed
		case *dwarf.CharType:
			// One encoding bit at most, as the kernel's BTF has: a
			// char's sign is what reading it needs.
			b.Encoding = btf.Signed
		case *dwarf.BoolType:
			b.Encoding = btf.Bool
		}
		in.conv[t] = b
		return b, nil
	case *dwarf.FloatType:
		b := &btf.Float{Name: t.Name, Size: uint32(max(t.Size(), 0))}
		in.conv[t] = b
		return b, nil
	case *dwarf.TypedefType:
		b := &btf.Typedef{Name: t.Name}
		in.conv[t] = b
		target, err := in.convert(t.Type, depth+1)
		if err != nil {
			delete(in.conv, t)
			return nil, err
		}
		b.Type = target
		return b, nil
	case *dwarf.QualType:
		target, err := in.convert(t.Type, depth+1)
		if err != nil {
			return nil, err
		}
		var b btf.Type
		switch t.Qual {
		case "const":
			b = &btf.Const{Type: target}
		case "volatile":
			b = &btf.Volatile{Type: target}
		case "restrict":
			b = &btf.Restrict{Type: target}
		default:
			b = target // _Atomic and the like read as what they qualify
		}
		in.conv[t] = b
		return b, nil
	case *dwarf.PtrType:
		b := &btf.Pointer{}
		in.conv[t] = b
		target, err := in.convert(t.Type, depth+1)
		if err != nil {
			// Too deep to follow now: a named struct or union is
			// looked up by name when it is read through.
			s, named := t.Type.(*dwarf.StructType)
			if !named || s.StructName == "" || (s.Kind != "struct" && s.Kind != "union") {
				delete(in.conv, t)
				return nil, err
			}
			kind := btf.FwdStruct
			if s.Kind == "union" {
				kind = btf.FwdUnion
			}
			target = &btf.Fwd{Name: s.StructName, Kind: kind}
		}
		b.Target = target
		return b, nil
	case *dwarf.StructType:
		return in.record(t, depth)
	case *dwarf.EnumType:
		if len(t.Val) > maxMembers {
			return nil, fmt.Errorf("enum %s has more than %d values", t.EnumName, maxMembers)
		}
		size := t.Size()
		if size <= 0 || size > 8 {
			size = 4
		}
		b := &btf.Enum{Name: t.EnumName, Size: uint32(size)}
		for _, v := range t.Val {
			b.Values = append(b.Values, btf.EnumValue{Name: v.Name, Value: uint64(v.Val)})
			if v.Val < 0 {
				b.Signed = true
			}
		}
		in.conv[t] = b
		return b, nil
	case *dwarf.ArrayType:
		elem, err := in.convert(t.Type, depth+1)
		if err != nil {
			return nil, err
		}
		n := t.Count
		if n < 0 {
			n = 0 // char x[]: nothing of it can be read by index
		}
		if n > 1<<31 {
			return nil, fmt.Errorf("array of %d elements", t.Count)
		}
		b := &btf.Array{Index: &btf.Int{Name: "__ARRAY_SIZE_TYPE__", Size: 4}, Type: elem, Nelems: uint32(n)}
		in.conv[t] = b
		return b, nil
	case *dwarf.FuncType:
		b := &btf.FuncProto{Return: &btf.Void{}}
		in.conv[t] = b
		return b, nil
	}
	return nil, fmt.Errorf("type %s (%T) can not be converted", t, t)
}

// record converts a struct or union, its members at their bit offsets.
func (in *Info) record(t *dwarf.StructType, depth int) (btf.Type, error) {
	kind := btf.FwdStruct
	switch t.Kind {
	case "struct", "class":
	case "union":
		kind = btf.FwdUnion
	default:
		return nil, fmt.Errorf("%s %s can not be converted", t.Kind, t.StructName)
	}
	if t.Incomplete {
		b := &btf.Fwd{Name: t.StructName, Kind: kind}
		in.conv[t] = b
		return b, nil
	}
	if len(t.Field) > maxMembers {
		return nil, fmt.Errorf("%s %s has more than %d members", t.Kind, t.StructName, maxMembers)
	}
	size := t.Size()
	if size < 0 || size > MaxSection {
		return nil, fmt.Errorf("%s %s of %d bytes", t.Kind, t.StructName, size)
	}
	var b btf.Type
	var members *[]btf.Member
	if kind == btf.FwdUnion {
		u := &btf.Union{Name: t.StructName, Size: uint32(size)}
		b, members = u, &u.Members
	} else {
		s := &btf.Struct{Name: t.StructName, Size: uint32(size)}
		b, members = s, &s.Members
	}
	// In the map before its members, which may point back to it.
	in.conv[t] = b
	for _, f := range t.Field {
		mt, err := in.convert(f.Type, depth+1)
		if err != nil {
			delete(in.conv, t)
			return nil, fmt.Errorf("%s %s, member %s: %w", t.Kind, t.StructName, f.Name, err)
		}
		off, err := bitOffset(f)
		if err != nil {
			delete(in.conv, t)
			return nil, fmt.Errorf("%s %s, member %s: %w", t.Kind, t.StructName, f.Name, err)
		}
		*members = append(*members, btf.Member{Name: f.Name, Type: mt, Offset: off, BitfieldSize: btf.Bits(f.BitSize)})
	}
	return b, nil
}

// bitOffset is where a member starts, in bits from the start of its
// struct, for a little-endian target.
func bitOffset(f *dwarf.StructField) (btf.Bits, error) {
	if f.ByteOffset < 0 || f.ByteOffset > MaxSection || f.BitSize < 0 || f.BitSize > 64 {
		return 0, fmt.Errorf("offset %d, %d bits", f.ByteOffset, f.BitSize)
	}
	off := f.ByteOffset * 8
	if f.BitSize == 0 {
		return btf.Bits(off), nil
	}
	switch {
	case f.DataBitOffset != 0:
		off = f.DataBitOffset
	case f.ByteSize != 0 || f.BitOffset != 0:
		// DW_AT_bit_offset counts from the storage unit's most
		// significant bit: on a little-endian target the field's
		// lowest bit is that many bits and the field's width below
		// the top.
		unit := f.ByteSize
		if unit == 0 && f.Type != nil {
			unit = f.Type.Size()
		}
		off += unit*8 - f.BitOffset - f.BitSize
	}
	if off < 0 || off > 8*MaxSection {
		return 0, fmt.Errorf("bit offset %d", off)
	}
	return btf.Bits(off), nil
}
