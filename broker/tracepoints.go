package broker

import (
	"fmt"
	"strings"

	"github.com/tracebroker/tracebroker/bpf/btftp"
	"github.com/tracebroker/tracebroker/bpf/tracefs"
	"github.com/tracebroker/tracebroker/broker/script/compile"
)

// KernelTracepoints answers the compiler's questions from tracefs.
type KernelTracepoints struct{}

func (KernelTracepoints) Match(category, name string) ([][2]string, error) {
	tps, err := tracefs.Tracepoints(category + ":" + name)
	if err != nil {
		return nil, err
	}
	out := make([][2]string, 0, len(tps))
	for _, tp := range tps {
		out = append(out, [2]string{tp.Category, tp.Name})
	}
	return out, nil
}

func (KernelTracepoints) Fields(category, name string) ([]compile.Field, error) {
	f, err := tracefs.ReadFormat(category, name)
	if err != nil {
		return nil, err
	}
	out := make([]compile.Field, 0, len(f.Fields))
	for _, fd := range f.Fields {
		cf := compile.Field{Name: fd.Name, Type: fd.Type, Offset: fd.Offset, Size: fd.Size, Signed: fd.Signed}
		switch fd.Kind {
		case tracefs.KindInteger:
			cf.Kind = compile.FieldInt
		case tracefs.KindPointer:
			cf.Kind = compile.FieldPtr
		case tracefs.KindString:
			cf.Kind = compile.FieldCharArray
		case tracefs.KindDynString:
			cf.Kind = compile.FieldDataLoc
			if fd.RelLoc {
				cf.Kind = compile.FieldArray
			}
		default:
			cf.Kind = compile.FieldArray
		}
		out = append(out, cf)
	}
	return out, nil
}

// KernelBTFTracepoints answers the compiler's questions about tp_btf
// probes from the kernel's BTF.
type KernelBTFTracepoints struct{}

func (KernelBTFTracepoints) Match(pattern string) ([]string, error) { return btftp.Match(pattern) }

func (KernelBTFTracepoints) Args(name string) ([]compile.Field, error) {
	args, err := btftp.Args(name)
	if err != nil {
		return nil, err
	}
	out := make([]compile.Field, len(args))
	for i, a := range args {
		f := compile.Field{Name: a.Name, Type: a.Type, Offset: 8 * a.Slot, Size: a.Size, Signed: a.Signed, Kind: compile.FieldArray}
		switch {
		case a.Kind == btftp.Int && a.Size <= 8:
			f.Kind = compile.FieldInt
		case a.Kind == btftp.Pointer:
			f.Kind, f.User = compile.FieldPtr, a.User
			// The compiler reads what a pointer points to from a C
			// spelling: give it the pointee's integer type resolved.
			if a.ElemSize > 0 {
				f.Type = cInt(a.ElemSize, a.ElemSigned) + " " + strings.Repeat("*", a.Depth)
			}
		}
		if f.Name == "" {
			f.Name = fmt.Sprintf("arg%d", a.Slot)
		}
		out[i] = f
	}
	return out, nil
}

// cInt spells the C integer type of a size and signedness.
func cInt(size int, signed bool) string {
	name := map[int]string{1: "char", 2: "short", 4: "int", 8: "long"}[size]
	if name == "" {
		return "void"
	}
	if !signed {
		return "unsigned " + name
	}
	return name
}
