package object

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/broker/program"
)

// Variables lists the global variables an object's user space may set
// before it is loaded (libbpf-tools' `const volatile` parameters, and
// .data and .bss globals), as NAME TYPE, sorted.
func Variables(obj *program.Object) []string {
	var out []string
	for name, v := range obj.Spec.Variables {
		if settable(name, v.SectionName) {
			out = append(out, name+" "+typeName(v.Type))
		}
	}
	slices.Sort(out)
	return out
}

func settable(name, section string) bool {
	return !strings.HasPrefix(name, ".") && (isSectionMap(section) && !strings.HasPrefix(section, ".kconfig") && !strings.HasPrefix(section, ".ksyms"))
}

func typeName(v *btf.Var) string {
	if v == nil {
		return "?"
	}
	t := btf.UnderlyingType(btf.QualifiedType(v.Type))
	switch t := t.(type) {
	case *btf.Int:
		if t.Encoding&btf.Bool != 0 {
			return "bool"
		}
		if t.Encoding&btf.Signed != 0 {
			return fmt.Sprintf("s%d", 8*t.Size)
		}
		return fmt.Sprintf("u%d", 8*t.Size)
	case *btf.Enum:
		return "enum " + t.Name
	case *btf.Array:
		if e, ok := btf.UnderlyingType(btf.QualifiedType(t.Type)).(*btf.Int); ok && e.Size == 1 {
			return fmt.Sprintf("char[%d]", t.Nelems)
		}
	}
	return fmt.Sprintf("%v", t)
}

// SetVariables sets an object's global variables from text before it is
// loaded, as libbpf-tools' user space sets its `const volatile`
// parameters: an integer (decimal, 0x hex; bool true/false), an enum's
// value by name or number, a string into a char array (with room for its
// NUL). Both executors load the values set (JIT through cilium/ebpf,
// the interpreter from the sections' bytes). An unknown name, or a value
// that does not fit its type, is an error that lists what may be set.
func SetVariables(obj *program.Object, vars map[string]string) error {
	for _, name := range slices.Sorted(maps.Keys(vars)) {
		v := obj.Spec.Variables[name]
		if v == nil || !settable(name, v.SectionName) {
			return fmt.Errorf("the object has no global variable %q to set (it has: %s)", name, strings.Join(orNone(Variables(obj)), ", "))
		}
		b, err := encodeValue(v.Type, vars[name], int(v.Size()))
		if err != nil {
			return fmt.Errorf("%s = %q: %w", name, vars[name], err)
		}
		if err := v.Set(b); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func orNone(s []string) []string {
	if len(s) == 0 {
		return []string{"none"}
	}
	return s
}

// encodeValue is text as a value of v's type, size bytes, little-endian.
func encodeValue(v *btf.Var, text string, size int) ([]byte, error) {
	if v == nil {
		return nil, errors.New("the variable has no type in the object's BTF")
	}
	out := make([]byte, size)
	switch t := btf.UnderlyingType(btf.QualifiedType(v.Type)).(type) {
	case *btf.Int:
		if t.Encoding&btf.Bool != 0 {
			b, err := strconv.ParseBool(text)
			if err != nil {
				return nil, errors.New("not true or false")
			}
			if b {
				out[0] = 1
			}
			return out, nil
		}
		return putInt(out, text, t.Encoding&btf.Signed != 0)
	case *btf.Enum:
		for _, e := range t.Values {
			if e.Name == text {
				text = strconv.FormatUint(e.Value, 10)
				if t.Signed {
					text = strconv.FormatInt(int64(e.Value), 10)
				}
				break
			}
		}
		return putInt(out, text, t.Signed)
	case *btf.Array:
		if e, ok := btf.UnderlyingType(btf.QualifiedType(t.Type)).(*btf.Int); ok && e.Size == 1 {
			if len(text) >= size || strings.IndexByte(text, 0) >= 0 {
				return nil, fmt.Errorf("a string of at most %d bytes (and no NUL) fits in char[%d]", size-1, size)
			}
			copy(out, text)
			return out, nil
		}
	}
	return nil, fmt.Errorf("a variable of type %s cannot be set from text", typeName(v))
}

func putInt(out []byte, text string, signed bool) ([]byte, error) {
	bits := 8 * len(out)
	var u uint64
	if signed {
		n, err := strconv.ParseInt(text, 0, bits)
		if err != nil {
			return nil, fmt.Errorf("not a %d-bit signed integer", bits)
		}
		u = uint64(n)
	} else {
		n, err := strconv.ParseUint(text, 0, bits)
		if err != nil {
			return nil, fmt.Errorf("not a %d-bit unsigned integer", bits)
		}
		u = n
	}
	var w [8]byte
	binary.LittleEndian.PutUint64(w[:], u)
	copy(out, w[:len(out)])
	return out, nil
}

// SectionData is the bytes a section map (.rodata, .data, .bss) starts
// with: its contents from the file, with its variables' values, as they
// were set, over them. The interpreter loads it; cilium/ebpf does the
// same for the kernel.
func SectionData(obj *program.Object, section string) ([]byte, bool) {
	ms := obj.Spec.Maps[section]
	if ms == nil || len(ms.Contents) != 1 {
		return nil, false
	}
	data, ok := ms.Contents[0].Value.([]byte)
	if !ok {
		return nil, false
	}
	data = slices.Clone(data)
	for _, v := range obj.Spec.Variables {
		if v.SectionName == section && int(v.Offset)+len(v.Value) <= len(data) {
			copy(data[v.Offset:], v.Value)
		}
	}
	return data, true
}
