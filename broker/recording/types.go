package recording

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/broker/script/compile"
)

// A script's struct access compiles against the kernel's BTF, and a
// replay may run where that kernel is not: the recording carries the
// types the recorded script read through (program.Types), as raw BTF in
// the header. Each is copied with what reading its fields needs (its
// members, the structs embedded in it, arrays, integers, enums) and no
// more: a pointer to another struct points to a forward declaration of
// it, which the recording resolves only if it holds that struct too.
// So a recording of curtask->real_parent->pid holds task_struct, not the
// thousands of types task_struct reaches.

// MaxTypes bounds the raw BTF a header may carry.
const MaxTypes = 4 << 20

// EncodeTypes is the header's types: ts as raw BTF, base64.
func EncodeTypes(ts []btf.Type) (string, error) {
	if len(ts) == 0 {
		return "", nil
	}
	p := pruner{done: map[btf.Type]btf.Type{}}
	var out []btf.Type
	for _, t := range ts {
		out = append(out, p.copy(t))
	}
	b, err := btf.NewBuilder(out, nil)
	if err != nil {
		return "", err
	}
	raw, err := b.Marshal(nil, &btf.MarshalOptions{Order: binary.LittleEndian})
	if err != nil {
		return "", err
	}
	if len(raw) > MaxTypes {
		return "", fmt.Errorf("the script's struct types take %d bytes of BTF, more than a recording holds (%d)", len(raw), MaxTypes)
	}
	return base64.StdEncoding.EncodeToString(raw), nil
}

type pruner struct{ done map[btf.Type]btf.Type }

// copy is t as a recording holds it.
func (p *pruner) copy(t btf.Type) btf.Type {
	if c, ok := p.done[t]; ok {
		return c
	}
	var c btf.Type
	switch t := t.(type) {
	case *btf.Struct:
		s := &btf.Struct{Name: t.Name, Size: t.Size}
		p.done[t] = s // before the members: a struct may reach itself
		s.Members = p.members(t.Members)
		return s
	case *btf.Union:
		u := &btf.Union{Name: t.Name, Size: t.Size}
		p.done[t] = u
		u.Members = p.members(t.Members)
		return u
	case *btf.Pointer:
		c = &btf.Pointer{Target: p.pointee(t.Target)}
	case *btf.Array:
		c = &btf.Array{Index: &btf.Int{Name: "unsigned int", Size: 4}, Type: p.copy(t.Type), Nelems: t.Nelems}
	case *btf.Typedef:
		c = &btf.Typedef{Name: t.Name, Type: p.copy(t.Type)}
	case *btf.Const:
		c = &btf.Const{Type: p.copy(t.Type)}
	case *btf.Volatile:
		c = &btf.Volatile{Type: p.copy(t.Type)}
	case *btf.Restrict:
		c = &btf.Restrict{Type: p.copy(t.Type)}
	case *btf.TypeTag:
		c = p.copy(t.Type)
	case *btf.Int:
		c = &btf.Int{Name: t.Name, Size: t.Size, Encoding: t.Encoding}
	case *btf.Enum:
		c = &btf.Enum{Name: t.Name, Size: t.Size, Signed: t.Signed, Values: append([]btf.EnumValue(nil), t.Values...)}
	case *btf.Float:
		c = &btf.Float{Name: t.Name, Size: t.Size}
	case *btf.Fwd:
		c = &btf.Fwd{Name: t.Name, Kind: t.Kind}
	default: // functions, variables: nothing a script reads
		c = &btf.Void{}
	}
	p.done[t] = c
	return c
}

func (p *pruner) members(ms []btf.Member) []btf.Member {
	out := make([]btf.Member, len(ms))
	for i, m := range ms {
		out[i] = btf.Member{Name: m.Name, Type: p.copy(m.Type), Offset: m.Offset, BitfieldSize: m.BitfieldSize}
	}
	return out
}

// pointee is what a copied pointer points to: a named struct or union
// as a forward declaration, anything else copied.
func (p *pruner) pointee(t btf.Type) btf.Type {
	switch u := btf.UnderlyingType(t).(type) {
	case *btf.Struct:
		if u.Name != "" {
			return &btf.Fwd{Name: u.Name, Kind: btf.FwdStruct}
		}
	case *btf.Union:
		if u.Name != "" {
			return &btf.Fwd{Name: u.Name, Kind: btf.FwdUnion}
		}
	case *btf.FuncProto:
		return &btf.Void{}
	}
	return p.copy(t)
}

// btfMagic starts raw BTF (little-endian 0xeB9F).
var btfMagic = []byte{0x9f, 0xeb}

// decodeTypes parses the header's types.
func decodeTypes(s string) (*btf.Spec, error) {
	if base64.StdEncoding.DecodedLen(len(s)) > MaxTypes {
		return nil, fmt.Errorf("recorded types of %d bytes, at most %d", base64.StdEncoding.DecodedLen(len(s)), MaxTypes)
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("recorded types: %w", err)
	}
	if !bytes.HasPrefix(raw, btfMagic) {
		return nil, errors.New("recorded types: not raw BTF")
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("recorded types: %w", err)
	}
	c := checker{depth: map[btf.Type]int{}, visiting: map[btf.Type]bool{}}
	for t, err := range spec.All() {
		if err != nil {
			return nil, fmt.Errorf("recorded types: %w", err)
		}
		if _, err := c.check(t, 0); err != nil {
			return nil, fmt.Errorf("recorded types: %w", err)
		}
	}
	return spec, nil
}

// maxNesting bounds how deep a recorded type nests others by value:
// structs, unions, arrays, typedefs and qualifiers (the kernel's deepest
// is well under it).
const maxNesting = 64

// checker refuses a type that holds itself by value (a struct as its
// own member, through arrays, typedefs or other structs), which no C
// type does and which would send whatever walks it into a loop, or
// that nests deeper than maxNesting. Each type is walked once: what
// it nests is remembered, so a file of types that share members costs
// its size, not its paths.
type checker struct {
	depth    map[btf.Type]int
	visiting map[btf.Type]bool
}

func (c *checker) check(t btf.Type, level int) (int, error) {
	if d, ok := c.depth[t]; ok {
		return d, nil
	}
	if c.visiting[t] {
		return 0, fmt.Errorf("%s holds itself", t)
	}
	if level > maxNesting {
		return 0, fmt.Errorf("%s nests types more than %d deep", t, maxNesting)
	}
	var inner []btf.Type
	switch t := t.(type) {
	case *btf.Struct:
		for _, m := range t.Members {
			inner = append(inner, m.Type)
		}
	case *btf.Union:
		for _, m := range t.Members {
			inner = append(inner, m.Type)
		}
	case *btf.Array:
		inner = []btf.Type{t.Type}
	case *btf.Typedef:
		inner = []btf.Type{t.Type}
	case *btf.Const:
		inner = []btf.Type{t.Type}
	case *btf.Volatile:
		inner = []btf.Type{t.Type}
	case *btf.Restrict:
		inner = []btf.Type{t.Type}
	case *btf.TypeTag:
		inner = []btf.Type{t.Type}
	}
	// A pointer ends the walk: what it points to is not held.
	c.visiting[t] = true
	d := 0
	for _, it := range inner {
		id, err := c.check(it, level+1)
		if err != nil {
			return 0, err
		}
		d = max(d, id)
	}
	delete(c.visiting, t)
	if d+1 > maxNesting {
		return 0, fmt.Errorf("%s nests types more than %d deep", t, maxNesting)
	}
	c.depth[t] = d + 1
	return d + 1, nil
}

// StructTypes answers the compiler's questions about struct types from
// the types the recording holds; nil when it holds none.
func (h *Header) StructTypes() compile.Types {
	if h.Types == "" {
		return nil
	}
	return &recordedTypes{h: h}
}

type recordedTypes struct {
	h    *Header
	once sync.Once
	spec *btf.Spec
	err  error
}

func (r *recordedTypes) Type(kind, name string) (btf.Type, error) {
	r.once.Do(func() { r.spec, r.err = decodeTypes(r.h.Types) })
	if r.err != nil {
		return nil, r.err
	}
	ts, err := r.spec.AnyTypesByName(name)
	if err == nil {
		for _, t := range ts {
			switch t.(type) {
			case *btf.Struct:
				if kind == "struct" {
					return t, nil
				}
			case *btf.Union:
				if kind == "union" {
					return t, nil
				}
			case *btf.Enum:
				if kind == "enum" {
					return t, nil
				}
			case *btf.Typedef:
				if kind == "" {
					return t, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("%w: %s %s is not in the recording (it holds the types its script read)", btf.ErrNotFound, kind, name)
}
