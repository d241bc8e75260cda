// Package btftp reads what the kernel's BTF says about its BTF tracepoints
// (tp_btf): which there are, and the name and type of each argument.
//
// For a tracepoint NAME the kernel's BTF has the typedef btf_trace_NAME, a
// pointer to a function prototype whose first parameter is the probe's
// `void *__data` and whose others are the tracepoint's arguments: the
// types the verifier checks a tp_btf program's context against. That
// prototype has no parameter names; the tracepoint's own functions
// (__probestub_NAME, __traceiter_NAME, same parameters) have them.
package btftp

import (
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// Kind classifies an argument by how a program can read it.
type Kind uint8

const (
	Int     Kind = iota + 1 // an integer, enum or bool of Size bytes
	Pointer                 // an address; what it points to is read with helpers
	Other                   // a struct or union by value, a float...: not readable
)

// Arg is one argument of a BTF tracepoint.
type Arg struct {
	Name string // "" when the kernel's BTF does not say
	// Type is the C type as declared ("pid_t", "struct task_struct *").
	Type   string
	Kind   Kind
	Size   int  // bytes; Int: of the integer itself, typedefs resolved
	Signed bool // Int
	// Slot is the argument's index in the context, an array of u64.
	Slot int
	// Pointer: how many levels of pointers lead to Elem, and Elem's size
	// and signedness when it is an integer (ElemSize 0: anything else).
	Depth      int
	ElemSize   int
	ElemSigned bool
	ElemType   string // the pointee's C type, qualifiers kept ("const char")
	User       bool   // tagged __user: it points into the traced process
}

const prefix = "btf_trace_"

var kernel struct {
	once sync.Once
	spec *btf.Spec
	err  error
	// missing: the kernel has no BTF (err says so for tp_btf probes)
	missing bool
	mu      sync.Mutex // the spec decodes lazily

	namesOnce sync.Once
	names     []string // sorted
	namesErr  error
}

// loadSpec reads the kernel's BTF once. Types decode when first looked
// up: a struct lookup costs that struct's types, not the kernel's.
func loadSpec() (*btf.Spec, error) {
	kernel.once.Do(func() {
		spec, err := btf.LoadKernelSpec()
		if err != nil {
			if errors.Is(err, ebpf.ErrNotSupported) {
				kernel.missing = true
				err = errors.New("tp_btf probes need the kernel's BTF type information (/sys/kernel/btf/vmlinux), which this kernel does not provide")
			} else {
				err = fmt.Errorf("reading the kernel's BTF: %w", err)
			}
			kernel.err = err
			return
		}
		kernel.spec = spec
	})
	return kernel.spec, kernel.err
}

// load reads the kernel's BTF and the names of its BTF tracepoints once:
// finding those decodes every type.
func load() (*btf.Spec, []string, error) {
	spec, err := loadSpec()
	if err != nil {
		return nil, nil, err
	}
	kernel.namesOnce.Do(func() {
		kernel.mu.Lock()
		defer kernel.mu.Unlock()
		var names []string
		for typ, err := range spec.All() {
			if err != nil {
				kernel.namesErr = fmt.Errorf("reading the kernel's BTF: %w", err)
				return
			}
			if td, ok := typ.(*btf.Typedef); ok && strings.HasPrefix(td.Name, prefix) {
				names = append(names, td.Name[len(prefix):])
			}
		}
		sort.Strings(names)
		kernel.names = compact(names)
	})
	return spec, kernel.names, kernel.namesErr
}

func compact(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// Match returns the names of the BTF tracepoints matching a glob pattern
// ("sched_switch", "sched_*"), sorted. Globs are path.Match's.
func Match(pattern string) ([]string, error) {
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, fmt.Errorf("bad pattern %q: %w", pattern, err)
	}
	_, names, err := load()
	if err != nil {
		return nil, err
	}
	return match(names, pattern), nil
}

func match(names []string, pattern string) []string {
	var out []string
	for _, n := range names {
		if ok, _ := path.Match(pattern, n); ok {
			out = append(out, n)
		}
	}
	return out
}

// ErrNotFound is returned by Args for a name that is no BTF tracepoint.
var ErrNotFound = errors.New("no such BTF tracepoint")

// Args returns the arguments of the BTF tracepoint name.
func Args(name string) ([]Arg, error) {
	spec, _, err := load()
	if err != nil {
		return nil, err
	}
	kernel.mu.Lock()
	defer kernel.mu.Unlock()
	var td *btf.Typedef
	if err := spec.TypeByName(prefix+name, &td); err != nil {
		if errors.Is(err, btf.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		return nil, fmt.Errorf("BTF of tracepoint %s: %w", name, err)
	}
	ptr, ok := btf.UnderlyingType(td.Type).(*btf.Pointer)
	if !ok {
		return nil, fmt.Errorf("BTF of tracepoint %s: %s is not a function pointer", name, td.Name)
	}
	proto, ok := btf.UnderlyingType(ptr.Target).(*btf.FuncProto)
	if !ok || len(proto.Params) == 0 {
		return nil, fmt.Errorf("BTF of tracepoint %s: %s is not a function pointer", name, td.Name)
	}
	names := paramNames(spec, name, len(proto.Params))
	args := make([]Arg, 0, len(proto.Params)-1)
	for i, p := range proto.Params[1:] {
		a := describe(p.Type)
		a.Slot = i
		if names != nil {
			a.Name = names[i+1]
		}
		args = append(args, a)
	}
	return args, nil
}

// paramNames finds the parameter names in a function of the tracepoint
// with the same parameters, or returns nil.
func paramNames(spec *btf.Spec, name string, n int) []string {
	for _, fn := range []string{"__probestub_", "__traceiter_"} {
		var f *btf.Func
		if spec.TypeByName(fn+name, &f) != nil {
			continue
		}
		proto, ok := f.Type.(*btf.FuncProto)
		if !ok || len(proto.Params) != n {
			continue
		}
		names := make([]string, n)
		for i, p := range proto.Params {
			names[i] = p.Name
		}
		return names
	}
	return nil
}

// describe classifies one argument's type.
func describe(t btf.Type) Arg {
	a := Arg{Type: CType(t)}
	switch u := btf.UnderlyingType(t).(type) {
	case *btf.Int:
		a.Kind, a.Size, a.Signed = Int, int(u.Size), u.Encoding&btf.Signed != 0
	case *btf.Enum:
		a.Kind, a.Size, a.Signed = Int, int(u.Size), u.Signed
	case *btf.Pointer:
		a.Kind, a.Size = Pointer, 8
		a.User = hasUserTag(t)
		elem := u.Target
		a.Depth = 1
		for {
			p, ok := btf.UnderlyingType(elem).(*btf.Pointer)
			if !ok {
				break
			}
			a.Depth++
			elem = p.Target
		}
		a.ElemType = CType(elem)
		switch e := btf.UnderlyingType(elem).(type) {
		case *btf.Int:
			a.ElemSize, a.ElemSigned = int(e.Size), e.Encoding&btf.Signed != 0
		case *btf.Enum:
			a.ElemSize, a.ElemSigned = int(e.Size), e.Signed
		}
	default:
		a.Kind = Other
		if n, err := btf.Sizeof(t); err == nil {
			a.Size = n
		}
	}
	return a
}

// hasUserTag reports whether a pointer is tagged __user, which the
// kernel's BTF records (when it is built with type tags) as a type tag
// on the pointee.
func hasUserTag(t btf.Type) bool {
	p, ok := btf.UnderlyingType(t).(*btf.Pointer)
	if !ok {
		return false
	}
	t = p.Target
	for range 32 {
		switch v := t.(type) {
		case *btf.TypeTag:
			if v.Value == "user" {
				return true
			}
			t = v.Type
		case *btf.Const:
			t = v.Type
		case *btf.Volatile:
			t = v.Type
		case *btf.Restrict:
			t = v.Type
		default:
			return false
		}
	}
	return false
}

// CType spells a type as C declares it, typedef names kept ("struct
// task_struct *", "pid_t", "char[2][16]").
func CType(t btf.Type) string {
	switch v := t.(type) {
	case *btf.Void:
		return "void"
	case *btf.Int:
		return v.Name
	case *btf.Typedef:
		return v.Name
	case *btf.Enum:
		return tagged("enum", v.Name)
	case *btf.Struct:
		return tagged("struct", v.Name)
	case *btf.Union:
		return tagged("union", v.Name)
	case *btf.Fwd:
		return tagged(v.Kind.String(), v.Name)
	case *btf.Float:
		return v.Name
	case *btf.Const:
		return "const " + CType(v.Type)
	case *btf.Volatile:
		return "volatile " + CType(v.Type)
	case *btf.Restrict:
		return CType(v.Type)
	case *btf.TypeTag:
		if v.Value == "user" {
			return CType(v.Type) + " __user"
		}
		return CType(v.Type)
	case *btf.Pointer:
		if _, ok := v.Target.(*btf.FuncProto); ok {
			return "void (*)()"
		}
		s := CType(v.Target)
		if strings.HasSuffix(s, "*") {
			return s + "*"
		}
		return s + " *"
	case *btf.Array:
		// C puts the outer dimension first: char names[2][16].
		elem, dims := CType(v.Type), ""
		if i := strings.IndexByte(elem, '['); i >= 0 {
			elem, dims = elem[:i], elem[i:]
		}
		return fmt.Sprintf("%s[%d]%s", elem, v.Nelems, dims)
	}
	return fmt.Sprint(t)
}

func tagged(kw, name string) string {
	if name == "" {
		return kw + " (anonymous)"
	}
	return kw + " " + name
}

// List writes the BTF tracepoints matching pattern as "tp_btf:NAME", and
// with verbose each one's arguments, indented four spaces, as
// `tracebroker list -v` shows a tracepoint's fields.
func List(w io.Writer, pattern string, verbose bool) error {
	if pattern == "" {
		pattern = "*"
	}
	names, err := Match(pattern)
	if err != nil {
		return err
	}
	for _, n := range names {
		fmt.Fprintf(w, "tp_btf:%s\n", n)
		if !verbose {
			continue
		}
		args, err := Args(n)
		if err != nil {
			return err
		}
		for _, a := range args {
			fmt.Fprintf(w, "    %s\n", Decl(a))
		}
	}
	return nil
}

// Decl spells an argument as a C declaration ("struct task_struct *p").
func Decl(a Arg) string {
	name := a.Name
	if name == "" {
		name = fmt.Sprintf("arg%d", a.Slot)
	}
	if strings.HasSuffix(a.Type, "*") {
		return a.Type + name
	}
	return a.Type + " " + name
}
