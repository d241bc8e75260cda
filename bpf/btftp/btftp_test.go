package btftp

import (
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/cilium/ebpf/btf"
)

func TestDescribe(t *testing.T) {
	char := &btf.Int{Name: "char", Size: 1}
	long := &btf.Int{Name: "long int", Size: 8, Encoding: btf.Signed}
	pidT := &btf.Typedef{Name: "pid_t", Type: &btf.Typedef{Name: "__kernel_pid_t", Type: &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}}}
	boolT := &btf.Typedef{Name: "bool", Type: &btf.Int{Name: "_Bool", Size: 1, Encoding: btf.Bool}}
	task := &btf.Struct{Name: "task_struct", Size: 9000}
	for _, tc := range []struct {
		typ  btf.Type
		want Arg
	}{
		{long, Arg{Type: "long int", Kind: Int, Size: 8, Signed: true}},
		{pidT, Arg{Type: "pid_t", Kind: Int, Size: 4, Signed: true}},
		{boolT, Arg{Type: "bool", Kind: Int, Size: 1}},
		{&btf.Enum{Name: "hrtimer_mode", Size: 4}, Arg{Type: "enum hrtimer_mode", Kind: Int, Size: 4}},
		{&btf.Pointer{Target: &btf.Const{Type: char}}, Arg{Type: "const char *", Kind: Pointer, Size: 8, Depth: 1, ElemSize: 1, ElemType: "const char"}},
		{&btf.Pointer{Target: &btf.TypeTag{Value: "user", Type: &btf.Const{Type: char}}},
			Arg{Type: "const char __user *", Kind: Pointer, Size: 8, Depth: 1, ElemSize: 1, ElemType: "const char __user", User: true}},
		{&btf.Pointer{Target: &btf.Pointer{Target: &btf.TypeTag{Value: "user", Type: char}}},
			Arg{Type: "char __user **", Kind: Pointer, Size: 8, Depth: 2, ElemSize: 1, ElemType: "char __user"}},
		{&btf.Pointer{Target: task}, Arg{Type: "struct task_struct *", Kind: Pointer, Size: 8, Depth: 1, ElemType: "struct task_struct"}},
		{&btf.Pointer{Target: &btf.Void{}}, Arg{Type: "void *", Kind: Pointer, Size: 8, Depth: 1, ElemType: "void"}},
		{&btf.Struct{Name: "ktime", Size: 16}, Arg{Type: "struct ktime", Kind: Other, Size: 16}},
	} {
		if got := describe(tc.typ); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("describe(%v):\n got %+v\nwant %+v", tc.typ, got, tc.want)
		}
	}
}

func TestMatchGlob(t *testing.T) {
	names := []string{"sched_process_exec", "sched_process_fork", "sched_switch", "sys_enter"}
	for pattern, want := range map[string][]string{
		"sched_process_*": {"sched_process_exec", "sched_process_fork"},
		"sys_enter":       {"sys_enter"},
		"*":               names,
		"sched_?witch":    {"sched_switch"},
		"nosuch*":         nil,
	} {
		if got := match(names, pattern); !slices.Equal(got, want) {
			t.Errorf("match(%q) = %q, want %q", pattern, got, want)
		}
	}
	if _, err := Match("sched_["); err == nil {
		t.Error("Match of a malformed glob did not fail")
	}
}

// TestKernel reads the running kernel's BTF: the tracepoints' argument
// names and types are part of its ABI for BPF programs.
func TestKernel(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skipf("kernel BTF unavailable: %v", err)
	}
	names, err := Match("sched_process_*")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, "sched_process_exec") || !slices.IsSorted(names) {
		t.Errorf("Match(sched_process_*) = %q", names)
	}
	for name, want := range map[string][]Arg{
		"sys_enter": {
			{Name: "regs", Type: "struct pt_regs *", Kind: Pointer, Size: 8, Slot: 0, Depth: 1, ElemType: "struct pt_regs"},
			{Name: "id", Type: "long int", Kind: Int, Size: 8, Signed: true, Slot: 1},
		},
		"sched_process_exec": {
			{Name: "p", Type: "struct task_struct *", Kind: Pointer, Size: 8, Slot: 0, Depth: 1, ElemType: "struct task_struct"},
			{Name: "old_pid", Type: "pid_t", Kind: Int, Size: 4, Signed: true, Slot: 1},
			{Name: "bprm", Type: "struct linux_binprm *", Kind: Pointer, Size: 8, Slot: 2, Depth: 1, ElemType: "struct linux_binprm"},
		},
	} {
		got, err := Args(name)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Args(%s):\n got %+v\nwant %+v", name, got, want)
		}
	}
	args, err := Args("sched_switch")
	if err != nil {
		t.Fatal(err)
	}
	if len(args) < 4 || args[0].Name != "preempt" || args[0].Kind != Int || args[0].Size != 1 || args[0].Signed {
		t.Errorf("Args(sched_switch) = %+v", args)
	}
	if _, err := Args("no_such_tracepoint"); err == nil {
		t.Error("Args of an unknown tracepoint did not fail")
	}
}
