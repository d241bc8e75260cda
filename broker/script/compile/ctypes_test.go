package compile

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// TestScriptStructs: the C definitions a script starts with are the
// types its casts name, before the kernel's, laid out as C lays them
// out; a uprobe reads them from the traced process.
func TestScriptStructs(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		err       string // "" compiles
		reads     []string
		user      bool // read with probe_read_user
	}{
		{name: "field", src: `struct S { char c; long l; } BEGIN { @ = ((struct S *)0x1000)->l; }`, reads: []string{"8@+8"}},
		{name: "array of structs", src: "struct T { int a; int b[2]; }\nstruct C { int a; void *b; struct T w[10]; }\nBEGIN { @ = ((struct C *)0x1000)->w[2].b[1]; }", reads: []string{"4@+48"}},
		{name: "bitfield", src: `struct F { unsigned int a:4, b:8; } BEGIN { @ = ((struct F *)0)->b; }`, reads: []string{"2@+0"}},
		{name: "anonymous member", src: `struct N { int m; struct { int x; int y; }; } BEGIN { @ = ((struct N *)0)->y; }`, reads: []string{"4@+8"}},
		{name: "the script's struct before the kernel's", src: `struct task_struct { int x; long pid; } BEGIN { @ = curtask->pid; }`, reads: []string{"8@+8"}},
		{name: "uprobe reads the process", src: `struct S { int a; int b; } u:/bin/work:add_one { @ = ((struct S *)arg0)->b; }`, reads: []string{"4@+4"}, user: true},
		{name: "uprobe struct value", src: `struct S { int a; int b; } u:/bin/work:add_one { @s = *(struct S *)arg0; }`, reads: []string{"8@+0"}, user: true},
		{name: "arrays compared", src: `struct A { int x[4]; int y[4]; long z[2]; } BEGIN { $a = (struct A *)0x1000; @ = $a->x == $a->y; @n = $a->x != $a->y; }`},
		{name: "arrays of two types", src: `struct A { int x[4]; long z[2]; } BEGIN { $a = (struct A *)0x1000; @ = $a->x == $a->z; }`, err: "Type mismatch for '==': comparing 'int[4]' with 'long[2]'"},
		{name: "a char array's byte", src: `struct S { int a; unsigned char b[10]; } BEGIN { @ = ((struct S *)0x1000)->b[3]; }`, reads: []string{"1@+7"}},
		{name: "a map's record read back", src: `struct S { int a; int b[2]; } BEGIN { @s[1] = *(struct S *)0x1000; printf("%d\n", @s[1].b[1]); }`},
		{name: "a variable's record read back", src: `struct S { int a; int b[2]; } BEGIN { $s = *(struct S *)0x1000; printf("%d\n", $s.b[1]); }`},
		{name: "comments with braces in a definition", src: "struct A {\n  // a } brace\n  int x; /* } */\n  long y;\n}\nBEGIN { @ = ((struct A *)0)->y; }", reads: []string{"8@+8"}},
		{name: "several definitions, semicolons or not", src: "struct A { int x }; struct B { struct A a; struct B *next; } BEGIN { @ = ((struct B *)0)->a.x; }"},
		{name: "incomplete member", src: `struct A { struct thread_info x; } BEGIN { }`, err: "1:31: field has incomplete type 'struct thread_info' (define it before this one)"},
		{name: "redefinition", src: "struct A { int x; }\nstruct A { int y; } BEGIN { }", err: "2:1: redefinition of 'struct A'"},
		{name: "unknown type", src: "struct A {\n  float f;\n} BEGIN { }", err: "2:3: unknown type name 'float'"},
		{name: "unterminated", src: `struct A { int x; `, err: "unterminated struct definition"},
		{name: "no such field", src: `struct A { int x; } BEGIN { @ = ((struct A *)0)->y; }`, err: "Struct/union of type 'struct A' does not contain a field named 'y'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var prog *program.Program
			f, err := syntax.Parse("stdin", []byte(tc.src))
			if err == nil {
				prog, _, err = Compile(f, Options{Uprobes: fakeUprobes{}})
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.reads == nil {
				return
			}
			p := prog.Probes[len(prog.Probes)-1]
			var got []string
			if tc.user {
				got = helperReads(p.Insns, asm.FnProbeReadUser)
				if k := kernelReads(p); len(k) > 0 {
					t.Errorf("kernel reads %v in a uprobe's struct access", k)
				}
				if p.KernelOnly == "" {
					t.Error("interpreter mode would run it: its collectors copy no struct of the traced process")
				}
			} else {
				got = kernelReads(p)
			}
			if strings.Join(got, " ") != strings.Join(tc.reads, " ") {
				t.Errorf("reads %v, want %v", got, tc.reads)
			}
		})
	}
}
