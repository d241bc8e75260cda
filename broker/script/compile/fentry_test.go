package compile

import (
	"errors"
	"path"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// fakeFuncs is a kernel's functions as Linux 6.1's BTF describes them
// (vfs_read, ksys_read, do_sys_openat2, kmem_cache_free), one module's,
// and one taking a 16-byte struct by value (two slots).
type fakeFuncs struct{ unavailable, err error }

type fakeFunc struct {
	args []Field
	ret  *Field
}

var fakeFuncTable = map[[2]string]fakeFunc{
	{"vmlinux", "vfs_read"}: {[]Field{
		{Name: "file", Type: "struct file *", Offset: 0, Size: 8, Kind: FieldPtr},
		{Name: "buf", Type: "char *", Offset: 8, Size: 8, Kind: FieldPtr, User: true},
		{Name: "count", Type: "size_t", Offset: 16, Size: 8, Kind: FieldInt},
		{Name: "pos", Type: "long *", Offset: 24, Size: 8, Kind: FieldPtr},
	}, &Field{Name: "retval", Type: "ssize_t", Offset: 32, Size: 8, Signed: true, Kind: FieldInt}},
	{"vmlinux", "vfs_readv"}: {nil, &Field{Name: "retval", Type: "ssize_t", Offset: 0, Size: 8, Signed: true, Kind: FieldInt}},
	{"vmlinux", "ksys_read"}: {[]Field{
		{Name: "fd", Type: "unsigned int", Offset: 0, Size: 4, Kind: FieldInt},
		{Name: "buf", Type: "char *", Offset: 8, Size: 8, Kind: FieldPtr, User: true},
		{Name: "count", Type: "size_t", Offset: 16, Size: 8, Kind: FieldInt},
	}, &Field{Name: "retval", Type: "ssize_t", Offset: 24, Size: 8, Signed: true, Kind: FieldInt}},
	{"vmlinux", "do_sys_openat2"}: {[]Field{
		{Name: "dfd", Type: "int", Offset: 0, Size: 4, Signed: true, Kind: FieldInt},
		{Name: "filename", Type: "char *", Offset: 8, Size: 8, Kind: FieldPtr, User: true},
		{Name: "how", Type: "struct open_how *", Offset: 16, Size: 8, Kind: FieldPtr},
	}, &Field{Name: "retval", Type: "long int", Offset: 24, Size: 8, Signed: true, Kind: FieldInt}},
	{"vmlinux", "getname"}: {[]Field{
		{Name: "filename", Type: "char *", Offset: 0, Size: 8, Kind: FieldPtr, User: true},
	}, &Field{Name: "retval", Type: "struct filename *", Offset: 8, Size: 8, Kind: FieldPtr}},
	{"vmlinux", "kmem_cache_free"}: {[]Field{
		{Name: "s", Type: "struct kmem_cache *", Offset: 0, Size: 8, Kind: FieldPtr},
		{Name: "x", Type: "void *", Offset: 8, Size: 8, Kind: FieldPtr},
	}, nil},
	{"vmlinux", "fake_by_value"}: {[]Field{
		{Name: "v", Type: "struct pair", Offset: 0, Size: 16, Kind: FieldArray},
		{Name: "n", Type: "int", Offset: 16, Size: 4, Signed: true, Kind: FieldInt},
	}, &Field{Name: "retval", Type: "struct pair", Offset: 24, Size: 16, Kind: FieldArray}},
	{"vmlinux", "inlined_fn"}: {nil, nil},
	{"vmlinux", "seven_args"}: {[]Field{{Name: "a"}, {Name: "b"}, {Name: "c"}, {Name: "d"}, {Name: "e"}, {Name: "f"}, {Name: "g"}}, nil},
	{"nf_tables", "nft_trans_alloc_gfp"}: {[]Field{
		{Name: "ctx", Type: "struct nft_ctx *", Offset: 0, Size: 8, Kind: FieldPtr},
		{Name: "msg_type", Type: "int", Offset: 8, Size: 4, Signed: true, Kind: FieldInt},
		{Name: "size", Type: "u32", Offset: 16, Size: 4, Kind: FieldInt},
		{Name: "gfp", Type: "gfp_t", Offset: 24, Size: 4, Kind: FieldInt},
	}, &Field{Name: "retval", Type: "struct nft_trans *", Offset: 32, Size: 8, Kind: FieldPtr}},
}

func (f fakeFuncs) Available() error { return f.unavailable }

func (f fakeFuncs) Match(mod, fn string) ([][2]string, error) {
	if f.err != nil {
		return nil, f.err
	}
	var out [][2]string
	for _, k := range [][2]string{{"nf_tables", "nft_trans_alloc_gfp"}, {"vmlinux", "do_sys_openat2"}, {"vmlinux", "fake_by_value"}, {"vmlinux", "getname"},
		{"vmlinux", "kmem_cache_free"}, {"vmlinux", "ksys_read"}, {"vmlinux", "vfs_read"}, {"vmlinux", "vfs_readv"}} {
		okm, _ := path.Match(mod, k[0])
		okf, _ := path.Match(fn, k[1])
		if okm && okf {
			out = append(out, k)
		}
	}
	return out, nil
}

func (f fakeFuncs) Proto(mod, fn string) ([]Field, *Field, error) {
	ff, ok := fakeFuncTable[[2]string{mod, fn}]
	if !ok {
		return nil, nil, errors.New("No BTF found for " + fn)
	}
	return ff.args, ff.ret, nil
}

func compileFuncs(t testing.TB, src string, funcs KernelFuncs) (*program.Program, error) {
	t.Helper()
	f, err := syntax.Parse("stdin", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	prog, _, err := Compile(f, Options{Tracepoints: fakeTracepoints{}, Funcs: funcs})
	return prog, err
}

// TestFentryProbes: kfunc/kretfunc and their spellings expand to one
// program per function, each named kfunc:MODULE:FUNC as bpftrace 0.17
// names it, and read arguments and the return value from the context's
// u64 slots as tp_btf does.
func TestFentryProbes(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`kfunc:vfs_read { @[probe] = count(); }`, "kfunc:vmlinux:vfs_read"},
		{`fentry:vfs_read { @[probe] = count(); }`, "kfunc:vmlinux:vfs_read"},
		{`f:vmlinux:vfs_read { @[probe] = count(); }`, "kfunc:vmlinux:vfs_read"},
		{`kretfunc:vfs_read { @[probe] = count(); }`, "kretfunc:vmlinux:vfs_read"},
		{`fexit:vfs_read { @[probe] = count(); }`, "kretfunc:vmlinux:vfs_read"},
		{`fr:vfs_read { @[probe] = count(); }`, "kretfunc:vmlinux:vfs_read"},
		{`kfunc:vfs_re*ad { @[probe] = count(); }`, "kfunc:vmlinux:vfs_read"},
		{`kfunc:vfs_read* { @[probe] = count(); }`, "kfunc:vmlinux:vfs_read kfunc:vmlinux:vfs_readv"},
		{`kfunc:vmlinu*:vfs_read { @[probe] = count(); }`, "kfunc:vmlinux:vfs_read"},
		{`kfunc:nf_tables:nft_* { @[probe] = count(); }`, "kfunc:nf_tables:nft_trans_alloc_gfp"},
		{`kfunc:nft_trans_alloc_gfp { @[probe] = count(); }`, "kfunc:nf_tables:nft_trans_alloc_gfp"},
	} {
		prog, err := compileFuncs(t, tc.src, fakeFuncs{})
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		var names []string
		for _, p := range prog.Probes {
			want := program.Fentry
			if strings.HasPrefix(p.Name, "kretfunc:") {
				want = program.Fexit
			}
			if p.Kind != want {
				t.Errorf("%s: %s has kind %v, want %v", tc.src, p.Name, p.Kind, want)
			}
			if err := p.CheckName(); err != nil {
				t.Errorf("%s: %v", tc.src, err)
			}
			names = append(names, p.Name)
		}
		if got := strings.Join(names, " "); got != tc.want {
			t.Errorf("%s: probes %s, want %s", tc.src, got, tc.want)
		}
	}

	checkCtxLoads(t, func(src string) (*program.Program, error) { return compileFuncs(t, src, fakeFuncs{}) }, []ctxLoadCase{
		{`kfunc:vfs_read { @ = args->count; }`, 16, asm.DWord, false},
		{`kfunc:vfs_read { @ = args.count; }`, 16, asm.DWord, false},
		{`kfunc:ksys_read { @ = args->fd; }`, 0, asm.Word, false},
		{`kfunc:do_sys_openat2 { @ = args->dfd; }`, 0, asm.Word, true},
		{`kretfunc:vfs_read { @ = retval; }`, 32, asm.DWord, false},
		{`kretfunc:ksys_read { @ = args->count; }`, 16, asm.DWord, false},
		{`kretfunc:vfs_readv { @ = retval; }`, 0, asm.DWord, false},
		// After a two-slot struct by value.
		{`kfunc:fake_by_value { @ = args->n; }`, 16, asm.Word, true},
		{`kfunc:nft_trans_alloc_gfp { @ = args->size; }`, 16, asm.Word, false},
	}, []string{
		// Pointers, arguments or the return value, are read with
		// probe_read_kernel, never loaded straight from the context.
		`kfunc:vfs_read { @ = args->file; }`,
		`kfunc:do_sys_openat2 { @[str(args->filename)] = count(); }`,
		`kretfunc:getname { @ = retval; }`,
		`kretfunc:nft_trans_alloc_gfp { @ = retval; }`,
	})
}

// TestFentryBuiltins: probe and func are the function's names, fixed at
// compile time; a __user pointer argument is read from user memory.
func TestFentryBuiltins(t *testing.T) {
	prog, err := compileFuncs(t, `kfunc:vfs_read { printf("%s %s %s\n", probe, func, str(args->buf)); }`, fakeFuncs{})
	if err != nil {
		t.Fatal(err)
	}
	helpers := map[asm.BuiltinFunc]bool{}
	for _, ins := range prog.Probes[0].Insns {
		if ins.IsBuiltinCall() {
			helpers[asm.BuiltinFunc(ins.Constant)] = true
		}
	}
	if !helpers[asm.FnProbeReadUserStr] {
		t.Errorf("str(args->buf) of a __user pointer does not use probe_read_user_str: %v", helpers)
	}
	if prog.Probes[0].Category != "vmlinux" || prog.Probes[0].Event != "vfs_read" {
		t.Errorf("probe attaches to %q %q, want vmlinux vfs_read", prog.Probes[0].Category, prog.Probes[0].Event)
	}
}

// TestFentryErrors: bpftrace 0.17's messages where it has them, one line
// at the probe or the expression.
func TestFentryErrors(t *testing.T) {
	for _, tc := range []struct {
		src   string
		funcs KernelFuncs
		want  string
	}{
		{`kfunc:vfs_read { @ = args->nope; }`, fakeFuncs{}, "stdin:1:22-32: ERROR: Can't find function parameter nope"},
		{`kfunc:vfs_read { @ = retval; }`, fakeFuncs{}, "stdin:1:22-28: ERROR: Can't find a field $retval"},
		{`kretfunc:kmem_cache_free { @ = retval; }`, fakeFuncs{}, "ERROR: kretfunc:vmlinux:kmem_cache_free returns void: it has no retval"},
		{`kfunc:vfs_read { @ = arg0; }`, fakeFuncs{}, "ERROR: The arg0 builtin can only be used with 'kprobes', 'uprobes' and 'usdt' probes"},
		{`kfunc:vfs_nosuchfn { @ = count(); }`, fakeFuncs{}, "stdin:1:1-19: ERROR: No BTF found for vfs_nosuchfn"},
		{`kfunc:nosuch*fn { @ = count(); }`, fakeFuncs{}, "ERROR: No probes matched kfunc:nosuch*fn"},
		{`kfunc:inlined_fn { @ = count(); }`, fakeFuncs{}, `ERROR: function not traceable (probably it is inlined or marked as "notrace")`},
		{`kfunc:seven_args { @ = count(); }`, fakeFuncs{}, "ERROR: functions with more than 6 parameters are not supported."},
		{`kfunc: { @ = count(); }`, fakeFuncs{}, "ERROR: kfunc should specify a function"},
		{`kfunc:a:b:c { @ = count(); }`, fakeFuncs{}, "ERROR: kfunc should specify a function"},
		{`kfunc:vfs_read { @ = count(); }`, nil, "ERROR: kfunc probes are not available"},
		{`fexit:vfs_read { @ = count(); }`, fakeFuncs{unavailable: errors.New("the kernel refuses fentry/fexit programs (loading one: operation not permitted)")},
			"ERROR: kretfunc probes are not available: the kernel refuses fentry/fexit programs (loading one: operation not permitted)"},
		{`kfunc:fake_by_value { @ = args->v; }`, fakeFuncs{}, "ERROR: args.v has type 'struct pair', which can not be read"},
		{`kretfunc:fake_by_value { @ = retval; }`, fakeFuncs{}, "ERROR: retval has type 'struct pair', which can not be read"},
		{`kfunc:vfs_read { @ = *args->buf; }`, fakeFuncs{}, ""},
	} {
		_, err := compileFuncs(t, tc.src, tc.funcs)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.src, err)
			}
			continue
		}
		wantOneError(t, tc.src, err, tc.want)
	}
}

// TestFentryKernelOnly: interpreter mode has a kfunc's arguments and
// return value, the strings behind them, and what chains of reads from
// them reach (TestKReads); a dereference of any other kernel pointer
// names the probe for interpreter mode's refusal.
func TestFentryKernelOnly(t *testing.T) {
	for src, want := range map[string]string{
		`kfunc:vfs_read { @ = *args->pos; }`:                         "",
		`kretfunc:vfs_read / *args->pos == 1 / { @ = retval; }`:      "",
		`kfunc:vfs_read { @ = *(args->pos + 2); }`:                   "*(args->pos + 2) (through pointer arithmetic)",
		`kfunc:vfs_read { @ = args->count; }`:                        "",
		`kfunc:vfs_read { @ = args->file; }`:                         "",
		`kretfunc:vfs_read { @ = retval; }`:                          "",
		`kretfunc:getname { @ = retval; }`:                           "",
		`kfunc:vfs_read { @[str(args->buf)] = count(); }`:            "",
		`kfunc:do_sys_openat2 { @[str(args->filename)] = count(); }`: "",
	} {
		prog, err := compileFuncs(t, src, fakeFuncs{})
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if got := prog.Probes[0].KernelOnly; got != want {
			t.Errorf("%s: KernelOnly %q, want %q", src, got, want)
		}
	}
}
