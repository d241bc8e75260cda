package interp_test

import (
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/internal/kerneltest"
	"github.com/tracebroker/tracebroker/interp"
)

// The benchmarks run the same bytecode in interp and, when privileged, in
// the kernel's JIT through BPF_PROG_TEST_RUN (the physical limit), and
// report ns per executed instruction for both, so the ratio is read off
// one `go test -bench` run:
//
//	go test ./interp -run '^$' -bench . -benchtime 2s
//
// Loop counts stay small enough for the kernel's verifier, which walks
// every iteration of a bounded loop.

const benchIters = 4096

// aluLoop is integer work only: 7 instructions per iteration.
func aluLoop() asm.Instructions {
	return asm.Instructions{
		asm.Mov.Imm(asm.R0, 0),
		asm.Mov.Imm(asm.R1, benchIters),
		asm.Add.Reg(asm.R0, asm.R1).WithSymbol("loop"),
		asm.Xor.Imm(asm.R0, 0x5a),
		asm.Mov.Reg(asm.R2, asm.R0),
		asm.LSh.Imm(asm.R2, 3),
		asm.Add.Reg(asm.R0, asm.R2),
		asm.Sub.Imm(asm.R1, 1),
		asm.JNE.Imm(asm.R1, 0, "loop"),
		asm.Return(),
	}
}

// lookupValue puts the value of key 0 of map "mem" in r6, or exits.
func lookupValue() asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.R10, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference("mem"),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JNE.Imm(asm.R0, 0, "found"),
		asm.Return(),
		asm.Mov.Reg(asm.R6, asm.R0).WithSymbol("found"),
	}
}

// memLoop reads, adds to and writes back the 32 words of a 256-byte map
// value in turn: 10 instructions per iteration, two of them memory.
func memLoop() asm.Instructions {
	return append(lookupValue(),
		asm.Mov.Imm(asm.R1, benchIters),
		asm.Mov.Reg(asm.R3, asm.R1).WithSymbol("loop"),
		asm.And.Imm(asm.R3, 31),
		asm.LSh.Imm(asm.R3, 3),
		asm.Mov.Reg(asm.R7, asm.R6),
		asm.Add.Reg(asm.R7, asm.R3),
		asm.LoadMem(asm.R2, asm.R7, 0, asm.DWord),
		asm.Add.Reg(asm.R2, asm.R1),
		asm.StoreMem(asm.R7, 0, asm.R2, asm.DWord),
		asm.Sub.Imm(asm.R1, 1),
		asm.JNE.Imm(asm.R1, 0, "loop"),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	)
}

// helperLoop is what a tracing program does per event: look up a map,
// bump a counter, read the clock, the CPU and the task.
func helperLoop() asm.Instructions {
	return asm.Instructions{
		asm.Mov.Imm(asm.R6, benchIters/16),
		asm.StoreImm(asm.R10, -4, 0, asm.Word).WithSymbol("loop"),
		asm.LoadMapPtr(asm.R1, 0).WithReference("mem"),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "next"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		asm.FnKtimeGetNs.Call().WithSymbol("next"),
		asm.FnGetSmpProcessorId.Call(),
		asm.FnGetCurrentPidTgid.Call(),
		asm.Sub.Imm(asm.R6, 1),
		asm.JNE.Imm(asm.R6, 0, "loop"),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	}
}

var memSpec = &ebpf.MapSpec{Name: "mem", Type: ebpf.Array, KeySize: 4, ValueSize: 256, MaxEntries: 1}

func BenchmarkALULoop(b *testing.B)    { benchBoth(b, aluLoop()) }
func BenchmarkMemLoop(b *testing.B)    { benchBoth(b, memLoop()) }
func BenchmarkHelperLoop(b *testing.B) { benchBoth(b, helperLoop()) }

func benchBoth(b *testing.B, insns asm.Instructions) {
	b.Run("interp", func(b *testing.B) { benchInterp(b, insns) })
	b.Run("kernel-jit", func(b *testing.B) { benchKernel(b, insns) })
}

func benchInterp(b *testing.B, insns asm.Instructions) {
	m, err := interp.NewMap(memSpec, interp.MapOptions{})
	if err != nil {
		b.Fatal(err)
	}
	p, err := interp.LoadInstructions(insns, map[string]*interp.Map{"mem": m}, interp.Options{})
	if err != nil {
		b.Fatal(err)
	}
	n := executed(b, p)
	env := &interp.Env{CPU: 0}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.Run(env, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/insn")
}

// executed counts the instructions one run executes.
func executed(b *testing.B, p *interp.Program) int {
	n := 0
	if _, err := p.Run(&interp.Env{Step: func(int, *[11]uint64) { n++ }}, nil); err != nil {
		b.Fatal(err)
	}
	return n
}

func benchKernel(b *testing.B, insns asm.Instructions) {
	if os.Geteuid() != 0 {
		b.Skip("the kernel JIT comparison needs root")
	}
	kerneltest.Exclusive(b)
	km, err := ebpf.NewMap(memSpec)
	if err != nil {
		b.Skipf("bpf syscall: %v", err)
	}
	defer km.Close()
	kinsns := append(asm.Instructions(nil), insns...)
	for i := range kinsns {
		if kinsns[i].Reference() == "mem" {
			if err := kinsns[i].AssociateMap(km); err != nil {
				b.Fatal(err)
			}
		}
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, Instructions: kinsns, License: "GPL"})
	if err != nil {
		b.Fatal(err)
	}
	defer prog.Close()
	// The instruction count comes from interp, which runs the same
	// bytecode to the same result.
	m, _ := interp.NewMap(memSpec, interp.MapOptions{})
	p, err := interp.LoadInstructions(insns, map[string]*interp.Map{"mem": m}, interp.Options{})
	if err != nil {
		b.Fatal(err)
	}
	n := executed(b, p)
	in := make([]byte, 64)
	b.ResetTimer()
	_, per, err := prog.Benchmark(in, b.N, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(per.Nanoseconds())/float64(n), "ns/insn")
}

// BenchmarkRunEmpty is the fixed cost of a run: pool, stack clear, setup.
func BenchmarkRunEmpty(b *testing.B) {
	p, err := interp.Load([]byte{0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0}, interp.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		p.Run(nil, nil)
	}
}
