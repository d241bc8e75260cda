package broker

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/recording"
)

// structsC is the traced program of the uprobe args tests with structs:
// bpftrace's testprogs/uprobe_test.c, calling each function once.
const structsC = `#include <unistd.h>
struct Foo { int a; char b[10]; int c[3]; };
__attribute__((noinline)) int function1(int *n, char c) { return *n + c; }
__attribute__((noinline)) struct Foo *function2(struct Foo *foo1, struct Foo *foo2) { return foo1; }
int main(int argc, char **argv) {
	int n = 13;
	char c = 'x';
	function1(&n, c);
	struct Foo foo1 = { .a = 123, .b = "hello", .c = { 1, 2, 3 } };
	struct Foo foo2 = { .a = 456, .b = "world", .c = { 4, 5, 6 } };
	function2(&foo1, &foo2);
	return 0;
}
`

// buildC compiles a C program with gcc and the flags, or skips.
func buildC(t *testing.T, name, src string, flags ...string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("the uprobe workloads are built with gcc, which is not installed")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, name+".c")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, name)
	args := append([]string{"-O0", "-o", bin, file}, flags...)
	if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return bin
}

// TestUprobeArgs runs uprobe scripts that name the probed function's
// parameters, in both modes, and checks bpftrace 0.17's output exactly
// (the workloads' calls are known: add_one 10 times with 0,1,2,0,...).
func TestUprobeArgs(t *testing.T) {
	needKernel(t)
	work := buildC(t, "work", workloadC, "-g")
	structs := buildC(t, "structs", structsC, "-g")
	tests := []struct {
		name, bin, script, want string
		// interp is what interpreter mode says instead ("": the same).
		interp string
	}{
		{
			name:   "integer",
			bin:    work,
			script: `uprobe:BIN:add_one { @[args->x] = count(); }`,
			want:   "Attaching 1 probe...\n\n\n@[1]: 3\n@[2]: 3\n@[0]: 4\n",
		},
		{
			name:   "string",
			bin:    work,
			script: `uprobe:BIN:greet { printf("%s\n", str(args.s)); }`,
			want:   "Attaching 1 probe...\nhello uprobe\n\n\n",
		},
		{
			name:   "char",
			bin:    structs,
			script: `uprobe:BIN:function1 { printf("c = %c\n", args->c); }`,
			want:   "Attaching 1 probe...\nc = x\n\n\n",
		},
		{
			name:   "pointer",
			bin:    structs,
			script: `uprobe:BIN:function1 { printf("n = %d\n", *(args->n)); }`,
			want:   "Attaching 1 probe...\nn = 13\n\n\n",
			// The collector copies a pointer's memory as a string: it
			// stops at the zero byte after 13.
			interp: "n = 0",
		},
		{
			name:   "struct fields",
			bin:    structs,
			script: `uprobe:BIN:function2 { printf("%d %s %d|", args->foo1->a, args->foo2->b, args->foo1->c[2]); print(args->foo2->c); }`,
			want:   "Attaching 1 probe...\n123 world 3|[4,5,6]\n\n\n",
			interp: "cannot run in interpreter mode",
		},
		{
			name:   "cast to the binary's struct",
			bin:    structs,
			script: `uprobe:BIN:function2 { printf("%d\n", ((struct Foo *)arg1)->a); }`,
			want:   "Attaching 1 probe...\n456\n\n\n",
			interp: "cannot run in interpreter mode",
		},
	}
	for _, tc := range tests {
		for _, mode := range []Mode{ModeJIT, ModeInterp} {
			t.Run(tc.name+"/"+string(mode), func(t *testing.T) {
				lockKernel(t)
				req := Request{Source: []byte(strings.ReplaceAll(tc.script, "BIN", tc.bin)), Command: tc.bin + " 10", Mode: mode}
				if mode == ModeInterp {
					req.Collectors = testCollectors(t)
				}
				out, stderr, err := runScript(t, req)
				if mode == ModeInterp && tc.interp != "" {
					if !strings.Contains(out+stderr+errText(err), tc.interp) {
						t.Fatalf("output %q, %q, %v; want %q", out, stderr, err, tc.interp)
					}
					return
				}
				if err != nil {
					t.Fatalf("Run: %v\n%s", err, stderr)
				}
				if out != tc.want {
					t.Fatalf("output:\n%s\nwant:\n%s", out, tc.want)
				}
			})
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestUprobeArgsErrors: a binary without DWARF, and parameters that are
// not in registers, are script errors.
func TestUprobeArgsErrors(t *testing.T) {
	needKernel(t)
	plain := buildC(t, "plain", structsC)
	structs := buildC(t, "structs", structsC, "-g")
	tests := []struct{ bin, script, want string }{
		{plain, `uprobe:BIN:function1 { @ = args->c; }`, "ERROR: No debuginfo found for BIN\n"},
		{structs, `uprobe:BIN:function1 { @ = args->nosuch; }`, "ERROR: Can't find function parameter nosuch"},
		{structs, `uprobe:BIN:main { @ = args->argv->x; }`, "ERROR: Can not access field 'x'"},
	}
	for _, tc := range tests {
		script := strings.ReplaceAll(tc.script, "BIN", tc.bin)
		out, _, err := runScript(t, Request{Source: []byte(script)})
		var se *ScriptError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), strings.ReplaceAll(tc.want, "BIN", tc.bin)) || out != "" {
			t.Errorf("%s: err %v, output %q; want a script error with %q", script, err, out, tc.want)
		}
	}
}

// TestUprobeArgsDebugFile: a stripped binary's parameters come from its
// separate debug file (here beside it, through .gnu_debuglink).
func TestUprobeArgsDebugFile(t *testing.T) {
	full := buildC(t, "structs", structsC, "-g")
	dir := filepath.Dir(full)
	bin, dbg := filepath.Join(dir, "stripped"), filepath.Join(dir, "stripped.debug")
	for _, args := range [][]string{
		{"--only-keep-debug", full, dbg},
		{"--strip-all", "--add-gnu-debuglink=" + dbg, full, bin},
	} {
		if out, err := exec.Command("objcopy", args...).CombinedOutput(); err != nil {
			t.Skipf("objcopy %v: %v\n%s", args, err, out)
		}
	}
	tests := []struct{ script, want string }{
		{`uprobe:BIN:function1 { @ = args->c; }`, ""},
		{`uprobe:BIN:function1 { @ = args->nosuch; }`, "Can't find function parameter nosuch"},
	}
	for _, tt := range tests {
		src := strings.ReplaceAll(tt.script, "BIN", bin)
		prog, _, err := Compile(&Request{Name: "stdin", Source: []byte(src)})
		if prog != nil {
			prog.Close()
		}
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: %v, want %q", src, err, tt.want)
		}
	}
	// With its symbols and without DWARF or a debug file, there is no
	// debug info.
	nodebug := filepath.Join(dir, "nodebug")
	if out, err := exec.Command("objcopy", "--strip-debug", full, nodebug).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
	src := "uprobe:" + nodebug + ":function1 { @ = args->c; }"
	if _, _, err := Compile(&Request{Name: "stdin", Source: []byte(src)}); err == nil || !strings.Contains(err.Error(), "No debuginfo found for "+nodebug) {
		t.Errorf("without the debug file: %v", err)
	}
}

// TestUprobeArgsReplay: a replay can not name a uprobe's parameters (the
// recording holds their registers, not the binary's DWARF), and says so.
func TestUprobeArgsReplay(t *testing.T) {
	h := &recording.Header{Probes: []recording.Probe{{Name: "uprobe:/bin/work:add_one", Kind: program.Uprobe.String(), Path: "/bin/work", Func: "add_one"}}}
	tests := []struct{ script, want string }{
		{`uprobe:/bin/work:add_one { @ = arg0; }`, ""},
		{`uprobe:/bin/work:add_one { @ = args->x; }`, "ERROR: a recording holds no debug info of /bin/work: a replay reads add_one's parameters as arg0-arg5, not by name"},
	}
	for _, tt := range tests {
		_, _, err := compileScript("stdin", []byte(tt.script), nil, recordedKernel(h, 0))
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: %v, want %q", tt.script, err, tt.want)
		}
	}
}
