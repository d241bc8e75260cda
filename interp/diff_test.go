package interp_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
	"github.com/tracebroker/tracebroker/interp"
	"github.com/tracebroker/tracebroker/interp/disasm"
	"github.com/tracebroker/tracebroker/interp/internal/progen"
)

var (
	diffN        = flag.Int("diff.n", 2000, "number of random programs TestDifferentialKernel and TestProgenInterpLoad run")
	diffSeed     = flag.Uint64("diff.seed", 1, "seed of the first random program (the others follow it)")
	diffMinimize = flag.Bool("diff.minimize", true, "on a difference, also show the program cut down to what still differs")
	diffRing     = flag.Bool("diff.ring", true, "generate ring-buffer helper calls (false: leave them out, to look for other differences while the ring buffer's are known)")
)

// diffProgram is the random program and initial map value of one seed,
// with the constructs drop says left out, and the number of constructs.
// Programs are between 40 and 100 body instructions long.
func diffProgram(seed uint64, drop func(int) bool) (asm.Instructions, []byte, int) {
	rng := rand.New(rand.NewPCG(seed, 0x7472616365))
	insns, items := progen.GenerateItems(rng, progen.Config{Insns: 40 + rng.IntN(61), Drop: drop, NoRing: !*diffRing})
	value := make([]byte, progen.ValueSize)
	for i := range value {
		value[i] = byte(rng.Uint32())
	}
	return insns, value, items
}

var diffKey0 = []byte{0, 0, 0, 0}

// diffOutcome is what a run leaves: r0 (the kernel's test run reports the
// low 32 bits only; the epilogue stores all of it in value), the array
// map's value, the hash map's contents and the ring buffer's records.
type diffOutcome struct {
	r0    uint64
	value []byte
	kv    map[uint32]uint64
	ring  [][]byte
}

// diffRunInterp loads the program in the interpreter and runs it once on
// an array map holding value, an empty hash map and an empty ring buffer.
func diffRunInterp(insns asm.Instructions, value []byte) (diffOutcome, error) {
	m, err := interp.NewMap(progen.MapSpec(), interp.MapOptions{CPUs: 1})
	if err != nil {
		return diffOutcome{}, err
	}
	if err := m.Update(diffKey0, value, 0); err != nil {
		return diffOutcome{}, err
	}
	kv, err := interp.NewMap(progen.KVSpec(), interp.MapOptions{CPUs: 1})
	if err != nil {
		return diffOutcome{}, err
	}
	rb, err := interp.NewMap(progen.RingSpec(), interp.MapOptions{CPUs: 1})
	if err != nil {
		return diffOutcome{}, err
	}
	byName := map[string]*interp.Map{progen.MapName: m, progen.KVName: kv, progen.RingName: rb}
	p, err := interp.LoadInstructions(insns, byName, interp.Options{})
	if err != nil {
		return diffOutcome{}, fmt.Errorf("load: %w", err)
	}
	r0, err := p.Run(nil, nil)
	if err != nil {
		return diffOutcome{}, fmt.Errorf("run: %w", err)
	}
	out, ok, err := m.Lookup(diffKey0)
	if err != nil || !ok {
		return diffOutcome{}, fmt.Errorf("lookup: %v %v", ok, err)
	}
	o := diffOutcome{r0: r0, value: out, kv: map[uint32]uint64{}}
	kv.Iterate(func(k, v []byte) bool {
		o.kv[binary.LittleEndian.Uint32(k)] = binary.LittleEndian.Uint64(v)
		return true
	})
	for {
		rec, ok := rb.ReadRecord()
		if !ok {
			break
		}
		o.ring = append(o.ring, rec)
	}
	return o, nil
}

// diffListing is the program in the kernel's verifier-log syntax, one
// numbered slot per line.
func diffListing(insns asm.Instructions) string {
	var buf bytes.Buffer
	if err := append(asm.Instructions(nil), insns...).Marshal(&buf, binary.LittleEndian); err != nil {
		return fmt.Sprintf("(marshal: %v)\n%v", err, insns)
	}
	var sb strings.Builder
	code := buf.Bytes()
	for pc := 0; pc < len(code)/8; {
		s, w := disasm.Insn(code, pc)
		fmt.Fprintf(&sb, "%4d: %s\n", pc, s)
		pc += max(w, 1)
	}
	return sb.String()
}

// TestProgenInterpLoad checks, without a kernel, that the interpreter
// accepts every generated program and runs it to its exit.
func TestProgenInterpLoad(t *testing.T) {
	for i := 0; i < *diffN; i++ {
		seed := *diffSeed + uint64(i)
		insns, value, _ := diffProgram(seed, nil)
		if _, err := diffRunInterp(insns, value); err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, diffListing(insns))
		}
	}
}

// diffNeedKernel skips the test unless it may load BPF programs.
func diffNeedKernel(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to load BPF programs into the kernel")
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Skipf("the bpf syscall does not work here: %v", err)
	}
	m.Close()
	if err := features.HaveV4ISA(); err != nil {
		t.Skipf("the kernel lacks the v4 instructions (sdiv, movsx, bswap, gotol) progen emits: %v", err)
	}
	// cilium/ebpf's probe tries gotol alone, which Debian's 6.1 takes
	// while it refuses sign-extending loads.
	if !bpf.HaveV4ISA() {
		t.Skip("the kernel lacks the v4 instructions progen emits: it refuses sign-extending loads or signed division (bpf.HaveV4ISA; Linux 6.6)")
	}
}

// TestDifferentialKernel runs random programs (interp/internal/progen)
// in the kernel (BPF_PROG_TEST_RUN of a socket filter) and in the
// interpreter, from the same map value, and wants the same r0 (the low 32
// bits: the kernel's test run reports no more; the epilogue stores all of
// it in the value), the same map value afterwards, which holds every
// register and the stack area at exit, and the same hash-map contents.
// A difference is reported with the seed, the program, and the program
// cut down to the constructs that still make it differ.
//
// go test ./interp -run Differential -diff.n=100000 runs more programs
// (about 0.35 ms each); -diff.seed picks where to start.
func TestDifferentialKernel(t *testing.T) {
	diffNeedKernel(t)
	kerneltest.Lock(t)
	kmap, err := ebpf.NewMap(progen.MapSpec())
	if err != nil {
		t.Fatal(err)
	}
	defer kmap.Close()

	start := time.Now()
	var slots, failures int
	for i := 0; i < *diffN; i++ {
		seed := *diffSeed + uint64(i)
		insns, value, _ := diffProgram(seed, nil)
		slots += int(insns.Size() / asm.InstructionSize)
		want, err := diffRunKernel(kmap, insns, value)
		if err != nil {
			var ve *ebpf.VerifierError
			if errors.As(err, &ve) {
				t.Fatalf("seed %d: the kernel refused a generated program (a progen bug): %v\n%s\n%s", seed, err, diffListing(insns), strings.Join(ve.Log, "\n"))
			}
			t.Fatalf("seed %d: %v", seed, err)
		}
		got, err := diffRunInterp(insns, value)
		if err != nil {
			t.Errorf("seed %d: interp: %v\n%s", seed, err, diffListing(insns))
		} else if d := diffLines(want, got); d != nil {
			msg := fmt.Sprintf("seed %d: interp and kernel differ (rerun with -diff.seed=%d -diff.n=1):\n%s%s", seed, seed, strings.Join(d, ""), diffListing(insns))
			if *diffMinimize {
				msg += diffMinimizeProgram(kmap, seed, d)
			}
			t.Error(msg)
		} else {
			continue
		}
		if failures++; failures >= 5 {
			t.Fatalf("stopping after %d failing programs", failures)
		}
	}
	t.Logf("%d programs, %d instruction slots, seeds %d..%d, in %v", *diffN, slots, *diffSeed, *diffSeed+uint64(*diffN)-1, time.Since(start).Round(time.Millisecond))
}

// diffRunKernel loads the program as a socket filter and test-runs it
// once with kmap holding value and a new, empty hash map and ring buffer.
func diffRunKernel(kmap *ebpf.Map, insns asm.Instructions, value []byte) (diffOutcome, error) {
	insns = append(asm.Instructions(nil), insns...)
	if err := insns.AssociateMap(progen.MapName, kmap); err != nil {
		return diffOutcome{}, err
	}
	var kv, rb *ebpf.Map
	for _, m := range []struct {
		m    **ebpf.Map
		spec *ebpf.MapSpec
	}{{&kv, progen.KVSpec()}, {&rb, progen.RingSpec()}} {
		if !progen.Uses(insns, m.spec.Name) {
			continue
		}
		var err error
		if *m.m, err = ebpf.NewMap(m.spec); err != nil {
			return diffOutcome{}, err
		}
		defer (*m.m).Close()
		if err := insns.AssociateMap(m.spec.Name, *m.m); err != nil {
			return diffOutcome{}, err
		}
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "progen",
		Type:         ebpf.SocketFilter,
		Instructions: insns,
		License:      "GPL",
	})
	if err != nil {
		return diffOutcome{}, err
	}
	defer prog.Close()
	if err := kmap.Update(diffKey0, value, ebpf.UpdateAny); err != nil {
		return diffOutcome{}, err
	}
	// A socket filter's test run wants at least an Ethernet header.
	ret, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 64)})
	if err != nil {
		return diffOutcome{}, fmt.Errorf("test run: %w", err)
	}
	o := diffOutcome{r0: uint64(ret), value: make([]byte, progen.ValueSize), kv: map[uint32]uint64{}}
	if err := kmap.Lookup(diffKey0, &o.value); err != nil {
		return diffOutcome{}, err
	}
	if kv != nil {
		var k uint32
		var v uint64
		it := kv.Iterate()
		for it.Next(&k, &v) {
			o.kv[k] = v
		}
		if err := it.Err(); err != nil {
			return diffOutcome{}, err
		}
	}
	if rb != nil {
		rd, err := ringbuf.NewReader(rb)
		if err != nil {
			return diffOutcome{}, err
		}
		defer rd.Close()
		rd.SetDeadline(time.Now()) // what is there now, no waiting
		for {
			rec, err := rd.Read()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return diffOutcome{}, err
			}
			o.ring = append(o.ring, rec.RawSample)
		}
	}
	return o, nil
}

var diffRegNames = []string{"r0", "r1", "r2", "r3", "r4", "r5", "r7", "r8", "r9"}

// diffLines describes how the interpreter's outcome differs from the
// kernel's, a line for each place ("r0 at exit: kernel ..., interp
// ..."); nil if it does not.
func diffLines(k, i diffOutcome) []string {
	var d []string
	if uint32(i.r0) != uint32(k.r0) {
		d = append(d, fmt.Sprintf("  retval: kernel %#x, interp %#x (r0 %#x)\n", uint32(k.r0), uint32(i.r0), i.r0))
	}
	for n, name := range diffRegNames {
		off := progen.RegsOff + 8*n
		kr := binary.LittleEndian.Uint64(k.value[off:])
		ir := binary.LittleEndian.Uint64(i.value[off:])
		if kr != ir {
			d = append(d, fmt.Sprintf("  %s at exit: kernel %#x, interp %#x\n", name, kr, ir))
		}
	}
	region := func(off int) string {
		if off < progen.MemBytes {
			return fmt.Sprintf("value[%d]", off)
		}
		return fmt.Sprintf("stack[r10%d]", off-progen.StackOff-progen.StackBytes)
	}
	for off := 0; off < progen.ValueSize; off += 8 {
		if off >= progen.RegsOff && off < progen.StackOff {
			continue
		}
		if kb, ib := k.value[off:off+8], i.value[off:off+8]; !bytes.Equal(kb, ib) {
			d = append(d, fmt.Sprintf("  %s..+8: kernel % x, interp % x\n", region(off), kb, ib))
		}
	}
	if !maps.Equal(k.kv, i.kv) {
		d = append(d, fmt.Sprintf("  %s: kernel %v, interp %v\n", progen.KVName, k.kv, i.kv))
	}
	if !slices.EqualFunc(k.ring, i.ring, bytes.Equal) {
		d = append(d, fmt.Sprintf("  %s: kernel %s, interp %s\n", progen.RingName, diffRecords(k.ring), diffRecords(i.ring)))
	}
	return d
}

// diffRecords describes ring-buffer records: their sizes and first bytes.
func diffRecords(recs [][]byte) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d records [", len(recs))
	for i, r := range recs {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "%d bytes % x", len(r), r[:min(len(r), 4)])
	}
	sb.WriteString("]")
	return sb.String()
}

// diffKey is the place a diffLines line is about.
func diffKey(line string) string {
	return strings.TrimSpace(line[:strings.Index(line, ":")])
}

// diffMinimizeProgram leaves out as many of the constructs of seed's
// program as it can (progen.Config.Drop) while the interpreter still
// differs from the kernel in one of the places it did (diff), and
// describes the program that is left.
func diffMinimizeProgram(kmap *ebpf.Map, seed uint64, diff []string) string {
	places := map[string]bool{}
	for _, l := range diff {
		places[diffKey(l)] = true
	}
	_, _, n := diffProgram(seed, nil)
	drop := make([]bool, n)
	fails := func() []string {
		insns, value, _ := diffProgram(seed, func(i int) bool { return drop[i] })
		want, err := diffRunKernel(kmap, insns, value)
		if err != nil {
			return nil
		}
		got, err := diffRunInterp(insns, value)
		if err != nil {
			return nil
		}
		d := diffLines(want, got)
		for _, l := range d {
			if places[diffKey(l)] {
				return d
			}
		}
		return nil
	}
	for changed := true; changed; {
		changed = false
		for i := range drop {
			if drop[i] {
				continue
			}
			drop[i] = true
			if fails() != nil {
				changed = true
			} else {
				drop[i] = false
			}
		}
	}
	insns, _, _ := diffProgram(seed, func(i int) bool { return drop[i] })
	return fmt.Sprintf("cut down to what still differs:\n%s%s", strings.Join(fails(), ""), diffListing(insns))
}

// quirkPrologue is the prologue of the kernel-quirk programs: r6 = the
// value of the array map progen.MapName.
func quirkPrologue() asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.R10, -8, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -8),
		asm.LoadMapPtr(asm.R1, 0).WithReference(progen.MapName),
		asm.FnMapLookupElem.Call(),
		asm.JNE.Imm(asm.R0, 0, "found"),
		asm.Return(),
		asm.Mov.Reg(asm.R6, asm.R0).WithSymbol("found"),
	}
}

// diffKernelQuirks are programs on which Linux (6.18 at least) departs from
// RFC 9669, so that progen avoids what they do: want is r0 by the RFC,
// which the interpreter must return.
var diffKernelQuirks = []struct {
	name  string
	insns asm.Instructions
	want  uint64
}{{
	// x86's cmpxchg leaves rax alone when it succeeds, so after a 32-bit
	// BPF cmpxchg the verifier zero-extends r0 explicitly, but only if it
	// sees r0 read as 64 bits on a path it explores: the cmpxchg path is
	// pruned at "out", against the state of the path that did not go
	// through it (it needs 8 instructions and 2 jumps to take a
	// checkpoint there), and r0 keeps its upper half. The cmpxchg
	// succeeds: value[8:12] and the low half of r0 are both 0.
	name: "cmpxchg32 zero extension",
	insns: append(quirkPrologue(),
		asm.LoadImm(asm.R0, 1<<32, asm.DWord),
		asm.Mov.Imm(asm.R1, 7),
		asm.LoadMem(asm.R2, asm.R6, 0, asm.Byte),
		asm.JEq.Imm(asm.R2, 0, "cas"),
		asm.Mov.Imm(asm.R3, 1), asm.Mov.Imm(asm.R3, 1), asm.Mov.Imm(asm.R3, 1), asm.Mov.Imm(asm.R3, 1),
		asm.Mov.Imm(asm.R3, 1), asm.Mov.Imm(asm.R3, 1), asm.Mov.Imm(asm.R3, 1), asm.Mov.Imm(asm.R3, 1),
		asm.Ja.Label("out"),
		func() asm.Instruction {
			ins := asm.CmpXchg.Mem(asm.R6, asm.R1, asm.Word, 8)
			ins.Constant = int64(asm.CmpXchg >> 8) // see progen's atomicInsn
			return ins.WithSymbol("cas")
		}(),
		asm.RSh.Imm(asm.R0, 32).WithSymbol("out"),
		asm.Return(),
	),
	want: 0,
}, {
	// In a subprogram, scalar += r10 makes a pointer the verifier takes
	// for one into frame 0, the caller's stack (adjust_ptr_min_max_vals
	// copies the pointer's type, not its frameno): it believes the load
	// reads the caller's 0x1234, so it hard-wires the branch, and the
	// program returns 0 though the load, from the callee's own zeroed
	// slot, gives 0.
	name: "scalar += r10 in a subprogram",
	insns: append(quirkPrologue(),
		asm.Mov.Imm(asm.R7, 0x1234),
		asm.StoreMem(asm.R10, -16, asm.R7, asm.DWord),
		asm.Call.Label("sub"),
		asm.Return(),
		asm.Mov.Imm(asm.R1, 0).WithSymbol("sub"),
		asm.StoreMem(asm.R10, -16, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R6, 0),
		asm.Add.Reg(asm.R6, asm.R10),
		asm.LoadMem(asm.R0, asm.R6, -16, asm.Word),
		asm.JEq.Imm(asm.R0, 0x1234, "same"),
		asm.Mov.Imm(asm.R0, 1),
		asm.Return().WithSymbol("same"),
	),
	want: 1,
}, {
	// The stack liveness analysis takes an atomic on a stack slot for a
	// write only: the slot is dead before it, so the state that reaches
	// "join" through the store of 7 is pruned against the one with 0
	// there, and the verifier, believing the fetch gives 0, hard-wires the
	// branch. The value is zero, so the store path runs.
	name: "atomic fetch from a stack slot after a join",
	insns: append(quirkPrologue(),
		asm.Instruction{OpCode: asm.StoreImmOp(asm.DWord), Dst: asm.R10, Offset: -16},
		asm.Mov.Imm(asm.R1, 7),
		asm.LoadMem(asm.R2, asm.R6, 0, asm.Byte),
		asm.JEq.Imm(asm.R2, 0, "store"),
		asm.Mov.Imm(asm.R3, 1), asm.Mov.Imm(asm.R3, 1), asm.Mov.Imm(asm.R3, 1), asm.Mov.Imm(asm.R3, 1),
		asm.Mov.Imm(asm.R3, 1), asm.Mov.Imm(asm.R3, 1), asm.Mov.Imm(asm.R3, 1), asm.Mov.Imm(asm.R3, 1),
		asm.Ja.Label("join"),
		asm.StoreMem(asm.R10, -16, asm.R1, asm.DWord).WithSymbol("store"),
		asm.Mov.Imm(asm.R3, 0).WithSymbol("join"),
		func() asm.Instruction {
			ins := asm.FetchAdd.Mem(asm.R10, asm.R3, asm.DWord, -16)
			ins.Constant = int64(asm.FetchAdd >> 8) // see progen's atomicInsn
			return ins
		}(),
		asm.Mov.Imm(asm.R0, 0),
		asm.JEq.Imm(asm.R3, 0, "zero"),
		asm.Mov.Imm(asm.R0, 1),
		asm.Return().WithSymbol("zero"),
	),
	want: 1,
}}

// diffKernelMap is the kernel's copy of progen's array map when this
// process may load programs with the v4 instructions, else nil (the
// caller then checks the interpreter against its expectations alone).
func diffKernelMap(t *testing.T) *ebpf.Map {
	if os.Geteuid() != 0 || features.HaveV4ISA() != nil {
		return nil
	}
	kerneltest.Lock(t)
	kmap, err := ebpf.NewMap(progen.MapSpec())
	if err != nil {
		return nil
	}
	t.Cleanup(func() { kmap.Close() })
	return kmap
}

// TestKernelQuirks checks the interpreter follows RFC 9669 where the
// kernel does not (see diffKernelQuirks), and says whether this kernel still
// departs from it: when it no longer does, progen's workaround can go.
func TestKernelQuirks(t *testing.T) {
	kmap := diffKernelMap(t)
	kernel := kmap != nil
	value := make([]byte, progen.ValueSize)
	for _, q := range diffKernelQuirks {
		got, err := diffRunInterp(q.insns, value)
		if err != nil {
			t.Errorf("%s: interp: %v\n%s", q.name, err, diffListing(q.insns))
			continue
		}
		if got.r0 != q.want {
			t.Errorf("%s: interp r0 = %#x, want %#x (RFC 9669)\n%s", q.name, got.r0, q.want, diffListing(q.insns))
		}
		if !kernel {
			continue
		}
		k, err := diffRunKernel(kmap, q.insns, value)
		switch {
		case err != nil:
			t.Logf("%s: the kernel refuses the program: %v", q.name, err)
		case uint32(k.r0) != uint32(q.want):
			t.Logf("%s: the kernel still departs from RFC 9669: r0 = %#x, not %#x", q.name, k.r0, q.want)
		default:
			t.Logf("%s: the kernel now follows RFC 9669: progen's workaround can go", q.name)
		}
	}
}

// diffRingCases are ring-buffer programs with the kernel's outcome: r0
// and the records a reader finds afterwards.
var diffRingCases = []struct {
	name    string
	insns   asm.Instructions
	r0      uint64
	records [][]byte
}{{
	// A reader sees records in the order they were reserved, whatever
	// the order they were submitted in.
	name: "records in reservation order",
	insns: append(quirkPrologue(),
		ringRef(), asm.Mov.Imm(asm.R2, 8), asm.Mov.Imm(asm.R3, 0), asm.FnRingbufReserve.Call(), asm.Mov.Reg(asm.R7, asm.R0),
		ringRef(), asm.Mov.Imm(asm.R2, 16), asm.Mov.Imm(asm.R3, 0), asm.FnRingbufReserve.Call(), asm.Mov.Reg(asm.R8, asm.R0),
		asm.JEq.Imm(asm.R8, 0, "second"),
		stImmDW(asm.R8, 0, 2), stImmDW(asm.R8, 8, 2),
		asm.Mov.Reg(asm.R1, asm.R8), asm.Mov.Imm(asm.R2, 0), asm.FnRingbufSubmit.Call(),
		asm.JEq.Imm(asm.R7, 0, "out").WithSymbol("second"),
		stImmDW(asm.R7, 0, 1),
		asm.Mov.Reg(asm.R1, asm.R7), asm.Mov.Imm(asm.R2, 0), asm.FnRingbufSubmit.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	),
	r0:      0,
	records: [][]byte{{1, 0, 0, 0, 0, 0, 0, 0}, {2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}},
}, {
	// ringbuf_output takes BPF_RB_NO_WAKEUP and BPF_RB_FORCE_WAKEUP only.
	name: "ringbuf_output with invalid flags",
	insns: append(quirkPrologue(),
		ringRef(), asm.Mov.Reg(asm.R2, asm.R6), asm.Mov.Imm(asm.R3, 8), asm.Mov.Imm(asm.R4, 4), asm.FnRingbufOutput.Call(),
		asm.Return(),
	),
	r0: uint64(0xffffffea), // -EINVAL
}, {
	// BPF_RB_PROD_POS: the producer position, 8 bytes of header and the
	// record rounded up to 8.
	name: "ringbuf_query BPF_RB_PROD_POS",
	insns: append(quirkPrologue(),
		ringRef(), asm.Mov.Reg(asm.R2, asm.R6), asm.Mov.Imm(asm.R3, 5), asm.Mov.Imm(asm.R4, 0), asm.FnRingbufOutput.Call(),
		ringRef(), asm.Mov.Imm(asm.R2, 3), asm.FnRingbufQuery.Call(),
		asm.Return(),
	),
	r0:      16,
	records: [][]byte{{0, 0, 0, 0, 0}},
}, {
	// BPF_RB_AVAIL_DATA is producer minus consumer position: a
	// discarded record counts until a reader has passed it.
	name: "ringbuf_query BPF_RB_AVAIL_DATA after a discard",
	insns: append(quirkPrologue(),
		ringRef(), asm.Mov.Imm(asm.R2, 8), asm.Mov.Imm(asm.R3, 0), asm.FnRingbufReserve.Call(),
		asm.JEq.Imm(asm.R0, 0, "query"),
		asm.Mov.Reg(asm.R1, asm.R0), asm.Mov.Imm(asm.R2, 0), asm.FnRingbufDiscard.Call(),
		ringRef().WithSymbol("query"), asm.Mov.Imm(asm.R2, 0), asm.FnRingbufQuery.Call(),
		asm.Return(),
	),
	r0: 16,
}, {
	// The producer may never get a whole ring ahead of the consumer: a
	// record of 4088 bytes (4096 with its header) does not fit an empty
	// 4096-byte ring.
	name: "a record as large as the ring",
	insns: append(quirkPrologue(),
		ringRef(), asm.Mov.Imm(asm.R2, progen.RingSize-8), asm.Mov.Imm(asm.R3, 0), asm.FnRingbufReserve.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Reg(asm.R1, asm.R0), asm.Mov.Imm(asm.R2, 0), asm.FnRingbufDiscard.Call(),
		asm.Mov.Imm(asm.R0, 1),
		asm.Return().WithSymbol("out"),
	),
	r0: 0,
}, {
	// A discarded record keeps its space until a reader has passed it:
	// two records of 2048 bytes (2056 with header) do not fit, discarded
	// or not.
	name: "a discarded record keeps its space",
	insns: append(quirkPrologue(),
		ringRef(), asm.Mov.Imm(asm.R2, progen.RingSize/2), asm.Mov.Imm(asm.R3, 0), asm.FnRingbufReserve.Call(),
		asm.JEq.Imm(asm.R0, 0, "second"),
		asm.Mov.Reg(asm.R1, asm.R0), asm.Mov.Imm(asm.R2, 0), asm.FnRingbufDiscard.Call(),
		ringRef().WithSymbol("second"), asm.Mov.Imm(asm.R2, progen.RingSize/2), asm.Mov.Imm(asm.R3, 0), asm.FnRingbufReserve.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Reg(asm.R1, asm.R0), asm.Mov.Imm(asm.R2, 0), asm.FnRingbufDiscard.Call(),
		asm.Mov.Imm(asm.R0, 1),
		asm.Return().WithSymbol("out"),
	),
	r0: 0,
}}

func ringRef() asm.Instruction { return asm.LoadMapPtr(asm.R1, 0).WithReference(progen.RingName) }

func stImmDW(dst asm.Register, off int16, v int32) asm.Instruction {
	return asm.Instruction{OpCode: asm.StoreImmOp(asm.DWord), Dst: dst, Offset: off, Constant: int64(v)}
}

// TestDifferentialRingbuf runs small ring-buffer programs whose outcome
// in the kernel is known (diffRingCases) in the interpreter, and in the
// kernel too when it can, to check the expectations.
func TestDifferentialRingbuf(t *testing.T) {
	kmap := diffKernelMap(t)
	kernel := kmap != nil
	value := make([]byte, progen.ValueSize)
	for _, c := range diffRingCases {
		want := diffOutcome{r0: c.r0, value: value, kv: map[uint32]uint64{}, ring: c.records}
		got, err := diffRunInterp(c.insns, value)
		if err != nil {
			t.Errorf("%s: interp: %v\n%s", c.name, err, diffListing(c.insns))
		} else if d := diffLines(want, got); d != nil {
			t.Errorf("%s: interp differs from the kernel:\n%s%s", c.name, strings.Join(d, ""), diffListing(c.insns))
		}
		if !kernel {
			continue
		}
		k, err := diffRunKernel(kmap, c.insns, value)
		if err != nil {
			t.Errorf("%s: kernel: %v", c.name, err)
		} else if d := diffLines(k, want); d != nil {
			t.Errorf("%s: the kernel does not do what the test expects (\"interp\" is the expectation):\n%s", c.name, strings.Join(d, ""))
		}
	}
}
