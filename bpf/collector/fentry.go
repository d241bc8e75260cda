package collector

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/broker/program"
)

// The kfunc/kretfunc collectors (FentryName, FexitName) are tracing
// programs. An fentry program's target, a kernel function's BTF id, is
// fixed when it is loaded (attach_btf_id, outside the signed bytes), so
// each is loaded once per function, as the indexed raw tracepoint
// collector is once per raw tracepoint: the probe index comes from the
// instance's own frozen map, its records are built in its own scratch
// value (rawtp.go says why: an instance may interrupt another on the
// same CPU, the kernel keeps each from recursing only into itself).
//
// A map keyed by bpf_get_func_ip would not spare a load per function:
// the target is fixed at load whatever the code reads; and two probes on
// one function (a kfunc and a kretfunc, or two kfunc probes of a script)
// would share its key. The frozen per-instance map is the code rawtpix
// has, verified on 6.1 and 6.12 already.
//
// The verifier checks an fentry program's loads from its context against
// the target's arguments, so fixed code that read the context directly
// would pass for some targets only. The collectors read it through
// bpf_get_func_arg_cnt, bpf_get_func_arg and (fexit) bpf_get_func_ret
// (Linux 5.17), which check the index at run time: the same signed bytes
// pass the verifier for any target. The record's context is what the
// raw tracepoint collector's is, the arguments as u64 slots, and for a
// kretfunc the return value in the slot after them: the context a JIT
// fentry/fexit program reads, so that the compiled program reads both.
//
// bpf_get_func_ret is refused by the verifier in an fentry program:
// hence two collectors, whose objects also name their attach type.

// MaxFuncInstances bounds the kfunc/kretfunc probes of a session: each is
// a program of its own, with a verifier pass, a per-CPU scratch value
// (MaxRecord bytes per CPU) and a trampoline. bpftrace's scripts name a
// few functions; a wildcard over many runs in JIT mode.
const MaxFuncInstances = 64

// attachTypes are the load-time attach types of the tracing
// collectors, as the object names them (the kernel's numbers).
var attachTypes = map[kind]struct {
	typ  ebpf.AttachType
	num  int
	name string
}{
	kindFentry: {ebpf.AttachTraceFEntry, 24, "BPF_TRACE_FENTRY"},
	kindFexit:  {ebpf.AttachTraceFExit, 25, "BPF_TRACE_FEXIT"},
}

// perInstance: the collector is loaded once per probe, its probe index
// and scratch value in maps of its own.
func (k kind) perInstance() bool {
	return k == kindRawTracepointIndex || k == kindFentry || k == kindFexit
}

// funcKind is the collector of a kfunc/kretfunc probe.
func funcKind(k program.ProbeKind) (kind, bool) {
	switch k {
	case program.Fentry:
		return kindFentry, true
	case program.Fexit:
		return kindFexit, true
	}
	return 0, false
}

// stackCnt keeps the argument count across the helper calls.
const stackCnt = -24

// copyFuncArgs copies the function's arguments, u64 slots, with
// bpf_get_func_arg, and for fexit its return value after them with
// bpf_get_func_ret; ctx_len is 8 per slot copied. The slots are unrolled
// with constant offsets into the record (the helpers take an aligned
// pointer to a u64): slot i is copied while i is below the count.
func copyFuncArgs(g *gen, ret bool) {
	g.Emit(
		asm.Mov.Reg(asm.R1, rCtx),
		asm.FnGetFuncArgCnt.Call(),
		// More than a BPF program may have is a kernel this code does
		// not know: record nothing rather than a cut context.
		asm.JGT.Imm(asm.R0, MaxRawArgs, "exit"),
		asm.StoreMem(asm.R10, stackCnt, asm.R0, asm.DWord),
	)
	for i := int32(0); i < MaxRawArgs; i++ {
		g.Emit(
			asm.LoadMem(asm.R1, asm.R10, stackCnt, asm.DWord),
			asm.JLE.Imm(asm.R1, i, "args_done"),
			asm.Mov.Reg(asm.R1, rCtx),
			asm.Mov.Imm(asm.R2, i),
			asm.Mov.Reg(asm.R3, rRec),
			asm.Add.Imm(asm.R3, HeaderSize+8*i),
			asm.FnGetFuncArg.Call(),
		)
	}
	g.Label("args_done")
	g.Emit(asm.LoadMem(rEnd, asm.R10, stackCnt, asm.DWord))
	if ret {
		// The return value in slot count, a constant offset on each
		// path again.
		for i := int32(0); i <= MaxRawArgs; i++ {
			g.Emit(
				asm.JNE.Imm(rEnd, i, fmt.Sprintf("ret%d_next", i)),
				asm.Mov.Reg(asm.R1, rCtx),
				asm.Mov.Reg(asm.R2, rRec),
				asm.Add.Imm(asm.R2, HeaderSize+8*i),
				asm.FnGetFuncRet.Call(),
				asm.Ja.Label("ret_done"),
			)
			g.Label(fmt.Sprintf("ret%d_next", i))
		}
		g.Emit(asm.Ja.Label("exit"))
		g.Label("ret_done")
		g.Emit(
			asm.LoadMem(rEnd, asm.R10, stackCnt, asm.DWord),
			asm.Add.Imm(rEnd, 1),
		)
	}
	g.Emit(
		asm.LSh.Imm(rEnd, 3),
		asm.StoreMem(rRec, 44, rEnd, asm.Word),
		asm.Add.Imm(rEnd, HeaderSize),
	)
}

// checkFunc: a kfunc probe names its function, and the module it is in.
func checkFunc(p Probe) error {
	if p.Event == "" || p.Category == "" {
		return errors.New("a kfunc/kretfunc probe needs a module and a function")
	}
	return nil
}

func funcString(p Probe) string {
	name := "kfunc"
	if p.Kind == program.Fexit {
		name = "kretfunc"
	}
	return fmt.Sprintf("%s:%s:%s", name, p.Category, p.Event)
}

var funcHelpers = sync.OnceValue(func() error {
	if err := bpf.HaveFentry(); err != nil {
		return err
	}
	prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Type:       ebpf.Tracing,
		AttachType: ebpf.AttachTraceFExit,
		AttachTo:   "vfs_read",
		License:    "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.FnGetFuncArgCnt.Call(),
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, -8),
			asm.FnGetFuncRet.Call(),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	}, ebpf.ProgramOptions{LogDisabled: true})
	if err != nil {
		return fmt.Errorf("this kernel has no bpf_get_func_arg_cnt and bpf_get_func_ret, which interpreter mode's kfunc/kretfunc collectors need (Linux 5.17): %w", err)
	}
	prog.Close()
	return nil
})

// FuncCollectors reports why this kernel can not run the kfunc/kretfunc
// collectors, or nil: fentry/fexit programs refused, or the helpers
// that read their context missing. The kernel is asked once.
func FuncCollectors() error { return funcHelpers() }

// attachFunc puts instance prog's trampoline on its function.
func attachFunc(prog *ebpf.Program) (link.Link, error) {
	l, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if err != nil {
		return nil, bpf.FentryAttachError(err)
	}
	return l, nil
}

// servedBy: probe p is served by the per-instance collector k.
func servedBy(p Probe, k kind) bool {
	switch k {
	case kindRawTracepointIndex:
		return p.Kind == program.RawTracepoint || p.Kind == program.TpBTF
	case kindFentry, kindFexit:
		fk, ok := funcKind(p.Kind)
		return ok && fk == k
	}
	return false
}

// checkFuncs refuses, before anything is loaded, the kfunc/kretfunc
// probes of a session this kernel can not serve, more than
// MaxFuncInstances of them, or one whose function is ambiguous.
func checkFuncs(probes []Probe, need [numKinds]bool) error {
	if !need[kindFentry] && !need[kindFexit] {
		return nil
	}
	n := 0
	for _, p := range probes {
		if _, ok := funcKind(p.Kind); ok {
			n++
		}
	}
	if n > MaxFuncInstances {
		return fmt.Errorf("collector: %d kfunc/kretfunc probes, at most %d on the collectors, where each is a program of its own (JIT mode takes more)", n, MaxFuncInstances)
	}
	if err := FuncCollectors(); err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	for i, p := range probes {
		if _, ok := funcKind(p.Kind); !ok {
			continue
		}
		if err := bpf.FentryTarget(p.Category, p.Event); err != nil {
			return fmt.Errorf("collector: probe %d (%s): %w", i, p, err)
		}
	}
	return nil
}
