package compile

import (
	"encoding/binary"
	"errors"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// fakeKprobes is a kernel with a few traceable functions, one of them in
// a module; multi says whether it has kprobe.multi links, err whether it
// has kprobes at all.
type fakeKprobes struct {
	multi bool
	err   error
}

var fakeKernelFuncs = []struct{ name, module string }{
	{"_raw_spin_lock", ""}, {"do_nanosleep", ""}, {"ksys_read", ""}, {"ksys_write", ""},
	{"nft_trans_alloc_gfp", "nf_tables"}, {"vfs_read", ""}, {"vfs_readv", ""}, {"vfs_write", ""},
}

func (k fakeKprobes) Available() error { return k.err }
func (k fakeKprobes) Multi() bool      { return k.multi }

func (fakeKprobes) Match(module, pattern string) ([]string, error) {
	var out []string
	for _, f := range fakeKernelFuncs {
		if ok, _ := path.Match(pattern, f.name); ok && (module == "" || module == f.module) {
			out = append(out, f.name)
		}
	}
	return out, nil
}

func (fakeKprobes) Size(fn string) (uint64, bool) { return 320, fn == "vfs_read" }

func compileKprobes(t *testing.T, src string, k fakeKprobes) (*program.Program, error) {
	t.Helper()
	f, err := syntax.Parse("stdin", []byte(src))
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	prog, _, err := Compile(f, Options{Kprobes: k})
	if err != nil {
		return nil, errors.New(err.(syntax.ErrorList).Format("stdin", []byte(src)))
	}
	return prog, nil
}

// TestKprobeProbes: kprobe and kretprobe specs expand to the probes
// bpftrace 0.17 attaches, named as its `probe` prints them; a wildcard
// makes one kprobe.multi probe only where the kernel has them and the
// block does not name its attach point.
func TestKprobeProbes(t *testing.T) {
	type probe struct {
		kind   program.ProbeKind
		name   string
		module string
		event  string
		offset uint64
		funcs  string
	}
	k, kr := program.Kprobe, program.Kretprobe
	for _, tt := range []struct {
		name, src string
		multi     bool
		want      []probe
	}{
		{"function", `kprobe:vfs_read { @ = count(); }`, false, []probe{{k, "kprobe:vfs_read", "", "vfs_read", 0, ""}}},
		{"short", `k:vfs_read { @ = count(); } kr:vfs_read { @ = count(); }`, true,
			[]probe{{k, "kprobe:vfs_read", "", "vfs_read", 0, ""}, {kr, "kretprobe:vfs_read", "", "vfs_read", 0, ""}}},
		{"offset", `kprobe:vfs_read+0x10 { @ = count(); }`, false, []probe{{k, "kprobe:vfs_read+16", "", "vfs_read", 16, ""}}},
		{"offset zero", `kprobe:vfs_read+0 { @ = count(); }`, false, []probe{{k, "kprobe:vfs_read", "", "vfs_read", 0, ""}}},
		{"module", `kprobe:nf_tables:nft_trans_alloc_gfp { @ = count(); }`, false,
			[]probe{{k, "kprobe:nf_tables:nft_trans_alloc_gfp", "nf_tables", "nft_trans_alloc_gfp", 0, ""}}},
		{"wildcard without multi", `kprobe:vfs_read* { @ = count(); }`, false,
			[]probe{{k, "kprobe:vfs_read", "", "vfs_read", 0, ""}, {k, "kprobe:vfs_readv", "", "vfs_readv", 0, ""}}},
		{"wildcard with multi", `kretprobe:vfs_* { @ = count(); }`, true,
			[]probe{{kr, "kretprobe:vfs_*", "", "", 0, "vfs_read vfs_readv vfs_write"}}},
		{"one match with multi", `kprobe:vfs_w* { @ = count(); }`, true,
			[]probe{{k, "kprobe:vfs_w*", "", "", 0, "vfs_write"}}},
		{"probe builtin splits", `kprobe:ksys_* { @[probe] = count(); }`, true,
			[]probe{{k, "kprobe:ksys_read", "", "ksys_read", 0, ""}, {k, "kprobe:ksys_write", "", "ksys_write", 0, ""}}},
		{"func builtin splits", `kprobe:ksys_* /pid/ { @[func] = count(); }`, true,
			[]probe{{k, "kprobe:ksys_read", "", "ksys_read", 0, ""}, {k, "kprobe:ksys_write", "", "ksys_write", 0, ""}}},
		{"func in predicate splits", `kprobe:ksys_* /func == "ksys_read"/ { @ = count(); }`, true,
			[]probe{{k, "kprobe:ksys_read", "", "ksys_read", 0, ""}, {k, "kprobe:ksys_write", "", "ksys_write", 0, ""}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			prog, err := compileKprobes(t, tt.src, fakeKprobes{multi: tt.multi})
			if err != nil {
				t.Fatal(err)
			}
			var got []probe
			for _, p := range prog.Probes {
				got = append(got, probe{p.Kind, p.Name, p.Category, p.Event, p.Offset, strings.Join(p.Funcs, " ")})
				if err := p.CheckName(); err != nil {
					t.Errorf("CheckName: %v", err)
				}
				if p.CtxLen != program.PtRegsSize {
					t.Errorf("%s: CtxLen %d, want pt_regs' %d", p.Name, p.CtxLen, program.PtRegsSize)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("probes\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

// TestKprobeRegisters: arguments and the return value are x86-64's
// argument and return registers in pt_regs; func is the function,
// whatever the offset.
func TestKprobeRegisters(t *testing.T) {
	prog, err := compileKprobes(t, `kprobe:vfs_read+4 { @[func, arg0, arg2, arg5] = count(); } kretprobe:vfs_read { @r = sum(retval); }`, fakeKprobes{})
	if err != nil {
		t.Fatal(err)
	}
	for i, offs := range [][]int16{{112, 96, 64}, {80}} {
		p := prog.Probes[i]
		for _, off := range offs {
			found := false
			for _, ins := range p.Insns {
				if ins.OpCode.Class().IsLoad() && ins.Src == asm.R9 && ins.Offset == off && ins.OpCode.Size() == asm.DWord {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: no 8-byte load of pt_regs+%d", p.Name, off)
			}
		}
	}
	if !storesString(prog.Probes[0].Insns, "vfs_read") {
		t.Errorf("func of kprobe:vfs_read+4 is not \"vfs_read\"")
	}
}

// storesString reports whether the instructions store s and a NUL on
// the stack, 4 bytes at a time, as gen.literal does.
func storesString(insns asm.Instructions, s string) bool {
	var words []int64
	for _, ins := range insns {
		if ins.OpCode.Class() == asm.StClass && ins.OpCode.Size() == asm.Word {
			words = append(words, ins.Constant)
		}
	}
	b := make([]byte, (len(s)/4+1)*4)
	copy(b, s)
	var want []int64
	for i := 0; i < len(b); i += 4 {
		want = append(want, int64(int32(binary.LittleEndian.Uint32(b[i:]))))
	}
	for i := 0; i+len(want) <= len(words); i++ {
		if slices.Equal(words[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

// TestKprobeListSkips: in a list of kprobes, a function this kernel lacks
// is skipped with a warning (stock tools list the names different kernels
// use: biolatency.bt's blk_account_io_start and __blk_account_io_start).
func TestKprobeListSkips(t *testing.T) {
	src := `kprobe:blk_account_io_start, kprobe:vfs_read, kprobe:lookup_fast.constprop.* { @ = count(); }`
	f, err := syntax.Parse("stdin", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	p, warns, err := Compile(f, Options{Kprobes: fakeKprobes{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Probes) != 1 || p.Probes[0].Name != "kprobe:vfs_read" {
		t.Errorf("probes %v", p.Probes)
	}
	got := warns.Format("stdin", []byte(src))
	for _, want := range []string{
		`stdin:1:1-28: WARNING: blk_account_io_start is not traceable (either non-existing, inlined, or marked as "notrace"): skipped`,
		`WARNING: No probes matched kprobe:lookup_fast.constprop.*: skipped`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings\n%s\nlack %q", got, want)
		}
	}
}

// TestKprobeErrors: what bpftrace refuses is refused with its words;
// where it would warn and then fail to attach, the compiler refuses
// with nothing attached.
func TestKprobeErrors(t *testing.T) {
	noKprobes := errors.New("this kernel was built without kprobes (CONFIG_KPROBES is not set)")
	for _, tt := range []struct {
		src  string
		k    fakeKprobes
		want string
	}{
		{`kprobe:vfs_read { }`, fakeKprobes{err: noKprobes}, "stdin:1:1-16: ERROR: kprobe probes are not available: this kernel was built without kprobes (CONFIG_KPROBES is not set)"},
		{`kr:vfs_read { }`, fakeKprobes{err: noKprobes}, "ERROR: kretprobe probes are not available: this kernel was built without kprobes"},
		{`kprobe:syscalls:sys_exit_nanosleep { }`, fakeKprobes{}, "ERROR: sys_exit_nanosleep is not a traceable function of module syscalls (is the module loaded?)"},
		{`kprobe:a:b:c { }`, fakeKprobes{}, "ERROR: kprobe probe type requires 1 argument (FUNCTION) or 2 (MODULE:FUNCTION)"},
		{`kprobe { }`, fakeKprobes{}, "ERROR: kprobe probe type requires 1 argument"},
		{`kprobe:*:vfs_read { }`, fakeKprobes{}, "ERROR: kprobe probe module must be a module's name, without wildcards"},
		{`kprobe:nosuch { }`, fakeKprobes{}, `ERROR: nosuch is not traceable (either non-existing, inlined, or marked as "notrace")`},
		{`kprobe:nosuch* { }`, fakeKprobes{}, "ERROR: No probes matched kprobe:nosuch*"},
		// A list skips what this kernel lacks, but not all of it.
		{`kprobe:nosuch, kprobe:__nosuch { }`, fakeKprobes{}, "stdin:1:1-31: ERROR: none of the probe's 2 attach points resolved; the first: nosuch is not traceable"},
		{`kprobe:vfs_read+1000000 { }`, fakeKprobes{}, "ERROR: Offset outside the function bounds ('vfs_read' size is 320)"},
		{`kprobe:vfs_read+x { }`, fakeKprobes{}, `ERROR: Invalid offset "x" in kprobe:vfs_read+x`},
		{`kretprobe:vfs_read+8 { }`, fakeKprobes{}, "ERROR: Offset not allowed"},
		{`kprobe:vfs_*+8 { }`, fakeKprobes{}, "ERROR: Offset not allowed with a wildcard"},
		{`kprobe:+8 { }`, fakeKprobes{}, "ERROR: kprobes should be attached to a function"},
		{`kretprobe:_raw_spin_lock { }`, fakeKprobes{}, "stdin:1:1-25: ERROR: error: kretprobe:_raw_spin_lock can't be used as it might lock up your system."},
		{`kretprobe:_raw_spin_* { }`, fakeKprobes{multi: true}, "ERROR: error: kretprobe:_raw_spin_lock can't be used as it might lock up your system."},
		// Banned before it is looked up: a kernel where it is notrace
		// refuses it with the same words.
		{`kretprobe:queued_spin_lock_slowpath { }`, fakeKprobes{}, "ERROR: error: kretprobe:queued_spin_lock_slowpath can't be used"},
		{`kretprobe:vfs_read { @ = arg0; }`, fakeKprobes{}, "The arg0 builtin can only be used with 'kprobes', 'uprobes' and 'usdt' probes"},
		{`kprobe:vfs_read { @ = retval; }`, fakeKprobes{}, "The retval builtin can only be used with 'kretprobe' and 'uretprobe' probes"},
		{`kprobe:vfs_read { @ = arg6; }`, fakeKprobes{}, "x86_64 doesn't support arg6"},
		{`kprobe:vfs_read { @ = args->x; }`, fakeKprobes{}, "The args builtin can only be used with tracepoint/kfunc/uprobe probes (kprobe used here)"},
	} {
		t.Run(tt.src, func(t *testing.T) {
			_, err := compileKprobes(t, tt.src, tt.k)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

// TestKprobeLimits: a wildcard attached function by function stops at
// bpftrace's limit; one kprobe.multi link at MaxKprobeFuncs.
func TestKprobeLimits(t *testing.T) {
	many := make(manyKprobes, MaxKprobeFuncs+1)
	for _, tt := range []struct {
		k     manyKprobes
		n     int
		multi bool
		want  string
	}{
		{many, MaxKprobeLinks, false, ""},
		{many, MaxKprobeLinks + 1, false, "ERROR: Can't attach to 513 probes because it exceeds the current limit of 512 probes."},
		{many, MaxKprobeFuncs, true, ""},
		{many, MaxKprobeFuncs + 1, true, "ERROR: kprobe:f* matches 16385 functions; one kprobe.multi probe attaches at most 16384"},
	} {
		f, _ := syntax.Parse("stdin", []byte(`kprobe:f* { @ = count(); }`))
		prog, _, err := Compile(f, Options{Kprobes: manyKprobes(tt.k[:tt.n]).withMulti(tt.multi)})
		got := ""
		if err != nil {
			got = err.(syntax.ErrorList).Format("stdin", []byte(`kprobe:f* { @ = count(); }`))
		}
		if tt.want == "" && err != nil || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("%d functions, multi %v: %v, want %q", tt.n, tt.multi, got, tt.want)
		}
		if err == nil && tt.multi && len(prog.Probes[0].Funcs) != tt.n {
			t.Errorf("%d functions in the multi probe, want %d", len(prog.Probes[0].Funcs), tt.n)
		}
	}
}

// manyKprobes is a kernel of functions f0, f1, ...
type manyKprobes []struct{}

type manyKprobesMulti struct {
	manyKprobes
	multi bool
}

func (m manyKprobes) withMulti(multi bool) Kprobes  { return manyKprobesMulti{m, multi} }
func (m manyKprobesMulti) Multi() bool              { return m.multi }
func (manyKprobesMulti) Available() error           { return nil }
func (manyKprobesMulti) Size(string) (uint64, bool) { return 0, false }
func (m manyKprobesMulti) Match(module, pattern string) ([]string, error) {
	out := make([]string, len(m.manyKprobes))
	for i := range out {
		out[i] = "f" + strconv.Itoa(i)
	}
	slices.Sort(out)
	return out, nil
}

// TestKprobeReadClasses: a kprobe's registers are its context; the
// memory its arguments point to is the kernel's (read:kernel), as
// bpftrace 0.17 reads them with probe_read_kernel.
func TestKprobeReadClasses(t *testing.T) {
	for _, tt := range []struct {
		name, script string
		want         program.Reads
		site         string
	}{
		{"argument", `kprobe:vfs_read { @[arg2] = count(); }`, ctx, ""},
		{"retval", `kretprobe:vfs_read { @ = hist(retval); }`, ctx, ""},
		{"wildcard", `kprobe:vfs_* { @[arg2] = count(); }`, ctx, ""},
		{"str argument", `kprobe:vfs_read { printf("%s\n", str(arg0)); }`, ctx | kernel, "str(arg0): str() of arg0, a kernel pointer, reads kernel memory"},
		{"str retval", `kretprobe:vfs_read { printf("%s\n", str(retval)); }`, ctx | kernel, "str(retval): str() of retval, a kernel pointer, reads kernel memory"},
		{"str wildcard", `kprobe:vfs_* { printf("%s\n", str(arg1)); }`, ctx | kernel, "str(arg1): str() of arg1, a kernel pointer, reads kernel memory"},
		{"buf argument plus offset", `kprobe:vfs_read { printf("%r\n", buf(arg1 + 8, 8)); }`, ctx | kernel, "buf(arg1 + 8, 8): buf() of a computed address reads arbitrary kernel memory"},
		{"ksym of argument", `kprobe:vfs_read { printf("%s\n", ksym(arg0)); }`, ctx | kaddr, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			prog := compileReads(t, tt.script)
			got, sites := prog.Reads()
			if got != tt.want {
				t.Errorf("reads %s, want %s", got, tt.want)
			}
			for _, p := range prog.Probes {
				for _, s := range p.CtxStrings {
					if s.User {
						t.Errorf("%s: captures a user string at pt_regs+%d", p.Name, s.Off)
					}
				}
			}
			if tt.site == "" {
				return
			}
			for _, s := range sites {
				if s.Class == kernel {
					if g := tt.script[s.From.Offset:s.To.Offset] + ": " + s.What; g != tt.site {
						t.Errorf("site %q, want %q", g, tt.site)
					}
					return
				}
			}
			t.Errorf("no kernel read site, want %q", tt.site)
		})
	}
}
