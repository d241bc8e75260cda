package lsmgate

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/gatekeeper"
	"github.com/tracebroker/tracebroker/gatekeeper/abi"
)

// The policy in the kernel. tb_gate_bpf calls a global function,
// tb_gate_policy(struct tb_request *req), on every guarded load when
// the config says a policy is there (FlagPolicy). Its body in the gate's
// fixed code is a stub; Enforce replaces it with the loaded gatekeeper
// policy's own bytecode, as an extension program (BPF_PROG_TYPE_EXT,
// freplace), whose prototype the kernel checks against the gate's BTF.
// So the gate's bytes stay what its manifest signs, and the policy's
// stay what the policy's signature covers: the kernel joins them.

// policyFuncName is the global function a policy replaces.
const policyFuncName = "tb_gate_policy"

// Record.Verdict values for a policy refusal where the policy did not
// return: no verdict a policy returns (0-3) is one of them.
const (
	// VerdictNoPolicy: the stub ran, so the policy's extension is no
	// longer attached although the gate was enforced with one.
	VerdictNoPolicy = 0x7fff0001
	// VerdictNotRun: the Request could not be built (another load held
	// this CPU's scratch: the kernel preempted one gate run for
	// another), so the policy was not run and the load is refused.
	VerdictNotRun = 0x7fff0002
)

// attr's expected_attach_type in BPF_PROG_LOAD (union bpf_attr); insn_cnt
// is at 4.
const (
	attrInsnCnt            = 4
	attrExpectedAttachType = 68
)

// reqOff is the offset of Request field name (abi, version 1).
func reqOff(name string) int16 {
	f, ok := abi.Lookup(name)
	if !ok {
		panic("lsmgate: no Request field " + name)
	}
	return int16(f.Offset)
}

// The gate's BTF: function information for tb_gate_bpf and its global
// function, so that the kernel verifies tb_gate_policy on its own (its
// argument is a pointer to requestSize bytes, or NULL) and lets an
// extension with the same prototype replace it. Each call makes new
// types: cilium marshals them, and no two loads share them.
func btfTypes() (mainFn, policyFn *btf.Func) {
	i32 := &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	u8 := &btf.Int{Name: "unsigned char", Size: 1}
	u64 := &btf.Int{Name: "unsigned long long", Size: 8}
	index := &btf.Int{Name: "__ARRAY_SIZE_TYPE__", Size: 4}
	request := &btf.Struct{Name: "tb_request", Size: requestSize, Members: []btf.Member{
		{Name: "raw", Type: &btf.Array{Index: index, Type: u8, Nelems: requestSize}},
	}}
	mainFn = &btf.Func{Name: "tb_gate_bpf", Linkage: btf.GlobalFunc, Type: &btf.FuncProto{
		Return: i32, Params: []btf.FuncParam{{Name: "ctx", Type: &btf.Pointer{Target: u64}}},
	}}
	policyFn = &btf.Func{Name: policyFuncName, Linkage: btf.GlobalFunc, Type: &btf.FuncProto{
		Return: i32, Params: []btf.FuncParam{{Name: "req", Type: &btf.Pointer{Target: request}}},
	}}
	return mainFn, policyFn
}

// funcDecl writes fn as C, for Object's header: the BTF the kernel
// checks a policy's prototype against is signed with the code.
func funcDecl(fn *btf.Func) string {
	proto := fn.Type.(*btf.FuncProto)
	var params []string
	for _, p := range proto.Params {
		params = append(params, typeDecl(p.Type)+p.Name)
	}
	linkage := "static"
	if fn.Linkage == btf.GlobalFunc {
		linkage = "global"
	}
	return fmt.Sprintf("%s %s%s(%s)", linkage, typeDecl(proto.Return), fn.Name, strings.Join(params, ", "))
}

func typeDecl(t btf.Type) string {
	switch t := t.(type) {
	case *btf.Int:
		return t.Name + " "
	case *btf.Pointer:
		return typeDecl(t.Target) + "*"
	case *btf.Struct:
		var ms []string
		for _, m := range t.Members {
			if a, ok := m.Type.(*btf.Array); ok {
				ms = append(ms, fmt.Sprintf("%s%s[%d]; ", typeDecl(a.Type), m.Name, a.Nelems))
				continue
			}
			ms = append(ms, typeDecl(m.Type)+m.Name+"; ")
		}
		return fmt.Sprintf("struct %s { %s} /* %d bytes */ ", t.Name, strings.Join(ms, ""), t.Size)
	}
	return fmt.Sprintf("%v ", t)
}

// xchg is *(u64 *)(dst + off) <-> src, atomically. cilium (v0.22)
// encodes an atomic instruction's operation into its immediate from
// Constant, not from the OpCode asm.Xchg.Mem sets: without Constant the
// kernel would get BPF_ADD, and src would keep its value.
func xchg(dst, src asm.Register, off int16) asm.Instruction {
	ins := asm.Xchg.Mem(dst, src, asm.DWord, off)
	ins.Constant = bpfXchg
	return ins
}

// bpfXchg is BPF_XCHG (0xe0) | BPF_FETCH (0x01).
const bpfXchg = 0xe1

// policyStub is tb_gate_policy as the gate's code has it: it returns
// VerdictNoPolicy, which refuses. It runs only when the gate was enforced
// with a policy (FlagPolicy) whose extension is gone.
func policyStub(fn *btf.Func) asm.Instructions {
	return asm.Instructions{
		btf.WithFuncMetadata(asm.Mov.Imm(asm.R0, VerdictNoPolicy).WithSymbol(policyFuncName), fn),
		asm.Return(),
	}
}

// policy is tb_gate_bpf's guarded load when a policy decides: it builds
// the Request in this CPU's scratch from the template and what the
// kernel knows of the load (uid, gid, instruction count, program type)
// and of its loader (the allow entry's identity, when the executable
// is an allowed loader), calls tb_gate_policy and allows the load for
// any verdict but deny. The verdict is the Request's mode as the broker
// would pick it (JIT, interpreter), but the kernel sees a load, not a
// mode: interpreter mode loads the signed collectors, JIT mode the
// program itself, and which it is the broker decided with the same
// policy; what the kernel can add is that nothing the policy denies is
// loaded at all. Anything but a verdict refuses, as in user space.
//
// In: rTmp the program type, rFlags the loader's allow flags (not
// modified), stIdent its identity.
func (g *gen) policy() {
	g.Label("policy")
	g.Emit(
		asm.StoreImm(asm.R10, stKey, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, stKey),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapRequest),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "policy_not_run"),
		asm.Mov.Reg(rObj, asm.R0),
		// The scratch is this CPU's, and a BPF LSM program runs with
		// migration, not preemption, disabled: a gate run preempted on
		// this CPU by another would share it. The busy word makes the
		// second refuse rather than judge a Request the first is
		// writing.
		asm.Mov.Imm(asm.R1, 1),
		xchg(rObj, asm.R1, requestBusy),
		asm.JNE.Imm(asm.R1, 0, "policy_not_run"),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, stKey),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapTemplate),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "policy_release"),
		asm.Mov.Reg(asm.R3, asm.R0),
		asm.Mov.Reg(asm.R1, rObj),
		asm.Mov.Imm(asm.R2, requestSize),
		asm.FnProbeReadKernel.Call(),

		asm.FnGetCurrentUidGid.Call(),
		asm.StoreMem(rObj, reqOff("uid"), asm.R0, asm.Word),
		asm.RSh.Imm(asm.R0, 32),
		asm.StoreMem(rObj, reqOff("gid"), asm.R0, asm.Word),
		arg(asm.R3, 1),
		asm.Add.Imm(asm.R3, attrInsnCnt),
		asm.Mov.Reg(asm.R1, rObj),
		asm.Add.Imm(asm.R1, int32(reqOff("insn_count"))),
		asm.Mov.Imm(asm.R2, 4),
		asm.FnProbeReadKernel.Call(),

		// program_type: by (type, attach type), else (type, any).
		asm.StoreMem(asm.R10, stType, rTmp, asm.Word),
		asm.StoreImm(asm.R10, stType+4, 0, asm.Word),
		arg(asm.R3, 1),
		asm.Add.Imm(asm.R3, attrExpectedAttachType),
		asm.Mov.Reg(asm.R1, asm.R10),
		asm.Add.Imm(asm.R1, stType+4),
		asm.Mov.Imm(asm.R2, 4),
		asm.FnProbeReadKernel.Call(),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, stType),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapTypes),
		asm.FnMapLookupElem.Call(),
		asm.JNE.Imm(asm.R0, 0, "policy_type"),
		asm.StoreImm(asm.R10, stType+4, -1, asm.Word), // anyAttach
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, stType),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapTypes),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "policy_loader"),
	)
	g.Label("policy_type")
	g.Emit(
		asm.Mov.Reg(asm.R3, asm.R0),
		asm.Mov.Reg(asm.R1, rObj),
		asm.Add.Imm(asm.R1, int32(reqOff("program_type"))),
		asm.Mov.Imm(asm.R2, programTypeSize),
		asm.FnProbeReadKernel.Call(),
	)

	// The loader: its identity as user space measured it, when the
	// executable is an allowed loader; else the template's nothing.
	g.Label("policy_loader")
	g.Emit(
		asm.Mov.Reg(asm.R1, rFlags),
		asm.And.Imm(asm.R1, AllowLoad),
		asm.JEq.Imm(asm.R1, 0, "policy_call"),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, stIdent),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapAllow),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "policy_call"),
		asm.StoreMem(asm.R10, stSaved, asm.R0, asm.DWord),
		asm.LoadMem(asm.R1, asm.R0, allowVerified, asm.Byte),
		asm.StoreMem(rObj, reqOff("broker_verified"), asm.R1, asm.Byte),
		asm.LoadMem(asm.R3, asm.R10, stSaved, asm.DWord),
		asm.Add.Imm(asm.R3, allowDigest),
		asm.Mov.Reg(asm.R1, rObj),
		asm.Add.Imm(asm.R1, int32(reqOff("broker_digest"))),
		asm.Mov.Imm(asm.R2, digestSize),
		asm.FnProbeReadKernel.Call(),
		asm.LoadMem(asm.R3, asm.R10, stSaved, asm.DWord),
		asm.Add.Imm(asm.R3, allowSigner),
		asm.Mov.Reg(asm.R1, rObj),
		asm.Add.Imm(asm.R1, int32(reqOff("broker_signer"))),
		asm.Mov.Imm(asm.R2, abi.KeyIDSize),
		asm.FnProbeReadKernel.Call(),
	)

	g.Label("policy_call")
	g.Emit(
		asm.Mov.Reg(asm.R1, rObj),
		asm.Call.Label(policyFuncName),
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(rObj, requestBusy, asm.R1, asm.DWord),
		asm.StoreMem(asm.R10, stRecord+recVerdict, asm.R0, asm.Word),
		asm.JEq.Imm(asm.R0, abi.Deny, "refuse_policy"),
		asm.JGT.Imm(asm.R0, abi.Any, "refuse_policy"),
		asm.Ja.Label("allow"),
	)
	g.Label("policy_release")
	g.Emit(asm.Mov.Imm(asm.R1, 0), asm.StoreMem(rObj, requestBusy, asm.R1, asm.DWord))
	g.Label("policy_not_run")
	g.Emit(asm.StoreImm(asm.R10, stRecord+recVerdict, VerdictNotRun, asm.Word))
	g.Label("refuse_policy")
	g.refuse(ReasonPolicy, cmdProgLoad, rTmp)
}

// policyHook is how Status names the policy's link among the hooks'.
const policyHook = "freplace/" + policyFuncName

// policyTarget is the gate's program whose tb_gate_policy a policy
// replaces.
const policyTarget = "tb_gate_bpf"

// policyUnsupportedError says the kernel cannot run a policy as an
// extension of the gate at all: it refused the simplest one.
type policyUnsupportedError struct{ err error }

func (e *policyUnsupportedError) Error() string {
	return "this kernel does not replace the gate's tb_gate_policy with an extension program: " + firstLine(e.err.Error())
}

func (e *policyUnsupportedError) Unwrap() error { return e.err }

// kernelPolicy is a policy loaded and attached as the extension of the
// gate's program.
type kernelPolicy struct {
	coll *ebpf.Collection
	link link.Link
	maps []*ebpf.Map // in the order of the policy's Program
}

func (k *kernelPolicy) close() {
	k.link.Close()
	k.coll.Close()
}

// probeExtension says whether this kernel lets an extension replace
// target's tb_gate_policy: it loads and attaches one that denies, then
// takes it away (target is not attached to its hook yet).
func probeExtension(target *ebpf.Program) error {
	_, fn := btfTypes()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "tb_gate_probe", Type: ebpf.Extension, AttachTarget: target, AttachTo: policyFuncName, License: "GPL",
		Instructions: asm.Instructions{
			btf.WithFuncMetadata(asm.Mov.Imm(asm.R0, abi.Deny), fn),
			asm.Return(),
		},
	})
	if err != nil {
		return err
	}
	defer prog.Close()
	l, err := link.AttachFreplace(nil, "", prog)
	if err != nil {
		return err
	}
	return l.Close()
}

// policyProgram is the policy's extension: a guard, then the policy's
// own instructions as it was verified. The kernel passes the extension
// tb_gate_policy's argument, which its BTF says may be NULL (the
// verifier insists that a global function's pointer argument be
// checked): NULL denies. Function and line information the policy's
// object carried describe its own function, not the extension, and go.
func policyProgram(p *gatekeeper.Policy) (*ebpf.CollectionSpec, []string, error) {
	insns, maps := p.Program()
	_, fn := btfTypes()
	insns, _, err := pruneUnreachable(insns)
	if err != nil {
		return nil, nil, fmt.Errorf("policy %s: %w", p.Name(), err)
	}
	for i := range insns {
		if insns[i].IsFunctionCall() {
			return nil, nil, fmt.Errorf("policy %s: instruction %d calls a function of its own: the gate runs a policy of one function", p.Name(), i)
		}
		insns[i] = btf.WithFuncMetadata(insns[i], nil).WithSource(nil)
	}
	guard := asm.Instructions{
		btf.WithFuncMetadata(asm.Instruction{
			OpCode: asm.OpCode(asm.JumpClass).SetJumpOp(asm.JNE).SetSource(asm.ImmSource),
			Dst:    asm.R1, Offset: 2,
		}, fn),
		asm.Mov.Imm(asm.R0, abi.Deny),
		asm.Return(),
	}
	cs := &ebpf.CollectionSpec{Maps: map[string]*ebpf.MapSpec{}, Programs: map[string]*ebpf.ProgramSpec{
		policyFuncName: {
			Name: "tb_gate_policy", Type: ebpf.Extension, AttachTo: policyFuncName, License: "GPL",
			Instructions: append(guard, insns...),
		},
	}}
	var names []string
	for _, ms := range maps {
		// The policy reads its maps and nothing writes them: not the
		// policy (BPF_F_RDONLY_PROG; gatekeeper vetted it too), not user
		// space once they are filled (loadPolicy freezes them).
		ms.Flags |= unix.BPF_F_RDONLY_PROG
		cs.Maps[ms.Name] = ms
		names = append(names, ms.Name)
	}
	return cs, names, nil
}

// loadPolicy loads p as the extension of target's tb_gate_policy and
// attaches it. A *policyUnsupportedError says the kernel cannot run any
// policy this way; any other error is this policy's, which the kernel
// refused.
func loadPolicy(target *ebpf.Program, p *gatekeeper.Policy) (*kernelPolicy, error) {
	if err := probeExtension(target); err != nil {
		return nil, &policyUnsupportedError{err: err}
	}
	cs, names, err := policyProgram(p)
	if err != nil {
		return nil, err
	}
	cs.Programs[policyFuncName].AttachTarget = target
	coll, err := ebpf.NewCollection(cs)
	if err != nil {
		return nil, fmt.Errorf("the kernel refuses policy %s as the gate's %s: %w", p.Name(), policyFuncName, err)
	}
	k := &kernelPolicy{coll: coll}
	for _, n := range names {
		m := coll.Maps[n]
		// cilium froze the constants (.rodata) when it filled them.
		if !strings.HasPrefix(n, ".rodata") {
			if err := m.Freeze(); err != nil {
				coll.Close()
				return nil, fmt.Errorf("policy %s: map %s: %w", p.Name(), n, err)
			}
		}
		k.maps = append(k.maps, m)
	}
	k.link, err = link.AttachFreplace(nil, "", coll.Programs[policyFuncName])
	if err != nil {
		coll.Close()
		return nil, fmt.Errorf("attaching policy %s to the gate's %s: %w", p.Name(), policyFuncName, err)
	}
	return k, nil
}

// pruneUnreachable drops the instructions no path from the first one
// reaches. A policy's compiler may leave some (the join after an if
// whose branches both return): interp ignores them, the kernel's
// verifier refuses the program ("unreachable insn"). What runs is the
// same either way. Jumps become references to their targets' symbols,
// which Marshal turns back into offsets over what remains.
func pruneUnreachable(insns asm.Instructions) (asm.Instructions, int, error) {
	n := len(insns)
	raw := make([]int, n+1) // raw offset of each instruction
	byRaw := map[int]int{}
	bySym := map[string]int{}
	for i, ins := range insns {
		byRaw[raw[i]] = i
		raw[i+1] = raw[i] + int(ins.Size()/asm.InstructionSize)
		if s := ins.Symbol(); s != "" {
			bySym[s] = i
		}
	}
	// target is the index a jump at i goes to, -1 for none.
	target := func(i int) (int, error) {
		ins := insns[i]
		if !ins.OpCode.Class().IsJump() {
			return -1, nil
		}
		switch ins.OpCode.JumpOp() {
		case asm.Exit, asm.Call:
			return -1, nil
		}
		if ref := ins.Reference(); ref != "" && (ins.Offset == -1 || ins.Constant == -1) {
			t, ok := bySym[ref]
			if !ok {
				return 0, fmt.Errorf("instruction %d jumps to %q, which is not there", i, ref)
			}
			return t, nil
		}
		off := int(ins.Offset)
		if ins.OpCode.Class() == asm.Jump32Class && ins.OpCode.JumpOp() == asm.Ja {
			off = int(ins.Constant) // gotol
		}
		t, ok := byRaw[raw[i]+1+off]
		if !ok {
			return 0, fmt.Errorf("instruction %d jumps into the middle of one or out of the program", i)
		}
		return t, nil
	}
	targets := make([]int, n)
	seen := make([]bool, n)
	work := []int{0}
	for len(work) > 0 {
		i := work[len(work)-1]
		work = work[:len(work)-1]
		if i >= n || seen[i] {
			continue
		}
		seen[i] = true
		t, err := target(i)
		if err != nil {
			return nil, 0, err
		}
		targets[i] = t
		if t >= 0 {
			work = append(work, t)
		}
		op := insns[i].OpCode
		if op.Class().IsJump() && (op.JumpOp() == asm.Exit || op.JumpOp() == asm.Ja) {
			continue
		}
		work = append(work, i+1)
	}
	dropped := 0
	for _, s := range seen {
		if !s {
			dropped++
		}
	}
	if dropped == 0 {
		return insns, 0, nil
	}
	out := slices.Clone(insns)
	for i := range out {
		if !seen[i] || targets[i] < 0 {
			continue
		}
		t := targets[i]
		sym := out[t].Symbol()
		if sym == "" {
			sym = fmt.Sprintf("tb_gate_policy_%d", t)
			out[t] = out[t].WithSymbol(sym)
		}
		if out[i].OpCode.Class() == asm.Jump32Class && out[i].OpCode.JumpOp() == asm.Ja {
			out[i].Constant = -1
		} else {
			out[i].Offset = -1
		}
		out[i] = out[i].WithReference(sym)
	}
	kept := out[:0]
	for i, ins := range out {
		if seen[i] {
			kept = append(kept, ins)
		}
	}
	return kept, dropped, nil
}
