package compile

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// readsTracepoints adds to fakeTracepoints what the read classes turn
// on: argv, a read buffer, kernel pointer fields, a raw tracepoint.
type readsTracepoints struct{ fakeTracepoints }

var readsFields = map[string][]Field{
	"syscalls:sys_enter_execve": {
		{Name: "filename", Type: "const char *", Offset: 16, Size: 8, Kind: FieldPtr},
		{Name: "argv", Type: "const char *const *", Offset: 24, Size: 8, Kind: FieldPtr},
	},
	"syscalls:sys_enter_read": {
		{Name: "fd", Type: "unsigned int", Offset: 16, Size: 8, Kind: FieldInt},
		{Name: "buf", Type: "char *", Offset: 24, Size: 8, Kind: FieldPtr},
		{Name: "count", Type: "size_t", Offset: 32, Size: 8, Kind: FieldInt},
	},
	"skb:kfree_skb": {
		{Name: "skbaddr", Type: "void *", Offset: 8, Size: 8, Kind: FieldPtr},
		{Name: "data", Type: "u32 *", Offset: 16, Size: 8, Kind: FieldPtr},
	},
	"kmem:kmalloc": {
		{Name: "call_site", Type: "unsigned long", Offset: 8, Size: 8, Kind: FieldInt},
	},
	"sock:inet_sock_set_state": {
		{Name: "saddr", Type: "__u8[4]", Offset: 8, Size: 4, Kind: FieldArray},
	},
	// Pointers to structs, typed through BTF (struct file of fakeTypes).
	"filelock:fake_file": {
		{Name: "file", Type: "struct file *", Offset: 8, Size: 8, Kind: FieldPtr},
	},
	"syscalls:sys_enter_fake": {
		{Name: "f", Type: "const struct file *", Offset: 16, Size: 8, Kind: FieldPtr},
	},
	"raw_syscalls:sys_enter": {
		{Name: "id", Type: "long", Offset: 8, Size: 8, Signed: true, Kind: FieldInt},
	},
}

func (f readsTracepoints) Match(cat, name string) ([][2]string, error) {
	out, _ := f.fakeTracepoints.Match(cat, name)
	for k := range readsFields {
		c, n, _ := strings.Cut(k, ":")
		if (cat == c || cat == "*") && name == n {
			out = append(out, [2]string{c, n})
		}
	}
	return out, nil
}

func (f readsTracepoints) Fields(cat, name string) ([]Field, error) {
	if fs, ok := readsFields[cat+":"+name]; ok {
		return fs, nil
	}
	return f.fakeTracepoints.Fields(cat, name)
}

// readsBTF adds a BTF tracepoint with a __user argument to fakeBTF.
type readsBTF struct{ fakeBTF }

func (b readsBTF) Match(pattern string) ([]string, error) {
	if pattern == "user_arg" {
		return []string{pattern}, nil
	}
	return b.fakeBTF.Match(pattern)
}

func (b readsBTF) Args(name string) ([]Field, error) {
	if name == "user_arg" {
		return []Field{{Name: "buf", Type: "char *", Offset: 0, Size: 8, Kind: FieldPtr, User: true}}, nil
	}
	return b.fakeBTF.Args(name)
}

func compileReads(t *testing.T, src string) *program.Program {
	t.Helper()
	f, err := syntax.Parse("stdin", []byte(src))
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	prog, _, err := Compile(f, Options{Tracepoints: readsTracepoints{}, Uprobes: fakeUprobes{}, Symbols: fakeSymbols{}, BTFTracepoints: readsBTF{}, Kprobes: fakeKprobes{multi: true}, Types: newFakeTypes()})
	if err != nil {
		t.Fatalf("%s:\n%v", src, err)
	}
	return prog
}

const (
	ctx     = program.ReadsContext
	userCtx = program.ReadsUserContext
	user    = program.ReadsUser
	kernel  = program.ReadsKernel
	kaddr   = program.ReadsKernelAddr
)

// TestReadClasses: every memory access a script can make is classified,
// and each class a token must be granted points at the expression that
// needs it.
func TestReadClasses(t *testing.T) {
	for _, tt := range []struct {
		name   string
		script string
		want   program.Reads
		// sites are the refusable classes' first expressions, as
		// "SOURCE: what", in the order of the source.
		sites []string
	}{
		// Nothing but helpers about the current task.
		{"comm", `t:syscalls:sys_enter_openat { @[comm, pid] = count(); }`, 0, nil},
		{"dead code", `BEGIN { exit(); printf("%s\n", str(0x1000)); }`, 0, nil},
		{"sizeof kaddr", `BEGIN { printf("%d\n", sizeof(kaddr("jiffies"))); }`, 0, nil},

		// The probe's context.
		{"int field", `t:syscalls:sys_enter_openat { @[args->dfd] = count(); }`, ctx, nil},
		{"char array", `t:sched:sched_switch { printf("%s\n", args->prev_comm); }`, ctx, nil},
		{"data_loc", `t:sched:sched_process_exec { printf("%s\n", str(args->filename)); }`, ctx, nil},
		{"ntop array", `t:sock:inet_sock_set_state { printf("%s\n", ntop(args->saddr)); }`, ctx, nil},
		{"buf array", `t:sock:inet_sock_set_state { printf("%rx\n", buf(args->saddr)); }`, ctx, nil},
		{"kstack", `t:syscalls:sys_enter_openat { @[kstack] = count(); }`, ctx, nil},
		{"kernel pointer printed", `t:skb:kfree_skb { printf("%p\n", args->skbaddr); }`, ctx, nil},
		{"raw argument", `rawtracepoint:sys_enter { @[arg1] = count(); }`, ctx, nil},
		{"tp_btf pointer slot", `tp_btf:task_rename { printf("%lx\n", args.comm); }`, ctx, nil},

		// User memory the context's pointers reach.
		{"str filename", `t:syscalls:sys_enter_openat { printf("%s\n", str(args->filename)); }`, ctx | userCtx, nil},
		{"str filename len", `t:syscalls:sys_enter_openat { printf("%s\n", str(args->filename, 8)); }`, ctx | userCtx, nil},
		{"join argv", `t:syscalls:sys_enter_execve { join(args->argv); }`, ctx | userCtx, nil},
		{"argv constant", `t:syscalls:sys_enter_execve { printf("%s\n", str(args->argv[1])); }`, ctx | userCtx, nil},
		{"argv last", `t:syscalls:sys_enter_execve { printf("%s\n", str(args->argv[15])); }`, ctx | userCtx, nil},
		{"argv deref", `t:syscalls:sys_enter_execve { printf("%s\n", str(*args->argv)); }`, ctx | userCtx, nil},
		{"argv plus constant", `t:syscalls:sys_enter_execve { printf("%s\n", str(*(args->argv + 2))); }`, ctx | userCtx, nil},
		{"char of filename", `t:syscalls:sys_enter_openat { @[args->filename[0]] = count(); }`, ctx | userCtx, nil},
		{"buf", `t:syscalls:sys_enter_read { printf("%r\n", buf(args->buf, 16)); }`, ctx | userCtx, nil},
		{"buf runtime length", `t:syscalls:sys_enter_read { printf("%r\n", buf(args->buf, args->count)); }`, ctx | userCtx, nil},
		{"uprobe arg", `u:/bin/work:add_one { printf("%s\n", str(arg0)); }`, ctx | userCtx, nil},
		{"uretprobe retval", `ur:/bin/work:add_one { printf("%s\n", str(retval)); }`, ctx | userCtx, nil},
		{"tp_btf user", `tp_btf:user_arg { printf("%s\n", str(args.buf)); }`, ctx | userCtx, nil},
		{"variable", `t:syscalls:sys_enter_openat { $p = args->filename; printf("%s\n", str($p)); }`, ctx | userCtx, nil},
		{"variable of variable", `t:syscalls:sys_enter_openat { $p = args->filename; $q = $p; $p = $q; printf("%s\n", str($q)); }`, ctx | userCtx, nil},
		{"variable of two fields", `t:syscalls:sys_enter_execve { $p = args->filename; if (pid) { $p = args->argv[0]; } printf("%s\n", str($p)); }`, ctx | userCtx, nil},
		{"ternary", `t:syscalls:sys_enter_execve { printf("%s\n", str(pid ? args->filename : args->argv[0])); }`, ctx | userCtx, nil},
		{"several probes", `t:syscalls:sys_enter_openat, t:syscalls:sys_enter_execve { printf("%s\n", str(args->filename)); }`, ctx | userCtx, nil},

		// Arbitrary user memory.
		{"pointer plus offset", `t:syscalls:sys_enter_openat { printf("%s\n", str(args->filename + 4096)); }`, ctx | user,
			[]string{"str(args->filename + 4096): str() of pointer arithmetic reads arbitrary user memory"}},
		{"variable index", `t:syscalls:sys_enter_execve { $i = 1; printf("%s\n", str(args->argv[$i])); }`, ctx | user,
			[]string{"args->argv[$i]: [] with an index that is not a constant from 0 to 15 reads arbitrary user memory"}},
		{"index past argv", `t:syscalls:sys_enter_execve { printf("%s\n", str(args->argv[16])); }`, ctx | user,
			[]string{"args->argv[16]: [] with an index that is not a constant from 0 to 15 reads arbitrary user memory"}},
		{"negative index", `t:syscalls:sys_enter_openat { @[args->filename[-1]] = count(); }`, ctx | user,
			[]string{"args->filename[-1]: [] with an index that is not a constant from 0 to 15 reads arbitrary user memory"}},
		{"saved pointer", "t:syscalls:sys_enter_openat { @p[tid] = args->filename; }\nt:syscalls:sys_exit_openat { printf(\"%s\\n\", str(@p[tid])); }", ctx | user,
			[]string{"str(@p[tid]): str() of a map value reads arbitrary user memory"}},
		{"variable moved", `t:syscalls:sys_enter_openat { $p = args->filename; $p = $p + 1; printf("%s\n", str($p)); }`, ctx | user,
			[]string{"str($p): str() of $p, which holds more than the context's pointers, reads arbitrary user memory"}},
		{"variable incremented", `t:syscalls:sys_enter_openat { $p = args->filename; $p++; printf("%s\n", str($p)); }`, ctx | user, nil},
		{"variable incremented inside", `t:syscalls:sys_enter_openat { $p = args->filename; @[$p++] = count(); printf("%s\n", str($p)); }`, ctx | user, nil},
		{"variable of integer", `t:syscalls:sys_enter_openat { $p = args->filename; if (pid) { $p = args->dfd; } printf("%s\n", str($p)); }`, ctx | user, nil},
		{"ternary with offset", `t:syscalls:sys_enter_openat { printf("%s\n", str(pid ? args->filename : args->filename + 1)); }`, ctx | user, nil},
		{"uprobe arg plus offset", `u:/bin/work:add_one { printf("%s\n", str(arg0 + 8)); }`, ctx | user,
			[]string{"str(arg0 + 8): str() of a computed address reads arbitrary user memory"}},
		{"uaddr", `u:/bin/work:add_one { printf("%d\n", *uaddr("g32")); }`, user,
			[]string{"*uaddr(\"g32\"): * of uaddr() reads arbitrary user memory"}},
		{"buf of arithmetic", `t:syscalls:sys_enter_read { printf("%r\n", buf(args->buf + 64, 64)); }`, ctx | user,
			[]string{"buf(args->buf + 64, 64): buf() of pointer arithmetic reads arbitrary user memory"}},
		{"join of map", "t:syscalls:sys_enter_execve { @a[tid] = args->argv; join(@a[tid]); }", ctx | user,
			[]string{"join(@a[tid]): join() of a map value reads arbitrary user memory"}},

		// Kernel memory.
		{"buf of integer in BEGIN", `BEGIN { printf("%rx\n", buf(0xffffffff81000000, 64)); }`, kernel,
			[]string{"buf(0xffffffff81000000, 64): buf() of an integer reads arbitrary kernel memory"}},
		{"str of integer", `BEGIN { printf("%s\n", str(0xffff888000000000)); }`, kernel,
			[]string{"str(0xffff888000000000): str() of an integer reads arbitrary kernel memory"}},
		{"str of kaddr", `BEGIN { printf("%s\n", str(kaddr("linux_banner"))); }`, kernel | kaddr,
			[]string{"str(kaddr(\"linux_banner\")): str() of kaddr() reads arbitrary kernel memory", "kaddr(\"linux_banner\"): kaddr() reveals a kernel address"}},
		// * of an integer reads 8 bytes there, as bpftrace does
		// (loads.bt's *kaddr("avenrun")).
		{"deref of kaddr", `BEGIN { printf("%d\n", *kaddr("avenrun")); }`, kernel | kaddr, nil},
		{"deref of an integer field", `t:syscalls:sys_enter_openat { @[*args->dfd] = count(); }`, ctx | kernel, nil},
		{"kernel pointer field", `t:skb:kfree_skb { printf("%r\n", buf(args->skbaddr, 16)); }`, ctx | kernel,
			[]string{"buf(args->skbaddr, 16): buf() of args->skbaddr, a kernel pointer, reads kernel memory"}},
		{"kernel pointer deref", `t:skb:kfree_skb { @[*args->data] = count(); }`, ctx | kernel,
			[]string{"*args->data: * of args->data, a kernel pointer, reads kernel memory"}},
		{"kernel pointer plus offset", `t:skb:kfree_skb { @[*(args->data + 1)] = count(); }`, ctx | kernel,
			[]string{"*(args->data + 1): * of pointer arithmetic reads arbitrary kernel memory"}},
		{"raw argument", `rawtracepoint:sys_enter { printf("%s\n", str(arg0)); }`, ctx | kernel,
			[]string{"str(arg0): str() of arg0, a kernel pointer, reads kernel memory"}},
		{"tp_btf kernel string", `tp_btf:task_rename { printf("%s\n", str(args.comm)); }`, ctx | kernel, nil},
		{"integer field", `t:syscalls:sys_enter_openat { printf("%s\n", str(args->dfd)); }`, ctx | kernel,
			[]string{"str(args->dfd): str() of an integer reads arbitrary kernel memory"}},
		{"cast user pointer", `u:/bin/work:add_one { printf("%s\n", str((uint64)arg0)); }`, ctx | kernel, nil},
		{"integer in a uprobe", `u:/bin/work:add_one { printf("%s\n", str(0x1000)); }`, kernel, nil},

		// Struct access through BTF is kernel memory, each field, and
		// curtask is a kernel address.
		{"curtask field", `BEGIN { printf("%d\n", curtask->pid); }`, kernel | kaddr,
			[]string{"curtask: curtask reveals the current task's kernel address", "curtask->pid: field 'pid' of struct task_struct, read through BTF, is kernel memory"}},
		{"curtask chain", `t:syscalls:sys_enter_openat { @[curtask->real_parent->comm] = count(); }`, kernel | kaddr,
			[]string{"curtask: curtask reveals the current task's kernel address", "curtask->real_parent: field 'real_parent' of struct task_struct, read through BTF, is kernel memory"}},
		{"tp_btf struct field", `tp_btf:sched_switch { @[args->next->comm] = count(); }`, ctx | kernel,
			[]string{"args->next->comm: field 'comm' of struct task_struct, read through BTF, is kernel memory"}},
		{"cast integer to struct", `BEGIN { @ = ((struct task_struct *)0xffff888000000000)->pid; }`, kernel,
			[]string{"((struct task_struct *)0xffff888000000000)->pid: field 'pid' of struct task_struct, read through BTF, is kernel memory"}},
		{"str of struct pointer field", `BEGIN { printf("%s\n", str(curtask->real_parent)); }`, kernel | kaddr, nil},
		{"sizeof struct", `BEGIN { printf("%d\n", sizeof(struct task_struct) + sizeof(curtask->pid)); }`, 0, nil},

		// Kernel addresses.
		{"kaddr printed", `BEGIN { printf("%lx\n", kaddr("jiffies")); }`, kaddr,
			[]string{"kaddr(\"jiffies\"): kaddr() reveals a kernel address"}},
		{"kaddr compared", `BEGIN { if (kaddr("jiffies") > 0xffffffff90000000) { printf("high\n"); } }`, kaddr, nil},
		{"kstack perf", `t:syscalls:sys_enter_openat { @[kstack(perf)] = count(); }`, ctx | kaddr,
			[]string{"kstack(perf): kstack(perf) prints raw kernel addresses"}},
		{"ksym of context", `t:kmem:kmalloc { @[ksym(args->call_site)] = count(); }`, ctx | kaddr, nil},
		{"ksym of user value", `t:syscalls:sys_enter_openat { printf("%s\n", ksym(args->dfd)); }`, ctx | kaddr,
			[]string{"ksym(args->dfd): ksym() names any address it is given, which reveals where the kernel lies"}},
		{"ustack perf", `u:/bin/work:add_one { @[ustack(perf)] = count(); }`, ctx, nil},
		// bpftrace's pointer casts and a script's own structs (issue
		// 18): in a uprobe, the traced process's memory.
		{"pointer cast of a uprobe arg", `u:/bin/work:add_one { @ = *(int32 *)arg0; }`, ctx | user,
			[]string{"*(int32 *)arg0: * of an integer cast to a pointer reads arbitrary user memory"}},
		{"script struct in a uprobe", `struct S { int a; char s[8]; } u:/bin/work:add_one { @ = ((struct S *)arg0)->a; }`, ctx | user,
			[]string{"((struct S *)arg0)->a: field 'a' of struct S, read through a pointer, is the traced process's memory"}},
		{"script struct value in a uprobe", `struct S { int a; char s[8]; } u:/bin/work:add_one { @ = *(struct S *)arg0; }`, ctx | user,
			[]string{"*(struct S *)arg0: struct S, read through a pointer, is the traced process's memory"}},
		{"pointer cast in BEGIN", `BEGIN { @ = *(int32 *)0x1000; }`, kernel,
			[]string{"*(int32 *)0x1000: * of an integer cast to a pointer reads arbitrary kernel memory"}},
		{"uptr of a context pointer", `t:syscalls:sys_enter_openat { printf("%s\n", str(uptr(args->filename))); }`, ctx | userCtx, nil},
		{"kptr of a user pointer", `t:syscalls:sys_enter_openat { printf("%s\n", str(kptr(args->filename))); }`, ctx | kernel,
			[]string{"str(kptr(args->filename)): str() of the value of kptr() reads arbitrary kernel memory"}},
		{"stack argument of a uprobe", `u:/bin/work:add_one { @ = sarg1; }`, ctx | user,
			[]string{"sarg1: sarg1 is read from the traced process's stack"}},
		{"cat reads the host's files", `i:ms:10 { cat("/proc/%d/environ", pid); }`, kernel,
			[]string{`cat("/proc/%d/environ", pid): cat() reads any file of the host, with the broker's privileges`}},
		// pton() is a constant; macaddr() reads through its pointer.
		{"pton", `t:syscalls:sys_enter_openat { printf("%s\n", ntop(pton("::1"))); @[pton("1.2.3.4")] = count(); }`, 0, nil},
		{"macaddr of a context pointer", `t:syscalls:sys_enter_openat { printf("%s\n", macaddr(args->filename)); }`, ctx | userCtx, nil},
		{"macaddr of a kernel address", `BEGIN { @ = macaddr(0x1000); }`, kernel,
			[]string{"macaddr(0x1000): macaddr() of an integer reads arbitrary kernel memory"}},
		{"macaddr in a uprobe", `u:/bin/work:add_one { @ = macaddr(arg0); }`, ctx | userCtx, nil},
		{"cgroup_path names host directories", `t:syscalls:sys_enter_openat { printf("%s\n", cgroup_path(cgroup)); }`, kernel,
			[]string{"cgroup_path(cgroup): cgroup_path() names the host's cgroup directories"}},
		{"cgroup", `t:syscalls:sys_enter_openat { @[cgroup] = count(); }`, 0, nil},
		// reg() reads the context; ctx is the kernel's context pointer,
		// and a cast of it reads kernel memory.
		{"reg", `u:/bin/work:add_one { @ = reg("sp"); }`, ctx, nil},
		{"reg as a pointer", `u:/bin/work:add_one { @ = *(uint16 *)(reg("sp") + 8); }`, ctx | user, nil},
		{"reg in an interval", `i:ms:1 { @ = reg("ip"); }`, ctx | kaddr, []string{`reg("ip"): reg() reads the registers the probe interrupted, which hold kernel addresses`}},
		{"ctx cast", `struct x { unsigned long x; } i:ms:1 { @ = ((struct x *)ctx)->x; }`, ctx | kernel | kaddr, nil},
		{"ctx printed", `i:ms:1 { printf("%p\n", ctx); }`, ctx | kaddr, []string{"ctx: ctx is the probe's context's kernel address"}},
		// A tracepoint's struct pointer: the kernel's, or a syscall's
		// argument in the calling process.
		{"tracepoint struct pointer", `t:filelock:fake_file { @ = args->file->f_flags; }`, ctx | kernel,
			[]string{"args->file->f_flags: field 'f_flags' of struct file, read through BTF, is kernel memory"}},
		{"syscall struct pointer", `t:syscalls:sys_enter_fake { @ = args->f->f_flags; }`, ctx | user,
			[]string{"args->f->f_flags: field 'f_flags' of struct file, read through a pointer, is the traced process's memory"}},
		{"script struct in BEGIN", `struct S { int a; } BEGIN { @ = ((struct S *)0x1000)->a; }`, kernel,
			[]string{"((struct S *)0x1000)->a: field 'a' of struct S, read through BTF, is kernel memory"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			prog := compileReads(t, tt.script)
			got, sites := prog.Reads()
			if got != tt.want {
				t.Errorf("reads %s, want %s", got, tt.want)
			}
			if tt.sites == nil {
				return
			}
			var gotSites []string
			for _, s := range sites {
				gotSites = append(gotSites, tt.script[s.From.Offset:s.To.Offset]+": "+s.What)
				if l, c := lineCol(tt.script, s.From.Offset); s.From.Line != l || s.From.Col != c {
					t.Errorf("%s: at %d:%d, want %d:%d", s.What, s.From.Line, s.From.Col, l, c)
				}
			}
			if strings.Join(gotSites, "\n") != strings.Join(tt.sites, "\n") {
				t.Errorf("sites:\n%s\nwant:\n%s", strings.Join(gotSites, "\n"), strings.Join(tt.sites, "\n"))
			}
		})
	}
}

func lineCol(src string, off int) (line, col int) {
	line = 1 + strings.Count(src[:off], "\n")
	return line, off - strings.LastIndexByte(src[:off], '\n')
}

// TestReadClassesPerProbe: each probe carries its own classes, for the
// gatekeeper, which judges probe by probe.
func TestReadClassesPerProbe(t *testing.T) {
	prog := compileReads(t, `BEGIN { printf("%s\n", str(0x1000)); } t:syscalls:sys_enter_openat { printf("%s\n", str(args->filename)); } END { printf("%lx\n", kaddr("jiffies")); }`)
	want := map[string]program.Reads{"BEGIN": kernel, "tracepoint:syscalls:sys_enter_openat": ctx | userCtx, "END": kaddr}
	for _, p := range prog.Probes {
		if p.Reads != want[p.Name] {
			t.Errorf("%s: reads %s, want %s", p.Name, p.Reads, want[p.Name])
		}
	}
}

// TestReadClassesNet: a helper read nothing noted accounts for counts as
// the widest class its helper allows.
func TestReadClassesNet(t *testing.T) {
	prog := compileReads(t, `t:syscalls:sys_enter_openat { @[comm] = count(); }`)
	p := prog.Probes[0]
	g := &gen{c: &compiler{file: &syntax.File{}}, in: &instance{kind: program.Tracepoint}}
	g.insns = append(p.Insns[:len(p.Insns):len(p.Insns)], asm.FnProbeReadUserStr.Call(), asm.FnProbeReadKernel.Call(), asm.FnGetCurrentTask.Call())
	var q program.Probe
	g.finishReads(&q)
	if want := user | kernel | kaddr; q.Reads != want {
		t.Errorf("reads %s, want %s", q.Reads, want)
	}
}

// FuzzReadClasses: whatever compiles, the classes bound what the code's
// helpers can read, and every site the classes name points into the
// source at a class the probe has.
func FuzzReadClasses(f *testing.F) {
	for _, s := range []string{
		`t:syscalls:sys_enter_execve { $p = args->argv; join($p); printf("%s %s\n", str(args->argv[1]), str(*(args->argv + 2))); }`,
		`t:syscalls:sys_enter_read { $i = 3; @[buf(args->buf + $i, args->count)] = count(); }`,
		`t:syscalls:sys_enter_openat { @p[tid] = args->filename; } t:syscalls:sys_exit_openat { printf("%s\n", str(@p[tid])); }`,
		`BEGIN { printf("%s %lx %rx\n", str(0xffff888000000000), kaddr("x"), buf(kaddr("y"), 8)); }`,
		`t:skb:kfree_skb { @[kstack(perf), ksym(args->skbaddr)] = count(); $d = *args->data; }`,
		`u:/bin/work:add_one { printf("%s %s %d\n", str(arg0), str(arg1 + 8), *uaddr("g32")); }`,
		`rawtracepoint:sys_enter { printf("%s\n", str(arg0)); } tp_btf:user_arg { printf("%s\n", str(args.buf)); }`,
		`t:syscalls:sys_enter_openat { $p = args->filename; while ($i < 3) { $p = $i ? $p : args->filename; $i++; } printf("%s\n", str(pid ? $p : args->filename)); }`,
		`tp_btf:sched_switch { $t = args->prev; @[$t->real_parent->comm, str(curtask->comm)] = sum(curtask->se.load.weight + (*curtask).pid); $s = str(((struct task_struct *)$t)->exe); }`,
	} {
		f.Add(s)
	}
	types := newFakeTypes()
	f.Fuzz(func(t *testing.T, src string) {
		file, err := syntax.Parse("stdin", []byte(src))
		if err != nil {
			return
		}
		prog, _, err := Compile(file, Options{Tracepoints: readsTracepoints{}, Uprobes: fakeUprobes{}, Symbols: fakeSymbols{}, BTFTracepoints: readsBTF{}, Kprobes: fakeKprobes{multi: true}, Types: types})
		if err != nil {
			return
		}
		for _, p := range prog.Probes {
			h := program.HelperReads(p.Insns)
			switch {
			case h&program.ReadsUser != 0 && p.Reads&(program.ReadsUser|program.ReadsUserContext) == 0,
				h&program.ReadsKernel != 0 && p.Reads&(program.ReadsKernel|program.ReadsContext) == 0,
				h&program.ReadsKernelAddr != 0 && p.Reads&program.ReadsKernelAddr == 0:
				t.Fatalf("%s: helpers read %s, the probe is classed %s", p.Name, h, p.Reads)
			}
			for _, s := range p.ReadSites {
				if len(s.Class.Classes()) != 1 || p.Reads&s.Class == 0 || s.What == "" {
					t.Fatalf("%s: site %+v of a probe classed %s", p.Name, s, p.Reads)
				}
				if s.From.Offset < 0 || s.To.Offset > len(src) || s.From.Offset > s.To.Offset {
					t.Fatalf("%s: site %+v outside the source (%d bytes)", p.Name, s, len(src))
				}
			}
		}
	})
}

// TestReadClassesBroker: BEGIN and END run in the broker, so a user read
// there reads the broker's own memory (its keys, its callers' tokens):
// kernel memory too, pointed at with what it reads.
func TestReadClassesBroker(t *testing.T) {
	prog := compileReads(t, "t:syscalls:sys_enter_read { @p = args->buf; }\nEND { printf(\"%s\\n\", str(@p + 8)); }")
	for _, p := range prog.Probes {
		want := ctx
		if p.Kind == program.End {
			want = user | kernel
		}
		if p.Reads != want {
			t.Errorf("%s: reads %s, want %s", p.Name, p.Reads, want)
		}
	}
	_, sites := prog.Reads()
	var kernelSite string
	for _, s := range sites {
		if s.Class == kernel {
			kernelSite = s.What
		}
	}
	if want := "str() of pointer arithmetic in END reads the broker's own memory"; kernelSite != want {
		t.Errorf("kernel site %q, want %q", kernelSite, want)
	}
}
