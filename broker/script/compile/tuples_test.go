package compile

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// TestTupleSizeof: sizeof() of a tuple is bpftrace 0.17's C layout of its
// elements (each checked against bpftrace 0.17 itself), whatever the
// tuple's storage.
func TestTupleSizeof(t *testing.T) {
	const defs = "struct F { int m; int n; } struct G { long a; } struct A { int x[4]; } struct B { char c; char d[3]; } "
	for _, tt := range []struct {
		expr string
		want uint64
	}{
		{`((int8) 1, (int64) 1, (int8) 1, (int64) 1)`, 32},
		{`((int8) 1, (int16) 1, (int32) 1)`, 8},
		{`((int32) 1, (int16) 1, (int8) 1)`, 8},
		{`((int8)-100, (int8) 100, "abcdef", 3, (int32) 1, (int64)-10, (int8)10, (int16)-555, "abc")`, 48},
		{`((int32)1, *((struct F *)0))`, 12},
		{`((int8)1, *((struct G *)0), (int8)1)`, 10}, // a struct is bytes to bpftrace
		{`((int32)1, ((struct A *)0)->x)`, 20},
		{`((int8)1, ((struct A *)0)->x)`, 20}, // an array aligns as its element
		{`(1, "abc")`, 16},
		{`("ab", (int8)1)`, 4},
		{`((int8)1, comm)`, 17},
		{`((int8)1, ((int8)-20, (int8)30))`, 3},
		{`((int8)1, (int16)2, "ab", ((int8)3, (int64)4))`, 24},
		{`((int8)1, kstack)`, 16},
		{`((int8)1, usym(1))`, 20},
		{`((int8)1, ntop(1))`, 28},
		{`((int8)1, strftime("%H", 1))`, 20},
		{`((int8)1, buf("abc", 3))`, 8},
		{`((int8)1, (uint16)pid)`, 4},
		{`(1, (2, (3, "deep"))).1`, 24},
		{`((int8)1, (int16)2).1`, 2},
		{`((int8)1, "abcdef").1`, 7},
	} {
		t.Run(tt.expr, func(t *testing.T) {
			src := defs + "BEGIN { @ = sizeof(" + tt.expr + "); }"
			f, err := syntax.Parse("stdin", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			c := &compiler{file: f, opts: Options{Tracepoints: fakeTracepoints{}}, maps: map[string]*mapInfo{}}
			c.defineTypes()
			c.expand()
			c.check(c.instances[0])
			if errs := c.errs.errorsOnly(); len(errs) > 0 {
				t.Fatal(errs.Format("stdin", []byte(src)))
			}
			call := f.Probes[0].Body.Stmts[0].(*syntax.AssignStmt).Rhs.(*syntax.Call)
			if got := c.consts[call]; got != tt.want {
				t.Errorf("sizeof = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestTupleLayout: a tuple stores each element in whole words, nested
// tuples, structs and arrays too, and the schema says where each is.
func TestTupleLayout(t *testing.T) {
	p, _, err := compileString(t, `struct F { int m; char c; } struct A { short x[3]; }
BEGIN { @t = (1, (int8)2, "ab", (3, "c"), *(struct F *)0, ((struct A *)0)->x, 4); }`)
	if err != nil {
		t.Fatal(err)
	}
	v := p.Schema.Maps[0].Value
	var got []string
	for i, e := range v.Elems {
		got = append(got, fmt.Sprintf("%d@%d/%d", e.Kind, v.Offs[i], e.Size))
	}
	want := []string{
		fmt.Sprintf("%d@0/8", program.Int),
		fmt.Sprintf("%d@8/8", program.Int),
		fmt.Sprintf("%d@16/64", program.String),
		fmt.Sprintf("%d@80/72", program.Tuple),
		fmt.Sprintf("%d@152/8", program.Record),
		fmt.Sprintf("%d@160/6", program.Array),
		fmt.Sprintf("%d@168/8", program.Int),
	}
	if strings.Join(got, " ") != strings.Join(want, " ") || v.Size != 176 {
		t.Errorf("layout %s size %d, want %s size 176", got, v.Size, want)
	}
	if in := v.Elems[3]; in.Offs[1] != 8 || in.Elems[1].Size != 64 {
		t.Errorf("nested tuple %+v", in)
	}
}

// TestTupleErrors: mistakes with tuples are bpftrace 0.17's errors, at
// the expression.
func TestTupleErrors(t *testing.T) {
	for _, tt := range []struct{ src, want string }{
		{`BEGIN { $t = (1, 2); print($t.2); }`, "stdin:1:28-32: ERROR: Invalid tuple index: 2. Found 2 elements in tuple."},
		{`BEGIN { $t = 1; print($t.0); }`, "stdin:1:23-27: ERROR: Can not access index 0 on expression of type 'int64'"},
		{`BEGIN { $t = (1, 2); @x = $t.1.0; }`, "stdin:1:27-33: ERROR: Can not access index 0 on expression of type 'int64'"},
		{`BEGIN { $t = (1, 2); print($t.x); }`, "stdin:1:28-32: ERROR: Tuples must be indexed with a constant and non-negative integer"},
		{`BEGIN { $t = (1, 2); print($t.99999999999999999999); }`, "integer literal out of range"},
		{`BEGIN { @t = (1, 2); @x = @t.5; }`, "stdin:1:27-31: ERROR: Invalid tuple index: 5. Found 2 elements in tuple."},
		{`BEGIN { @x = (1, count()); }`, "stdin:1:18-25: ERROR: count() should be directly assigned to a map"},
		{`BEGIN { @x = (1, printf("a")); }`, "stdin:1:18-29: ERROR: none can not be a tuple element"},
		{`BEGIN { @x = ((1, 2), 3); @x = (1, (2, 3)); }`, "ERROR: Type mismatch for @x: trying to assign value of type '(int64, (int64, int64))' when map already contains a value of type '((int64, int64), int64)'"},
		{`BEGIN { @x = (1, (2, "a")); @x = (1, (2, 3)); }`, "ERROR: Type mismatch for @x"},
		{`tracepoint:syscalls:sys_enter_openat { @x = args.0; }`, "does not contain a field named '0'"},
		{`BEGIN { $t = (1, 2); @x = $t->0; }`, "syntax error, unexpected integer, expecting identifier"},
		{`BEGIN { $t = (1, 2); $t.0 = 5; }`, "syntax error"},
	} {
		t.Run(tt.src, func(t *testing.T) {
			_, _, err := compileString(t, tt.src)
			if err == nil {
				t.Fatalf("compiled without error, want %q", tt.want)
			}
			got := err.Error()
			if l, ok := err.(syntax.ErrorList); ok {
				got = l.Format("stdin", []byte(tt.src))
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("got\n%s\nwant it to contain\n%s", got, tt.want)
			}
		})
	}
}

// TestTupleCompiles: what tuples can hold and where their elements go
// compiles (the side-by-side scripts run it).
func TestTupleCompiles(t *testing.T) {
	for _, src := range []string{
		`BEGIN { $v = 99; $t = (0, 1, "str", (5, 6), $v); printf("%d %d %s %d %d %d\n", $t.0, $t.1, $t.2, $t.3.0, $t.3.1, $t.4); }`,
		`BEGIN { @t = (0, 1, "str"); printf("%d %d %s\n", @t.0, @t.1, @t.2); }`,
		`BEGIN { print((1, 2, "string", (4, 5))); $t = (1, ((2, 3), "x")); print($t.1); print($t.1.0); }`,
		`struct F { int m; int n; } BEGIN { $t = (1, *(struct F *)0); @t = $t; @m = $t.1.m + @t.1.n; @f = $t.1; print($t); }`,
		`struct A { int x[4]; } BEGIN { $t = (1, ((struct A *)0)->x); @a = $t.1; @e = $t.1[2]; }`,
		`BEGIN { @[(1, (2, "a"))] = (3, ("b", 4)); $k = (5, (6, "c")); @[$k] = (7, ($k.1.1, 8)); }`,
		`BEGIN { $t = (kstack, comm, ntop(1)); @s = $t.0; @c[$t.1] = count(); @i = $t.2; }`,
		`BEGIN { @x = bswap(((int16)1, 2).0); @y = (1, "a").1 == "a"; }`,
	} {
		t.Run(src, func(t *testing.T) {
			if _, _, err := compileString(t, src); err != nil {
				if l, ok := err.(syntax.ErrorList); ok {
					t.Fatal(l.Format("stdin", []byte(src)))
				}
				t.Fatal(err)
			}
		})
	}
}
