package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/spf13/cobra"

	"github.com/tracebroker/tracebroker/interp"
	"github.com/tracebroker/tracebroker/interp/disasm"
)

func newInterpCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "interp",
		Short: "run eBPF bytecode in the user-space interpreter",
		Long: `Run eBPF bytecode in tracebroker's user-space interpreter (package interp):
the RFC 9669 instruction set behind a verifier, with user-space maps and
helpers. No kernel support or privilege is needed.`,
	}
	cmd.AddCommand(newInterpRunCmd(), newConformancePluginCmd())
	return cmd
}

// conformanceOptions are what the bpf_conformance runner implies: r1 and
// r2 are the memory and its length, and the memory is the program's to
// write.
var conformanceOptions = interp.Options{Args: 2, WritableContext: true}

// maxHexInput bounds the hex read from standard input: the largest
// program, written as the conformance runner writes it ("xx  " per byte).
const maxHexInput = 4 * 8 * interp.MaxInsns

// newConformancePluginCmd speaks the plugin protocol of the
// bpf_conformance runner (github.com/Alan-Jowett/bpf_conformance), as its
// runner drives a plugin (src/bpf_conformance.cc, bpf_conformance_options;
// src/runner.cc) and as its plugins answer (libbpf_plugin/libbpf_plugin.cc,
// and uBPF's ubpf_plugin/ubpf_plugin.cc):
//
//   - The program arrives on standard input as hex bytes, each followed by
//     two spaces ("b4  00  00  00  ..."), and a newline.
//   - The arguments are the initial memory, encoded the same way (so with
//     spaces, as one argument) and only when the test has memory (older
//     runners always passed it, "" when empty, followed by the options as
//     one possibly empty argument); then the runner's --plugin_options,
//     split at spaces (so possibly with empty arguments); then --elf when
//     the runner was given --elf true, in which case standard input holds
//     an ELF object (section .text, function main), hex-encoded the same way.
//   - The plugin prints r0 as std::hex does, lower-case hex without 0x or
//     leading zeros, and exits 0. The runner concatenates the lines of
//     standard output and parses them with std::stoull(s, nullptr, 16),
//     comparing all 64 bits.
//   - On failure it exits non-zero; the runner then compares standard
//     output, or standard error when standard output is empty, with the
//     test's expected error text, if it has one.
//
// Besides --elf this accepts the other options upstream plugins take:
// --program HEX (the program as an argument rather than on standard
// input) and --debug (accepted, no effect). The runner's --xdp_prolog is
// not supported: the prolog it prepends reads an xdp_md context.
func newConformancePluginCmd() *cobra.Command {
	var (
		elfInput bool
		debug    bool
		program  string
	)
	cmd := &cobra.Command{
		Use:   "conformance-plugin [MEMORY_HEX]",
		Short: "Run one program for the bpf_conformance runner (hex on stdin, r0 in hex on stdout)",
		Long: `Run one program as a plugin of the bpf_conformance test runner
(github.com/Alan-Jowett/bpf_conformance): the program comes on standard input
as hex bytes separated by whitespace, the initial memory is the optional first
argument (hex, spaces allowed) and is handed to the program as r1 (pointer)
and r2 (length); r0 is printed in lower-case hex, without 0x. Errors go to
standard error with a non-zero exit status.

With --elf, standard input is an ELF object in hex rather than raw bytecode.`,
		Example: `  echo 'b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00' | tracebroker interp conformance-plugin
  bpf_conformance_runner --test_file_directory tests --plugin_path tracebroker-plugin.sh
    (tracebroker-plugin.sh: exec tracebroker interp conformance-plugin "$@")`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var memHex string
			for _, a := range args {
				switch {
				case strings.TrimSpace(a) == "": // the runner's empty arguments
				case memHex != "":
					return fmt.Errorf("unexpected argument %q: the only argument is the memory", a)
				default:
					memHex = a
				}
			}
			mem, err := parseHex(memHex)
			if err != nil {
				return fmt.Errorf("memory: %w", err)
			}
			if program == "" {
				src, err := readHexInput(cmd.InOrStdin())
				if err != nil {
					return err
				}
				program = src
			}
			code, err := parseHex(program)
			if err != nil {
				return fmt.Errorf("program: %w", err)
			}
			var p *interp.Program
			if elfInput {
				p, err = interp.LoadELFReader(bytes.NewReader(code), "", conformanceOptions)
			} else {
				p, err = interp.Load(code, conformanceOptions)
			}
			if err != nil {
				return err
			}
			r0, err := p.Run(nil, mem)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%x\n", r0)
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&elfInput, "elf", false, "standard input is an ELF object (in hex), not raw bytecode")
	f.StringVar(&program, "program", "", "the program as `HEX`, instead of on standard input")
	f.BoolVar(&debug, "debug", false, "accepted for compatibility with other plugins; no effect")
	return cmd
}

func newInterpRunCmd() *cobra.Command {
	var (
		program string
		memHex  string
		budget  uint64
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "run [flags] FILE.o|HEX|-",
		Short: "Run a program once (ELF object or hex bytecode) and print r0 and its maps",
		Long: `Load a program into the interpreter, run it once and print r0, then the
contents of the maps it uses.

The argument is an ELF object if it names a file (clang -target bpf output;
--program picks one of several programs), else the bytecode as hex (8-byte
little-endian instructions; whitespace between bytes allowed, several
arguments are joined); - reads the hex from standard input. The program gets
the --mem bytes as its context: r1 points to them (r1 is 0 without --mem) and
r2 holds their length, as in the bpf_conformance suite. If the program
changes them, they are printed after r0.

-v traces every instruction executed: its slot, its text as the kernel's
verifier log writes it and, after ';', the registers it changed with their
new values. A line "entry:" before the first shows the registers that start
non-zero. Pointers are the interpreter's tagged addresses (stack 0x10...,
context 0x11..., map values 0x01...). The count of instructions executed
comes last.`,
		Example: `  tracebroker interp run 'b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00'
  tracebroker interp run -v --mem aabb11ccdd '71 10 02 00 00 00 00 00 95 00 00 00 00 00 00 00'
  tracebroker interp run --program count prog.o
  jq -r .tests[0].program bpf_conformance.json | tracebroker interp run -`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mem, err := parseHex(memHex)
			if err != nil {
				return fmt.Errorf("--mem: %w", err)
			}
			opts := conformanceOptions
			opts.Budget = budget
			p, err := loadForRun(args, program, cmd.InOrStdin(), opts)
			if err != nil {
				return err
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			defer w.Flush()
			var env interp.Env
			var tr *tracer
			if verbose {
				tr = &tracer{w: w, code: p.Code(), pc: -1}
				env.Step = tr.step
			}
			before := bytes.Clone(mem)
			r0, runErr := p.Run(&env, mem)
			if tr != nil {
				tr.finish()
				fmt.Fprintf(w, "%d instructions executed\n", tr.n)
			}
			if runErr == nil {
				fmt.Fprintf(w, "r0 = %#x (%d", r0, r0)
				if int64(r0) < 0 {
					fmt.Fprintf(w, ", signed %d", int64(r0))
				}
				fmt.Fprintln(w, ")")
			}
			if !bytes.Equal(before, mem) {
				fmt.Fprintf(w, "mem = %x\n", mem)
			}
			for _, m := range p.Maps() {
				printMap(w, m)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			return runErr
		},
	}
	f := cmd.Flags()
	f.StringVar(&program, "program", "", "the program `NAME` in an ELF object (default: its only program)")
	f.StringVar(&memHex, "mem", "", "the program's memory (context) as `HEX`")
	f.Uint64Var(&budget, "budget", interp.DefaultBudget, "stop the run after `N` instructions")
	f.BoolVarP(&verbose, "verbose", "v", false, "trace every instruction executed")
	return cmd
}

// loadForRun loads what interp run's arguments name.
func loadForRun(args []string, program string, stdin io.Reader, opts interp.Options) (*interp.Program, error) {
	arg := args[0]
	if arg != "-" {
		if st, err := os.Stat(arg); err == nil {
			if st.IsDir() {
				return nil, fmt.Errorf("%s is a directory", arg)
			}
			if len(args) > 1 {
				return nil, fmt.Errorf("give one ELF object, not %d arguments", len(args))
			}
			return interp.LoadELF(arg, program, opts)
		}
	}
	var src string
	if arg == "-" {
		if len(args) > 1 {
			return nil, errors.New("- reads the program from standard input: give no other argument")
		}
		s, err := readHexInput(stdin)
		if err != nil {
			return nil, err
		}
		src = s
	} else {
		src = strings.Join(args, " ")
	}
	code, err := parseHex(src)
	if err != nil {
		if arg != "-" {
			return nil, fmt.Errorf("%s: no such file, and not hex bytecode (%v)", arg, err)
		}
		return nil, err
	}
	if program != "" {
		return nil, errors.New("--program names a program of an ELF object, but the program is hex bytecode")
	}
	return interp.Load(code, opts)
}

// readHexInput reads standard input for a program in hex.
func readHexInput(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxHexInput+1))
	if err != nil {
		return "", fmt.Errorf("reading standard input: %w", err)
	}
	if len(b) > maxHexInput {
		return "", fmt.Errorf("standard input is larger than %d bytes", maxHexInput)
	}
	return string(b), nil
}

// parseHex decodes hex bytes: whitespace-separated fields, each one or
// more whole bytes ("b4 00 00 00", "b4000000") or a single digit, with an
// optional 0x. The conformance runner writes each byte followed by two
// spaces and a newline at the end.
func parseHex(s string) ([]byte, error) {
	var out []byte
	for _, f := range strings.Fields(s) {
		digits := strings.TrimPrefix(strings.TrimPrefix(f, "0x"), "0X")
		if len(digits) == 1 {
			digits = "0" + digits
		}
		b, err := hex.DecodeString(digits)
		if err != nil || digits == "" {
			msg := "no digits"
			if err != nil {
				msg = strings.TrimPrefix(err.Error(), "encoding/hex: ")
			}
			return nil, fmt.Errorf("invalid hex %q after %d bytes: %s", f, len(out), msg)
		}
		out = append(out, b...)
	}
	return out, nil
}

// tracer prints interp run -v's trace. Step comes before each
// instruction, so an instruction's line is printed at the next Step, when
// what it changed is known.
type tracer struct {
	w    io.Writer
	code []byte
	n    uint64
	pc   int // the instruction being traced, -1 before the first
	regs [11]uint64
}

// traceColumn is where the register values start on a trace line.
const traceColumn = 36

func (t *tracer) step(pc int, regs *[11]uint64) {
	if t.pc < 0 {
		var b strings.Builder
		b.WriteString("entry:")
		for i, v := range regs {
			if v != 0 {
				fmt.Fprintf(&b, " r%d=%#x", i, v)
			}
		}
		fmt.Fprintln(t.w, b.String())
	} else {
		t.line(regs)
	}
	t.pc, t.regs = pc, *regs
	t.n++
}

// finish prints the last instruction: the exit, or the one that failed.
func (t *tracer) finish() {
	if t.pc >= 0 {
		t.line(nil)
	}
}

func (t *tracer) line(after *[11]uint64) {
	text, _ := disasm.Insn(t.code, t.pc)
	var b strings.Builder
	fmt.Fprintf(&b, "%4d: %s", t.pc, text)
	if after != nil {
		first := true
		for i, v := range after {
			if v == t.regs[i] {
				continue
			}
			if first {
				b.WriteString(strings.Repeat(" ", max(1, traceColumn-b.Len())))
				b.WriteString(";")
				first = false
			}
			fmt.Fprintf(&b, " r%d=%#x", i, v)
		}
	}
	fmt.Fprintln(t.w, b.String())
}

// maxMapLines bounds what printMap shows of one map.
const maxMapLines = 64

// printMap prints a map's contents after a run: a hash map's entries
// sorted by key, an array's non-zero entries, a ring buffer's records;
// keys and values in hex, per-CPU values as cpuN=VALUE for each CPU whose
// copy is not zero.
func printMap(w io.Writer, m *interp.Map) {
	fmt.Fprintf(w, "map %s (%v", m.Name(), m.Type())
	if m.Type() == ebpf.RingBuf {
		fmt.Fprintln(w, "):")
		n := 0
		for {
			rec, ok := m.ReadRecord()
			if !ok {
				break
			}
			if n < maxMapLines {
				fmt.Fprintf(w, "  record %d: %x\n", n, rec)
			}
			n++
		}
		switch {
		case n == 0:
			fmt.Fprintln(w, "  (no records)")
		case n > maxMapLines:
			fmt.Fprintf(w, "  ... %d records in all\n", n)
		}
		return
	}
	fmt.Fprintf(w, ", key %d B, value %d B", m.KeySize(), m.ValueSize())
	if m.CPUs() > 1 {
		fmt.Fprintf(w, ", %d CPUs", m.CPUs())
	}
	fmt.Fprintln(w, "):")
	array := m.Type() == ebpf.Array || m.Type() == ebpf.PerCPUArray
	type entry struct{ k, v []byte }
	var entries []entry
	m.Iterate(func(k, v []byte) bool {
		if !array || slices.ContainsFunc(v, func(b byte) bool { return b != 0 }) {
			entries = append(entries, entry{k, v})
		}
		return true
	})
	if !array {
		slices.SortFunc(entries, func(a, b entry) int { return bytes.Compare(a.k, b.k) })
	}
	for i, e := range entries {
		if i == maxMapLines {
			fmt.Fprintf(w, "  ... %d entries in all\n", len(entries))
			break
		}
		fmt.Fprintf(w, "  %x: %s\n", e.k, formatValue(m, e.v))
	}
	if len(entries) == 0 {
		if array {
			fmt.Fprintln(w, "  (all zero)")
		} else {
			fmt.Fprintln(w, "  (empty)")
		}
	}
}

// formatValue is a value in hex; a per-CPU value (one 8-aligned copy per
// CPU) as the non-zero copies.
func formatValue(m *interp.Map, v []byte) string {
	if m.CPUs() <= 1 {
		return hex.EncodeToString(v)
	}
	stride := (int(m.ValueSize()) + 7) &^ 7
	var parts []string
	for c := 0; c < m.CPUs() && (c+1)*stride <= len(v); c++ {
		cp := v[c*stride:][:m.ValueSize()]
		if slices.ContainsFunc(cp, func(b byte) bool { return b != 0 }) {
			parts = append(parts, fmt.Sprintf("cpu%d=%x", c, cp))
		}
	}
	if len(parts) == 0 {
		return "0 on every CPU"
	}
	return strings.Join(parts, " ")
}
