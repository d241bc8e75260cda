package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/bpf/btftp"
	"github.com/tracebroker/tracebroker/broker/script/compile"
)

// TestBTFStructKernel: struct access reads what the running kernel holds
// for the test's own child: its pid and tgid, its parent (this process),
// its comm; sizeof(struct task_struct) is the kernel's BTF's.
func TestBTFStructKernel(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	task, err := btftp.Type("struct", "task_struct")
	if err != nil {
		t.Skipf("no kernel BTF: %v", err)
	}
	size, err := btf.Sizeof(task)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	script := f.expand(`tracepoint:syscalls:sys_enter_openat /pid == cpid && str(args->filename) == "FILE"/ {
  printf("%d %d %d %d %d %s %d\n", cpid, curtask->pid, curtask->tgid, curtask->real_parent->tgid, curtask->group_leader->pid, curtask->comm, sizeof(struct task_struct));
}`)
	out, stderr, err := runScript(t, Request{Source: []byte(script), Command: f.expand("EXE open FILE 1")})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr)
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 2 {
		t.Fatalf("output %q", out)
	}
	var cpid, tid, tgid, parent, leader, sz int
	var comm string
	if _, err := fmt.Sscanf(lines[1], "%d %d %d %d %d %s %d", &cpid, &tid, &tgid, &parent, &leader, &comm, &sz); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	exe := filepath.Base(f.exe)
	if len(exe) > 15 {
		exe = exe[:15]
	}
	if want := fmt.Sprintf("%d %d %d %d %d %s %d", cpid, cpid, cpid, os.Getpid(), cpid, exe, size); lines[1] != want {
		t.Errorf("got %q, want %q (the child's pid thrice, this process as its parent, its comm, sizeof from BTF)", lines[1], want)
	}
}

// TestKernelTypes: the kernel's types come from its BTF, a missing one is
// btf.ErrNotFound (which the compiler words as bpftrace does).
func TestKernelTypes(t *testing.T) {
	if _, err := btftp.Type("struct", "task_struct"); err != nil {
		t.Skipf("no kernel BTF: %v", err)
	}
	for _, tc := range []struct{ kind, name, want string }{
		{"struct", "task_struct", "task_struct"},
		{"union", "bpf_attr", "bpf_attr"},
		{"enum", "bpf_map_type", "bpf_map_type"},
		{"", "pid_t", "pid_t"},
	} {
		typ, err := KernelTypes{}.Type(tc.kind, tc.name)
		if err != nil || typ.TypeName() != tc.want {
			t.Errorf("%s %s: %v, %v", tc.kind, tc.name, typ, err)
		}
	}
	if _, err := (KernelTypes{}).Type("struct", "tracebroker_nosuch"); !errorsIsNotFound(err) {
		t.Errorf("unknown struct: %v, want btf.ErrNotFound", err)
	}
}

// BenchmarkCompileStructChain: compiling a script with a 3-step -> chain
// against the running kernel's BTF, loaded once (the first compile
// pays for it; this measures the others).
func BenchmarkCompileStructChain(b *testing.B) {
	if _, err := btftp.Type("struct", "task_struct"); err != nil {
		b.Skipf("no kernel BTF: %v", err)
	}
	src := []byte(`BEGIN { printf("%d %s\n", curtask->real_parent->real_parent->pid, curtask->real_parent->comm); exit(); }`)
	opts := compile.Options{Tracepoints: KernelTracepoints{}, BTFTracepoints: KernelBTFTracepoints{}, Types: KernelTypes{}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := compileScript("stdin", src, nil, opts); err != nil {
			b.Fatal(err)
		}
	}
}

func errorsIsNotFound(err error) bool { return err != nil && errors.Is(err, btf.ErrNotFound) }

// TestReplayRefusesStructAccess: a replay says why struct access can
// not run over a recording, at the construct.
func TestReplayRefusesStructAccess(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`BEGIN { @ = ((struct task_struct *)0)->pid; }`, "stdin:1:14-37: ERROR: " + errReplayStruct.Error()},
		{`BEGIN { @ = curtask->pid; }`, "stdin:1:13-25: ERROR: Can not access field 'pid' on expression of type 'unsigned int64': " + errReplayStruct.Error()},
	} {
		_, _, err := compileScript("stdin", []byte(tc.src), nil, compile.Options{Types: noRecordedTypes{}})
		if err == nil || !strings.HasPrefix(err.Error(), tc.want+"\n") {
			t.Errorf("%s: %v, want %q", tc.src, err, tc.want)
		}
	}
}

// TestOffsetofKernel: offsetof is the running kernel's BTF's offset, in
// both modes (a constant: BEGIN runs it in the interpreter too).
func TestOffsetofKernel(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	task, err := btftp.Type("struct", "task_struct")
	if err != nil {
		t.Skipf("no kernel BTF: %v", err)
	}
	off := func(t btf.Type, name string) int {
		for _, m := range t.(*btf.Struct).Members {
			if m.Name == name {
				return int(m.Offset / 8)
			}
		}
		return -1
	}
	se, err := btftp.Type("struct", "sched_entity")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%d %d\n", off(task, "pid"), off(task, "se")+off(se, "load"))
	trust := testCollectors(t)
	for _, mode := range modes {
		out, stderr, err := runScript(t, Request{Source: []byte(`BEGIN { printf("%d %d\n", offsetof(struct task_struct, pid), offsetof(*curtask, se.load)); exit(); }`), Mode: mode, Collectors: trust})
		if err != nil {
			t.Fatalf("%s: %v\n%s", mode, err, stderr)
		}
		if got := strings.TrimPrefix(out, "Attaching 1 probe...\n"); !strings.HasPrefix(got, want) {
			t.Errorf("%s: %q, want %q", mode, got, want)
		}
	}
}

// TestRecordRefusesKernelOnly: a script whose reads no chain spells (a
// pointer from a map) is refused by record as replay would refuse it,
// before any file is written.
func TestRecordRefusesKernelOnly(t *testing.T) {
	needKernel(t)
	if _, err := btftp.Type("struct", "task_struct"); err != nil {
		t.Skipf("no kernel BTF: %v", err)
	}
	out := filepath.Join(t.TempDir(), "rec.tbrec")
	src := `tracepoint:syscalls:sys_enter_getcwd { @t[tid] = curtask; } tracepoint:syscalls:sys_exit_getcwd { @ = ((struct task_struct *)@t[tid])->pid; }`
	err := Record(context.Background(), RecordRequest{Request: Request{Name: "stdin", Source: []byte(src), Collectors: testCollectors(t)}, Output: out})
	if err == nil || !strings.Contains(err.Error(), "cannot record for replay: tracepoint:syscalls:sys_exit_getcwd: ((struct task_struct *)@t[tid])->pid (through a map value) cannot run in interpreter mode") {
		t.Errorf("record: %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the recording file: %v, want none", err)
	}
}
