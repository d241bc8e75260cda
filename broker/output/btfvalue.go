package output

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"

	"github.com/cilium/ebpf/btf"
)

// A Decoded is a value read from a BTF-typed object's record or map,
// ready for text or JSON: one of int64, uint64, float64, bool, string
// (a char array up to its NUL), []byte (no type, or one not shown
// otherwise), []Decoded (an array), *Struct.
type Decoded any

// Struct is a decoded struct or union, its members in order.
type Struct struct {
	Names  []string
	Values []Decoded
}

// maxDecodeDepth bounds nesting: BTF from a file may be as deep as its
// author likes, and a type may even contain itself through a typedef
// chain the reader accepted.
const maxDecodeDepth = 32

// Decode reads data as a value of type t (nil: raw bytes). Bytes past
// the type's size are ignored; a value shorter than its type is shown
// as the bytes there are.
func Decode(t btf.Type, data []byte) Decoded {
	return decode(t, data, 0)
}

func decode(t btf.Type, data []byte, depth int) Decoded {
	if t == nil || depth > maxDecodeDepth {
		return bytes.Clone(data)
	}
	t = btf.UnderlyingType(btf.QualifiedType(t))
	size, err := btf.Sizeof(t)
	if err != nil || size > len(data) {
		return bytes.Clone(data)
	}
	data = data[:size]
	switch t := t.(type) {
	case *btf.Int:
		return decodeInt(data, t.Encoding&btf.Signed != 0, t.Encoding&btf.Bool != 0)
	case *btf.Enum:
		v := decodeInt(data, t.Signed, false)
		var u uint64
		switch x := v.(type) {
		case int64:
			u = uint64(x)
		case uint64:
			u = x
		default:
			return v
		}
		for _, e := range t.Values {
			if e.Value == u {
				return e.Name
			}
		}
		return v
	case *btf.Float:
		switch size {
		case 4:
			return float64(math.Float32frombits(binary.LittleEndian.Uint32(data)))
		case 8:
			return math.Float64frombits(binary.LittleEndian.Uint64(data))
		}
	case *btf.Pointer:
		return fmt.Sprintf("0x%x", binary.LittleEndian.Uint64(data))
	case *btf.Array:
		elem := btf.UnderlyingType(btf.QualifiedType(t.Type))
		if isChar(elem) {
			if n := bytes.IndexByte(data, 0); n >= 0 {
				return string(data[:n])
			}
			return string(data)
		}
		esize, err := btf.Sizeof(elem)
		if err != nil || esize == 0 {
			return bytes.Clone(data)
		}
		out := make([]Decoded, 0, t.Nelems)
		for i := 0; i < int(t.Nelems) && (i+1)*esize <= len(data); i++ {
			out = append(out, decode(t.Type, data[i*esize:(i+1)*esize], depth+1))
		}
		return out
	case *btf.Struct:
		return decodeMembers(t.Members, data, depth)
	case *btf.Union:
		return decodeMembers(t.Members, data, depth)
	}
	return bytes.Clone(data)
}

func decodeMembers(ms []btf.Member, data []byte, depth int) *Struct {
	s := &Struct{}
	for i, m := range ms {
		name := m.Name
		if name == "" {
			name = fmt.Sprintf("_%d", i) // an anonymous struct or union
		}
		off := int(m.Offset.Bytes())
		var v Decoded
		if m.BitfieldSize > 0 {
			v = bitfield(data, uint32(m.Offset), uint32(m.BitfieldSize))
		} else if m.Offset%8 != 0 || off > len(data) {
			v = []byte{}
		} else {
			v = decode(m.Type, data[off:], depth+1)
		}
		s.Names = append(s.Names, name)
		s.Values = append(s.Values, v)
	}
	return s
}

// bitfield reads size bits at bit offset off (little-endian).
func bitfield(data []byte, off, size uint32) Decoded {
	var v uint64
	for i := uint32(0); i < size && i < 64; i++ {
		bit := off + i
		if int(bit/8) >= len(data) {
			break
		}
		if data[bit/8]>>(bit%8)&1 != 0 {
			v |= 1 << i
		}
	}
	return v
}

func decodeInt(data []byte, signed, isBool bool) Decoded {
	var u uint64
	switch len(data) {
	case 1:
		u = uint64(data[0])
	case 2:
		u = uint64(binary.LittleEndian.Uint16(data))
	case 4:
		u = uint64(binary.LittleEndian.Uint32(data))
	case 8:
		u = binary.LittleEndian.Uint64(data)
	default:
		return "0x" + hex.EncodeToString(data) // __int128 and the like
	}
	if isBool {
		return u != 0
	}
	if signed {
		shift := 64 - 8*len(data)
		return int64(u<<shift) >> shift
	}
	return u
}

// AppendText appends v as text: numbers in decimal, strings bare at the
// top (as bpftrace prints keys) and quoted inside a struct or array,
// structs as { .name = value, ... }, arrays as [a, b], bytes in hex.
func AppendText(b []byte, v Decoded) []byte { return appendText(b, v, false) }

func appendText(b []byte, v Decoded, nested bool) []byte {
	switch v := v.(type) {
	case int64:
		return strconv.AppendInt(b, v, 10)
	case uint64:
		return strconv.AppendUint(b, v, 10)
	case float64:
		return strconv.AppendFloat(b, v, 'g', -1, 64)
	case bool:
		return strconv.AppendBool(b, v)
	case string:
		if nested {
			return strconv.AppendQuote(b, v)
		}
		return append(b, v...)
	case []byte:
		return hex.AppendEncode(b, v)
	case []Decoded:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendText(b, e, true)
		}
		return append(b, ']')
	case *Struct:
		b = append(b, "{ "...)
		for i := range v.Names {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = append(b, '.')
			b = append(b, v.Names[i]...)
			b = append(b, " = "...)
			b = appendText(b, v.Values[i], true)
		}
		return append(b, " }"...)
	}
	return fmt.Appendf(b, "%v", v)
}

// AppendKeyText appends a map key as bpftrace prints a key of several
// values: a struct's members joined by ", ", each bare.
func AppendKeyText(b []byte, v Decoded) []byte {
	s, ok := v.(*Struct)
	if !ok {
		return appendText(b, v, false)
	}
	for i, e := range s.Values {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendText(b, e, false)
	}
	return b
}

// AppendJSON appends v as JSON: structs as objects, char arrays as
// strings, bytes as a hex string.
func AppendJSON(b []byte, v Decoded) []byte {
	switch v := v.(type) {
	case int64:
		return strconv.AppendInt(b, v, 10)
	case uint64:
		return strconv.AppendUint(b, v, 10)
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, v, 'g', -1, 64)
	case bool:
		return strconv.AppendBool(b, v)
	case string:
		b = append(b, '"')
		b = jsonEscape(b, v)
		return append(b, '"')
	case []byte:
		b = append(b, '"')
		b = hex.AppendEncode(b, v)
		return append(b, '"')
	case []Decoded:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = AppendJSON(b, e)
		}
		return append(b, ']')
	case *Struct:
		b = append(b, '{')
		for i := range v.Names {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = append(b, '"')
			b = jsonEscape(b, v.Names[i])
			b = append(b, `": `...)
			b = AppendJSON(b, v.Values[i])
		}
		return append(b, '}')
	}
	b = append(b, '"')
	b = jsonEscape(b, fmt.Sprint(v))
	return append(b, '"')
}

// SumPerCPU adds up a per-CPU map's values when every leaf of t is an
// integer (counters, structs of counters), as bpftrace reduces its
// per-CPU maps: ok is false otherwise, and the caller shows each CPU's.
func SumPerCPU(t btf.Type, vals [][]byte) (sum []byte, ok bool) {
	return PerCPUSummer(t)(vals)
}

// PerCPUSummer is SumPerCPU for many values of one type: it works out
// once where t's integers are, not once per value.
func PerCPUSummer(t btf.Type) func(vals [][]byte) ([]byte, bool) {
	none := func([][]byte) ([]byte, bool) { return nil, false }
	if t == nil {
		return none
	}
	size, err := btf.Sizeof(t)
	var leaves [][2]int // offset, size
	if err != nil || !intLeaves(t, 0, &leaves, 0) {
		return none
	}
	return func(vals [][]byte) ([]byte, bool) {
		if len(vals) == 0 {
			return nil, false
		}
		sum := make([]byte, size)
		for _, v := range vals {
			if len(v) < size {
				return nil, false
			}
			for _, l := range leaves {
				off, n := l[0], l[1]
				switch n {
				case 1:
					sum[off] += v[off]
				case 2:
					binary.LittleEndian.PutUint16(sum[off:], binary.LittleEndian.Uint16(sum[off:])+binary.LittleEndian.Uint16(v[off:]))
				case 4:
					binary.LittleEndian.PutUint32(sum[off:], binary.LittleEndian.Uint32(sum[off:])+binary.LittleEndian.Uint32(v[off:]))
				case 8:
					binary.LittleEndian.PutUint64(sum[off:], binary.LittleEndian.Uint64(sum[off:])+binary.LittleEndian.Uint64(v[off:]))
				}
			}
		}
		return sum, true
	}
}

func intLeaves(t btf.Type, off int, out *[][2]int, depth int) bool {
	if depth > maxDecodeDepth {
		return false
	}
	switch t := btf.UnderlyingType(btf.QualifiedType(t)).(type) {
	case *btf.Int:
		if t.Encoding&(btf.Bool|btf.Char) != 0 || t.Size > 8 {
			return false
		}
		*out = append(*out, [2]int{off, int(t.Size)})
		return true
	case *btf.Struct:
		for _, m := range t.Members {
			if m.BitfieldSize > 0 || m.Offset%8 != 0 || !intLeaves(m.Type, off+int(m.Offset.Bytes()), out, depth+1) {
				return false
			}
		}
		return true
	case *btf.Array:
		esize, err := btf.Sizeof(t.Type)
		if err != nil || t.Nelems > 1024 || isChar(btf.UnderlyingType(btf.QualifiedType(t.Type))) {
			return false
		}
		for i := 0; i < int(t.Nelems); i++ {
			if !intLeaves(t.Type, off+i*esize, out, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}

// isChar says whether an array of t is a string: C's char types, as
// clang writes them into BTF.
func isChar(t btf.Type) bool {
	i, ok := t.(*btf.Int)
	return ok && i.Size == 1 && (i.Encoding&btf.Char != 0 || i.Name == "char" || i.Name == "unsigned char" || i.Name == "signed char")
}
