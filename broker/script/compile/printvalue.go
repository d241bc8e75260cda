package compile

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/bpf/btftp"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// print(VALUE) of a value rather than a map prints it on a line of its
// own, as bpftrace 0.17 does: an integer, a string, and a struct, union
// or array reached through BTF the way bpftrace prints records —
//
//	{ .weight = 1048576, .inv_weight = 4194304 }
//	[3,0,0,0]
//
// pointers as signed decimals, char arrays as strings. It is compiled as
// the printf that prints that line: one argument per field, each read
// where the kernel has it, so the output stage needs nothing new.

// maxPrintValues bounds the values of one printed record.
const maxPrintValues = 64

type printKey struct {
	in *instance
	e  *syntax.Call
}

// printValue types print(e.Args[0]) and makes its printf.
func (c *compiler) printValue(in *instance, e *syntax.Call) ty {
	x := e.Args[0]
	if len(e.Args) != 1 {
		c.errorf(e.From, e.To, "print() of a value takes no top and div arguments (only a map's print does)")
		return tVoid
	}
	call := c.prints[printKey{in, e}]
	if call == nil {
		t := c.expr(in, x)
		var format string
		var args []syntax.Expr
		switch {
		case t.k == kNone:
			return tVoid
		case t.k == kRecord:
			var why string
			format, args, why = recordFormat(t.bt, x)
			if why != "" {
				c.errorf(x.Pos(), x.End(), "%s can not be printed: %s", t, why)
				return tVoid
			}
		case t.k == kInt && t.ptr && t.bt != nil:
			c.errorf(x.Pos(), x.End(), "%s * type passed to print() is not printable", recordName(t.bt))
			return tVoid
		case t.k == kInt && t.signed:
			format, args = "%ld", []syntax.Expr{x}
		case t.k == kInt:
			format, args = "%lu", []syntax.Expr{x}
		case t.k == kStr, t.k == kTuple, t.k == kBlob && printsAsString[t.blob]:
			format, args = "%s", []syntax.Expr{x}
		default:
			c.errorf(x.Pos(), x.End(), "%s type passed to print() is not printable", t)
			return tVoid
		}
		lit := &syntax.StrLit{From: x.Pos(), To: x.End(), Value: format + "\n"}
		call = &syntax.Call{From: e.From, To: e.To, NameEnd: e.NameEnd, Name: "printf", Args: append([]syntax.Expr{lit}, args...)}
		if c.prints == nil {
			c.prints = map[printKey]*syntax.Call{}
		}
		c.prints[printKey{in, e}] = call
	}
	c.printf(in, call)
	return tVoid
}

// recordFormat is the printf format of a record of type t at x, and its
// arguments: a field access or an element per value, in order.
func recordFormat(t btf.Type, x syntax.Expr) (string, []syntax.Expr, string) {
	var b strings.Builder
	var args []syntax.Expr
	var walk func(t btf.Type, x syntax.Expr, depth int) string
	walk = func(t btf.Type, x syntax.Expr, depth int) string {
		switch {
		case depth > 8:
			return "it nests more than 8 levels deep"
		case len(args) >= maxPrintValues:
			// Each value is an argument of the printf record on the
			// 512-byte BPF stack: far fewer would fit anyway.
			return fmt.Sprintf("it has more than %d values", maxPrintValues)
		}
		switch u := btf.UnderlyingType(t).(type) {
		case *btf.Struct, *btf.Union:
			b.WriteString("{ ")
			first := true
			var fields func(t btf.Type) string
			fields = func(t btf.Type) string {
				for _, m := range membersOf(t) {
					if m.Name == "" {
						// An anonymous member's fields are the
						// record's own.
						if why := fields(btf.UnderlyingType(m.Type)); why != "" {
							return why
						}
						continue
					}
					if !first {
						b.WriteString(", ")
					}
					first = false
					b.WriteString("." + m.Name + " = ")
					fa := &syntax.FieldAccess{X: x, Field: m.Name, FieldPos: x.Pos(), To: x.End()}
					if why := walk(m.Type, fa, depth+1); why != "" {
						return why
					}
				}
				return ""
			}
			if why := fields(u); why != "" {
				return why
			}
			b.WriteString(" }")
		case *btf.Array:
			if byteString(u) {
				b.WriteString("%s")
				args = append(args, x)
				return ""
			}
			b.WriteString("[")
			for i := range int(u.Nelems) {
				if i > 0 {
					b.WriteString(",")
				}
				ix := &syntax.Index{X: x, I: &syntax.IntLit{From: x.Pos(), To: x.End(), Value: uint64(i)}, To: x.End()}
				if why := walk(u.Type, ix, depth+1); why != "" {
					return why
				}
			}
			b.WriteString("]")
		case *btf.Int:
			if u.Encoding&btf.Signed != 0 {
				b.WriteString("%ld")
			} else {
				b.WriteString("%lu")
			}
			args = append(args, x)
		case *btf.Enum:
			if u.Signed {
				b.WriteString("%ld")
			} else {
				b.WriteString("%lu")
			}
			args = append(args, x)
		case *btf.Pointer:
			b.WriteString("%ld") // as bpftrace prints a record's pointers
			args = append(args, x)
		default:
			return "a field has type '" + btftp.CType(t) + "', which can not be printed"
		}
		return ""
	}
	if why := walk(t, x, 0); why != "" {
		return "", nil, why
	}
	return b.String(), args, ""
}

// printedValue is what print(VALUE) of a value of type t prints, laid
// over the record of f, its printf (program.Format.Value): the argument
// for an integer or a string; for a struct, union or array the record's
// arguments, in recordFormat's order, as a Record (or Array) whose
// members lie at their arguments' offsets, a nested one decoded from the
// record's start as its parent is.
func printedValue(t ty, f *program.Format) *program.Arg {
	if t.k != kRecord {
		if len(f.Args) != 1 {
			return nil
		}
		a := f.Args[0]
		return &a
	}
	next := 0
	// walk is t's type and where it is: a member's argument's offset, or
	// 0 for a record laid over the whole record.
	var walk func(t btf.Type) (program.Type, int, bool)
	walk = func(t btf.Type) (program.Type, int, bool) {
		switch u := btf.UnderlyingType(t).(type) {
		case *btf.Struct, *btf.Union:
			rt := program.Type{Kind: program.Record, Size: f.Size}
			var fields func(t btf.Type) bool
			fields = func(t btf.Type) bool {
				for _, m := range membersOf(t) {
					if m.Name == "" {
						if !fields(btf.UnderlyingType(m.Type)) {
							return false
						}
						continue
					}
					et, off, ok := walk(m.Type)
					if !ok {
						return false
					}
					rt.Names, rt.Elems, rt.Offs = append(rt.Names, m.Name), append(rt.Elems, et), append(rt.Offs, off)
				}
				return true
			}
			return rt, 0, fields(u)
		case *btf.Array:
			if !byteString(u) {
				rt := program.Type{Kind: program.Array, Size: f.Size}
				for range int(u.Nelems) {
					et, off, ok := walk(u.Type)
					if !ok {
						return rt, 0, false
					}
					rt.Elems, rt.Offs = append(rt.Elems, et), append(rt.Offs, off)
				}
				return rt, 0, true
			}
		}
		// A leaf: the next argument.
		if next >= len(f.Args) {
			return program.Type{}, 0, false
		}
		a := f.Args[next]
		next++
		return a.Type, a.Offset, true
	}
	rt, _, ok := walk(t.bt)
	if !ok || next != len(f.Args) {
		return nil
	}
	return &program.Arg{Type: rt, Offset: 0}
}

// printsAsString are the host-printed kinds print(VALUE) prints as
// printf("%s\n") would, as bpftrace does.
var printsAsString = map[program.TypeKind]bool{
	program.Inet: true, program.MacAddr: true, program.KSym: true, program.USym: true,
	program.Username: true, program.CgroupPath: true, program.Timestamp: true,
	program.Strerror: true,
}
