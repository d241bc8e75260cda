package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/tracebroker/tracebroker/interp"
)

// execute runs the command in-process, as main does but without exiting.
func execute(stdin string, args ...string) (stdout, stderr string, err error) {
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errOut.String(), err
}

// runnerHex encodes bytes as the bpf_conformance runner does
// (_base_16_encode in src/bpf_conformance.cc): each byte as two hex
// digits followed by two spaces.
func runnerHex(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		fmt.Fprintf(&s, "%02x  ", c)
	}
	return s.String()
}

type conformanceCase struct {
	Name    string `json:"name"`
	Program string `json:"program"`
	Memory  string `json:"memory"`
	Result  string `json:"result"`
}

func conformanceSuite(t *testing.T) []conformanceCase {
	t.Helper()
	b, err := os.ReadFile("../../interp/testdata/conformance/bpf_conformance.json")
	if err != nil {
		t.Fatal(err)
	}
	var suite struct{ Tests []conformanceCase }
	if err := json.Unmarshal(b, &suite); err != nil {
		t.Fatal(err)
	}
	return suite.Tests
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConformancePlugin feeds every conformance test to the plugin as the
// upstream runner does and checks what it prints, read as the runner
// reads it.
func TestConformancePlugin(t *testing.T) {
	tests := conformanceSuite(t)
	if len(tests) == 0 {
		t.Fatal("no tests")
	}
	for _, c := range tests {
		t.Run(strings.TrimSuffix(c.Name, ".data"), func(t *testing.T) {
			// The current runner passes the memory only when there is
			// some; older ones always did, then the options, "" if none.
			var args []string
			if c.Memory != "" {
				args = append(args, runnerHex(mustHex(t, c.Memory)))
			}
			stdin := runnerHex(mustHex(t, c.Program)) + "\n"
			out, _, err := execute(stdin, append([]string{"interp", "conformance-plugin"}, args...)...)
			if err != nil {
				t.Fatal(err)
			}
			want, err := strconv.ParseUint(strings.TrimPrefix(c.Result, "0x"), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			if out != fmt.Sprintf("%x\n", want) {
				t.Errorf("stdout %q, want %q", out, fmt.Sprintf("%x\n", want))
			}
		})
	}
}

func TestConformancePluginArgs(t *testing.T) {
	elfObj, err := os.ReadFile("../../interp/testdata/elf/text.o")
	if err != nil {
		t.Fatal(err)
	}
	const ldxb = "71 10 02 00 00 00 00 00 95 00 00 00 00 00 00 00" // r0 = *(u8 *)(r1 + 2)
	tests := []struct {
		name    string
		stdin   string
		args    []string
		stdout  string
		wantErr string // substring of the error
	}{
		{name: "no memory", stdin: "b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00", stdout: "2a\n"},
		{name: "zero", stdin: "b7 00 00 00 00 00 00 00 95 00 00 00 00 00 00 00\n", stdout: "0\n"},
		{name: "all 64 bits, lower case", stdin: "b7 00 00 00 fe ff ff ff 95 00 00 00 00 00 00 00", stdout: "fffffffffffffffe\n"},
		{name: "any whitespace", stdin: "\tb7 00 00 00\n2a 00 00 00\r\n95 00 00 00 00 00 00 00\n\n", stdout: "2a\n"},
		{name: "runs of digits", stdin: "b70000002a000000 9500000000000000", stdout: "2a\n"},
		{name: "memory without spaces", stdin: ldxb, args: []string{"aabb11ccdd"}, stdout: "11\n"},
		{name: "memory as the runner writes it", stdin: ldxb, args: []string{"aa  bb  11  cc  dd  "}, stdout: "11\n"},
		{name: "older runner: empty memory and options", stdin: "b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00", args: []string{"", ""}, stdout: "2a\n"},
		{name: "empty plugin options", stdin: ldxb, args: []string{"aa bb 11", "", ""}, stdout: "11\n"},
		{name: "--debug", stdin: ldxb, args: []string{"aa bb 11", "--debug"}, stdout: "11\n"},
		{name: "--program", args: []string{"--program", "b7 00 00 00 07 00 00 00 95 00 00 00 00 00 00 00"}, stdout: "7\n"},
		{name: "--elf", stdin: runnerHex(elfObj) + "\n", args: []string{"0500000000000000", "--elf"}, stdout: "d\n"},
		{name: "--elf, no memory", stdin: runnerHex(elfObj) + "\n", args: []string{"--elf"}, stdout: "3\n"},

		{name: "bad hex", stdin: "b7 00 zz 00", wantErr: `program: invalid hex "zz" after 2 bytes`},
		{name: "bad memory", stdin: ldxb, args: []string{"aab"}, wantErr: `memory: invalid hex "aab" after 0 bytes: odd length hex string`},
		{name: "two memory arguments", stdin: ldxb, args: []string{"aa", "bb"}, wantErr: `unexpected argument "bb"`},
		{name: "unknown option", stdin: ldxb, args: []string{"--jit"}, wantErr: "`tracebroker interp conformance-plugin` has no flag --jit"},
		{name: "no program", stdin: "\n", wantErr: "interp: verifier: empty program"},
		{name: "not whole instructions", stdin: "b7 00 00 00", wantErr: "not a whole number of 8-byte instructions"},
		{name: "verifier", stdin: "95 00 00 00 00 00 00 00", wantErr: "interp: verifier: insn 0 (exit): r0 is read before it is written"},
		{name: "fault", stdin: ldxb, wantErr: "interp: insn 0 (r0 = *(u8 *)(r1 +2)): memory access fault"},
		{name: "--elf but bytecode", stdin: ldxb, args: []string{"--elf"}, wantErr: "not an ELF object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := execute(tc.stdin, append([]string{"interp", "conformance-plugin"}, tc.args...)...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %v, want one with %q", err, tc.wantErr)
				}
				if out != "" {
					t.Errorf("stdout %q on error, want nothing", out)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out != tc.stdout {
				t.Errorf("stdout %q, want %q", out, tc.stdout)
			}
		})
	}
}

// TestConformancePluginProcess checks the plugin as the runner sees it:
// a process, its exit status, stdout and stderr.
func TestConformancePluginProcess(t *testing.T) {
	tests := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string
		stderr *regexp.Regexp
	}{
		{
			name:   "result",
			stdin:  runnerHex(mustHex(t, "b402000011223344632102000000000061100200000000009500000000000000")) + "\n",
			args:   []string{runnerHex(mustHex(t, "aabbffffffffccdd"))},
			stdout: "44332211\n",
			stderr: regexp.MustCompile(`^$`),
		},
		{
			name:   "verifier error",
			stdin:  "95  00  00  00  00  00  00  00  \n",
			code:   1,
			stderr: regexp.MustCompile(`^ERROR: interp: verifier: insn 0 \(exit\): r0 is read before it is written\n$`),
		},
		{
			name:   "bad hex",
			stdin:  "95  0g  \n",
			code:   1,
			stderr: regexp.MustCompile(`^ERROR: program: invalid hex "0g" after 1 bytes: invalid byte: U\+0067 'g'\n$`),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, append([]string{"interp", "conformance-plugin"}, tc.args...)...)
			cmd.Stdin = strings.NewReader(tc.stdin)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("exit status %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
			if stdout.String() != tc.stdout {
				t.Errorf("stdout %q, want %q", stdout.String(), tc.stdout)
			}
			if !tc.stderr.MatchString(stderr.String()) {
				t.Errorf("stderr %q does not match %s", stderr.String(), tc.stderr)
			}
		})
	}
}

func TestInterpRun(t *testing.T) {
	const counter = "../../interp/testdata/elf/counter.o"
	tests := []struct {
		name    string
		stdin   string
		args    []string
		stdout  string   // exact, unless has is set
		has     []string // lines stdout must contain, in order
		wantErr string
	}{
		{
			name:   "hex",
			args:   []string{"b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00"},
			stdout: "r0 = 0x2a (42)\n",
		},
		{
			name:   "hex in several arguments, negative result",
			args:   []string{"b7 00 00 00 fe ff ff ff", "95 00 00 00 00 00 00 00"},
			stdout: "r0 = 0xfffffffffffffffe (18446744073709551614, signed -2)\n",
		},
		{
			name:   "hex from stdin",
			stdin:  "b700000007000000\n9500000000000000\n",
			args:   []string{"-"},
			stdout: "r0 = 0x7 (7)\n",
		},
		{
			name: "-v traces each instruction with the registers it changed",
			args: []string{"-v", "--mem", "aabb11ccdd", "b7 00 00 00 01 00 00 00 71 13 02 00 00 00 00 00 0f 30 00 00 00 00 00 00 15 00 01 00 12 00 00 00 b7 00 00 00 00 00 00 00 95 00 00 00 00 00 00 00"},
			stdout: "entry: r1=0x1100000000000000 r2=0x5 r10=0x1000000000000200\n" +
				"   0: r0 = 1                        ; r0=0x1\n" +
				"   1: r3 = *(u8 *)(r1 +2)           ; r3=0x11\n" +
				"   2: r0 += r3                      ; r0=0x12\n" +
				"   3: if r0 == 0x12 goto pc+1\n" +
				"   5: exit\n" +
				"5 instructions executed\n" +
				"r0 = 0x12 (18)\n",
		},
		{
			name: "memory the program changed is printed",
			args: []string{"--mem", "aabbffffffffccdd", "b402000011223344632102000000000061100200000000009500000000000000"},
			stdout: "r0 = 0x44332211 (1144201745)\n" +
				"mem = aabb11223344ccdd\n",
		},
		{
			name: "ELF object with a map",
			args: []string{"-v", "--program", "count", counter},
			has: []string{
				"entry: r10=0x1000000000000200",
				"   4: r1 = map[fd:0]                ; r1=0x200000000000000",
				"   6: call bpf_map_lookup_elem#1    ; r0=0x100000000000010",
				"   9: lock *(u64 *)(r0 +0) += r1",
				"  11: exit",
				"11 instructions executed",
				"r0 = 0x2a (42)",
				"map counts (Array, key 4 B, value 8 B):",
				"  02000000: 0500000000000000",
			},
		},
		{
			name: "ELF object, global data",
			args: []string{"--program", "globals", counter},
			stdout: "r0 = 0x8 (8)\n" +
				"map .data (Array, key 4 B, value 8 B):\n" +
				"  00000000: 0800000000000000\n",
		},
		{
			name: "run error: the trace ends at the failing instruction",
			args: []string{"-v", "71 10 02 00 00 00 00 00 95 00 00 00 00 00 00 00"},
			stdout: "entry: r10=0x1000000000000200\n" +
				"   0: r0 = *(u8 *)(r1 +2)\n" +
				"1 instructions executed\n",
			wantErr: "interp: insn 0 (r0 = *(u8 *)(r1 +2)): memory access fault",
		},
		{
			name:    "budget",
			args:    []string{"--budget", "100", "05 00 ff ff 00 00 00 00 95 00 00 00 00 00 00 00"},
			wantErr: "interp: insn 0 (goto pc-1): instruction budget exhausted",
		},
		{
			name:    "verifier error",
			args:    []string{"95 00 00 00 00 00 00 00"},
			wantErr: "interp: verifier: insn 0 (exit): r0 is read before it is written",
		},
		{
			name:    "neither a file nor hex",
			args:    []string{"nosuch.o"},
			wantErr: `nosuch.o: no such file, and not hex bytecode (invalid hex "nosuch.o" after 0 bytes`,
		},
		{
			name:    "ELF object with several programs",
			args:    []string{counter},
			wantErr: "the object has 3 programs (count, globals, perf): name one",
		},
		{
			name:    "ELF object with an unsupported map",
			args:    []string{"--program", "perf", counter},
			wantErr: `map "events": type PerfEventArray is not supported by the interpreter`,
		},
		{
			name:    "not an ELF object",
			args:    []string{"../../interp/testdata/elf/counter.c"},
			wantErr: "counter.c: interp: not an ELF object",
		},
		{
			name:    "--program with hex",
			args:    []string{"--program", "x", "b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00"},
			wantErr: "--program names a program of an ELF object",
		},
		{
			name:    "bad --mem",
			args:    []string{"--mem", "xyz", "b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00"},
			wantErr: `--mem: invalid hex "xyz"`,
		},
		{
			name:    "no argument",
			args:    []string{},
			wantErr: "requires at least 1 arg(s)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := execute(tc.stdin, append([]string{"interp", "run"}, tc.args...)...)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one with %q", err, tc.wantErr)
			}
			if tc.has != nil {
				rest := out
				for _, line := range tc.has {
					i := strings.Index(rest, line+"\n")
					if i < 0 {
						t.Fatalf("stdout lacks %q (in order):\n%s", line, out)
					}
					rest = rest[i+len(line)+1:]
				}
				return
			}
			if tc.wantErr == "" || tc.stdout != "" {
				if out != tc.stdout {
					t.Errorf("stdout:\n%s\nwant:\n%s", out, tc.stdout)
				}
			}
		})
	}
}

func TestPrintMap(t *testing.T) {
	newMap := func(spec ebpf.MapSpec, kv ...[2]string) *interp.Map {
		m, err := interp.NewMap(&spec, interp.MapOptions{CPUs: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range kv {
			if err := m.Update(mustHex(t, e[0]), mustHex(t, e[1]), 0); err != nil {
				t.Fatal(err)
			}
		}
		return m
	}
	tests := []struct {
		name string
		m    *interp.Map
		want string
	}{
		{
			name: "hash, sorted by key",
			m: newMap(ebpf.MapSpec{Name: "h", Type: ebpf.Hash, KeySize: 2, ValueSize: 4, MaxEntries: 8},
				[2]string{"0200", "02000000"}, [2]string{"0100", "01000000"}),
			want: "map h (Hash, key 2 B, value 4 B):\n  0100: 01000000\n  0200: 02000000\n",
		},
		{
			name: "empty hash",
			m:    newMap(ebpf.MapSpec{Name: "h", Type: ebpf.Hash, KeySize: 2, ValueSize: 4, MaxEntries: 8}),
			want: "map h (Hash, key 2 B, value 4 B):\n  (empty)\n",
		},
		{
			name: "array, zero entries left out",
			m: newMap(ebpf.MapSpec{Name: "a", Type: ebpf.Array, KeySize: 4, ValueSize: 2, MaxEntries: 4},
				[2]string{"03000000", "ffff"}),
			want: "map a (Array, key 4 B, value 2 B):\n  03000000: ffff\n",
		},
		{
			name: "array, all zero",
			m:    newMap(ebpf.MapSpec{Name: "a", Type: ebpf.Array, KeySize: 4, ValueSize: 2, MaxEntries: 4}),
			want: "map a (Array, key 4 B, value 2 B):\n  (all zero)\n",
		},
		{
			name: "per-CPU array: non-zero copies",
			m: newMap(ebpf.MapSpec{Name: "p", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 4, MaxEntries: 2},
				[2]string{"01000000", "0000000000000000" + "0700000000000000" + "0000000000000000"}),
			want: "map p (PerCPUArray, key 4 B, value 4 B, 3 CPUs):\n  01000000: cpu1=07000000\n",
		},
		{
			name: "ring buffer without records",
			m:    newMap(ebpf.MapSpec{Name: "rb", Type: ebpf.RingBuf, MaxEntries: 4096}),
			want: "map rb (RingBuf):\n  (no records)\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			printMap(&b, tc.m)
			if b.String() != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}
