package program

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Value is a decoded runtime value: a map key element, a map value or a
// printf argument.
type Value struct {
	Type  Type
	Int   uint64 // Int: the raw bits, sign-extended to 64 bits when Type.Signed
	Str   string // String: up to the first NUL
	Elems []Value
	// Raw holds the bytes of the host-resolved kinds (KStack ... Buffer),
	// for ordering and for resolution.
	Raw []byte
	// Lines are a resolved stack's frames, innermost first.
	Lines []string
}

// Decode reads a value of type t from b, which must hold t.Size bytes.
func Decode(t Type, b []byte) Value {
	v := Value{Type: t}
	switch t.Kind {
	case Int:
		v.Int = DecodeInt(&t, b)
	case String:
		s := b[:t.Size]
		if i := bytes.IndexByte(s, 0); i >= 0 {
			s = s[:i]
		}
		v.Str = string(s)
	case Tuple, Record, Array:
		v.Elems = make([]Value, len(t.Elems))
		for i, et := range t.Elems {
			v.Elems[i] = Decode(et, b[t.Offs[i]:])
		}
	default:
		v.Raw = append([]byte(nil), b[:t.Size]...)
		if t.Size >= 8 {
			v.Int = binary.LittleEndian.Uint64(b)
		}
	}
	return v
}

// DecodeInt is Decode(*t, b).Int for an Int: sign-extended to 64 bits
// when t is signed, a bitfield's bits unsigned.
func DecodeInt(t *Type, b []byte) uint64 {
	var x uint64
	switch t.Size {
	case 1:
		x = uint64(b[0])
		if t.Signed {
			x = uint64(int64(int8(b[0])))
		}
	case 2:
		x = uint64(binary.LittleEndian.Uint16(b))
		if t.Signed {
			x = uint64(int64(int16(x)))
		}
	case 4:
		x = uint64(binary.LittleEndian.Uint32(b))
		if t.Signed {
			x = uint64(int64(int32(x)))
		}
	default:
		x = binary.LittleEndian.Uint64(b)
	}
	if t.Bits > 0 {
		// A bitfield: its bits, unsigned, as bpftrace reads them.
		x = x >> uint(t.BitOff) & (1<<uint(t.Bits) - 1)
	}
	return x
}

// Word returns the i-th u64 of a host-resolved value's bytes.
func (v Value) Word(i int) uint64 {
	if len(v.Raw) < 8*(i+1) {
		return 0
	}
	return binary.LittleEndian.Uint64(v.Raw[8*i:])
}

// BufferBytes returns the bytes of a Buffer value.
func (v Value) BufferBytes() []byte {
	n := v.Word(0)
	if len(v.Raw) < 8 {
		return nil
	}
	return v.Raw[8:][:min(n, uint64(len(v.Raw)-8))]
}

// Escape renders bytes as bpftrace's %r does: printable ASCII as is,
// everything else as \xNN (everything when hexAll, as %rx).
func Escape(b []byte, hexAll bool) string {
	const hex = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		if !hexAll && c >= 0x20 && c < 0x7f {
			s.WriteByte(c)
			continue
		}
		s.WriteString(`\x`)
		s.WriteByte(hex[c>>4])
		s.WriteByte(hex[c&15])
	}
	return s.String()
}

// StackText renders a stack as bpftrace prints it: a newline, then one
// line per frame, each indented (map keys by 4 spaces; map values, tuple
// elements and printf by 8) or, in perf mode, after a tab. A stack without
// frames is empty.
func (v Value) StackText(indent string) string {
	if len(v.Lines) == 0 {
		return ""
	}
	if v.Type.Perf {
		indent = "\t"
	}
	var s strings.Builder
	s.WriteByte('\n')
	for _, l := range v.Lines {
		s.WriteString(indent)
		s.WriteString(l)
		s.WriteByte('\n')
	}
	return s.String()
}

// inet renders an ntop() value: dotted quad or RFC 5952 IPv6.
func (v Value) inet() string {
	if len(v.Raw) < 24 {
		return ""
	}
	switch v.Word(0) {
	case 2: // AF_INET
		return netip.AddrFrom4([4]byte(v.Raw[8:12])).String()
	case 10: // AF_INET6
		return netip.AddrFrom16([16]byte(v.Raw[8:24])).String()
	}
	return ""
}

// macaddr renders a macaddr() value as bpftrace does: six bytes in
// upper-case hex, colon-separated.
func (v Value) macaddr() string {
	if len(v.Raw) < 6 {
		return ""
	}
	b := v.Raw
	return fmt.Sprintf("%02X:%02X:%02X:%02X:%02X:%02X", b[0], b[1], b[2], b[3], b[4], b[5])
}

// ValueString renders v as bpftrace prints a map's value: as String, but
// stacks, alone or inside a tuple, are indented by 8 spaces as printf
// indents them (bpftrace's value_to_str), not by the 4 of a map key.
func (v Value) ValueString() string {
	switch v.Type.Kind {
	case KStack, UStack:
		return v.StackText("        ")
	case Tuple, Record, Array:
		return v.composite(Value.ValueString, true)
	}
	return v.String()
}

// composite renders a tuple's, record's or array's elements with elem,
// as bpftrace prints them: a tuple "(a, b)"; a record as a map's value
// "{ .a = 1, .b = 2 }" (value) or as a key "{.a=1,.b=2}"; an array
// "[1,2]".
func (v Value) composite(elem func(Value) string, value bool) string {
	parts := make([]string, len(v.Elems))
	for i, e := range v.Elems {
		parts[i] = elem(e)
		if v.Type.Kind == Array && !value && e.Type.Kind == Int && !e.Type.Pointer && e.Type.Bits == 0 {
			// bpftrace prints an array's integers in a map key as
			// signed, whatever their type (pton()'s 255 is -1 there).
			parts[i] = strconv.FormatInt(signExtend(e.Int, e.Type.Size), 10)
		}
		if v.Type.Kind == Record {
			eq := "="
			if value {
				eq = " = "
			}
			parts[i] = "." + v.Type.Names[i] + eq + parts[i]
		}
	}
	switch {
	case v.Type.Kind == Tuple:
		return "(" + strings.Join(parts, ", ") + ")"
	case v.Type.Kind == Record && value:
		return "{ " + strings.Join(parts, ", ") + " }"
	case v.Type.Kind == Record:
		return "{" + strings.Join(parts, ",") + "}"
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// signExtend reads the low size bytes of x as a signed integer.
func signExtend(x uint64, size int) int64 {
	if size <= 0 || size >= 8 {
		return int64(x)
	}
	shift := uint(64 - 8*size)
	return int64(x<<shift) >> shift
}

// Decimal renders an integer in decimal with its signedness, as bpftrace
// prints map values, pointers included.
func (v Value) Decimal() string {
	if v.Type.Signed {
		return strconv.FormatInt(int64(v.Int), 10)
	}
	return strconv.FormatUint(v.Int, 10)
}

// Signed reports the value as a signed integer.
func (v Value) Signed() int64 { return int64(v.Int) }

// String renders v as bpftrace prints map keys and values: integers in
// decimal with their signedness, strings bare, tuples as "(a, b)".
func (v Value) String() string {
	switch v.Type.Kind {
	case Int:
		if v.Type.Pointer {
			return "0x" + strconv.FormatUint(v.Int, 16)
		}
		return v.Decimal()
	case String:
		return v.Str
	case Tuple, Record, Array:
		return v.composite(Value.String, false)
	case KStack, UStack:
		return v.StackText("    ")
	case KSym, USym, Username, Timestamp, CgroupPath:
		return v.Str
	case Strerror:
		return StrerrorText(int64(v.Int))
	case Inet:
		return v.inet()
	case MacAddr:
		return v.macaddr()
	case Buffer:
		return Escape(v.BufferBytes(), false)
	}
	return fmt.Sprintf("<%d>", v.Type.Kind)
}

// Compare orders values of the same type: integers numerically (by
// signedness), strings bytewise, tuples element by element.
func Compare(a, b Value) int {
	switch a.Type.Kind {
	case Int:
		return compareInt(a.Int, b.Int, a.Type.Signed)
	case String:
		return strings.Compare(a.Str, b.Str)
	case Tuple, Record, Array:
		for i := range a.Elems {
			if i >= len(b.Elems) {
				return 1
			}
			if c := Compare(a.Elems[i], b.Elems[i]); c != 0 {
				return c
			}
		}
		return 0
	}
	return bytes.Compare(a.Raw, b.Raw)
}
