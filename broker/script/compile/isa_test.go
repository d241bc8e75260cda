package compile

import (
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
	"github.com/tracebroker/tracebroker/interp"
)

// isaProgram is body, generated with or without v4 instructions, as a
// whole program that returns rAcc.
func isaProgram(noV4 bool, body func(g *gen)) asm.Instructions {
	g := &gen{c: &compiler{opts: Options{NoV4: noV4}}, alias: map[string]string{}}
	body(g)
	g.emit(asm.Mov.Reg(asm.R0, rAcc))
	g.emit(asm.Return())
	for i, ins := range g.insns {
		if to, ok := g.resolve(ins.Reference()); ok {
			g.insns[i] = ins.WithReference(to)
		}
	}
	return g.insns
}

// hasV4 names the first v4 instruction of insns, or is "".
func hasV4(insns asm.Instructions) string {
	for _, ins := range insns {
		op := ins.OpCode
		if op.Class().IsLoad() && op.Mode() == asm.MemSXMode || op.Class().IsALU() && (op.ALUOp() == asm.SDiv || op.ALUOp() == asm.SMod) {
			return fmt.Sprint(ins)
		}
	}
	return ""
}

// kernelRun runs insns as a socket filter and returns its 64-bit result
// (two runs: a socket filter returns 32 bits); ok is false when this
// process cannot load programs.
func kernelRun(t *testing.T, insns asm.Instructions) (uint64, bool) {
	t.Helper()
	if os.Geteuid() != 0 {
		return 0, false
	}
	var out uint64
	for _, hi := range []bool{false, true} {
		p := slicesClone(insns)
		if hi {
			last := len(p) - 1
			p = append(p[:last:last], asm.RSh.Imm(asm.R0, 32), asm.Return())
		}
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, License: "GPL", Instructions: p})
		if err != nil {
			t.Fatalf("the kernel refused %v", err)
		}
		r, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 14)})
		prog.Close()
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if hi {
			out |= uint64(r) << 32
		} else {
			out |= uint64(r)
		}
	}
	return out, true
}

func slicesClone(in asm.Instructions) asm.Instructions { return append(asm.Instructions(nil), in...) }

// TestNoV4: the spellings of sign-extending loads and signed division
// for kernels before 6.6 hold no v4 instruction and compute what the v4
// instructions do, in the interpreter and, where this process may load
// programs, in the kernel (the v4 form only where the kernel has it).
func TestNoV4(t *testing.T) {
	haveV4 := bpf.HaveV4ISA()
	if os.Geteuid() == 0 {
		kerneltest.Lock(t)
	}
	type tc struct {
		name string
		body func(g *gen)
		want uint64
	}
	var cases []tc
	const minI, maxI = math.MinInt64, math.MaxInt64
	for _, d := range []struct{ a, b int64 }{
		{7, 2}, {-7, 2}, {7, -2}, {-7, -2}, {0, -5}, {-1, maxI}, {minI, -1}, {minI, 1}, {minI, minI}, {maxI, minI}, {maxI, -1}, {-9, 3},
	} {
		want := d.a / d.b
		if d.a == minI && d.b == -1 {
			want = minI // Go panics; BPF's sdiv gives MinInt64
		}
		cases = append(cases, tc{fmt.Sprintf("sdiv/%d/%d", d.a, d.b), func(g *gen) {
			g.loadConst(rAcc, d.a)
			g.loadConst(rTmp, d.b)
			g.sdiv()
		}, uint64(want)})
	}
	for _, size := range []asm.Size{asm.Byte, asm.Half, asm.Word} {
		for _, v := range []uint64{0, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 0x123456789abcdef0, 0xfedcba9876543281} {
			bits := 8 * size.Sizeof()
			want := uint64(int64(v<<(64-bits)) >> (64 - bits))
			cases = append(cases, tc{fmt.Sprintf("loadsx/%d/%#x", bits, v), func(g *gen) {
				g.loadConst(rTmp, int64(v))
				g.emit(asm.StoreMem(asm.R10, -8, rTmp, asm.DWord))
				g.loadSX(rAcc, asm.R10, -8, size)
			}, want})
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, noV4 := range []bool{false, true} {
				insns := isaProgram(noV4, c.body)
				if v4 := hasV4(insns); (v4 != "") == noV4 {
					t.Fatalf("NoV4=%v: first v4 instruction %q", noV4, v4)
				}
				p, err := interp.LoadInstructions(insns, nil, interp.Options{})
				if err != nil {
					t.Fatalf("NoV4=%v: interp: %v", noV4, err)
				}
				if got, err := p.Run(nil, nil); err != nil || got != c.want {
					t.Errorf("NoV4=%v: interp gives %#x, %v; want %#x", noV4, got, err, c.want)
				}
				if !noV4 && !haveV4 {
					continue
				}
				if got, ok := kernelRun(t, insns); ok && got != c.want {
					t.Errorf("NoV4=%v: kernel gives %#x, want %#x", noV4, got, c.want)
				}
			}
		})
	}
}

// TestNoV4Scripts: with NoV4 a script's programs hold no v4 instruction
// where the default ones do: signed fields, derefs, tp_btf arguments and
// avg() of signed values.
func TestNoV4Scripts(t *testing.T) {
	for _, src := range []string{
		`tracepoint:sched:sched_switch { @[args->prev_prio] = count(); }`,
		`tracepoint:sched:sched_switch { @a = avg(args->prev_pid); print(@a); }`,
		`tracepoint:syscalls:sys_enter_openat { @ = *args->filename; }`,
		`tp_btf:sched_process_exec { @ = args->old_pid; }`,
	} {
		t.Run(src, func(t *testing.T) {
			f, err := syntax.Parse("stdin", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			for _, noV4 := range []bool{false, true} {
				prog, _, err := Compile(f, Options{Tracepoints: fakeTracepoints{}, BTFTracepoints: fakeBTF{}, NoV4: noV4})
				if err != nil {
					t.Fatal(err)
				}
				var v4 string
				for _, p := range prog.Probes {
					if v4 = hasV4(p.Insns); v4 != "" {
						break
					}
				}
				if (v4 != "") == noV4 {
					t.Errorf("NoV4=%v: first v4 instruction %q", noV4, v4)
				}
			}
		})
	}
}

// BenchmarkNoV4 measures what the older spellings cost: a program of 64
// sign-extending loads (one instruction, or three), each added up, run by
// the kernel's JIT (BPF_PROG_TEST_RUN) and by the interpreter.
func BenchmarkNoV4(b *testing.B) {
	body := func(g *gen) {
		g.loadConst(rTmp, -3)
		g.emit(asm.StoreMem(asm.R10, -8, rTmp, asm.DWord))
		g.emit(asm.Mov.Imm(rAux, 0))
		for range 64 {
			g.loadSX(rAcc, asm.R10, -8, asm.Word)
			g.emit(asm.Add.Reg(rAux, rAcc))
		}
		g.emit(asm.Mov.Reg(rAcc, rAux))
	}
	for _, noV4 := range []bool{false, true} {
		insns := isaProgram(noV4, body)
		name := map[bool]string{false: "v4", true: "old"}[noV4]
		b.Run("interp/"+name, func(b *testing.B) {
			p, err := interp.LoadInstructions(insns, nil, interp.Options{})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if r, err := p.Run(nil, nil); err != nil || int64(r) != -192 {
					b.Fatalf("run: %d, %v", int64(r), err)
				}
			}
		})
		b.Run("kernel/"+name, func(b *testing.B) {
			if os.Geteuid() != 0 || !noV4 && !bpf.HaveV4ISA() {
				b.Skip("needs root and, for v4, Linux 6.6")
			}
			prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, License: "GPL", Instructions: insns})
			if err != nil {
				b.Fatal(err)
			}
			defer prog.Close()
			b.ResetTimer()
			_, d, err := prog.Benchmark(make([]byte, 14), b.N, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(d.Nanoseconds()), "ns/run")
		})
	}
}
