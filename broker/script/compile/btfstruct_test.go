package compile

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// fakeTypes is a kernel's BTF in miniature: a task_struct with a field of
// each kind struct access reads (integers of each width and sign, a
// typedef, an enum, bitfields, a char array, a pointer to itself, an
// embedded struct, an anonymous union, a function pointer, a u64 array).
type fakeTypes map[string]btf.Type

func newFakeTypes() fakeTypes {
	s8 := &btf.Int{Name: "signed char", Size: 1, Encoding: btf.Signed}
	char := &btf.Int{Name: "char", Size: 1, Encoding: btf.Signed}
	u16 := &btf.Int{Name: "unsigned short", Size: 2}
	i32 := &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	u32 := &btf.Int{Name: "unsigned int", Size: 4}
	u64 := &btf.Int{Name: "long long unsigned int", Size: 8}
	pid := &btf.Typedef{Name: "pid_t", Type: i32}
	state := &btf.Enum{Name: "task_state", Size: 4, Signed: true, Values: []btf.EnumValue{{Name: "A", Value: 0}}}
	weight := &btf.Struct{Name: "load_weight", Size: 16, Members: []btf.Member{
		{Name: "weight", Type: u64, Offset: 0},
		{Name: "inv_weight", Type: u32, Offset: 64},
	}}
	se := &btf.Struct{Name: "sched_entity", Size: 24, Members: []btf.Member{
		{Name: "load", Type: weight, Offset: 0},
		{Name: "on_rq", Type: u32, Offset: 128},
	}}
	task := &btf.Struct{Name: "task_struct", Size: 160}
	file := &btf.Fwd{Name: "file", Kind: btf.FwdStruct}
	anon := &btf.Union{Size: 4, Members: []btf.Member{
		{Name: "flags", Type: u32, Offset: 0},
		{Name: "small", Type: s8, Offset: 0},
	}}
	task.Members = []btf.Member{
		{Name: "__state", Type: &btf.Volatile{Type: u32}, Offset: 0},
		{Name: "prio", Type: s8, Offset: 32},
		{Name: "ioprio", Type: u16, Offset: 48},
		{Name: "pid", Type: pid, Offset: 64},
		{Name: "tgid", Type: pid, Offset: 96},
		{Name: "real_parent", Type: &btf.Pointer{Target: task}, Offset: 128},
		{Name: "comm", Type: &btf.Array{Type: char, Nelems: 16}, Offset: 192},
		{Name: "se", Type: se, Offset: 320},
		{Name: "", Type: anon, Offset: 512},
		{Name: "in_execve", Type: u32, Offset: 544, BitfieldSize: 1},
		{Name: "in_iowait", Type: u32, Offset: 545, BitfieldSize: 1},
		{Name: "wide", Type: u64, Offset: 550, BitfieldSize: 20},
		{Name: "state", Type: state, Offset: 576},
		{Name: "exe", Type: &btf.Pointer{Target: file}, Offset: 640},
		{Name: "fn", Type: &btf.Pointer{Target: &btf.FuncProto{Return: i32}}, Offset: 704},
		{Name: "mask", Type: &btf.Array{Type: u64, Nelems: 4}, Offset: 768},
		{Name: "ppid", Type: &btf.Pointer{Target: &btf.Pointer{Target: i32}}, Offset: 1024},
		{Name: "sched_entity_ptr", Type: &btf.Pointer{Target: &btf.Const{Type: se}}, Offset: 1088},
		{Name: "ratio", Type: &btf.Float{Name: "double", Size: 8}, Offset: 1152},
		{Name: "filename", Type: &btf.Pointer{Target: char}, Offset: 1216},
		{Name: "names", Type: &btf.Array{Type: &btf.Array{Type: char, Nelems: 16}, Nelems: 2}, Offset: 1280},
		{Name: "weights", Type: &btf.Array{Type: weight, Nelems: 3}, Offset: 1536},
	}
	fileFull := &btf.Struct{Name: "file", Size: 16, Members: []btf.Member{{Name: "f_flags", Type: u32, Offset: 64}}}
	return fakeTypes{"struct task_struct": task, "struct sched_entity": se, "struct load_weight": weight,
		"struct file": fileFull, "union anon_u": anon, "enum task_state": state, "struct pt_regs": &btf.Struct{Name: "pt_regs", Size: 168}}
}

func (f fakeTypes) Type(kind, name string) (btf.Type, error) {
	if t, ok := f[kind+" "+name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("%w: %s %s", btf.ErrNotFound, kind, name)
}

func compileTypes(t testing.TB, src string, types Types) (*program.Program, error) {
	t.Helper()
	f, err := syntax.Parse("stdin", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	prog, _, err := Compile(f, Options{Tracepoints: fakeTracepoints{}, BTFTracepoints: fakeBTF{}, Types: types})
	return prog, err
}

// kernelReads lists each probe_read_kernel a probe makes as
// "SIZE@+OFF": the size in r2 and the offset added to the address in r3
// just before the call.
func kernelReads(p *program.Probe) []string { return helperReads(p.Insns, asm.FnProbeReadKernel) }

// helperReads is kernelReads for the helper fn.
func helperReads(insns asm.Instructions, fn asm.BuiltinFunc) []string {
	var out []string
	for i, ins := range insns {
		if !ins.IsBuiltinCall() || asm.BuiltinFunc(ins.Constant) != fn {
			continue
		}
		size, off := int64(-1), int64(0)
		for j := i - 1; j >= 0 && j >= i-4; j-- {
			in := insns[j]
			switch {
			case in.Dst == asm.R2 && in.OpCode.ALUOp() == asm.Mov && in.OpCode.Source() == asm.ImmSource:
				size = in.Constant
			case in.Dst == asm.R3 && in.OpCode.ALUOp() == asm.Add && in.OpCode.Source() == asm.ImmSource:
				off = in.Constant
			}
		}
		out = append(out, fmt.Sprintf("%d@+%d", size, off))
	}
	return out
}

// TestBTFStructAccess: each field is read at its offset in the kernel's
// layout, with its own size, one probe_read_kernel per step of a chain;
// sizeof gives the C sizes.
func TestBTFStructAccess(t *testing.T) {
	types := newFakeTypes()
	for _, tc := range []struct {
		src   string
		reads string // each probe_read_kernel, in order
		typ   string // of @, when set
	}{
		{`BEGIN { @ = curtask->pid; }`, "4@+8", "int64"},
		{`BEGIN { @ = curtask->__state; }`, "4@+0", "uint64"},
		{`BEGIN { @ = curtask->prio; }`, "1@+4", "int64"},
		{`BEGIN { @ = curtask->ioprio; }`, "2@+6", "uint64"},
		{`BEGIN { @ = curtask->state; }`, "4@+72", "int64"},
		{`BEGIN { @ = curtask->real_parent->pid; }`, "8@+16 4@+8", ""},
		{`BEGIN { @ = curtask->real_parent->real_parent->real_parent->tgid; }`, "8@+16 8@+16 8@+16 4@+12", ""},
		{`BEGIN { @ = ((struct task_struct *)curtask)->real_parent->pid; }`, "8@+16 4@+8", ""},
		{`BEGIN { $t = (struct task_struct *)1234; @ = $t->tgid; }`, "4@+12", ""},
		{`BEGIN { @ = curtask->se.load.inv_weight; }`, "4@+48", "uint64"},
		{`BEGIN { @ = curtask->se.on_rq; }`, "4@+56", ""},
		{`BEGIN { @ = (*curtask).pid; }`, "4@+8", ""},
		// The anonymous union's fields are the struct's.
		{`BEGIN { @ = curtask->flags + curtask->small; }`, "4@+64 1@+64", ""},
		// Bitfields read their container, shifted and masked.
		{`BEGIN { @ = curtask->in_execve; }`, "1@+68", "uint64"},
		{`BEGIN { @ = curtask->in_iowait; }`, "1@+68", ""},
		{`BEGIN { @ = curtask->wide; }`, "4@+68", ""},
		// A pointer to a forward-declared struct reaches the definition.
		{`BEGIN { @ = curtask->exe->f_flags; }`, "8@+80 4@+8", ""},
		{`BEGIN { @ = *curtask->ppid; }`, "8@+128 8@+0", ""},
		{`BEGIN { @ = curtask->sched_entity_ptr->on_rq; }`, "8@+136 4@+16", ""},
		// Other arrays are read an element at a time, at a literal index.
		{`BEGIN { @ = curtask->mask[0] + curtask->mask[3]; }`, "8@+96 8@+120", ""},
		{`BEGIN { @ = curtask->weights[2].inv_weight; }`, "4@+232", "uint64"},
		// char[N] is a string, read whole.
		{`BEGIN { @ = curtask->comm; }`, "16@+24", "string[64]"},
		{`BEGIN { @[curtask->comm, str(curtask->comm)] = count(); }`, "16@+24 16@+24", ""},
		// tp_btf pointer arguments have their BTF types.
		{`tp_btf:sched_switch { @ = args->prev->pid + args.next->tgid; }`, "8@+8 4@+8 8@+16 4@+12", ""},
		// sizeof is the C size, known when compiling: no reads.
		{`BEGIN { @ = sizeof(struct task_struct) + sizeof(struct file *) + sizeof(curtask) + sizeof(curtask->pid) + sizeof(curtask->comm) + sizeof(curtask->se) + sizeof(curtask->in_execve); }`, "", ""},
	} {
		prog, err := compileTypes(t, tc.src, types)
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		got := strings.Join(kernelReads(prog.Probes[0]), " ")
		if got != tc.reads {
			t.Errorf("%s: reads %q, want %q", tc.src, got, tc.reads)
		}
		if tc.typ != "" {
			v := prog.Schema.Maps[0].Value
			got := fmt.Sprintf("int%d", 8*v.Size)
			switch {
			case v.Kind == program.String:
				got = fmt.Sprintf("string[%d]", v.Size)
			case !v.Signed:
				got = "u" + got
			}
			if got != tc.typ {
				t.Errorf("%s: @ is %s, want %s", tc.src, got, tc.typ)
			}
		}
	}
}

// TestBTFSizeof: sizeof of types and fields through BTF are constants.
func TestBTFSizeof(t *testing.T) {
	c := &compiler{opts: Options{Types: newFakeTypes()}, maps: map[string]*mapInfo{}}
	src := `BEGIN { @ = sizeof(struct task_struct) + sizeof(struct file *) + sizeof(curtask) + sizeof(curtask->pid) + sizeof(curtask->comm) + sizeof(curtask->se) + sizeof(curtask->in_execve); }`
	f, err := syntax.Parse("stdin", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	c.file = f
	c.expand()
	in := c.instances[0]
	c.check(in)
	if len(c.errs) > 0 {
		t.Fatal(c.errs)
	}
	var got []uint64
	for _, call := range sizeofCalls(f) {
		got = append(got, c.consts[call])
	}
	if want := []uint64{160, 8, 8, 4, 16, 24, 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sizeofs %v, want %v", got, want)
	}
}

func sizeofCalls(f *syntax.File) []*syntax.Call {
	var out []*syntax.Call
	var walk func(e syntax.Expr)
	walk = func(e syntax.Expr) {
		switch e := e.(type) {
		case *syntax.Binary:
			walk(e.X)
			walk(e.Y)
		case *syntax.Call:
			if e.Name == "sizeof" {
				out = append(out, e)
			}
		}
	}
	for _, s := range f.Probes[0].Body.Stmts {
		walk(s.(*syntax.AssignStmt).Rhs)
	}
	return out
}

// TestBTFStructErrors: mistakes are bpftrace 0.17's errors, positioned.
func TestBTFStructErrors(t *testing.T) {
	for _, tc := range []struct {
		src   string
		types Types
		want  string
	}{
		{`BEGIN { @ = curtask->nosuch; }`, nil,
			"stdin:1:13-28: ERROR: Struct/union of type 'struct task_struct' does not contain a field named 'nosuch'"},
		{`BEGIN { @ = ((struct nosuch *)curtask)->pid; }`, nil,
			"stdin:1:14-38: ERROR: Unknown struct/union: 'struct nosuch'"},
		{`BEGIN { @ = curtask->pid->x; }`, nil,
			"stdin:1:13-28: ERROR: Can not access field 'x' on expression of type 'int64'"},
		{`BEGIN { $x = 1; @ = $x->pid; }`, nil,
			"stdin:1:21-28: ERROR: Can not access field 'pid' on expression of type 'int64'"},
		{`BEGIN { @ = curtask.pid; }`, nil,
			"stdin:1:13-24: ERROR: Can not access field 'pid' on type 'struct task_struct *'. Try dereferencing it first, or using '->'"},
		{`BEGIN { @ = curtask->se->on_rq; }`, nil,
			"stdin:1:13-31: ERROR: Can not dereference struct/union of type 'struct sched_entity'. It is not a pointer."},
		{`BEGIN { @ = sizeof(struct nosuch); }`, nil,
			"stdin:1:20-33: ERROR: Unknown identifier: 'struct nosuch'"},
		{`BEGIN { @ = (struct task_struct)curtask; }`, nil,
			`stdin:1:13-40: ERROR: Cannot cast to struct type "struct task_struct"`},
		{`BEGIN { @ = (struct task_struct *)"abc"; }`, nil,
			`stdin:1:13-40: ERROR: Cannot cast from "string[64]" to "struct task_struct *"`},
		{`BEGIN { @ = *curtask; }`, nil,
			"stdin:1:13-21: ERROR: struct task_struct can not be stored: a field has type 'double', which can not be printed"},
		{`BEGIN { @ = curtask->names; }`, nil,
			"stdin:1:13-27: ERROR: char[2][16] can not be stored: it is an array of strings, which can not be stored yet"},
		{`BEGIN { @ = curtask->mask[4]; }`, nil,
			"stdin:1:13-29: ERROR: the index 4 is out of bounds for array of size 4"},
		{`BEGIN { $i = 1; @ = curtask->mask[$i]; }`, nil,
			"stdin:1:21-38: ERROR: The array index operator [] only accepts literal integer indices."},
		{`BEGIN { @ = curtask->names[1]; }`, nil,
			"stdin:1:13-30: ERROR: The elements of 'char[2][16]' have type 'char[16]', which is an array of strings: not supported yet"},
		{`BEGIN { @ = curtask->ratio; }`, nil,
			"stdin:1:13-27: ERROR: Struct/union field 'ratio' of 'struct task_struct' has type 'double', which can not be read"},
		{`BEGIN { @ = curtask[1]; }`, nil,
			"stdin:1:13-23: ERROR: The [] operator can not be used on a pointer to struct task_struct: use ->"},
		{`BEGIN { printf("%d\n", curtask->se); }`, nil,
			"stdin:1:24-35: ERROR: printf: %d specifier expects a value of type integer"},
		{`tp_btf:sys_enter { @ = args->regs->ip; }`, nil,
			"stdin:1:24-38: ERROR: Struct/union of type 'struct pt_regs' does not contain a field named 'ip'"},
		// Without the kernel's BTF, struct access says why.
		{`BEGIN { @ = curtask->pid; }`, noTypes{},
			"stdin:1:13-25: ERROR: Can not access field 'pid' on expression of type 'unsigned int64': struct access needs the kernel's BTF type information (/sys/kernel/btf/vmlinux), which this kernel does not provide"},
		{`BEGIN { @ = sizeof(struct task_struct); }`, noTypes{},
			"stdin:1:20-38: ERROR: struct access needs the kernel's BTF type information"},
	} {
		types := tc.types
		if types == nil {
			types = newFakeTypes()
		}
		_, err := compileTypes(t, tc.src, types)
		wantOneError(t, tc.src, err, tc.want)
	}
}

// noTypes is a kernel without BTF.
type noTypes struct{}

func (noTypes) Type(kind, name string) (btf.Type, error) {
	return nil, errors.New("struct access needs the kernel's BTF type information (/sys/kernel/btf/vmlinux), which this kernel does not provide")
}

// TestAttacksBTFStruct: what a script's author can make struct access do.
// A long chain does not exhaust the BPF stack; a struct read is kernel
// memory however its pointer was come by, a field named as a context
// field included; and every probe that reads a struct is one the
// interpreter refuses by name, not one it runs reading zeros.
func TestAttacksBTFStruct(t *testing.T) {
	types := newFakeTypes()
	compileRows := func(t *testing.T, src string) *program.Program {
		t.Helper()
		f, err := syntax.Parse("stdin", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		prog, _, err := Compile(f, Options{Tracepoints: readsTracepoints{}, BTFTracepoints: readsBTF{}, Types: types})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		return prog
	}
	t.Run("item5/long_chain_one_stack_slot", func(t *testing.T) {
		src := "BEGIN { @ = curtask" + strings.Repeat("->real_parent", 100) + "->pid; }"
		p := compileRows(t, src).Probes[0]
		if n := len(kernelReads(p)); n != 101 {
			t.Errorf("%d reads, want 101", n)
		}
	})
	for _, tc := range []struct {
		name, src string
		want      program.Reads
	}{
		// A user pointer cast to a struct, kernel type or not, is read
		// from the traced process with probe_read_user (issue 18), as
		// bpftrace reads a syscall's struct sockaddr: a kernel address
		// put there reads nothing, so read:user is what it needs.
		{"item5/user_pointer_cast_to_struct", `t:syscalls:sys_enter_openat { printf("%s\n", ((struct task_struct *)args->filename)->comm); }`, ctx | user},
		{"item5/field_named_as_context_field", `t:syscalls:sys_enter_openat { printf("%s\n", str(((struct task_struct *)args->filename)->filename)); }`, ctx | user},
		{"item5/field_of_user_tp_btf_argument", `tp_btf:user_arg { @ = ((struct task_struct *)args.buf)->pid; }`, ctx | user},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := compileRows(t, tc.src).Probes[0]
			if p.Reads != tc.want {
				t.Errorf("reads %s, want %s", p.Reads, tc.want)
			}
		})
	}
	// Interpreter mode's collector reads what a chain from the task or
	// the context reads (TestKReads); a read through any other pointer
	// is refused by name, never run reading zeros.
	t.Run("item5/interp_refuses_by_name", func(t *testing.T) {
		for src, want := range map[string]string{
			`t:syscalls:sys_enter_openat /curtask->pid == 1/ { @ = count(); }`:                        "",
			`tp_btf:sched_switch { @[args->next->comm] = count(); }`:                                  "",
			`tp_btf:sched_switch { @[((struct task_struct *)@p[cpu])->comm] = count(); @p[cpu] = 1 }`: "((struct task_struct *)@p[cpu])->comm (through a map value)",
			`BEGIN { @ = sizeof(struct task_struct); }`:                                               "",
		} {
			if got := compileRows(t, src).Probes[0].KernelOnly; got != want {
				t.Errorf("%s: KernelOnly %q, want %q", src, got, want)
			}
		}
	})
}

// TestBTFValue: the type any probe's BTF-typed value gets (fentry
// arguments use it): a struct pointer reaches its fields.
func TestBTFValue(t *testing.T) {
	types := newFakeTypes()
	c := &compiler{opts: Options{Types: types}}
	task := types["struct task_struct"]
	for _, tc := range []struct {
		typ  btf.Type
		want string
		why  string
	}{
		{&btf.Pointer{Target: task}, "ptr struct task_struct depth 1", ""},
		{&btf.Pointer{Target: &btf.Const{Type: task}}, "ptr struct task_struct depth 1", ""},
		{&btf.Typedef{Name: "pid_t", Type: &btf.Int{Size: 4, Encoding: btf.Signed}}, "int64", ""},
		{&btf.Int{Size: 8}, "uint64", ""},
		{task, "", "is not an integer or a pointer"},
	} {
		v, why := c.btfValue(tc.typ)
		got := v.String()
		if v.ptr {
			got = fmt.Sprintf("ptr %s depth %d", recordName(v.bt), v.depth)
		}
		if why != tc.why || (why == "" && got != tc.want) {
			t.Errorf("%v: %s %q, want %s %q", tc.typ, got, why, tc.want, tc.why)
		}
	}
}

// TestBTFPrint: print() of a value is the printf of the line bpftrace
// prints: records as { .field = value, ... }, arrays as [a,b], pointers
// signed, char arrays as strings, anonymous members' fields inline.
func TestBTFPrint(t *testing.T) {
	types := newFakeTypes()
	for _, tc := range []struct{ src, format, reads string }{
		{`BEGIN { print(curtask->se.load); }`, "{ .weight = %lu, .inv_weight = %lu }\n", "8@+40 4@+48"},
		{`BEGIN { print(curtask->se); }`, "{ .load = { .weight = %lu, .inv_weight = %lu }, .on_rq = %lu }\n", "8@+40 4@+48 4@+56"},
		{`BEGIN { print(curtask->mask); }`, "[%lu,%lu,%lu,%lu]\n", "8@+96 8@+104 8@+112 8@+120"},
		{`BEGIN { print(curtask->weights[1]); }`, "{ .weight = %lu, .inv_weight = %lu }\n", "8@+208 4@+216"},
		{`BEGIN { print(curtask->pid); }`, "%ld\n", "4@+8"},
		{`BEGIN { print(curtask->comm); }`, "%s\n", "16@+24"},
		{`BEGIN { print(comm); }`, "%s\n", ""},
		{`BEGIN { print(1 + 2); }`, "%ld\n", ""},
		{`BEGIN { print((uint8)1); }`, "%lu\n", ""},
	} {
		prog, err := compileTypes(t, tc.src, types)
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		if f := prog.Schema.Formats; len(f) != 1 || f[0].Fmt != tc.format {
			t.Errorf("%s: formats %+v, want %q", tc.src, f, tc.format)
		}
		if got := strings.Join(kernelReads(prog.Probes[0]), " "); got != tc.reads {
			t.Errorf("%s: reads %q, want %q", tc.src, got, tc.reads)
		}
	}
	// A record with an anonymous union and a pointer: its fields inline,
	// the pointer signed.
	u32 := &btf.Int{Name: "unsigned int", Size: 4}
	s8 := &btf.Int{Name: "signed char", Size: 1, Encoding: btf.Signed}
	rec := &btf.Struct{Name: "r", Size: 24, Members: []btf.Member{
		{Name: "p", Type: &btf.Pointer{Target: u32}, Offset: 0},
		{Name: "", Type: &btf.Union{Size: 4, Members: []btf.Member{{Name: "flags", Type: u32}, {Name: "small", Type: s8}}}, Offset: 64},
		{Name: "bit", Type: u32, Offset: 96, BitfieldSize: 3},
	}}
	format, args, why := recordFormat(rec, &syntax.Ident{Name: "x"})
	if want := "{ .p = %ld, .flags = %lu, .small = %ld, .bit = %lu }"; why != "" || format != want || len(args) != 4 {
		t.Errorf("record: %q (%d args) %q, want %q (4 args)", format, len(args), why, want)
	}
	for _, tc := range []struct{ src, want string }{
		{`BEGIN { print(curtask); }`, "stdin:1:15-22: ERROR: struct task_struct * type passed to print() is not printable"},
		{`BEGIN { print(curtask->pid, 2); }`, "stdin:1:9-31: ERROR: print() of a value takes no top and div arguments (only a map's print does)"},
		{`BEGIN { print(*curtask); }`, "stdin:1:15-23: ERROR: struct task_struct can not be printed: a field has type 'double', which can not be printed"},
		{`BEGIN { print(kstack); }`, "stdin:1:15-21: ERROR: kstack type passed to print() is not printable"},
	} {
		_, err := compileTypes(t, tc.src, types)
		l, ok := err.(syntax.ErrorList)
		if !ok {
			t.Errorf("%s: error %v, want %q", tc.src, err, tc.want)
			continue
		}
		if got := l.Format("stdin", []byte(tc.src)); !strings.HasPrefix(got, tc.want+"\n") {
			t.Errorf("%s: got\n%s\nwant\n%s", tc.src, got, tc.want)
		}
	}
}

// TestOffsetof: offsetof(TYPE, FIELD) against the fake task_struct, with
// a type or a struct value, through embedded structs and anonymous
// members; and its mistakes, named at the construct.
func TestOffsetof(t *testing.T) {
	types := newFakeTypes()
	for _, tc := range []struct {
		src  string
		want uint64
		err  string
	}{
		{`BEGIN { @ = offsetof(struct task_struct, pid); }`, 8, ""},
		{`BEGIN { @ = offsetof(struct task_struct, se.load.inv_weight); }`, 48, ""},
		{`BEGIN { @ = offsetof(struct task_struct, flags); }`, 64, ""},
		{`BEGIN { @ = offsetof(*curtask, comm); }`, 24, ""},
		{`BEGIN { @ = offsetof(curtask->se, on_rq); }`, 16, ""},
		{`BEGIN { @ = offsetof(struct sched_entity, load); }`, 0, ""},
		{`BEGIN { @ = offsetof(struct task_struct, nosuch); }`, 0, "1:42: Struct/union of type 'struct task_struct' does not contain a field named 'nosuch'"},
		{`BEGIN { @ = offsetof(struct nosuch, pid); }`, 0, "1:22: Unknown identifier: 'struct nosuch'"},
		{`BEGIN { @ = offsetof(struct task_struct, pid.x); }`, 0, "1:42: 'pid_t' is not a struct or union: it has no field 'x'"},
		{`BEGIN { @ = offsetof(struct task_struct *, pid); }`, 0, "1:22: offsetof() of 'struct task_struct *', a pointer: it takes a struct or union type"},
		{`BEGIN { @ = offsetof(curtask, pid); }`, 0, "1:22: offsetof() takes a struct or union, not 'struct task_struct *'"},
		{`BEGIN { @ = offsetof(struct task_struct, real_parent->pid); }`, 0, "1:42: offsetof() takes a member's name or a path of names joined by '.'"},
		{`BEGIN { @ = offsetof(struct task_struct); }`, 0, "1:13: offsetof() requires 2 arguments (1 provided)"},
	} {
		prog, err := compileTypes(t, tc.src, types)
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("%s: %v, want %q", tc.src, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		// BEGIN's @ = CONST: the constant is loaded into r6 (rAcc).
		found := false
		for _, ins := range prog.Probes[0].Insns {
			if ins.OpCode.Class().IsALU() && ins.Dst == rAcc && ins.Constant == int64(tc.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no load of %d", tc.src, tc.want)
		}
	}
}
