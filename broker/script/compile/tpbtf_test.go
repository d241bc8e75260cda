package compile

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// fakeBTF is a kernel's BTF tracepoints, their arguments as Linux 6.18's
// BTF has them, and one with a union passed by value, as the timer
// migration tracepoints (tmigr_*) have.
type fakeBTF struct{ err error }

var fakeBTFArgs = map[string][]Field{
	"sched_process_exec": {
		{Name: "p", Type: "struct task_struct *", Offset: 0, Size: 8, Kind: FieldPtr},
		{Name: "old_pid", Type: "pid_t", Offset: 8, Size: 4, Signed: true, Kind: FieldInt},
		{Name: "bprm", Type: "struct linux_binprm *", Offset: 16, Size: 8, Kind: FieldPtr},
	},
	"sched_switch": {
		{Name: "preempt", Type: "bool", Offset: 0, Size: 1, Kind: FieldInt},
		{Name: "prev", Type: "struct task_struct *", Offset: 8, Size: 8, Kind: FieldPtr},
		{Name: "next", Type: "struct task_struct *", Offset: 16, Size: 8, Kind: FieldPtr},
		{Name: "prev_state", Type: "unsigned int", Offset: 24, Size: 4, Kind: FieldInt},
	},
	"sys_enter": {
		{Name: "regs", Type: "struct pt_regs *", Offset: 0, Size: 8, Kind: FieldPtr},
		{Name: "id", Type: "long int", Offset: 8, Size: 8, Signed: true, Kind: FieldInt},
	},
	"task_rename": {
		{Name: "task", Type: "struct task_struct *", Offset: 0, Size: 8, Kind: FieldPtr},
		{Name: "comm", Type: "char *", Offset: 8, Size: 8, Kind: FieldPtr},
	},
	"fake_by_value": {
		{Name: "t", Type: "union tmigr_state", Offset: 0, Size: 8, Kind: FieldArray},
		{Name: "n", Type: "int", Offset: 16, Size: 4, Signed: true, Kind: FieldInt},
	},
}

func (b fakeBTF) Match(pattern string) ([]string, error) {
	if b.err != nil {
		return nil, b.err
	}
	var out []string
	for _, n := range []string{"fake_by_value", "sched_process_exec", "sched_switch", "sys_enter", "task_rename"} {
		if ok, _ := filepath.Match(pattern, n); ok {
			out = append(out, n)
		}
	}
	return out, nil
}

func (b fakeBTF) Args(name string) ([]Field, error) {
	if b.err != nil {
		return nil, b.err
	}
	return fakeBTFArgs[name], nil
}

func compileBTF(t testing.TB, src string, btf BTFTracepoints) (*program.Program, error) {
	t.Helper()
	f, err := syntax.Parse("stdin", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	prog, _, err := Compile(f, Options{Tracepoints: fakeTracepoints{}, BTFTracepoints: btf})
	return prog, err
}

// TestTpBTFProbes: tp_btf probes expand like tracepoints, one program per
// matched name, and read their arguments from the context's u64 slots:
// integers at their C size and sign, pointers through probe_read_kernel
// (a direct load would give the verifier a typed pointer).
func TestTpBTFProbes(t *testing.T) {
	prog, err := compileBTF(t, `tp_btf:sched_* { @[probe] = count(); }`, fakeBTF{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range prog.Probes {
		if p.Kind != program.TpBTF {
			t.Errorf("%s: kind %v, want TpBTF", p.Name, p.Kind)
		}
		names = append(names, p.Name+"="+p.Event)
	}
	if got, want := strings.Join(names, " "), "tp_btf:sched_process_exec=sched_process_exec tp_btf:sched_switch=sched_switch"; got != want {
		t.Errorf("probes %s, want %s", got, want)
	}

	ctxLoads := func(src string) []asm.Instruction {
		t.Helper()
		prog, err := compileBTF(t, src, fakeBTF{})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		var out []asm.Instruction
		for _, ins := range prog.Probes[0].Insns {
			if ins.OpCode.Class().IsLoad() && ins.Src == rCtx {
				out = append(out, ins)
			}
		}
		return out
	}
	for _, tc := range []struct {
		src  string
		off  int16
		size asm.Size
		sx   bool
	}{
		{`tp_btf:sys_enter /args.id == 79/ { @ = count(); }`, 8, asm.DWord, false},
		{`tp_btf:sys_enter /args->id == 79/ { @ = count(); }`, 8, asm.DWord, false},
		{`tp_btf:sched_process_exec { @ = args.old_pid; }`, 8, asm.Word, true},
		{`tp_btf:sched_switch { @ = args.prev_state; }`, 24, asm.Word, false},
		{`tp_btf:sched_switch { @ = args.preempt; }`, 0, asm.Byte, false},
		{`tp_btf:sched_process_exec { @ = arg1; }`, 8, asm.DWord, false},
		// A union by value's slot is readable raw, not as args.NAME.
		{`tp_btf:fake_by_value { @ = arg0; }`, 0, asm.DWord, false},
	} {
		loads := ctxLoads(tc.src)
		if len(loads) != 1 {
			t.Errorf("%s: %d context loads, want 1: %v", tc.src, len(loads), loads)
			continue
		}
		ins := loads[0]
		if ins.Offset != tc.off || ins.OpCode.Size() != tc.size || (ins.OpCode.Mode() == asm.MemSXMode) != tc.sx {
			t.Errorf("%s: %v, want a load of ctx+%d size %v sign-extended %v", tc.src, ins, tc.off, tc.size, tc.sx)
		}
	}
	// Pointers, as args.NAME or as a raw slot, are never loaded directly.
	for _, src := range []string{
		`tp_btf:task_rename { @[str(args.comm)] = count(); }`,
		`tp_btf:task_rename { @[str(arg1)] = count(); }`,
		`tp_btf:sys_enter { @ = args.regs; }`,
	} {
		if loads := ctxLoads(src); len(loads) != 0 {
			t.Errorf("%s: direct context loads %v", src, loads)
		}
	}
}

// TestTpBTFErrors: what is wrong with a tp_btf probe is one line at the
// probe or at the argument.
func TestTpBTFErrors(t *testing.T) {
	for _, tc := range []struct {
		src  string
		btf  BTFTracepoints
		want string
	}{
		{`tp_btf:nosuch { @ = count(); }`, fakeBTF{}, "stdin:1:1-14: ERROR: no BTF tracepoint named nosuch"},
		{`tp_btf:zz* { @ = count(); }`, fakeBTF{}, "stdin:1:1-11: ERROR: No probes matched tp_btf:zz*"},
		{`tp_btf:sched:sched_switch { }`, fakeBTF{}, "ERROR: tp_btf probe must be tp_btf:NAME"},
		{`tp_btf:sys_enter { @ = count(); }`, nil, "stdin:1:1-17: ERROR: tp_btf probes are not available"},
		{`tp_btf:sys_enter { @ = count(); }`, fakeBTF{err: errors.New("tp_btf probes need the kernel's BTF type information (/sys/kernel/btf/vmlinux), which this kernel does not provide")},
			"stdin:1:1-17: ERROR: tp_btf probes need the kernel's BTF type information (/sys/kernel/btf/vmlinux), which this kernel does not provide"},
		{`tp_btf:fake_by_value { @ = args.t; }`, fakeBTF{}, "stdin:1:33-34: ERROR: args.t has type 'union tmigr_state', which can not be read: only integer and pointer arguments can"},
		{`tp_btf:sys_enter { @ = args.nosuch; }`, fakeBTF{}, "stdin:1:29-35: ERROR: tracepoint sys_enter has no argument named 'nosuch' (it has: regs, id)"},
		{`tp_btf:sys_enter { @ = arg2; }`, fakeBTF{}, "stdin:1:24-28: ERROR: tracepoint sys_enter has 2 arguments (arg0-arg1)"},
		{`tp_btf:sys_enter { @ = *args.regs; }`, fakeBTF{}, "Can not dereference a pointer to an unknown type"},
		{`tp_btf:sys_enter { @ = retval; }`, fakeBTF{}, "The retval builtin can only be used with 'kretprobe' and 'uretprobe' probes"},
		{`tracepoint:syscalls:sys_enter_openat { @ = arg0; }`, fakeBTF{}, "The arg0 builtin can only be used with 'kprobes', 'uprobes' and 'usdt' probes"},
	} {
		_, err := compileBTF(t, tc.src, tc.btf)
		wantOneError(t, tc.src, err, tc.want)
	}
}

// wantOneError checks that compiling src failed with one error, whose
// text (position, message, source line) contains want.
func wantOneError(t *testing.T, src string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: compiled without error, want %q", src, want)
		return
	}
	l, ok := err.(syntax.ErrorList)
	if !ok {
		t.Errorf("%s: error %T %v is not an ErrorList", src, err, err)
		return
	}
	got := l.Format("stdin", []byte(src))
	if !strings.Contains(got, want) {
		t.Errorf("%s: got\n%s\nwant it to contain\n%s", src, got, want)
	}
	if n := strings.Count(got, "ERROR"); n != 1 {
		t.Errorf("%s: %d errors, want 1:\n%s", src, n, got)
	}
}
