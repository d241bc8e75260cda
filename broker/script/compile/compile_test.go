package compile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/internal/golden"
)

// fakeTracepoints is a kernel with three tracepoints, their fields copied
// from Linux 6.18's format files.
type fakeTracepoints struct{}

var fakeFields = map[string][]Field{
	"syscalls:sys_enter_openat": {
		{Name: "__syscall_nr", Type: "int", Offset: 8, Size: 4, Signed: true, Kind: FieldInt},
		{Name: "dfd", Type: "int", Offset: 16, Size: 8, Signed: false, Kind: FieldInt},
		{Name: "filename", Type: "const char *", Offset: 24, Size: 8, Kind: FieldPtr},
		{Name: "flags", Type: "int", Offset: 32, Size: 8, Kind: FieldInt},
		{Name: "mode", Type: "umode_t", Offset: 40, Size: 8, Kind: FieldInt},
	},
	"syscalls:sys_exit_openat": {
		{Name: "__syscall_nr", Type: "int", Offset: 8, Size: 4, Signed: true, Kind: FieldInt},
		{Name: "ret", Type: "long", Offset: 16, Size: 8, Signed: true, Kind: FieldInt},
	},
	"sched:sched_process_exec": {
		{Name: "filename", Type: "__data_loc char[]", Offset: 8, Size: 4, Kind: FieldDataLoc},
		{Name: "pid", Type: "pid_t", Offset: 12, Size: 4, Signed: true, Kind: FieldInt},
		{Name: "old_pid", Type: "pid_t", Offset: 16, Size: 4, Signed: true, Kind: FieldInt},
	},
	"sched:sched_switch": {
		{Name: "prev_comm", Type: "char[16]", Offset: 8, Size: 16, Kind: FieldCharArray},
		{Name: "prev_pid", Type: "pid_t", Offset: 24, Size: 4, Signed: true, Kind: FieldInt},
		{Name: "prev_prio", Type: "int", Offset: 28, Size: 4, Signed: true, Kind: FieldInt},
		{Name: "prev_state", Type: "long", Offset: 32, Size: 8, Signed: true, Kind: FieldInt},
		{Name: "next_comm", Type: "char[16]", Offset: 40, Size: 16, Kind: FieldCharArray},
		{Name: "next_pid", Type: "pid_t", Offset: 56, Size: 4, Signed: true, Kind: FieldInt},
	},
}

func (fakeTracepoints) Match(cat, name string) ([][2]string, error) {
	var out [][2]string
	for _, k := range []string{"sched:sched_process_exec", "sched:sched_switch", "syscalls:sys_enter_openat", "syscalls:sys_exit_openat"} {
		c, n, _ := strings.Cut(k, ":")
		if ok, _ := filepath.Match(cat, c); !ok {
			continue
		}
		if ok, _ := filepath.Match(name, n); ok {
			out = append(out, [2]string{c, n})
		}
	}
	return out, nil
}

func (fakeTracepoints) Fields(cat, name string) ([]Field, error) {
	f, ok := fakeFields[cat+":"+name]
	if !ok {
		return nil, fmt.Errorf("tracepoint not found: %s:%s", cat, name)
	}
	return f, nil
}

func compileString(t testing.TB, src string) (*program.Program, syntax.ErrorList, error) {
	t.Helper()
	f, err := syntax.Parse("stdin", []byte(src))
	if err != nil {
		return nil, nil, err
	}
	return Compile(f, Options{Tracepoints: fakeTracepoints{}, Uprobes: fakeUprobes{}})
}

// fakeUprobes knows /bin/work with functions add_one and add_two.
type fakeUprobes struct{}

func (fakeUprobes) Resolve(path, fn string) ([]UprobeTarget, error) {
	if path != "/bin/work" {
		return nil, fmt.Errorf("uprobe target file '%s' does not exist or is not executable", path)
	}
	var out []UprobeTarget
	for i, name := range []string{"add_one", "add_two"} {
		if ok, _ := filepath.Match(fn, name); ok {
			out = append(out, UprobeTarget{Path: path, Func: name, Offset: 0x1100 + uint64(i)*0x10})
		}
	}
	if len(out) == 0 && !strings.Contains(fn, "*") {
		return nil, &uprobe.NoSymbolError{Path: path, Func: fn}
	}
	return out, nil
}

// TestUprobeProbes: uprobes expand to one program per function, carry
// the file offset, and read arguments and return values from pt_regs.
func TestUprobeProbes(t *testing.T) {
	prog, _, err := compileString(t, `uprobe:/bin/work:add_* { @[probe, arg1] = count(); } uretprobe:/bin/work:add_one { @r = sum(retval); }`)
	if err != nil {
		t.Fatal(err)
	}
	type probe struct {
		kind   program.ProbeKind
		name   string
		offset uint64
		ctxOff int16
	}
	want := []probe{
		{program.Uprobe, "uprobe:/bin/work:add_one", 0x1100, 104},
		{program.Uprobe, "uprobe:/bin/work:add_two", 0x1110, 104},
		{program.Uretprobe, "uretprobe:/bin/work:add_one", 0x1100, 80},
	}
	if len(prog.Probes) != len(want) {
		t.Fatalf("%d probes, want %d", len(prog.Probes), len(want))
	}
	for i, w := range want {
		p := prog.Probes[i]
		if p.Kind != w.kind || p.Name != w.name || p.Offset != w.offset || p.Path != "/bin/work" {
			t.Errorf("probe %d: %v %s %#x %s, want %+v", i, p.Kind, p.Name, p.Offset, p.Path, w)
		}
		found := false
		for _, ins := range p.Insns {
			if ins.OpCode.Class().IsLoad() && ins.Src == asm.R9 && ins.Offset == w.ctxOff && ins.OpCode.Size() == asm.DWord {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no 8-byte load of pt_regs+%d", p.Name, w.ctxOff)
		}
	}
}

// TestErrors: every rejected script names the problem at the right place.
func TestErrors(t *testing.T) {
	tests := []struct {
		src, want string
	}{
		{`BEGIN { @x = count2(); }`, "stdin:1:14-20: ERROR: Unknown function: count2"},
		{`rawtracepoint:sys_* { @ = count(); }`, "ERROR: rawtracepoint probe must be rawtracepoint:NAME (no wildcards)"},
		{`rawtracepoint:sched_switch { @ = arg12; }`, "ERROR: a raw tracepoint has at most 12 arguments (arg0-arg11)"},
		{`rawtracepoint:nosuch { @ = count(); }`, "stdin:1:1-21: ERROR: tracepoint not found: nosuch"},
		{`BEGIN { @x = (uint8)"abc"; }`, "stdin:1:14-26: ERROR: Cannot cast from \"string[64]\" to \"uint8\""},
		{`BEGIN { unroll(101) { @x++; } }`, "stdin:1:16-19: ERROR: unroll maximum value is 100"},
		{`BEGIN { unroll(0) { @x++; } }`, "stdin:1:16-17: ERROR: unroll minimum value is 1"},
		{`BEGIN { $n = 3; unroll($n) { @x++; } }`, "ERROR: unroll count must be an integer literal"},
		{`BEGIN { @y = ++(1); }`, "syntax error, unexpected ("},
		{`BEGIN { $s = "a"; @y = $s++; }`, "The + operator can not be used on expressions of types string[64], int64"},
		{`BEGIN { @x = kstack(5000); }`, "kstack(): the number of frames must be between 1 and 127"},
		{`BEGIN { @x = ustack(fast); }`, "ustack(): unknown stack mode 'fast' (bpftrace or perf)"},
		{`BEGIN { @x = kstack + 1; }`, "The + operator can not be used on expressions of types kstack, int64"},
		{`BEGIN { printf("%d", ksym(1)); }`, "printf: %d specifier expects a value of type integer (ksym supplied)"},
		{`BEGIN { printf("%s", buf(0, 1)); }`, "printf: %s specifier expects a value of type string (buffer supplied)"},
		{`BEGIN { printf("%r", 1); }`, "printf: %r specifier expects a value of type buffer (integer supplied)"},
		{`BEGIN { @x = buf(0); }`, "buf() requires a length for a pointer argument: buf(ptr, LEN)"},
		{`BEGIN { @x = strftime(1, 2); }`, "strftime() expects a string literal (integer provided)"},
		{`BEGIN { $n = 1; @x = strncmp("a", "b", $n); }`, "strncmp() expects a non-negative integer literal as third argument"},
		{`BEGIN { @x = strncmp("a", 1, 1); }`, "strncmp() only supports string arguments (integer provided)"},
		{`BEGIN { @x = strftime("%Y", "a"); }`, "strftime() only supports integer arguments (string provided)"},
		{`BEGIN { printf("%s", ksym("a")); }`, "ksym() expects an integer or pointer argument"},
		{`BEGIN { @x = strcontains("a"); }`, "strcontains() requires 2 arguments (1 provided)"},
		{`BEGIN { @x = has_key(@y[1], 1); @y[1] = 1; }`, "has_key() expects a map without a key as first argument"},
		{`BEGIN { @x = len(@y); @y[1] = 1; }`, "len() is not supported"},
		{`tracepoint:syscalls:sys_enter_openat { signal("KILL"); }`, "signal() is an unsafe function being used in safe mode"},
		{`BEGIN { @x = 1 ? printf("a") : printf("b"); }`, "Invalid expression for assignment"},
		{`BEGIN { @x = 1 ? printf("a") : 2; }`, "Ternary operator must return the same type: have 'none' and 'int64'"},
		{`BEGIN { system("id"); }`, "system() is an unsafe function being used in safe mode"},
		{`BEGIN { cat(1); }`, "cat() expects a string literal as first argument"},
		{`BEGIN { cat("/proc/%d/%s", 1); }`, "cat: Not enough arguments for format string (1 supplied, 2 expected)"},
		{`BEGIN { cat(); }`, "cat() requires at least 1 argument (0 provided)"},
		{`BEGIN { @x = bswap("a"); }`, "bswap() only supports integer arguments (string[64] provided)"},
		{`BEGIN { @x = buf("abc"); }`, "buf() expects a length argument for non-array type string"},
		{`BEGIN { @x = uaddr("main"); }`, "uaddr can only be used with 'uprobes' and 'usdt' probes"},
		{`BEGIN { time(1); }`, "time() expects a string literal (integer provided)"},
		// Argument counts worded as bpftrace's check_nargs and check_varargs.
		{`BEGIN { printf("%s", ksym()); }`, "ksym() requires one argument (0 provided)"},
		{`BEGIN { @x = sizeof(1, 2); }`, "sizeof() requires one argument (2 provided)"},
		{`BEGIN { @x = ntop(); }`, "ntop() requires at least one argument (0 provided)"},
		{`BEGIN { @x = ntop(1, 2, 3); }`, "ntop() takes up to 2 arguments (3 provided)"},
		{`BEGIN { @x = strftime("%Y"); }`, "strftime() requires at least 2 arguments (1 provided)"},
		{`BEGIN { time("a", "b"); }`, "time() takes up to one argument (2 provided)"},
		{`BEGIN { $s = "x"; @x = kaddr($s); }`, "kaddr() expects a string literal (string provided)"},
		{`BEGIN { @x = ntop(comm); }`, "ntop() expects an integer or an array of 4 or 16 bytes (string[16] provided)"},
		{`BEGIN { while ("a") { @x++; } }`, "stdin:1:16-19: ERROR: Invalid condition in while(): string[64]"},
		{`uprobe:/bin/work:nosuch { @ = count(); }`, "stdin:1:1-24: ERROR: Could not resolve symbol: /bin/work:nosuch"},
		{`uprobe:/bin/work:zz* { @ = count(); }`, "stdin:1:1-21: ERROR: No probes matched uprobe:/bin/work:zz*"},
		// An aggregation's value: in the kernel each CPU reads its own
		// share, so bpftrace 0.17 refuses computing with it.
		{`BEGIN { @n = count(); if (@n == 5) { exit(); } }`, "stdin:1:27-34: ERROR: Type mismatch for '==': comparing 'count' with 'int64'"},
		{`BEGIN { @s = sum(1); $x = @s + 1; }`, "ERROR: Type mismatch for '+': comparing 'sum' with 'int64'"},
		{`BEGIN { @n = count(); $x = @n + @n; }`, "ERROR: The + operator can not be used on expressions of types count, count"},
		{`BEGIN { @n = count(); @s = sum(1); $x = @n < @s; }`, "ERROR: Type mismatch for '<': comparing 'count' with 'sum'"},
		{`BEGIN { @n = count(); printf("%d\n", @n); }`, "ERROR: printf: %d specifier expects a value of type integer (count supplied)"},
		{`BEGIN { @n = count(); if (@n) { exit(); } }`, "ERROR: Invalid condition in if(): count"},
		{`BEGIN { @n = count(); $x = @n ? 1 : 2; }`, "ERROR: Invalid condition in ternary: count"},
		{`BEGIN { @n = max(1); $x = -@n; }`, "ERROR: The - operator can not be used on expressions of type 'max'"},
		{`BEGIN { @n = count(); $x = (uint32)@n; }`, "ERROR: Casts are not supported for type: \"count\""},
		{`BEGIN { @n = count(); @h = hist(@n); }`, "ERROR: hist() only supports integer arguments (count provided)"},
		{`BEGIN { @n = avg(1); $x = @n; $x = 1; }`, "ERROR: Type mismatch for $x: trying to assign value of type 'int64' when variable already contains a value of type 'avg'"},
		{`BEGIN { @n = count(); @y = @n; @y = 2; }`, "ERROR: Type mismatch for @y: trying to assign value of type 'int64' when map already contains a value of type 'count'"},
		{`BEGIN { @n = count(); $x = @n; @z = $x; @w = @z + 1; }`, "ERROR: Type mismatch for '+': comparing 'count' with 'int64'"},
		{`BEGIN { @n = count(); @a[@n] = 1; }`, "ERROR: count can not be used as a map key"},
		{`BEGIN { debugf("%d %d %d %d", 1, 2, 3, 4); }`, "stdin:1:9-42: ERROR: debugf: Cannot use more than 3 conversion specifiers"},
		{`BEGIN { debugf("%s", kstack); }`, "ERROR: debugf: only integers and strings can be printed (kstack supplied)"},
		{`BEGIN { debugf("%d", 1, 2); }`, "ERROR: debugf: Too many arguments for format string (2 supplied, 1 expected)"},
		// A list skips what does not resolve, but not all of it.
		{`uprobe:/bin/work:nosuch, uretprobe:/bin/work:nosuch2 { @ = count(); }`, "stdin:1:1-53: ERROR: none of the probe's 2 attach points resolved; the first: Could not resolve symbol: /bin/work:nosuch"},
		{`uprobe:/nosuch:f, uprobe:/bin/work:add_one { @ = count(); }`, "ERROR: uprobe target file '/nosuch' does not exist or is not executable"},
		{`uprobe:/nosuch:f { @ = count(); }`, "ERROR: uprobe target file '/nosuch' does not exist or is not executable"},
		{`uretprobe:/bin/work:add_one { @ = arg0; }`, "stdin:1:35-39: ERROR: The arg0 builtin can only be used with 'kprobes', 'uprobes' and 'usdt' probes"},
		{`uprobe:/bin/work:add_one { @ = retval; }`, "ERROR: The retval builtin can only be used with 'kretprobe' and 'uretprobe' probes"},
		{`uprobe:/bin/work:add_one { @ = arg9; }`, "ERROR: x86_64 doesn't support arg9"},
		{`BEGIN { printf("%d\n", $x); }`, "stdin:1:24-26: ERROR: Undefined or undeclared variable: $x"},
		{`END { print(@nope); }`, "stdin:1:13-18: ERROR: Undefined map: @nope"},
		{`BEGIN { @x = 1; @x = "a"; }`, "ERROR: Type mismatch for @x: trying to assign value of type 'string[64]' when map already contains a value of type 'int64'"},
		{`BEGIN { $x = "a"; $x = 1; }`, "ERROR: Type mismatch for $x: trying to assign value of type 'int64' when variable already contains a value of type 'string[64]'"},
		{`BEGIN { @x[1] = 1; @x["a"] = 2; }`, "ERROR: Argument mismatch for @x: trying to access with arguments: [string[64]] when map expects arguments: [int64]"},
		{`BEGIN { @x[1] = 1; @x = 2; }`, "@x used as a map without an explicit key (scalar map), previously used with an explicit key (non-scalar map)"},
		{`BEGIN { printf("%d %d\n", 1); }`, "printf: Not enough arguments for format string (1 supplied, 2 expected)"},
		{`BEGIN { printf("%d\n", 1, 2); }`, "printf: Too many arguments for format string (2 supplied, 1 expected)"},
		{`BEGIN { printf("%s\n", 1); }`, "printf: %s specifier expects a value of type string (integer supplied)"},
		{`BEGIN { printf("%d\n", comm); }`, "printf: %d specifier expects a value of type integer (string supplied)"},
		{`BEGIN { printf("%y\n", 1); }`, "printf: Too many arguments for format string (1 supplied, 0 expected)"},
		{`BEGIN { printf("%%d %i\n", 1, 2); }`, "printf: Too many arguments for format string (2 supplied, 1 expected)"},
		{`BEGIN { $x = count(); }`, "count() should be directly assigned to a map"},
		{`BEGIN { @x = lhist(1, 0, 10); }`, "lhist() requires 4 arguments (3 provided)"},
		{`BEGIN { @x = lhist(1, 10, 0, 1); }`, "lhist() min must be less than max"},
		{`BEGIN { @x = hist(comm); }`, "hist() only supports integer arguments (string[16] provided)"},
		{`BEGIN { @x = args->foo; }`, "The args builtin can only be used with tracepoint"},
		{`tracepoint:syscalls:sys_enter_openat { @x = args->nosuch; }`, "does not contain a field named 'nosuch'"},
		{`tracepoint:syscalls:sys_enter_nosuch { }`, "tracepoint not found: syscalls:sys_enter_nosuch"},
		{`tracepoint:nosuch:* { }`, "No probes matched tracepoint:nosuch:*"},
		{`kprobe:do_sys_open { }`, "kprobe probes are not available"},
		{`BEGIN { @x = cpid; }`, "cpid cannot be used without child command"},
		{`BEGIN { @x = "a" + 1; }`, "The + operator can not be used on expressions of types string[64], int64"},
		{`BEGIN { @x = comm < "a"; }`, "Type mismatch for '<': comparing 'string[16]' with 'string[64]'"},
		{`BEGIN { @x = 1 ? "a" : 2; }`, "Ternary operator must return the same type"},
		{`BEGIN { foo; }`, "Unknown identifier: 'foo'"},
		{`BEGIN {} BEGIN {}`, "More than one BEGIN probe defined"},
		{`interval:m:1 {}`, "m is not an accepted unit for interval probes"},
		{`BEGIN { @x = arg0; }`, "The arg0 builtin can only be used with 'kprobes', 'uprobes' and 'usdt' probes"},
		{`BEGIN { @h = hist(1); @y = @h; }`, "@h of type hist cannot be used in an expression"},
		{`BEGIN { print(@x[1]); @x[1] = 1; }`, "The map passed to print() should not be indexed by a key"},
		{`BEGIN { @x = pid[0]; }`, "The * and [] operators can only be used on pointers (uint64 provided)"},
		{`tracepoint:syscalls:sys_enter_openat { @x = args->filename["a"]; }`, "The array index operator [] expects an integer index (string[64] provided)"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			_, _, err := compileString(t, tt.src)
			if err == nil {
				t.Fatalf("compiled without error, want %q", tt.want)
			}
			l, ok := err.(syntax.ErrorList)
			if !ok {
				t.Fatalf("error %T %v is not an ErrorList", err, err)
			}
			got := l.Format("stdin", []byte(tt.src))
			if !strings.Contains(got, tt.want) {
				t.Errorf("got\n%s\nwant it to contain\n%s", got, tt.want)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	_, warns, err := compileString(t, `BEGIN { printf("%d\n", -7 / 2); @x = -1 < pid; }`)
	if err != nil {
		t.Fatal(err)
	}
	got := warns.Format("stdin", []byte(`BEGIN { printf("%d\n", -7 / 2); @x = -1 < pid; }`))
	for _, want := range []string{
		"WARNING: signed operands for '/' can lead to undefined behavior (cast to unsigned to silence warning)",
		"WARNING: comparison of integers of different signs: 'int64' and 'unsigned int64' can lead to undefined behavior",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings\n%s\nlack %q", got, want)
		}
	}
}

// TestAggregationValues: what bpftrace 0.17 lets a script do with an
// aggregation's value, it compiles: store it, print it, compare it with
// its own kind (TestErrors has the refusals).
func TestAggregationValues(t *testing.T) {
	for _, src := range []string{
		`BEGIN { @n = count(); $x = @n; @y = @n; @z = $x; }`,
		`BEGIN { @n = count(); print(@n); $b = @n == @n; }`,
		`BEGIN { @s = sum(1); @t = sum(2); $b = @s != @t; }`,
	} {
		if _, _, err := compileString(t, src); err != nil {
			t.Errorf("%s: %v", src, err)
		}
	}
}

// TestUprobeListSkips: in a list of uprobes, a function the file lacks
// is skipped with a warning, as bpftrace does (stock tools name
// functions only some builds of a library have); the rest attach.
func TestUprobeListSkips(t *testing.T) {
	src := `uprobe:/bin/work:add_one, uprobe:/bin/work:nosuch, uprobe:/bin/work:add_two { @ = count(); }`
	p, warns, err := compileString(t, src)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, pr := range p.Probes {
		names = append(names, pr.Name)
	}
	if got := strings.Join(names, " "); got != "uprobe:/bin/work:add_one uprobe:/bin/work:add_two" {
		t.Errorf("probes %s", got)
	}
	got := warns.Format("stdin", []byte(src))
	if want := "stdin:1:27-50: WARNING: Could not resolve symbol: /bin/work:nosuch: skipped\n"; !strings.Contains(got, want) {
		t.Errorf("warnings\n%s\nlack %q", got, want)
	}
}

// TestSchema: map and printf layouts are what the output stage decodes.
func TestSchema(t *testing.T) {
	p, _, err := compileString(t, `
tracepoint:syscalls:sys_enter_openat /comm == "bash"/ {
	@opens[comm, pid] = count();
	@bytes = hist(args->flags);
	@l[probe] = lhist(args->mode, 0, 100, 10);
	@s = stats(args->dfd);
	@last = str(args->filename);
	printf("%s %d %s\n", comm, pid, str(args->filename));
}
END { print(@opens); clear(@bytes); delete(@l["x"]); }`)
	if err != nil {
		t.Fatal(err)
	}
	var maps []string
	for _, m := range p.Schema.Maps {
		maps = append(maps, fmt.Sprintf("%s agg=%d keys=%d value=%d/%d", m.Name, m.Agg, len(m.Keys), m.Value.Kind, m.Value.Size))
	}
	want := []string{
		"@opens agg=1 keys=2 value=1/8",
		"@bytes agg=7 keys=0 value=1/8",
		"@l agg=8 keys=1 value=1/8",
		"@s agg=6 keys=0 value=1/8",
		"@last agg=0 keys=0 value=2/64",
	}
	if strings.Join(maps, "\n") != strings.Join(want, "\n") {
		t.Errorf("maps:\n%s\nwant:\n%s", strings.Join(maps, "\n"), strings.Join(want, "\n"))
	}
	if len(p.Schema.Formats) != 1 {
		t.Fatalf("formats: %d", len(p.Schema.Formats))
	}
	f := p.Schema.Formats[0]
	if f.Size != 16+16+8+64 || f.Args[0].Offset != 16 || f.Args[1].Offset != 32 || f.Args[2].Offset != 40 {
		t.Errorf("printf layout: size %d args %+v", f.Size, f.Args)
	}
	l := p.Schema.Maps[2]
	if l.Min != 0 || l.Max != 100 || l.Step != 10 {
		t.Errorf("lhist params %d %d %d", l.Min, l.Max, l.Step)
	}
}

// TestExpansion: wildcards become one probe per tracepoint, each named.
func TestExpansion(t *testing.T) {
	p, _, err := compileString(t, `tracepoint:syscalls:sys_*_openat, BEGIN { @[probe] = count(); }`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, pr := range p.Probes {
		names = append(names, pr.Name)
	}
	want := "tracepoint:syscalls:sys_enter_openat tracepoint:syscalls:sys_exit_openat BEGIN"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("probes %q, want %q", got, want)
	}
}

// TestGolden compares generated code with testdata/*.golden. Run with
// -update after an intended change and review the diff.
func TestGolden(t *testing.T) {
	scripts, _ := filepath.Glob("testdata/*.bt")
	if len(scripts) == 0 {
		t.Fatal("no testdata/*.bt")
	}
	for _, path := range scripts {
		t.Run(filepath.Base(path), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			p, _, err := compileString(t, string(src))
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, pr := range p.Probes {
				fmt.Fprintf(&b, "probe %s:\n%v\n", pr.Name, pr.Insns)
			}
			golden.Check(t, strings.TrimSuffix(path, ".bt")+".golden", []byte(b.String()))
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	src := []byte(`tracepoint:syscalls:sys_enter_openat /comm == "bash"/ { @[comm, pid] = count(); @h = hist(args->flags); printf("%s %s\n", comm, str(args->filename)); } END { print(@h); }`)
	b.ReportAllocs()
	for b.Loop() {
		f, err := syntax.Parse("stdin", src)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := Compile(f, Options{Tracepoints: fakeTracepoints{}}); err != nil {
			b.Fatal(err)
		}
	}
}

// fakeSymbols knows /bin/work's globals g32 (4 bytes) and arr (32 bytes).
type fakeSymbols struct{}

func (fakeSymbols) KernelAddr(name string) (uint64, error) { return 0xffffffff81000000, nil }

func (fakeSymbols) UserAddr(path, name string) (uint64, int, error) {
	switch name {
	case "g32":
		return 0x404040, 4, nil
	case "arr":
		return 0x404060, 32, nil
	}
	return 0, 0, fmt.Errorf("Could not resolve symbol: %s:%s", path, name)
}

// TestUaddrIsPointer: as in bpftrace, uaddr() is a pointer to an integer
// of the symbol's size (1, 2, 4, else 8 bytes): *uaddr("g32") reads 4
// bytes of user memory, and uaddr("arr") + 2 steps by 8-byte elements.
func TestUaddrIsPointer(t *testing.T) {
	f, err := syntax.Parse("stdin", []byte(`uprobe:/bin/work:add_one { @a = *uaddr("g32"); @b = *(uaddr("arr") + 2); }`))
	if err != nil {
		t.Fatal(err)
	}
	prog, _, err := Compile(f, Options{Tracepoints: fakeTracepoints{}, Uprobes: fakeUprobes{}, Symbols: fakeSymbols{}})
	if err != nil {
		t.Fatal(err)
	}
	var reads []int32
	scaled := false
	insns := prog.Probes[0].Insns
	for i, ins := range insns {
		if ins.IsBuiltinCall() && asm.BuiltinFunc(ins.Constant) == asm.FnProbeReadUser {
			// The size is the last r2 set before the call.
			for j := i - 1; j >= 0; j-- {
				if insns[j].Dst == asm.R2 && insns[j].OpCode.ALUOp() == asm.Mov {
					reads = append(reads, int32(insns[j].Constant))
					break
				}
			}
		}
		if ins.OpCode.ALUOp() == asm.Mul && ins.Constant == 8 {
			scaled = true
		}
	}
	if fmt.Sprint(reads) != "[4 8]" {
		t.Errorf("user reads of %v bytes, want [4 8]", reads)
	}
	if !scaled {
		t.Errorf("uaddr(\"arr\") + 2 is not scaled by the element size:\n%v", insns)
	}
}

// TestEventBufferSize: the ring buffer is sized to what the probes write
// to it: a page for a script that only updates maps (and exits), the
// full size once anything prints.
func TestEventBufferSize(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want uint32
	}{
		{`tracepoint:syscalls:sys_enter_openat { @[comm] = count(); } BEGIN { exit(); }`, program.QuietEventBuffer},
		{`tracepoint:syscalls:sys_enter_openat { @x = hist(pid); delete(@y[1]); @y[2] = 1; }`, program.QuietEventBuffer},
		{`tracepoint:syscalls:sys_enter_openat { printf("%d\n", pid); }`, program.EventBuffer},
		{`BEGIN { exit(); } END { printf("bye\n"); }`, program.EventBuffer},
		{`interval:s:1 { print(@x); clear(@x); } BEGIN { @x = 1; }`, program.EventBuffer},
		{`BEGIN { time(); zero(@x); @x = 1; }`, program.EventBuffer},
		{`tracepoint:syscalls:sys_enter_execve { join(args->argv); }`, program.EventBuffer},
	} {
		f, err := syntax.Parse("stdin", []byte(tc.src))
		if err != nil {
			t.Fatal(err)
		}
		p, _, err := Compile(f, Options{Tracepoints: readsTracepoints{}, Uprobes: fakeUprobes{}})
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		var got uint32
		for _, m := range p.Maps {
			if m.Name == program.EventsMap {
				got = m.MaxEntries
			}
		}
		if got != tc.want {
			t.Errorf("%s: events ring buffer of %d bytes, want %d", tc.src, got, tc.want)
		}
	}
}
