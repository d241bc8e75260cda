package daemon

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/bpf/btftp"
	"github.com/tracebroker/tracebroker/bpf/kprobe"
	"github.com/tracebroker/tracebroker/broker"
	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/compile"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/broker/token"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// kfKprobes is a kernel with kprobes: a few named functions and n
// numbered ones (f00000, f00001, …), with or without kprobe.multi.
type kfKprobes struct {
	multi bool
	n     int
}

func (k kfKprobes) Available() error { return nil }
func (k kfKprobes) Multi() bool      { return k.multi }
func (kfKprobes) Size(fn string) (uint64, bool) {
	return 320, true
}

func (k kfKprobes) Match(module, pattern string) ([]string, error) {
	var out []string
	if module != "" {
		return nil, nil
	}
	for _, f := range []string{"commit_creds", "vfs_read", "vfs_write"} {
		if ok, _ := path.Match(pattern, f); ok {
			out = append(out, f)
		}
	}
	for i := range k.n {
		f := fmt.Sprintf("f%05d", i)
		if ok, _ := path.Match(pattern, f); ok {
			out = append(out, f)
		}
	}
	return out, nil
}

// kfFuncs is fentryKernel with n numbered vmlinux functions more.
type kfFuncs struct{ n int }

func (kfFuncs) Available() error { return nil }
func (kfFuncs) Proto(mod, fn string) ([]compile.Field, *compile.Field, error) {
	return fentryKernel{}.Proto(mod, fn)
}

func (k kfFuncs) Match(mod, fn string) ([][2]string, error) {
	out, _ := fentryKernel{}.Match(mod, fn)
	if ok, _ := path.Match(mod, "vmlinux"); ok {
		for i := range k.n {
			if f := fmt.Sprintf("f%05d", i); func() bool { ok, _ := path.Match(fn, f); return ok }() {
				out = append(out, [2]string{"vmlinux", f})
			}
		}
	}
	return out, nil
}

// kfCompile compiles src for a kernel with kprobes k and the kfuncs of
// kfFuncs, struct types from the running kernel's BTF.
func kfCompile(t *testing.T, src string, k kfKprobes, hidePID uint32) (*program.Program, error) {
	t.Helper()
	f, err := syntax.Parse("stdin", []byte(src))
	if err != nil {
		t.Fatalf("%.60s: %.300v", src, err)
	}
	prog, _, err := compile.Compile(f, compile.Options{Kprobes: k, Funcs: kfFuncs{k.n}, Types: broker.KernelTypes{}, HidePID: hidePID})
	if err != nil {
		var el syntax.ErrorList
		if errors.As(err, &el) {
			return nil, errors.New(el.Format("stdin", []byte(src)))
		}
		return nil, err
	}
	return prog, nil
}

func kfToken(t *testing.T, scopes string) *token.Token {
	t.Helper()
	sc, err := token.ParseScopes(scopes)
	if err != nil {
		t.Fatal(err)
	}
	return &token.Token{Subject: "alice", Scopes: sc}
}

// TestAttacksKernelFuncs: issue 17's kernel-function probes and struct
// access, attacked as a token holder (a script), a plugin author (a
// program handed over whole) and through the bounds the daemon keeps.
func TestAttacksKernelFuncs(t *testing.T) {
	needBTF := func(t *testing.T) {
		if _, err := btftp.Type("struct", "task_struct"); err != nil {
			t.Skipf("no kernel BTF to type structs with: %v", err)
		}
	}
	// Read: without read:kernel, every read of kernel memory and every
	// kernel address is refused at the expression, naming the scope.
	const kscopes = "trace probe:kprobe:* probe:kretprobe:* probe:kfunc:** probe:kretfunc:** probe:tracepoint:**"
	for _, tt := range []struct {
		name, src string
		btf       bool
		at        string // the expression refused; "" allowed
	}{
		{"item3/str_arg0", `kprobe:vfs_read { printf("%s\n", str(arg0)); }`, false, "str(arg0)"},
		{"item3/buf_arg1", `kprobe:vfs_read { printf("%r\n", buf(arg1, 64)); }`, false, "buf(arg1, 64)"},
		{"item3/str_retval", `kretprobe:vfs_read { printf("%s\n", str(retval)); }`, false, "str(retval)"},
		{"item3/str_arg_plus_offset", `kprobe:vfs_read { printf("%s\n", str(arg0 + 8)); }`, false, "str(arg0 + 8)"},
		{"item3/str_arg_in_variable", `kprobe:vfs_read { $p = arg2; printf("%s\n", str($p)); }`, false, "str($p)"},
		{"item3/multi_str_arg0", `kprobe:vfs_* { printf("%s\n", str(arg0)); }`, false, "str(arg0)"},
		{"item3/cast_arg_to_struct", `kprobe:vfs_read { @ = ((struct file *)arg0)->f_inode->i_ino; }`, true, "((struct file *)arg0)->f_inode"},
		// bpftrace's pointer casts (issue 18): *(uint64 *)arg0 and
		// p[i] read kernel memory, and so does a struct the script
		// defines itself, cast from a register.
		{"item3/deref_cast_arg0", `kprobe:vfs_read { @ = *(uint64 *)arg0; }`, false, "*(uint64 *)arg0"},
		{"item3/index_cast_arg1", `kprobe:vfs_read { @ = ((uint8 *)arg1)[4]; }`, false, "((uint8 *)arg1)[4]"},
		{"item3/deref_cast_pointer_arithmetic", `kprobe:vfs_read { @ = *((uint32 *)arg0 + 2); }`, false, "*((uint32 *)arg0 + 2)"},
		{"item3/script_struct_on_arg", `struct S { long a; char secret[32]; } kprobe:vfs_read { @ = ((struct S *)arg0)->secret; }`, false, "((struct S *)arg0)->secret"},
		// A register's value is the probe's context, as a raw
		// tracepoint's argN is: it is read, not dereferenced.
		{"item3/arg_as_map_key", `kprobe:vfs_read { @[arg0, arg5] = count(); }`, false, ""},
		{"item3/retval_value", `kretprobe:vfs_read { @ = sum(retval); }`, false, ""},
		{"item4/kfunc_struct_chain", `kfunc:vmlinux:vfs_read { @ = args->file->f_inode->i_ino; }`, true, "args->file->f_inode"},
		{"item4/kfunc_str_pointer_arg", `kfunc:vmlinux:vfs_read { printf("%s\n", str(args->file)); }`, false, "str(args->file)"},
		{"item4/kfunc_pointer_value", `kfunc:vmlinux:vfs_read { @[args->file] = count(); }`, false, ""},
		{"item5/curtask", `kprobe:vfs_read { @[curtask] = count(); }`, true, "curtask"},
		{"item5/curtask_map_key", `kfunc:vmlinux:vfs_read { @[curtask->pid] = count(); }`, true, "curtask->pid"},
		{"item5/print_struct", `kprobe:vfs_read { print(curtask->se.load); }`, true, "curtask->se.load"},
		{"item5/cast_integer", `BEGIN { @ = ((struct task_struct *)0xffff888000000000)->comm; exit(); }`, true, "((struct task_struct *)0xffff888000000000)->comm"},
		// sizeof and offsetof are constants of /sys/kernel/btf/vmlinux,
		// which every user may read: nothing of the running kernel's
		// memory.
		{"item5/sizeof_is_harmless", `BEGIN { @ = sizeof(struct task_struct); exit(); }`, true, ""},
		{"item5/sizeof_field_is_harmless", `BEGIN { @ = sizeof(curtask->comm); exit(); }`, true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.btf {
				needBTF(t)
			}
			prog, err := kfCompile(t, tt.src, kfKprobes{multi: true}, 0)
			if err != nil {
				t.Fatal(err)
			}
			tok := kfToken(t, kscopes)
			if err := authorizeProbes(tok)(prog); err != nil {
				t.Fatalf("probes refused: %v", err)
			}
			err = authorizeReads(tok, &broker.Request{Name: "stdin", Source: []byte(tt.src)})(prog)
			if tt.at == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("allowed without read:kernel")
			}
			col := strings.Index(tt.src, tt.at) + 1
			want := fmt.Sprintf("stdin:1:%d-%d: ERROR: ", col, col+len(tt.at))
			if msg := err.Error(); !strings.Contains(msg, want) || !strings.Contains(msg, "needs scope read:kernel") {
				t.Fatalf("refusal %q, want %q… naming read:kernel", msg, want)
			}
			if err := authorizeReads(kfToken(t, kscopes+" read:kernel"), &broker.Request{Name: "stdin", Source: []byte(tt.src)})(prog); err != nil {
				t.Fatalf("refused with read:kernel: %v", err)
			}
		})
	}

	// Reach: a probe scope is judged on the canonical name, whatever
	// the spelling.
	for _, tt := range []struct {
		name, scopes, src string
		want              string // "": allowed; else the refusal contains it
	}{
		{"item3/offset_zero_is_the_function", "trace probe:kprobe:vfs_read*", `kprobe:vfs_write+0 { @ = count(); }`, "does not allow probe kprobe:vfs_write "},
		{"item3/offset_stays_in_function", "trace probe:kprobe:vfs_read", `kprobe:vfs_read+4 { @ = count(); }`, "does not allow probe kprobe:vfs_read+4 "},
		{"item3/offset_within_scope", "trace probe:kprobe:vfs_read*", `kprobe:vfs_read+4 { @ = count(); }`, ""},
		{"item3/k_alias", "trace probe:kprobe:vfs_read", `k:vfs_write { @ = count(); }`, "does not allow probe kprobe:vfs_write "},
		{"item3/kr_alias", "trace probe:kprobe:vfs_*", `kr:vfs_read { @ = count(); }`, "does not allow probe kretprobe:vfs_read "},
		{"item3/wildcard_per_function", "trace probe:kprobe:vfs_*", `kprobe:*_creds { @ = count(); }`, "does not allow probe kprobe:commit_creds "},
		{"item3/multi_per_function", "trace probe:kprobe:vfs_*", `kprobe:[cv]* { @ = count(); }`, "does not allow probe kprobe:commit_creds "},
		{"item3/case_is_another_function", "trace probe:kprobe:vfs_read", `kprobe:VFS_READ { @ = count(); }`, "VFS_READ is not traceable"},
		{"item4/fexit_alias", "trace probe:kfunc:vmlinux:*", `fr:vmlinux:vfs_read { @ = count(); }`, "does not allow probe kretfunc:vmlinux:vfs_read "},
		{"item4/module_glob", "trace probe:kfunc:vmlinux:*", `kfunc:*:vfs_read { @ = count(); }`, "does not allow probe kfunc:evilmod:vfs_read "},
		{"item4/kprobe_scope_grants_no_kfunc", "trace probe:kprobe:**", `kfunc:vfs_write { @ = count(); }`, "does not allow probe kfunc:vmlinux:vfs_write "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			prog, err := kfCompile(t, tt.src, kfKprobes{multi: true}, 0)
			if err == nil {
				err = authorizeProbes(kfToken(t, tt.scopes))(prog)
			}
			wantRefusal(t, err, tt.want)
		})
	}

	// Reach: a plugin's raw program names a module its token's scope
	// allows, while the kernel attaches a kprobe by bare name. The
	// name passes CheckName and the scope; what refuses it is the
	// attach's check that the function is the module's, here against
	// the running kernel's list.
	t.Run("item3/raw_program_module_claim", func(t *testing.T) {
		for _, p := range []*program.Probe{
			{Kind: program.Kprobe, Name: "kprobe:nf_tables:vfs_read", Category: "nf_tables", Event: "vfs_read"},
			{Kind: program.Kprobe, Name: "kprobe:nf_tables:*", Category: "nf_tables", Funcs: []string{"vfs_read"}},
		} {
			admittedUntilAttach(t, p, "trace probe:kprobe:nf_tables:*")
			err := kprobe.InModule(p.Category, kprobe.Names(p.Event, p.Funcs))
			if err == nil || !strings.Contains(err.Error(), "vfs_read is not a traceable function of module nf_tables") {
				t.Fatalf("%s: attach check %v", p.Name, err)
			}
		}
	})

	// Reach: a raw program's offset past its function's end, which
	// the name and a scope probe:kprobe:vfs_read* admit, while the
	// kernel would add it to vfs_read's address and fire elsewhere. The
	// compiler checks a script's offset; the attach checks a raw
	// program's, here against the running kernel's /proc/kallsyms.
	t.Run("item3/raw_program_offset_outside", func(t *testing.T) {
		p := &program.Probe{Kind: program.Kprobe, Name: "kprobe:vfs_read+1048576", Event: "vfs_read", Offset: 1 << 20}
		admittedUntilAttach(t, p, "trace probe:kprobe:vfs_read*")
		if _, ok := kprobe.Size("vfs_read"); !ok {
			t.Skip("/proc/kallsyms does not tell vfs_read's size")
		}
		if err := kprobe.CheckOffset(p.Event, p.Offset); err == nil || !strings.Contains(err.Error(), "the offset is outside the function") {
			t.Fatalf("attach check of %s: %v", p.Name, err)
		}
		if err := kprobe.CheckOffset(p.Event, 4); err != nil {
			t.Fatalf("attach check of vfs_read+4: %v", err)
		}
	})

	// Exhaust: how many functions one program may put probes on.
	for _, tt := range []struct {
		name, src string
		k         kfKprobes
		want      string
	}{
		{"item3/kprobe_star_multi", `kprobe:* { @ = count(); }`, kfKprobes{multi: true, n: 60000}, "matches 60003 functions; one kprobe.multi probe attaches at most 16384"},
		{"item3/kretprobe_star_multi", `kretprobe:* { @ = count(); }`, kfKprobes{multi: true, n: 60000}, "matches 60003 functions; one kprobe.multi probe attaches at most 16384"},
		{"item3/kprobe_star_per_function", `kprobe:* { @ = count(); }`, kfKprobes{n: 60000}, "Can't attach to 60003 probes because it exceeds the current limit of 512 probes."},
		{"item3/multi_patterns_together", `kprobe:f0*, kprobe:f1*, kprobe:f2* { @ = count(); }`, kfKprobes{multi: true, n: 30000}, "kprobe:f1* matches 10000 functions, which makes 20000 on kprobe.multi probes in all; at most 16384 may attach"},
		{"item3/multi_same_pattern_repeated", strings.Repeat(`kprobe:f0* { @ = count(); } `, 3), kfKprobes{multi: true, n: 10000}, "kprobe:f0* matches 10000 functions, which makes 20000 on kprobe.multi probes in all"},
		{"item3/per_function_patterns_together", `kprobe:f00[0-4]*, kprobe:f00[5-9]*, kprobe:f01[0-4]* { @ = count(); }`, kfKprobes{n: 3000}, "kprobe:f01[0-4]* matches 500 probes, which makes 1500 in all; at most 1024 may attach"},
		{"item4/kfunc_star", `kfunc:*:* { @ = count(); }`, kfKprobes{n: 2000}, "kfunc:*:* matches 2004 probes, which makes 2004 in all; at most 1024 may attach"},
		{"item4/kretfunc_star", `kretfunc:* { @ = count(); }`, kfKprobes{n: 2000}, "kretfunc:* matches 2004 probes, which makes 2004 in all; at most 1024 may attach"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kfCompile(t, tt.src, tt.k, 0)
			wantRefusal(t, err, tt.want)
		})
	}
	// Exhaust: struct access is bounded where it is written: chains by
	// the parser's depth, print() by its values, sizeof is a constant.
	t.Run("item5/chain_depth_bounded", func(t *testing.T) {
		src := `BEGIN { @ = curtask` + strings.Repeat("->real_parent", 200) + `->pid; exit(); }`
		if _, err := syntax.Parse("stdin", []byte(src)); err == nil || !strings.Contains(err.Error(), "nested too deeply (more than 128 levels)") {
			t.Fatalf("a chain of 200: %v", err)
		}
	})
	for _, tt := range []struct{ name, src, want string }{
		{"item5/print_whole_task_refused", `BEGIN { print(*curtask); exit(); }`, "struct task_struct can not be printed: it has more than 64 values"},
		{"item5/chain_100_deep", `BEGIN { @ = curtask` + strings.Repeat("->real_parent", 100) + `->pid; exit(); }`, ""},
		{"item5/print_nested_struct", `BEGIN { print(curtask->se); exit(); }`, ""},
		{"item5/sizeof_product", `BEGIN { @ = sizeof(struct task_struct) * sizeof(struct page); exit(); }`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			needBTF(t)
			prog, err := kfCompile(t, tt.src, kfKprobes{}, 0)
			switch {
			case tt.want != "":
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %v, want %q", err, tt.want)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			n := 0
			for _, p := range prog.Probes {
				n += len(p.Insns)
			}
			if n >= compile.MaxInsns {
				t.Fatalf("%d instructions", n)
			}
		})
	}
	t.Run("item3/raw_program_multi_total", func(t *testing.T) {
		funcs := make([]string, 10000)
		for i := range funcs {
			funcs[i] = fmt.Sprintf("f%05d", i)
		}
		mk := func() *program.Probe {
			return &program.Probe{Kind: program.Kprobe, Name: "kprobe:f*", Funcs: funcs}
		}
		prog := &program.Program{Probes: []*program.Probe{mk(), mk()}}
		for _, tok := range []*token.Token{kfToken(t, "trace probe:kprobe:*"), nil} {
			err := authorizeProbes(tok)(prog)
			if err == nil || !strings.Contains(err.Error(), "attach to 20000 functions; at most 16384 may attach") {
				t.Fatalf("two multi probes of 10000 functions: %v", err)
			}
		}
	})

	// Keep running: a client that leaves while its hundreds of kprobes
	// are being compiled, loaded or attached leaves nothing attached:
	// what the daemon's process holds (perf events, links, programs,
	// maps) is what it held before.
	t.Run("item3/client_leaves_mid_attach", func(t *testing.T) {
		needKernel(t)
		if err := kprobe.Supported(); err != nil {
			t.Skipf("kernel built without kprobes: %v", err)
		}
		d := startDaemon(t, daemonOpts{})
		tok := d.token(t, token.IssueOptions{Scope: "trace probe:kprobe:*"})
		// At once: while its 394 probes compile, load and attach (a
		// minute under TCG). Attached: 76 probes, attached.
		for i, tt := range []struct{ leaveAt, script string }{
			{"at once", `kprobe:vfs_*, kprobe:security_* { @[probe] = count(); }`},
			{"attached", `kprobe:vfs_* { @[probe] = count(); }`},
		} {
			leaveAt := tt.leaveAt
			objs := kerneltest.Track(t)
			name := fmt.Sprintf("leaves_%d", i)
			r := d.start(t, tok, &pb.TraceRequest{Name: name, Source: []byte(tt.script)})
			sess := d.sessionByName(t, name, leaveAt == "attached")
			start := time.Now()
			r.cancel()
			d.gone(t, sess.Id)
			t.Logf("left %s (mode %q): session gone %v later", leaveAt, sess.Mode, time.Since(start).Round(time.Millisecond))
			<-r.done
			objs.ExpectReleased(t, 5*time.Second)
		}
	})

	// Keep running: a token holder's kprobes and kfuncs on what the
	// daemon itself runs (its syscalls, ring buffer, bpf_*) return at
	// once on its events, as tracepoints do.
	t.Run("item3/daemon_hidden", func(t *testing.T) {
		const pid = 4242
		prog, err := kfCompile(t, `kprobe:vfs_write, kretprobe:vfs_write, kprobe:f* , kfunc:vmlinux:vfs_write, kretfunc:vmlinux:vfs_write { @ = count(); }`, kfKprobes{multi: true, n: 10}, pid)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range prog.Probes {
			hidden := false
			for _, ins := range p.Insns {
				if ins.OpCode.JumpOp() == asm.JEq && ins.Constant == pid {
					hidden = true
				}
			}
			if !hidden {
				t.Errorf("%s: no return on the daemon's pid %d", p.Name, pid)
			}
		}
	})
}

// wantRefusal fails t unless err is nil for want "", or contains want.
func wantRefusal(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("refused: %v", err)
	case want != "" && err == nil:
		t.Fatalf("allowed, want a refusal containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("refusal %q, want it to contain %q", err, want)
	}
}

// BenchmarkKernelFuncsCompile: what the largest kprobe programs a token
// holder may ask for cost to compile and judge: one kprobe.multi probe
// on MaxKprobeFuncs functions, and MaxKprobeLinks probes one per
// function (a kernel without kprobe.multi).
func BenchmarkKernelFuncsCompile(b *testing.B) {
	for _, bb := range []struct {
		name, src string
		k         kfKprobes
	}{
		{"multi_16384", `kprobe:f* { @ = count(); }`, kfKprobes{multi: true, n: compile.MaxKprobeFuncs - 3}},
		{"per_function_512", `kprobe:f* { @[probe] = count(); }`, kfKprobes{n: compile.MaxKprobeLinks - 3}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			tok := &token.Token{Subject: "alice", Scopes: token.Scopes{Probes: []string{"kprobe:*"}}}
			f, err := syntax.Parse("stdin", []byte(bb.src))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				prog, _, err := compile.Compile(f, compile.Options{Kprobes: bb.k})
				if err != nil {
					b.Fatal(err)
				}
				if err := authorizeProbes(tok)(prog); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// admittedUntilAttach checks that a raw program's probe p passes its
// name's check and a token of scopes, so that only the attach's check
// stands in its way, and skips the test on a kernel without kprobes,
// where that check has nothing to read.
func admittedUntilAttach(t *testing.T, p *program.Probe, scopes string) {
	t.Helper()
	if err := p.CheckName(); err != nil {
		t.Fatalf("CheckName: %v", err)
	}
	if err := authorizeProbes(kfToken(t, scopes))(&program.Program{Probes: []*program.Probe{p}}); err != nil {
		t.Fatalf("scope: %v", err)
	}
	if err := kprobe.Supported(); err != nil {
		t.Skipf("the attach check reads the kernel's functions and symbols: %v", err)
	}
}
