package btftp

// Kernel functions for fentry/fexit (bpftrace's kfunc/kretfunc): which
// there are, and each one's parameters and return type from its BTF
// FUNC_PROTO.
//
// A function can be traced this way when its BTF has a FUNC of that name
// and ftrace can patch it: it is listed in available_filter_functions
// (as "NAME" for vmlinux, "NAME [MODULE]" for a module), which is also
// what bpftrace 0.17 requires. When that file cannot be read (lockdown,
// no ftrace) every BTF function is offered and the kernel says at load
// whether it takes it.
//
// The context of an fentry program is an array of u64, one slot per 8
// bytes of argument (a struct of 9–16 bytes passed by value takes two),
// and an fexit program's has the return value in the slot after the last
// argument: what the verifier's btf_ctx_access checks.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/bpf/tracefs"
)

// Vmlinux is the module name of the kernel's own functions, as bpftrace
// names them (kfunc:vmlinux:vfs_read).
const Vmlinux = "vmlinux"

// Func is a kernel function an fentry/fexit program can attach to.
type Func struct {
	Module string // Vmlinux or a loaded module's name
	Name   string
}

// Proto is a function's signature: its arguments, in context slots, and
// its return value (nil for void), in the slot after them.
type Proto struct {
	Args []Arg
	Ret  *Arg
	// Slots is the context's length in u64s before the return value:
	// where Ret is.
	Slots int
}

// funcSource is what Funcs reads, injected by tests.
type funcSource struct {
	// traceable lists, per module, the functions ftrace can patch; nil
	// when the kernel does not say.
	traceable func() (map[string]map[string]bool, error)
	// modules lists the modules with BTF, vmlinux included.
	modules func() ([]string, error)
	// spec is the BTF of one module (or vmlinux).
	spec func(module string) (*btf.Spec, error)

	mu    sync.Mutex
	names map[string][]string // funcNames' cache
}

var kernelFuncs = &funcSource{traceable: readTraceable, modules: btfModules, spec: moduleSpec}

var traceable struct {
	once sync.Once
	m    map[string]map[string]bool
	err  error
}

// readTraceable reads available_filter_functions once. An unreadable
// file (EPERM under lockdown, no ftrace) gives nil and no error: the
// caller then offers all of BTF.
func readTraceable() (map[string]map[string]bool, error) {
	traceable.once.Do(func() {
		root, err := tracefs.Root()
		if err != nil {
			return
		}
		f, err := os.Open(filepath.Join(root, "available_filter_functions"))
		if err != nil {
			return
		}
		defer f.Close()
		traceable.m, traceable.err = parseTraceable(f)
	})
	return traceable.m, traceable.err
}

// parseTraceable indexes available_filter_functions by module, then
// name.
func parseTraceable(r io.Reader) (map[string]map[string]bool, error) {
	m := map[string]map[string]bool{}
	err := tracefs.ParseFunctions(r, func(f tracefs.Function) {
		mod := f.Module
		if mod == "" {
			mod = Vmlinux
		}
		if m[mod] == nil {
			m[mod] = map[string]bool{}
		}
		m[mod][f.Name] = true
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// btfModules lists /sys/kernel/btf: vmlinux and every loaded module
// that has BTF.
func btfModules() ([]string, error) {
	ents, err := os.ReadDir("/sys/kernel/btf")
	if err != nil {
		return nil, fmt.Errorf("kfunc probes need the kernel's BTF type information (/sys/kernel/btf): %w", err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, nil
}

var modSpecs struct {
	mu sync.Mutex
	m  map[string]*btf.Spec
}

func moduleSpec(module string) (*btf.Spec, error) {
	if module == Vmlinux {
		spec, _, err := load()
		return spec, err
	}
	modSpecs.mu.Lock()
	defer modSpecs.mu.Unlock()
	if s := modSpecs.m[module]; s != nil {
		return s, nil
	}
	s, err := btf.LoadKernelModuleSpec(module)
	if err != nil {
		return nil, fmt.Errorf("reading the BTF of module %s: %w", module, err)
	}
	if modSpecs.m == nil {
		modSpecs.m = map[string]*btf.Spec{}
	}
	modSpecs.m[module] = s
	return s, nil
}

// Funcs returns the functions whose module matches modPattern and whose
// name matches fnPattern (path.Match globs), sorted by module then name.
func Funcs(modPattern, fnPattern string) ([]Func, error) {
	return kernelFuncs.funcs(modPattern, fnPattern)
}

func (src *funcSource) funcs(modPattern, fnPattern string) ([]Func, error) {
	for _, p := range []string{modPattern, fnPattern} {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("bad pattern %q: %w", p, err)
		}
	}
	trace, err := src.traceable()
	if err != nil {
		return nil, err
	}
	mods, err := src.modules()
	if err != nil {
		return nil, err
	}
	sort.Strings(mods)
	var out []Func
	for _, mod := range mods {
		if ok, _ := path.Match(modPattern, mod); !ok {
			continue
		}
		if trace != nil && !anyMatch(trace[mod], fnPattern) {
			continue // do not parse a module's BTF for nothing
		}
		names, err := src.funcNames(mod)
		if err != nil {
			return nil, err
		}
		if !hasMeta(fnPattern) {
			// One name: no glob over every function.
			if _, found := slices.BinarySearch(names, fnPattern); found {
				names = []string{fnPattern}
			} else {
				names = nil
			}
		}
		for _, n := range names {
			if ok, _ := path.Match(fnPattern, n); !ok {
				continue
			}
			if trace != nil && !trace[mod][n] {
				continue
			}
			out = append(out, Func{Module: mod, Name: n})
		}
	}
	return out, nil
}

func hasMeta(pattern string) bool { return strings.ContainsAny(pattern, "*?[\\") }

func anyMatch(set map[string]bool, pattern string) bool {
	if !hasMeta(pattern) {
		return set[pattern]
	}
	for n := range set {
		if ok, _ := path.Match(pattern, n); ok {
			return true
		}
	}
	return false
}

// funcNames lists the FUNCs a module's own BTF defines, sorted and
// without duplicates. A module's function of a name vmlinux also has is
// left out: the kernel's attach lookup (cilium/ebpf's) finds vmlinux's
// first, so a probe of it could not attach where its name says.
func (src *funcSource) funcNames(mod string) ([]string, error) {
	src.mu.Lock()
	n, ok := src.names[mod]
	src.mu.Unlock()
	if ok {
		return n, nil
	}
	spec, err := src.spec(mod)
	if err != nil {
		return nil, err
	}
	var vm map[string]bool
	if mod != Vmlinux {
		names, err := src.funcNames(Vmlinux)
		if err != nil {
			return nil, err
		}
		vm = make(map[string]bool, len(names))
		for _, n := range names {
			vm[n] = true
		}
	}
	var names []string
	kernel.mu.Lock() // the vmlinux spec, a module's base, decodes lazily
	defer kernel.mu.Unlock()
	for t, err := range spec.All() {
		if err != nil {
			return nil, fmt.Errorf("reading the BTF of %s: %w", mod, err)
		}
		if f, ok := t.(*btf.Func); ok && !vm[f.Name] && takesArgs(f) {
			names = append(names, f.Name)
		}
	}
	sort.Strings(names)
	names = compact(names)
	src.mu.Lock()
	if src.names == nil {
		src.names = map[string][]string{}
	}
	src.names[mod] = names
	src.mu.Unlock()
	return names, nil
}

// MaxParams is the most parameters a function may have for bpftrace
// 0.17 to offer it (x86-64's argument registers; kernels before 6.5 take
// no more either): it lists none with more, and says so of a probe of
// one.
const MaxParams = 6

// takesArgs reports whether f has at most MaxParams parameters.
func takesArgs(f *btf.Func) bool {
	fp, ok := f.Type.(*btf.FuncProto)
	return ok && len(fp.Params) <= MaxParams
}

// ErrNoFunc is returned by FuncProto for a function BTF does not have.
var ErrNoFunc = errors.New("No BTF found for")

// FuncProto returns the signature of module's function name.
func FuncProto(module, name string) (*Proto, error) {
	return kernelFuncs.proto(module, name)
}

func (src *funcSource) proto(module, name string) (*Proto, error) {
	spec, err := src.spec(module)
	if err != nil {
		return nil, err
	}
	kernel.mu.Lock()
	defer kernel.mu.Unlock()
	var fn *btf.Func
	if err := spec.TypeByName(name, &fn); err != nil {
		if errors.Is(err, btf.ErrNotFound) {
			return nil, fmt.Errorf("%w %s", ErrNoFunc, name)
		}
		if errors.Is(err, btf.ErrMultipleMatches) {
			// Static functions of one name in several files: the
			// kernel could not tell which one a program means.
			return nil, fmt.Errorf("%s:%s names more than one function in the kernel's BTF: a kfunc probe can not tell them apart", module, name)
		}
		return nil, fmt.Errorf("BTF of function %s: %w", name, err)
	}
	return protoOf(fn)
}

// protoOf lays a function's parameters out in context slots.
func protoOf(fn *btf.Func) (*Proto, error) {
	fp, ok := fn.Type.(*btf.FuncProto)
	if !ok {
		return nil, fmt.Errorf("BTF of function %s: not a function prototype", fn.Name)
	}
	p := &Proto{}
	for i, prm := range fp.Params {
		if _, void := prm.Type.(*btf.Void); void && i == len(fp.Params)-1 {
			return nil, fmt.Errorf("function %s takes variable arguments, which fentry programs can not see", fn.Name)
		}
		a := describe(prm.Type)
		a.Name, a.Slot = prm.Name, p.Slots
		n := 1
		if a.Kind == Other && a.Size > 8 {
			n = (a.Size + 7) / 8
		}
		p.Slots += n
		p.Args = append(p.Args, a)
	}
	if _, void := fp.Return.(*btf.Void); !void && fp.Return != nil {
		r := describe(fp.Return)
		r.Name, r.Slot = "retval", p.Slots
		p.Ret = &r
	}
	return p, nil
}

// ListFuncs writes the functions pattern ("vfs_*", "MODULE:FUNC", ""
// for all) matches as bpftrace 0.17's -l does, "PROVIDER:MODULE:FUNC",
// and with verbose each one's parameters and non-void return value,
// indented four spaces ("    struct file * file", "    ssize_t retval").
func ListFuncs(w io.Writer, provider, pattern string, verbose bool) error {
	mod, fn, ok := strings.Cut(pattern, ":")
	if !ok {
		mod, fn = "*", pattern
	}
	if fn == "" {
		fn = "*"
	}
	if mod == "" {
		mod = "*"
	}
	funcs, err := Funcs(mod, fn)
	if err != nil {
		return err
	}
	for _, f := range funcs {
		fmt.Fprintf(w, "%s:%s:%s\n", provider, f.Module, f.Name)
		if !verbose {
			continue
		}
		p, err := FuncProto(f.Module, f.Name)
		if err != nil {
			// One odd function (variadic, ambiguous) does not end a
			// listing of thousands: bpftrace skips what it can not
			// describe too.
			continue
		}
		for _, a := range p.Args {
			fmt.Fprintf(w, "    %s\n", listDecl(a))
		}
		if p.Ret != nil {
			fmt.Fprintf(w, "    %s\n", listDecl(*p.Ret))
		}
	}
	return nil
}

// listDecl spells a parameter as bpftrace's listing does: the type,
// without __user, then a space and the name ("char * buf").
func listDecl(a Arg) string {
	return strings.ReplaceAll(a.Type, " __user", "") + " " + a.Name
}

// FuncProvider is the canonical provider (kfunc, kretfunc) of a listing
// or probe spec's provider as written, bpftrace 0.17's short names and
// the newer fentry/fexit included.
func FuncProvider(p string) (string, bool) {
	switch p {
	case "kfunc", "f", "fentry":
		return "kfunc", true
	case "kretfunc", "fr", "fexit":
		return "kretfunc", true
	}
	return "", false
}
