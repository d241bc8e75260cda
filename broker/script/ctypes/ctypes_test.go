package ctypes

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// defs are laid out here and by gcc: the two must agree.
var defs = []string{
	`struct A {int32_t a; int32_t b; char c[28] }`,
	`struct T { uint32_t a; uint32_t b[2]; };`,
	`struct W { uint32_t a; struct T t; };`,
	`struct C { uint32_t a; void * b; struct W w[10]; };`,
	`struct P { char c; long l; short s; const char *p; unsigned char u; }`,
	`union U { char c; int i; long l[2]; struct P *p; }`,
	`struct B { int y[2][2]; }`,
	`struct N { int m; struct { int x; int y; } bar; int n; union { char c; long l; } u; }`,
	`struct Node { struct Node *next; struct Other *o; int v; }`,
	`struct Q { unsigned long long a; signed char b; unsigned short int c; long int d; _Bool e; u8 f; s64 g; size_t h; }`,
	`struct An { int a; struct { char b; long c; }; union { int d; short e; }; }`,
	`enum E { ONE, TWO = 5, THREE }`,
	`struct EE { enum E e; char c; }`,
}

// TestLayoutLikeGCC compiles the definitions with gcc and compares every
// member's offset and every type's size.
func TestLayoutLikeGCC(t *testing.T) {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("skipping: no gcc to compare with")
	}
	types := Types{}
	for _, d := range defs {
		if err := Parse(d, types); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
	}
	var c strings.Builder
	c.WriteString("#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <stdbool.h>\n#include <sys/types.h>\n")
	c.WriteString("typedef uint8_t u8; typedef int64_t s64;\n")
	for _, d := range defs {
		c.WriteString(strings.TrimSuffix(strings.TrimSpace(d), ";") + ";\n")
	}
	c.WriteString("int main(void) {\n")
	var want []string
	for _, d := range defs {
		name := strings.Join(strings.Fields(d)[:2], " ")
		typ := types[name]
		if _, ok := typ.(*btf.Enum); ok {
			continue
		}
		fmt.Fprintf(&c, "printf(\"sizeof %s %%zu\\n\", sizeof(%s));\n", name, name)
		n, err := btf.Sizeof(typ)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("sizeof %s %d", name, n))
		for _, m := range members(typ) {
			if m.Name == "" {
				continue
			}
			fmt.Fprintf(&c, "printf(\"%s.%s %%zu\\n\", offsetof(%s, %s));\n", name, m.Name, name, m.Name)
			want = append(want, fmt.Sprintf("%s.%s %d", name, m.Name, m.Offset/8))
		}
	}
	c.WriteString("return 0; }\n")
	dir := t.TempDir()
	src := filepath.Join(dir, "layout.c")
	if err := os.WriteFile(src, []byte(c.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "layout")
	if out, err := exec.Command(cc, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s\n%s", err, out, c.String())
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != strings.Join(want, "\n") {
		t.Errorf("gcc lays them out as\n%s\nthis package as\n%s", got, strings.Join(want, "\n"))
	}
}

func members(t btf.Type) []btf.Member {
	switch t := t.(type) {
	case *btf.Struct:
		return t.Members
	case *btf.Union:
		return t.Members
	}
	return nil
}

// TestBitfields: bitfields pack into units of their type as gcc packs
// them (the suite's bitfield_test.c reads them back).
func TestBitfields(t *testing.T) {
	for _, tc := range []struct {
		def  string
		want string // name@bitoffset:bits ... size
	}{
		{`struct Foo { unsigned int a:4, b:8, c:3, d:1, e:16; }`, "a@0:4 b@4:8 c@12:3 d@15:1 e@16:16 size 4"},
		{`struct X { char a; int b:20; int c:20; unsigned short d:3; }`, "a@0:0 b@8:20 c@32:20 d@52:3 size 8"},
		{`struct Y { char a:3; char :0; char b:2; long c:40; }`, "a@0:3 b@8:2 c@10:40 size 8"},
		{`struct Z { unsigned short a:9; unsigned short b:9; }`, "a@0:9 b@16:9 size 4"},
	} {
		types := Types{}
		if err := Parse(tc.def, types); err != nil {
			t.Fatalf("%s: %v", tc.def, err)
		}
		s := types[strings.Join(strings.Fields(tc.def)[:2], " ")].(*btf.Struct)
		var got []string
		for _, m := range s.Members {
			got = append(got, fmt.Sprintf("%s@%d:%d", m.Name, m.Offset, m.BitfieldSize))
		}
		got = append(got, fmt.Sprintf("size %d", s.Size))
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.def, g, tc.want)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct{ def, want string }{
		{`struct A { struct thread_info x; }`, "field has incomplete type 'struct thread_info'"},
		// A struct is incomplete until its '}': it can not be its own
		// member, nor be in an array or union inside itself.
		{`struct C { struct C a; }`, "field has incomplete type 'struct C'"},
		{`struct C { int x; struct C a[2]; }`, "field has incomplete type 'struct C'"},
		{`union U { int x; struct { union U u; } s; }`, "field has incomplete type 'union U'"},
		{`struct A { int x; } struct B`, "expected the end of the definition"},
		{`struct A { int (*f)(void); }`, "function pointers"},
		{`struct A { float f; }`, "unknown type name 'float'"},
		{`struct A { int x }`, ""},
		{`struct A { }`, "'struct A' has no members"},
		{`struct A { int x[99999999999]; }`, "array size"},
		{`struct A { char c:9; }`, "a bitfield of 9 bits in a 8-bit type"},
		{`struct A { unsigned signed x; }`, "'unsigned signed' is not a type"},
		{`struct A { int x; /* unterminated }`, "unterminated comment"},
		{`struct A { int x;`, "expected '}' to end 'struct A'"},
		{`struct A { int a[2][3][4][5][6][7][8][9][10][11][12][13][14][15][16][17][18][19][20][21][22][23][24][25][26][27][28][29][30][31][32][33][34]; }`, "more than"},
	} {
		err := Parse(tc.def, Types{})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.def, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.def, err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, d := range defs {
		f.Add(d)
	}
	f.Add(`struct Foo { unsigned int a:4, b:8, c:3, d:1, e:16; }`)
	f.Add(`struct foo { char c; struct kernel_s k[2]; struct task_struct t; }`)
	// What the kernel resolves: a struct of its own that nests another.
	inner := &btf.Struct{Name: "inner", Size: 8, Members: []btf.Member{{Name: "x", Type: &btf.Int{Size: 8}}}}
	kernel := map[string]btf.Type{
		"struct kernel_s":    &btf.Struct{Name: "kernel_s", Size: 16, Members: []btf.Member{{Name: "in", Type: inner}, {Name: "f", Type: &btf.Float{Size: 4}, Offset: 64}}},
		"struct task_struct": inner,
	}
	resolve := func(kind, name string) btf.Type { return kernel[kind+" "+name] }
	f.Fuzz(func(t *testing.T, def string) {
		types := Types{}
		if ParseResolving(def, types, resolve) != nil {
			return
		}
		for name, typ := range types {
			if _, ok := typ.(*btf.Enum); ok {
				continue
			}
			n, err := btf.Sizeof(typ)
			if err != nil || n > MaxSize {
				t.Fatalf("%s: size %d, %v", name, n, err)
			}
		}
	})
}

// TestResolving: a member of a struct the script does not define takes
// the resolver's (the kernel's) type, laid out by its size and
// alignment, except in a definition that redefines a type the resolver
// knows, as bpftrace 0.17 has it.
func TestResolving(t *testing.T) {
	u64 := &btf.Int{Name: "long unsigned int", Size: 8}
	u32 := &btf.Int{Name: "unsigned int", Size: 4}
	kernel := map[string]btf.Type{
		"struct thread_info": &btf.Struct{Name: "thread_info", Size: 24, Members: []btf.Member{
			{Name: "flags", Type: u64}, {Name: "syscall_work", Type: u64, Offset: 64}, {Name: "status", Type: u32, Offset: 128}}},
		"struct task_struct": &btf.Struct{Name: "task_struct", Size: 64, Members: []btf.Member{
			{Name: "thread_info", Type: &btf.Typedef{Name: "ti", Type: &btf.Const{Type: u64}}}, {Name: "util", Type: &btf.Float{Name: "double", Size: 8}, Offset: 64}}},
		"union kern_u": &btf.Union{Name: "kern_u", Size: 4, Members: []btf.Member{{Name: "a", Type: u32}}},
	}
	resolve := func(kind, name string) btf.Type { return kernel[kind+" "+name] }
	for _, tc := range []struct{ def, want string }{
		{`struct foo { struct task_struct t; }`, "t@0 size 64"},
		{`struct foo { char c; struct thread_info t; int after; }`, "c@0 t@64 after@256 size 40"},
		{`struct foo { char c; union kern_u u[3]; }`, "c@0 u@32 size 16"},
		{`struct foo { struct thread_info *p; struct nosuch *q; }`, "p@0 q@64 size 16"},
		{`struct foo { struct nosuch n; }`, "error: field has incomplete type 'struct nosuch'"},
		{`struct task_struct { struct thread_info x; }`, "error: field has incomplete type 'struct thread_info'"},
		{`struct task_struct { int x; }`, "x@0 size 4"},
	} {
		types := Types{}
		err := ParseResolving(tc.def, types, resolve)
		var got string
		if err != nil {
			got = "error: " + err.Error()
		} else {
			var parts []string
			for name, typ := range types {
				if name == "struct foo" || name == "struct task_struct" {
					s := typ.(*btf.Struct)
					for _, m := range s.Members {
						parts = append(parts, fmt.Sprintf("%s@%d", m.Name, m.Offset))
					}
					parts = append(parts, fmt.Sprintf("size %d", s.Size))
				}
			}
			got = strings.Join(parts, " ")
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s:\n got %s\nwant %s", tc.def, got, tc.want)
		}
	}
}
