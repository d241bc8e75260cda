package compile

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/internal/dwarfargs"
)

// fakeDebug is the DWARF of fakeUprobes' /bin/work: add_one(int *n,
// char c, struct Foo *foo, struct Big big, double d, unsigned short us,
// long seventh); add_two is not described. noDebug makes the file one
// without DWARF.
type fakeDebug struct{ noDebug bool }

var (
	dwInt  = &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	dwChar = &btf.Int{Name: "char", Size: 1, Encoding: btf.Signed | btf.Char}
	dwU16  = &btf.Int{Name: "short unsigned int", Size: 2}
	dwLong = &btf.Int{Name: "long int", Size: 8, Encoding: btf.Signed}
	dwFoo  = &btf.Struct{Name: "Foo", Size: 28, Members: []btf.Member{
		{Name: "a", Type: dwInt, Offset: 0},
		{Name: "b", Type: &btf.Array{Index: dwInt, Type: dwChar, Nelems: 10}, Offset: 32},
		{Name: "c", Type: &btf.Array{Index: dwInt, Type: dwInt, Nelems: 3}, Offset: 128},
	}}
	dwBig    = &btf.Struct{Name: "Big", Size: 24, Members: []btf.Member{{Name: "a", Type: dwLong}}}
	dwParams = []dwarfargs.Param{
		{Name: "n", CType: "int*", Type: &btf.Pointer{Target: dwInt}},
		{Name: "c", CType: "char", Type: dwChar},
		{Name: "foo", CType: "struct Foo*", Type: &btf.Pointer{Target: dwFoo}},
		{Name: "big", CType: "struct Big", Type: dwBig},
		{Name: "d", CType: "double", Type: &btf.Float{Name: "double", Size: 8}},
		{Name: "us", CType: "short unsigned int", Type: dwU16},
		{Name: "seventh", CType: "long int", Type: dwLong},
	}
)

func (d fakeDebug) Params(path, fn string) ([]dwarfargs.Param, error) {
	if d.noDebug {
		return nil, dwarfargs.ErrNoDebugInfo
	}
	if path != "/bin/work" || fn != "add_one" {
		return nil, fmt.Errorf("%s: %w", fn, dwarfargs.ErrNoFunc)
	}
	return dwParams, nil
}

func (d fakeDebug) Type(path, kind, name string) (btf.Type, error) {
	if !d.noDebug && kind == "struct" && name == "Foo" {
		return dwFoo, nil
	}
	return nil, fmt.Errorf("%s %s: %w", kind, name, btf.ErrNotFound)
}

func compileDebug(src string, debug DebugInfo) (*program.Program, error) {
	f, err := syntax.Parse("stdin", []byte(src))
	if err != nil {
		return nil, err
	}
	prog, _, err := Compile(f, Options{Tracepoints: fakeTracepoints{}, Uprobes: fakeUprobes{}, Debug: debug, Types: newFakeTypes()})
	if err != nil {
		return nil, fmt.Errorf("%s", syntax.ErrorList(err.(syntax.ErrorList)).Format("stdin", []byte(src)))
	}
	return prog, nil
}

// TestUprobeArgLoads: each parameter is read from its register in
// pt_regs, at its C size.
func TestUprobeArgLoads(t *testing.T) {
	tests := []struct {
		expr string
		off  int16
		size asm.Size
	}{
		{"args->n", 112, asm.DWord},
		{"args->c", 104, asm.Byte},
		{"args.foo", 96, asm.DWord},
		{"args->us", 64, asm.Half},
	}
	for _, tt := range tests {
		prog, err := compileDebug(`uprobe:/bin/work:add_one { @ = `+tt.expr+`; }`, fakeDebug{})
		if err != nil {
			t.Fatalf("%s: %v", tt.expr, err)
		}
		found := false
		for _, ins := range prog.Probes[0].Insns {
			if ins.OpCode.Class().IsLoad() && ins.Src == asm.R9 && ins.Offset == tt.off && ins.OpCode.Size() == tt.size {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no %v load of pt_regs+%d\n%v", tt.expr, tt.size, tt.off, prog.Probes[0].Insns)
		}
	}
}

// TestUprobeArgReads: a parameter is the context, and what a pointer
// parameter points to is the user memory the context reaches, as a
// tracepoint's pointer field's is; a struct read through it is the
// traced process's memory, as through (struct Foo *)arg2.
func TestUprobeArgReads(t *testing.T) {
	tests := []struct {
		body string
		want program.Reads
	}{
		{`@ = args->c`, ctx},
		{`@ = *args->n`, ctx | userCtx},
		{`@ = args->n[2]`, ctx | userCtx},
		{`@ = str(args->foo)`, ctx | userCtx},
		{`@ = *(args->n + 1000)`, ctx | user},
		{`@ = args->foo->a`, ctx | user},
		{`@ = ((struct Foo *)arg2)->a`, ctx | user},
		{`@ = args->foo->b`, ctx | user},
	}
	for _, tt := range tests {
		prog, err := compileDebug(`uprobe:/bin/work:add_one { `+tt.body+`; }`, fakeDebug{})
		if err != nil {
			t.Fatalf("%s: %v", tt.body, err)
		}
		if got := prog.Probes[0].Reads; got != tt.want {
			t.Errorf("%s reads %s, want %s", tt.body, got, tt.want)
		}
	}
}

func TestUprobeArgErrors(t *testing.T) {
	tests := []struct {
		src   string
		debug DebugInfo
		want  string
	}{
		{`uprobe:/bin/work:add_one { @ = args->nosuch; }`, fakeDebug{}, "stdin:1:32-44: ERROR: Can't find function parameter nosuch"},
		{`uprobe:/bin/work:add_one { @ = args->seventh; }`, fakeDebug{}, "ERROR: seventh is parameter 7 of add_one: only the first 6, passed in registers, can be read"},
		{`uprobe:/bin/work:add_one { @ = args->big.a; }`, fakeDebug{}, "ERROR: args->big has type 'struct Big', which is passed by value"},
		{`uprobe:/bin/work:add_one { @ = args->d; }`, fakeDebug{}, "ERROR: args->d has type 'double', which can not be read"},
		{`uprobe:/bin/work:add_two { @ = args->n; }`, fakeDebug{}, "ERROR: Can't find function parameter n"},
		{`uprobe:/bin/work:add_* { @ = args->n; }`, fakeDebug{}, "ERROR: Can't find function parameter n"},
		{`uprobe:/bin/work:add_one { @ = args->n; }`, fakeDebug{noDebug: true}, "stdin:1:1-25: ERROR: No debuginfo found for /bin/work"},
		{`uprobe:/bin/work:add_one { @ = args->n; }`, nil, "ERROR: uprobe args are not available here"},
		{`uretprobe:/bin/work:add_one { @ = args->n; }`, fakeDebug{}, "ERROR: The args builtin can only be used with tracepoint/kfunc/uprobe probes (uretprobe used here)"},
		{`uprobe:/bin/work:add_one { @ = args->foo->nosuch; }`, fakeDebug{}, "does not contain a field named 'nosuch'"},
		{`uprobe:/bin/work:add_one { @ = (struct Nosuch *)arg0; }`, fakeDebug{}, "Unknown struct/union: 'struct Nosuch'"},
		{`uprobe:/bin/work:add_one { @ = ((struct Foo *)arg0)->a; }`, fakeDebug{noDebug: true}, "Unknown struct/union: 'struct Foo'"},
	}
	for _, tt := range tests {
		_, err := compileDebug(tt.src, tt.debug)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s:\n got %v\nwant %s", tt.src, err, tt.want)
		}
	}
}

// TestUprobeTypesOrder: a binary's struct is the one a cast reaches,
// unless the script defines its own, as bpftrace has it.
func TestUprobeTypesOrder(t *testing.T) {
	tests := []struct {
		src  string
		off  int16 // the field's offset read from the struct
		size int
	}{
		{`uprobe:/bin/work:add_one { @ = ((struct Foo *)arg0)->c[1]; }`, 20, 4},
		{`struct Foo { long x; int c; } uprobe:/bin/work:add_one { @ = ((struct Foo *)arg0)->c; }`, 8, 4},
	}
	for _, tt := range tests {
		prog, err := compileDebug(tt.src, fakeDebug{})
		if err != nil {
			t.Fatalf("%s: %v", tt.src, err)
		}
		found := false
		for _, ins := range prog.Probes[0].Insns {
			// The member's address: the pointer plus its offset.
			if ins.OpCode.ALUOp() == asm.Add && ins.OpCode.Source() == asm.ImmSource && ins.Constant == int64(tt.off) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no read at offset %d\n%v", tt.src, tt.off, prog.Probes[0].Insns)
		}
	}
}

// TestUprobeArgSizeof: sizeof(args->NAME) is the parameter's C size.
func TestUprobeArgSizeof(t *testing.T) {
	c := &compiler{opts: Options{Uprobes: fakeUprobes{}, Debug: fakeDebug{}}, maps: map[string]*mapInfo{}}
	src := `uprobe:/bin/work:add_one { @ = sizeof(args->c) + sizeof(args->us) + sizeof(args->n) + sizeof(args.foo); }`
	f, err := syntax.Parse("stdin", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	c.file = f
	c.expand()
	c.check(c.instances[0])
	if len(c.errs) > 0 {
		t.Fatal(c.errs)
	}
	var got []uint64
	for _, call := range sizeofCalls(f) {
		got = append(got, c.consts[call])
	}
	if want := []uint64{1, 2, 8, 8}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sizeofs %v, want %v", got, want)
	}
}
