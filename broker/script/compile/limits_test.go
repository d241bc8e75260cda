package compile

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// manyTracepoints is a kernel with n tracepoints many:tp0 … many:tpN-1,
// each with one integer field; it counts the format files read.
type manyTracepoints struct {
	n      int
	fields *atomic.Int64
}

func (m manyTracepoints) Match(cat, name string) ([][2]string, error) {
	if cat != "many" || name != "*" {
		return fakeTracepoints{}.Match(cat, name)
	}
	out := make([][2]string, m.n)
	for i := range out {
		out[i] = [2]string{"many", fmt.Sprintf("tp%d", i)}
	}
	return out, nil
}

func (m manyTracepoints) Fields(cat, name string) ([]Field, error) {
	if m.fields != nil {
		m.fields.Add(1)
	}
	if cat != "many" {
		return fakeTracepoints{}.Fields(cat, name)
	}
	return []Field{{Name: "v", Type: "long", Offset: 8, Size: 8, Signed: true, Kind: FieldInt}}, nil
}

// smallStack makes a recursion the bounds should have prevented fail
// the test (fatally: Go cannot recover a stack overflow) instead of
// passing on a machine with memory to spare. The deepest script the
// parser accepts needs about a tenth of it.
func smallStack(t testing.TB) {
	t.Cleanup(func() { debug.SetMaxStack(debug.SetMaxStack(16 << 20)) })
}

func compileWith(t testing.TB, src string, tp Tracepoints) (*program.Program, error) {
	t.Helper()
	f, err := syntax.Parse("stdin", []byte(src))
	if err != nil {
		return nil, err
	}
	prog, _, err := Compile(f, Options{Tracepoints: tp})
	return prog, err
}

// TestLongChains: chains of binary operators as long as the parser
// accepts are checked and generated with a loop, not one stack frame
// per term, and give what a short chain gives.
func TestLongChains(t *testing.T) {
	smallStack(t)
	n := syntax.MaxNodes/2 - 20
	for _, tt := range []struct {
		name, op string
		err      string // "" compiles
	}{
		{"and", " && ", ""},
		{"or", " || ", ""},
		{"compare", " < ", "BPF stack"},
		{"plus", " + ", "BPF stack"}, // every + keeps 8 bytes of stack for the statement
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := "BEGIN { @x = pid" + strings.Repeat(tt.op+"pid", n) + "; }"
			prog, err := compileWith(t, src, fakeTracepoints{})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(prog.Probes[0].Insns); got < 6*n {
				t.Errorf("%d instructions for %d terms", got, n)
			}
		})
	}
	// A short chain's code is the long one's prefix in kind: one check
	// that the loop generates what recursion did is the golden files.
}

// deepForms nests each form the parser counts, to just under MaxDepth,
// in scripts that check.
var deepForms = []struct {
	name string
	src  func(n int) string
}{
	{"parentheses", func(n int) string {
		return "BEGIN { @x = " + strings.Repeat("(", n) + "1" + strings.Repeat(")", n) + "; }"
	}},
	{"unary", func(n int) string { return "BEGIN { @x = " + strings.Repeat("-~", n/2) + "1; }" }},
	{"not", func(n int) string { return "BEGIN { @x = " + strings.Repeat("!", n) + "1; }" }},
	{"casts", func(n int) string { return "BEGIN { @x = " + strings.Repeat("(int32)", n) + "1; }" }},
	{"ternary", func(n int) string { return "BEGIN { @x = " + strings.Repeat("pid ? 2 : ", n) + "1; }" }},
	{"ternary_strings", func(n int) string { return `BEGIN { @x = ` + strings.Repeat(`pid ? "a" : `, n) + `"b"; }` }},
	{"nested_if", func(n int) string {
		return "BEGIN { " + strings.Repeat("if (pid) { ", n) + "@x = 1; " + strings.Repeat("} ", n) + "}"
	}},
	{"else_if", func(n int) string {
		return "BEGIN { " + strings.Repeat("if (pid) { @x = 1; } else ", n) + "{ @x = 2; } }"
	}},
	{"str", func(n int) string {
		return "BEGIN { @x = " + strings.Repeat("str(", n) + `"a"` + strings.Repeat(")", n) + "; }"
	}},
	{"map_keys", func(n int) string {
		return "BEGIN { @m[1] = 1; @x = " + strings.Repeat("@m[", n) + "1" + strings.Repeat("]", n) + "; }"
	}},
	{"tuples", func(n int) string {
		return "BEGIN { @x[" + strings.Repeat("(1, ", n) + "1" + strings.Repeat(")", n) + "] = 1; }"
	}},
	{"mixed", func(n int) string {
		return "BEGIN { @x = " + strings.Repeat("(1 + !(pid ? ", n/4) + "1" + strings.Repeat(" : 2))", n/4) + "; }"
	}},
}

// TestDeepNesting: everything the parser lets nest, nested to its bound,
// is checked and generated within a small stack; the kernel's own limits
// (its stack, its types) may refuse it, but with an error.
func TestDeepNesting(t *testing.T) {
	smallStack(t)
	for _, tt := range deepForms {
		t.Run(tt.name, func(t *testing.T) {
			n := syntax.MaxDepth - 4
			src := tt.src(n)
			f, err := syntax.Parse("stdin", []byte(src))
			if err != nil {
				t.Fatalf("does not parse at depth %d: %v", n, err)
			}
			_, _, err = Compile(f, Options{Tracepoints: fakeTracepoints{}})
			var list syntax.ErrorList
			if err != nil && !errors.As(err, &list) {
				t.Fatalf("%T %v", err, err)
			}
			t.Logf("%v", err)
		})
	}
}

// TestProbeLimit: a program may attach to MaxProbes probes, and a spec
// that would take it further is refused before the format of any of
// its tracepoints is read.
func TestProbeLimit(t *testing.T) {
	for _, tt := range []struct {
		name   string
		src    string
		n      int // tracepoints in many:*
		err    string
		fields int64 // format files read
	}{
		{"wildcard_at_bound", "tracepoint:many:* { @ = count(); }", MaxProbes, "", MaxProbes},
		{"wildcard_past", "tracepoint:many:* { @ = count(); }", MaxProbes + 1, fmt.Sprintf("stdin:1:1-18: ERROR: tracepoint:many:* matches %d probes, which makes %d in all; at most %d may attach", MaxProbes+1, MaxProbes+1, MaxProbes), 0},
		{"wildcard_after_others", "tracepoint:syscalls:sys_enter_openat, tracepoint:many:* { @ = count(); }", MaxProbes, "stdin:1:39-56: ERROR: tracepoint:many:* matches 1024 probes, which makes 1025 in all", 1},
		{"many_specs", "BEGIN" + strings.Repeat(", interval:s:1", MaxProbes+100) + " { @ = count(); }", 0, fmt.Sprintf("matches 1 probes, which makes %d in all", MaxProbes+1), 0},
		{"many_blocks", strings.Repeat("interval:s:1 { @ = count(); } ", MaxProbes+100), 0, fmt.Sprintf("matches 1 probes, which makes %d in all", MaxProbes+1), 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var reads atomic.Int64
			f, err := syntax.Parse("stdin", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = Compile(f, Options{Tracepoints: manyTracepoints{tt.n, &reads}})
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				var list syntax.ErrorList
				if !errors.As(err, &list) || len(list) != 1 {
					t.Fatalf("got %v, want one error", err)
				}
				if got := syntax.FormatError("stdin", []byte(tt.src), list[0]); !strings.Contains(got, tt.err) {
					t.Errorf("got %s, want %q", got, tt.err)
				}
			}
			if reads.Load() != tt.fields {
				t.Errorf("%d format files read, want %d", reads.Load(), tt.fields)
			}
		})
	}
}

// TestCheckWorkLimit: blocks repeated over many probes are bounded in
// sum, before any is checked.
func TestCheckWorkLimit(t *testing.T) {
	body := func(nodes int) string {
		// $x = args->v; is 4 nodes: statement, variable, field, args.
		return "{ " + strings.Repeat("$x = args->v; ", nodes/4) + "}"
	}
	n := 700
	for _, tt := range []struct {
		nodes int
		ok    bool
	}{
		{MaxCheckWork/n - 40, true},
		{MaxCheckWork/n + 40, false},
	} {
		src := "tracepoint:many:* " + body(tt.nodes)
		f, err := syntax.Parse("stdin", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = Compile(f, Options{Tracepoints: manyTracepoints{n: n}})
		work := n * f.Probes[0].Nodes
		if tt.ok != (err == nil) {
			t.Fatalf("%d probes × %d nodes = %d: %v", n, f.Probes[0].Nodes, work, err)
		}
		if !tt.ok {
			want := fmt.Sprintf("stdin:1:1-18: ERROR: program is too large: its blocks, once for each probe they attach to, come to %d expressions and statements, more than %d (here %d probes run a block of %d)", work, MaxCheckWork, n, f.Probes[0].Nodes)
			if got := err.(syntax.ErrorList).Format("stdin", []byte(src)); !strings.HasPrefix(got, want) {
				t.Errorf("got %s\nwant %s", got, want)
			}
		}
	}
}

// TestInsnLimit: code generation stops at MaxInsns, all probes together.
func TestInsnLimit(t *testing.T) {
	// Each comparison of two 64-byte strings is unrolled: 256
	// instructions for 5 nodes.
	stmts := func(n int) string {
		return `BEGIN { $a = "x"; ` + strings.Repeat("@x = $a == $a; ", n) + "}"
	}
	n := MaxInsns / 278 // instructions per comparison and its store
	if _, err := compileWith(t, stmts(n-5), fakeTracepoints{}); err != nil {
		t.Fatalf("%d comparisons: %v", n-5, err)
	}
	_, err := compileWith(t, stmts(n+5), fakeTracepoints{})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("program is too large: its code passes %d instructions at BEGIN", MaxInsns)) {
		t.Fatalf("%d comparisons: %v", n+5, err)
	}
	// Over many probes, the budget is shared.
	src := "tracepoint:many:* { $a = comm; " + strings.Repeat("@x = $a == $a; ", 8) + "}"
	_, err = compileWith(t, src, manyTracepoints{n: 200})
	if err == nil || !strings.Contains(err.Error(), "program is too large: its code passes") || !strings.Contains(err.Error(), "at tracepoint:many:tp") {
		t.Fatalf("200 probes: %v", err)
	}
}

// worstAccepted are the largest inputs of each shape that compile.
var worstAccepted = []struct {
	name string
	src  string
	tp   Tracepoints
}{
	{"and_chain", "BEGIN { @x = pid" + strings.Repeat(" && pid", syntax.MaxNodes/2-20) + "; }", fakeTracepoints{}},
	{"statements", "BEGIN { " + strings.Repeat("@x = pid; ", syntax.MaxNodes/4-20) + "}", fakeTracepoints{}},
	{"probes_times_block", "tracepoint:many:* { " + strings.Repeat("$x = args->v; ", MaxCheckWork/MaxProbes/4-2) + "}", manyTracepoints{n: MaxProbes}},
	{"instructions", `BEGIN { $a = "x"; ` + strings.Repeat("@x = $a == $a; ", MaxInsns/278-5) + "}", fakeTracepoints{}},
}

// BenchmarkCompileWorstAccepted: what compiling the largest inputs
// costs: B/op is all that one compilation allocates, peak-heap-MB the
// most heap in use while it runs (GC on, as in the daemon).
func BenchmarkCompileWorstAccepted(b *testing.B) {
	for _, tt := range worstAccepted {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			compile := func() {
				if _, err := compileWith(b, tt.src, tt.tp); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				compile()
			}
			b.ReportMetric(float64(peakHeap(compile))/1e6, "peak-heap-MB")
		})
	}
}

// peakHeap runs f and returns the most heap its run added to what was
// in use before, sampled every 100µs.
func peakHeap(f func()) uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	base := s[0].Value.Uint64()
	var peak atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Microsecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
		}
	}()
	f()
	close(stop)
	<-done
	if peak.Load() < base {
		return 0
	}
	return peak.Load() - base
}

// BenchmarkRefused: the 100,000-term chains and statements the issue
// names, refused.
func BenchmarkRefused(b *testing.B) {
	const n = 100_000
	for _, tt := range []struct{ name, src string }{
		{"plus", "BEGIN { @x = 1" + strings.Repeat(" + 1", n) + "; }"},
		{"and", "BEGIN { @x = 1" + strings.Repeat(" && 1", n) + "; }"},
		{"ternary", "BEGIN { @x = " + strings.Repeat("1 ? 1 : ", n) + "1; }"},
		{"if_else", "BEGIN { " + strings.Repeat("if (1) { @x = 1; } else ", n) + "{ @x = 2; } }"},
		{"statements", "BEGIN { " + strings.Repeat("@x = 1; ", n) + "}"},
		{"variable_chain_10k", variableChain(10_000)}, // refused for its stack, once it is generated
	} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := compileWith(b, tt.src, fakeTracepoints{}); err == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}

// TestDiagnosticsLimit: a script with an error per statement, over many
// probes, keeps a bounded list, and a list full of warnings still
// fails on the error after them.
func TestDiagnosticsLimit(t *testing.T) {
	src := "tracepoint:many:* { " + strings.Repeat("@x = nosuch(); ", 2000) + "}"
	_, err := compileWith(t, src, manyTracepoints{n: 30})
	var list syntax.ErrorList
	if !errors.As(err, &list) || len(list) == 0 || len(list) > maxDiagnostics+1 {
		t.Fatalf("%d errors: %v", len(list), err)
	}
	// Comparisons of signed and unsigned warn; the error comes last.
	warn := "BEGIN { $a = 1; $b = (uint64)2; " + strings.Repeat("@w = $a < $b; ", 2*maxDiagnostics)
	f, err := syntax.Parse("stdin", []byte(warn+"}"))
	if err != nil {
		t.Fatal(err)
	}
	if _, warns, err := Compile(f, Options{}); err != nil || len(warns) != maxDiagnostics {
		t.Fatalf("%d warnings, err %v", len(warns), err)
	}
	_, err = compileWith(t, warn+"@x = nosuch(); }", fakeTracepoints{})
	if !errors.As(err, &list) || len(list) != 1 || !strings.Contains(list[0].Msg, "Unknown function: nosuch") {
		t.Fatalf("got %v", err)
	}
}

// TestMapLimit: a program has at most MaxMaps maps, refused before any
// is declared, at the first map past the bound.
func TestMapLimit(t *testing.T) {
	maps := func(n int) string {
		var b strings.Builder
		b.WriteString("BEGIN { ")
		for i := range n {
			fmt.Fprintf(&b, "@m%d = %d; ", i, i)
		}
		return b.String() + "}"
	}
	if _, err := compileWith(t, maps(MaxMaps), fakeTracepoints{}); err != nil {
		t.Fatalf("%d maps: %v", MaxMaps, err)
	}
	src := maps(MaxMaps + 50)
	_, err := compileWith(t, src, fakeTracepoints{})
	var list syntax.ErrorList
	if !errors.As(err, &list) || len(list) != 1 {
		t.Fatalf("got %v", err)
	}
	at := strings.Index(src, fmt.Sprintf("@m%d ", MaxMaps))
	want := fmt.Sprintf("stdin:1:%d-%d: ERROR: program is too large: @m%d is its map number %d, and a program may have %d", at+1, at+5, MaxMaps, MaxMaps+1, MaxMaps)
	if got := list.Format("stdin", []byte(src)); !strings.HasPrefix(got, want) {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

// variableChain assigns each of n variables from the one before.
func variableChain(n int) string {
	var b strings.Builder
	b.WriteString("BEGIN { $v0 = 1; ")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "$v%d = $v%d; ", i, i-1)
	}
	return b.String() + "}"
}

// TestFarJump: a jump that a 16-bit offset cannot hold is refused: the
// probe's first checks (the trace stopped, the predicate) jump to its
// end, and past 32,767 instructions they wrapped, landing in the body.
// A program that long whose jumps all reach is fine.
func TestFarJump(t *testing.T) {
	body := strings.Repeat(`if (strcontains(comm, "zzzzzzzzzzzzzzz")) { @z = 1; } `, 104)
	_, _, err := compileString(t, "t:syscalls:sys_enter_openat /pid == 1/ { "+body+"@ = count(); }")
	if err == nil || !strings.Contains(err.Error(), "a jump in the code for tracepoint:syscalls:sys_enter_openat spans") {
		t.Errorf("a predicate jumping over 66,000 instructions: %v", err)
	}
	prog, _, err := compileString(t, "BEGIN { "+body+"@ = count(); }")
	if err != nil {
		t.Fatalf("BEGIN of 66,000 instructions whose jumps reach: %v", err)
	}
	if n := len(prog.Probes[0].Insns); n <= 1<<16 {
		t.Errorf("BEGIN has %d instructions; the test wants more than 65,536", n)
	}
}
