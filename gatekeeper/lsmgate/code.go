package lsmgate

import (
	"fmt"

	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/internal/asmgen"
)

// The gate's code is fixed: every kernel fact it needs (where task_struct
// keeps its mm, where a file keeps its inode...) is data in the config
// map, read from the running kernel's BTF when the gate is loaded. So the
// bytes signed for role gate are the bytes loaded on every kernel, as
// with the collectors, and the code walks kernel pointers only with
// bpf_probe_read_kernel: a read that faults gives zeros, which identify
// no loader, so it fails closed.

// Registers kept across helper calls.
const (
	rCfg   = asm.R9 // the config map's value
	rFlags = asm.R8 // the identity's allow flags (allowLoad, allowManage, modified)
	rTmp   = asm.R7
	rObj   = asm.R6
)

// Stack layout (offsets from R10).
const (
	stArgs   = -48  // the hook's arguments, copied as scalars: 6 x u64
	stIdent  = -80  // identity: dev u32, pad u32, ino u64 (the allow key), ctime sec s64, nsec u32, pad
	stRead   = -88  // one probe read's result
	stSaved  = -96  // a value kept across an identity computation
	stProt   = -112 // a protect-map key: dev u32, pad u32, ino u64
	stKey    = -120 // a u32 array key
	stRecord = -184 // the refusal record, RecordSize bytes
	stType   = -192 // a types-map key: program type u32, expected attach type u32
)

// Identity flags: allow entries' flags, and modified when an entry was
// found for the file but its ctime moved since it was measured.
const (
	flagModified = 0x100
)

const errEPERM = -1

// gen builds one of the gate's programs.
type gen struct {
	asmgen.Builder
	n int // labels made by newLabel
}

func (g *gen) newLabel(what string) string {
	g.n++
	return fmt.Sprintf("%s_%d", what, g.n)
}

// prologue copies the hook's n arguments onto the stack as scalars (an
// LSM program's context holds typed kernel pointers, and offsets from
// the config are added to them) and loads the config into rCfg.
func (g *gen) prologue(n int) {
	g.Emit(
		asm.Mov.Reg(asm.R3, asm.R1),
		asm.Mov.Reg(asm.R1, asm.R10),
		asm.Add.Imm(asm.R1, stArgs),
		asm.Mov.Imm(asm.R2, int32(8*n)),
		asm.FnProbeReadKernel.Call(),
		// The refusal record reads the identity: zero until computed.
		asm.Mov.Imm(rFlags, 0),
		asm.StoreImm(asm.R10, stIdent, 0, asm.Word), asm.StoreImm(asm.R10, stIdent+4, 0, asm.Word),
		asm.StoreImm(asm.R10, stIdent+8, 0, asm.Word), asm.StoreImm(asm.R10, stIdent+8+4, 0, asm.Word),
		asm.StoreImm(asm.R10, stIdent+16, 0, asm.Word), asm.StoreImm(asm.R10, stIdent+16+4, 0, asm.Word),
		asm.StoreImm(asm.R10, stIdent+24, 0, asm.Word), asm.StoreImm(asm.R10, stIdent+24+4, 0, asm.Word),
		asm.StoreImm(asm.R10, stRecord+recVerdict, 0, asm.Word),
		asm.StoreImm(asm.R10, stKey, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, stKey),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapConfig),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "allow"),
		asm.Mov.Reg(rCfg, asm.R0),
	)
}

// arg loads the hook's argument i into dst.
func arg(dst asm.Register, i int) asm.Instruction {
	return asm.LoadMem(dst, asm.R10, int16(stArgs+8*i), asm.DWord)
}

// read emits *(R10+dst) = *(base + config[off]), size bytes, through
// bpf_probe_read_kernel (zeros when it faults).
func (g *gen) read(dst int16, size int32, base asm.Register, off int16) {
	g.Emit(
		asm.LoadMem(asm.R3, rCfg, off, asm.Word),
		asm.Add.Reg(asm.R3, base),
		asm.Mov.Reg(asm.R1, asm.R10),
		asm.Add.Imm(asm.R1, int32(dst)),
		asm.Mov.Imm(asm.R2, size),
		asm.FnProbeReadKernel.Call(),
	)
}

// deref replaces the pointer in reg by the pointer at reg+config[off],
// jumping to zero when either is NULL.
func (g *gen) deref(reg asm.Register, off int16, zero string) {
	g.Emit(asm.JEq.Imm(reg, 0, zero))
	g.read(stRead, 8, reg, off)
	g.Emit(
		asm.LoadMem(reg, asm.R10, stRead, asm.DWord),
		asm.JEq.Imm(reg, 0, zero),
	)
}

// attrU32 loads the first u32 of the bpf hook's union bpf_attr (its
// second argument) into rTmp: a load's program type, a link's id or
// descriptor. rObj holds the attr.
func (g *gen) attrU32() {
	g.Emit(
		arg(rObj, 1),
		asm.StoreImm(asm.R10, stRead, 0, asm.Word), asm.StoreImm(asm.R10, stRead+4, 0, asm.Word),
		asm.Mov.Reg(asm.R3, rObj),
		asm.Mov.Reg(asm.R1, asm.R10),
		asm.Add.Imm(asm.R1, stRead),
		asm.Mov.Imm(asm.R2, 4),
		asm.FnProbeReadKernel.Call(),
		asm.LoadMem(rTmp, asm.R10, stRead, asm.Word),
	)
}

// fieldU32 loads the u32 at base+config[off] into dst, 0 when the read
// faults.
func (g *gen) fieldU32(dst, base asm.Register, off int16) {
	g.Emit(asm.StoreImm(asm.R10, stRead, 0, asm.Word), asm.StoreImm(asm.R10, stRead+4, 0, asm.Word))
	g.read(stRead, 4, base, off)
	g.Emit(asm.LoadMem(dst, asm.R10, stRead, asm.Word))
}

// identity computes the identity of the executable of the task in rObj
// (a scalar): the (dev, ino) key at stIdent, its ctime beside it, and
// in rFlags the allow entry's flags, flagModified when the file changed
// since it was allowed, or 0. rObj and rTmp are clobbered.
func (g *gen) identity() {
	done := g.newLabel("ident_done")
	modified := g.newLabel("ident_modified")
	g.Emit(
		asm.Mov.Imm(rFlags, 0),
		asm.StoreImm(asm.R10, stIdent, 0, asm.Word), asm.StoreImm(asm.R10, stIdent+4, 0, asm.Word),
		asm.StoreImm(asm.R10, stIdent+8, 0, asm.Word), asm.StoreImm(asm.R10, stIdent+8+4, 0, asm.Word),
		asm.StoreImm(asm.R10, stIdent+16, 0, asm.Word), asm.StoreImm(asm.R10, stIdent+16+4, 0, asm.Word),
		asm.StoreImm(asm.R10, stIdent+24, 0, asm.Word), asm.StoreImm(asm.R10, stIdent+24+4, 0, asm.Word),
	)
	g.deref(rObj, cfgTaskMM, done)
	g.deref(rObj, cfgMMExeFile, done)
	g.deref(rObj, cfgFileInode, done)
	g.read(stIdent+8, 8, rObj, cfgInodeIno)
	g.read(stIdent+16, 8, rObj, cfgInodeCtimeSec)
	g.read(stIdent+24, 4, rObj, cfgInodeCtimeNsec)
	g.deref(rObj, cfgInodeSB, done)
	g.read(stIdent, 4, rObj, cfgSBDev)
	g.Emit(
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, stIdent),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapAllow),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, done),
		asm.LoadMem(asm.R1, asm.R0, allowCtimeSec, asm.DWord),
		asm.LoadMem(asm.R2, asm.R10, stIdent+16, asm.DWord),
		asm.JNE.Reg(asm.R1, asm.R2, modified),
		asm.LoadMem(asm.R1, asm.R0, allowCtimeNsec, asm.Word),
		asm.LoadMem(asm.R2, asm.R10, stIdent+24, asm.Word),
		asm.JNE.Reg(asm.R1, asm.R2, modified),
		asm.LoadMem(rFlags, asm.R0, allowFlags, asm.Word),
		asm.Ja.Label(done),
	)
	g.Label(modified)
	g.Emit(asm.Mov.Imm(rFlags, flagModified))
	g.Label(done)
	g.Emit(asm.Mov.Reg(asm.R0, asm.R0)) // a landing for the labels
}

// currentIdentity is identity() of the calling task.
func (g *gen) currentIdentity() {
	g.Emit(
		asm.FnGetCurrentTask.Call(),
		asm.Mov.Reg(rObj, asm.R0),
	)
	g.identity()
}

// ownerOr allows the operation when the caller may manage the gate, and
// refuses it for reason otherwise, with arg (a register holding the
// object's id, or -1 for none) in the record.
func (g *gen) ownerOr(reason uint32, cmd int32, argReg asm.Register) {
	g.Emit(asm.StoreMem(asm.R10, stSaved, argReg, asm.DWord))
	g.currentIdentity()
	g.Emit(
		asm.Mov.Reg(asm.R1, rFlags),
		asm.And.Imm(asm.R1, AllowManage),
		asm.JNE.Imm(asm.R1, 0, "allow"),
		asm.LoadMem(rTmp, asm.R10, stSaved, asm.DWord),
	)
	g.refuse(reason, cmd, rTmp)
}

// refuse records the refusal's reason, command and argument (a
// register) and jumps to the shared tail, which counts it, sends its
// record and returns -EPERM. The identity at stIdent is the record's.
func (g *gen) refuse(reason uint32, cmd int32, argReg asm.Register) {
	g.Emit(
		asm.StoreMem(asm.R10, stRecord+recArg, argReg, asm.Word),
		asm.StoreImm(asm.R10, stRecord+recCmd, int64(cmd), asm.Word),
		asm.StoreImm(asm.R10, stRecord+recReason, int64(reason), asm.Word),
		asm.Ja.Label("refuse"),
	)
}

// epilogue is every program's end: the refusal tail, then allow.
func (g *gen) epilogue() asm.Instructions {
	g.Label("refuse")
	g.Emit(
		asm.StoreMem(asm.R10, stRecord+recFlags, rFlags, asm.Word),
		asm.LoadMem(asm.R1, asm.R10, stIdent, asm.Word),
		asm.StoreMem(asm.R10, stRecord+recDev, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R10, stIdent+8, asm.DWord),
		asm.StoreMem(asm.R10, stRecord+recIno, asm.R1, asm.DWord),
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.R10, stRecord+recTime, asm.R0, asm.DWord),
		asm.FnGetCurrentPidTgid.Call(),
		asm.RSh.Imm(asm.R0, 32),
		asm.StoreMem(asm.R10, stRecord+recPID, asm.R0, asm.Word),
		asm.FnGetCurrentUidGid.Call(),
		asm.StoreMem(asm.R10, stRecord+recUID, asm.R0, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R10),
		asm.Add.Imm(asm.R1, stRecord+recComm),
		asm.Mov.Imm(asm.R2, 16),
		asm.FnGetCurrentComm.Call(),
		// Counted first, so that a full ring buffer loses a record,
		// never a count.
		asm.LoadMem(asm.R1, asm.R10, stRecord+recReason, asm.Word),
		asm.StoreMem(asm.R10, stKey, asm.R1, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, stKey),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapCounts),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "send"),
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, 0),
	)
	g.Label("send")
	g.Emit(
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapEvents),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, stRecord),
		asm.Mov.Imm(asm.R3, RecordSize),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnRingbufOutput.Call(),
		asm.JEq.Imm(asm.R0, 0, "deny"),
		// Lost: counted where the operator sees it.
		asm.StoreImm(asm.R10, stKey, int64(ReasonLost), asm.Word),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, stKey),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapCounts),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "deny"),
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, 0),
	)
	g.Label("deny")
	g.Emit(
		asm.Mov.Imm(asm.R0, errEPERM),
		asm.Return(),
	)
	g.Label("allow")
	g.Emit(
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	)
	return g.Insns
}

// matchID jumps to match when the u32 in reg is one of the config's ids
// at off (count slots, 0 = empty).
func (g *gen) matchID(reg asm.Register, off int16, count int, match string) {
	skip := g.newLabel("no_id")
	g.Emit(asm.JEq.Imm(reg, 0, skip))
	for i := 0; i < count; i++ {
		g.Emit(
			asm.LoadMem(asm.R1, rCfg, off+int16(4*i), asm.Word),
			asm.JEq.Reg(asm.R1, reg, match),
		)
	}
	g.Label(skip)
	g.Emit(asm.Mov.Reg(asm.R0, asm.R0))
}

// Commands of bpf(2) the gate looks at.
const (
	cmdMapGetFDByID  = 14
	cmdProgLoad      = 5
	cmdLinkUpdate    = 29
	cmdLinkGetFDByID = 30
	cmdLinkDetach    = 34
)

// bpfCode is the bpf hook (int cmd, union bpf_attr *attr, unsigned int
// size): program loads by type and loader, and its own links by id or
// descriptor.
//
// It is the one program with BTF: its global function tb_gate_policy is
// what a policy replaces (see policy.go).
func bpfCode() asm.Instructions {
	mainFn, policyFn := btfTypes()
	g := &gen{}
	g.prologue(3)
	g.Emit(
		arg(rTmp, 0),
		asm.LSh.Imm(rTmp, 32), asm.RSh.Imm(rTmp, 32),
		asm.JEq.Imm(rTmp, cmdProgLoad, "prog_load"),
		asm.JEq.Imm(rTmp, cmdLinkGetFDByID, "link_id"),
		asm.JEq.Imm(rTmp, cmdLinkDetach, "link_fd"),
		asm.JEq.Imm(rTmp, cmdLinkUpdate, "link_fd"),
		asm.Ja.Label("allow"),
	)

	// BPF_PROG_LOAD: attr->prog_type is the first u32.
	g.Label("prog_load")
	g.attrU32()
	g.Emit(
		// A type this gate does not know is guarded: fail closed.
		asm.JGT.Imm(rTmp, 63, "guarded"),
		asm.LoadMem(asm.R1, rCfg, cfgGuarded, asm.DWord),
		asm.RSh.Reg(asm.R1, rTmp),
		asm.And.Imm(asm.R1, 1),
		asm.JNE.Imm(asm.R1, 0, "guarded"),
		// Another type: allowed unless the config says otherwise.
		asm.LoadMem(asm.R1, rCfg, cfgFlags, asm.Word),
		asm.And.Imm(asm.R1, FlagDenyOthers),
		asm.JEq.Imm(asm.R1, 0, "allow"),
	)
	g.currentIdentity()
	g.Emit(
		asm.Mov.Reg(asm.R1, rFlags),
		asm.And.Imm(asm.R1, AllowLoad),
		asm.JNE.Imm(asm.R1, 0, "allow"),
	)
	g.refuse(ReasonOtherLoad, cmdProgLoad, rTmp)

	g.Label("guarded")
	g.currentIdentity()
	g.Emit(
		// A loader that changed since it was measured is no loader the
		// gate knows, whatever decides.
		asm.Mov.Reg(asm.R1, rFlags),
		asm.And.Imm(asm.R1, flagModified),
		asm.JNE.Imm(asm.R1, 0, "modified"),
		asm.LoadMem(asm.R1, rCfg, cfgFlags, asm.Word),
		asm.And.Imm(asm.R1, FlagPolicy),
		asm.JNE.Imm(asm.R1, 0, "policy"),
		// The default by loader identity: strict admits the allowed
		// loaders, loose root too.
		asm.Mov.Reg(asm.R1, rFlags),
		asm.And.Imm(asm.R1, AllowLoad),
		asm.JNE.Imm(asm.R1, 0, "allow"),
		// Loose: root may load what it likes, as without the gate.
		asm.LoadMem(asm.R1, rCfg, cfgFlags, asm.Word),
		asm.And.Imm(asm.R1, FlagLoose),
		asm.JEq.Imm(asm.R1, 0, "refuse_load"),
		asm.FnGetCurrentUidGid.Call(),
		asm.LSh.Imm(asm.R0, 32), asm.RSh.Imm(asm.R0, 32),
		asm.JEq.Imm(asm.R0, 0, "allow"),
	)
	g.Label("refuse_load")
	g.refuse(ReasonLoad, cmdProgLoad, rTmp)
	g.Label("modified")
	g.refuse(ReasonModified, cmdProgLoad, rTmp)

	g.policy()

	// BPF_LINK_GET_FD_BY_ID: attr->link_id is the first u32.
	g.Label("link_id")
	g.attrU32()
	g.matchID(rTmp, cfgLinkIDs, maxIDs, "own_link_id")
	g.Emit(asm.Ja.Label("allow"))
	g.Label("own_link_id")
	g.ownerOr(ReasonGateObject, cmdLinkGetFDByID, rTmp)

	// BPF_LINK_DETACH, BPF_LINK_UPDATE: attr's first u32 is a link's
	// descriptor in the caller's table; which link it is, is read from
	// there: current->files->fdt->fd[fd]->private_data->id.
	g.Label("link_fd")
	g.attrU32() // the fd
	g.Emit(
		asm.FnGetCurrentTask.Call(),
		asm.Mov.Reg(rObj, asm.R0),
	)
	g.deref(rObj, cfgTaskFiles, "allow")
	g.deref(rObj, cfgFilesFdt, "allow")
	g.read(stRead, 4, rObj, cfgFdtMaxFds)
	g.Emit(
		asm.LoadMem(asm.R1, asm.R10, stRead, asm.Word),
		asm.JGE.Reg(rTmp, asm.R1, "allow"),
	)
	g.deref(rObj, cfgFdtFd, "allow")
	g.Emit(
		asm.LSh.Imm(rTmp, 3),
		asm.Add.Reg(rTmp, rObj),
		asm.Mov.Reg(asm.R3, rTmp),
		asm.Mov.Reg(asm.R1, asm.R10),
		asm.Add.Imm(asm.R1, stRead),
		asm.Mov.Imm(asm.R2, 8),
		asm.FnProbeReadKernel.Call(),
		asm.LoadMem(rObj, asm.R10, stRead, asm.DWord), // the struct file
	)
	g.deref(rObj, cfgFilePrivate, "allow")
	g.fieldU32(rTmp, rObj, cfgLinkID)
	g.matchID(rTmp, cfgLinkIDs, maxIDs, "own_link_fd")
	g.Emit(asm.Ja.Label("allow"))
	g.Label("own_link_fd")
	g.ownerOr(ReasonGateObject, cmdLinkDetach, rTmp)
	insns := append(g.epilogue(), policyStub(policyFn)...)
	insns[0] = btf.WithFuncMetadata(insns[0], mainFn)
	return insns
}

// bpfMapCode is the bpf_map hook (struct bpf_map *map, fmode_t fmode),
// run whenever a descriptor of a map is made: by id, from a pin. A
// writable descriptor of one of the gate's own maps is its owner's
// alone; a read-only one (BPF_F_RDONLY) is anyone's, so that status
// can be read, and only a writable one can update a map or consume
// its ring buffer.
func bpfMapCode() asm.Instructions {
	g := &gen{}
	g.prologue(2)
	g.Emit(
		arg(asm.R1, 1),
		asm.And.Imm(asm.R1, fmodeWrite),
		asm.JEq.Imm(asm.R1, 0, "allow"),
		arg(rObj, 0),
	)
	g.fieldU32(rTmp, rObj, cfgMapID)
	g.matchID(rTmp, cfgMapIDs, maxIDs, "own_map")
	g.Emit(asm.Ja.Label("allow"))
	g.Label("own_map")
	g.ownerOr(ReasonGateObject, cmdMapGetFDByID, rTmp)
	return g.epilogue()
}

// fmodeWrite is the kernel's FMODE_WRITE.
const fmodeWrite = 0x2

// protected jumps to match when the dentry in reg is one of the gate's
// pins (the protect map holds their dev and inode).
func (g *gen) protected(reg asm.Register, match string) {
	skip := g.newLabel("unprotected")
	g.deref(reg, cfgDentryInode, skip)
	g.Emit(
		asm.StoreImm(asm.R10, stProt, 0, asm.Word), asm.StoreImm(asm.R10, stProt+4, 0, asm.Word),
		asm.StoreImm(asm.R10, stProt+8, 0, asm.Word), asm.StoreImm(asm.R10, stProt+8+4, 0, asm.Word),
	)
	g.read(stProt+8, 8, reg, cfgInodeIno)
	g.deref(reg, cfgInodeSB, skip)
	g.read(stProt, 4, reg, cfgSBDev)
	g.Emit(
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, stProt),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapProtect),
		asm.FnMapLookupElem.Call(),
		asm.LoadMem(rTmp, asm.R10, stProt+8, asm.DWord),
		asm.JNE.Imm(asm.R0, 0, match),
	)
	g.Label(skip)
	g.Emit(asm.Mov.Reg(asm.R0, asm.R0))
}

// unlinkCode is the inode_unlink hook (struct inode *dir, struct dentry
// *dentry): a pin removed is a link or map released.
func unlinkCode() asm.Instructions {
	g := &gen{}
	g.prologue(2)
	g.Emit(arg(rObj, 1))
	g.protected(rObj, "pin")
	g.Emit(asm.Ja.Label("allow"))
	g.Label("pin")
	g.ownerOr(ReasonPin, cmdUnlink, rTmp)
	return g.epilogue()
}

// renameCode is the inode_rename hook (old_dir, old_dentry, new_dir,
// new_dentry): a pin moved away, or another file renamed over one.
func renameCode() asm.Instructions {
	g := &gen{}
	g.prologue(4)
	g.Emit(arg(rObj, 1))
	g.protected(rObj, "pin")
	g.Emit(arg(rObj, 3))
	g.protected(rObj, "pin")
	g.Emit(asm.Ja.Label("allow"))
	g.Label("pin")
	g.ownerOr(ReasonPin, cmdRename, rTmp)
	return g.epilogue()
}

// umountCode is the sb_umount hook (struct vfsmount *mnt, int flags):
// unmounting the bpffs that holds the pins releases them all.
func umountCode() asm.Instructions {
	g := &gen{}
	g.prologue(2)
	g.Emit(arg(rObj, 0))
	g.deref(rObj, cfgMntSB, "allow")
	g.fieldU32(rTmp, rObj, cfgSBDev)
	g.Emit(
		asm.JEq.Imm(rTmp, 0, "allow"),
		asm.LoadMem(asm.R1, rCfg, cfgPinDev, asm.Word),
		asm.JEq.Reg(asm.R1, rTmp, "pins"),
		asm.Ja.Label("allow"),
	)
	g.Label("pins")
	g.ownerOr(ReasonUmount, cmdUmount, rTmp)
	return g.epilogue()
}

// prctl(PR_SET_MM, PR_SET_MM_EXE_FILE or PR_SET_MM_MAP) replaces what
// /proc/self/exe, and so the gate, sees as a process's executable.
const (
	prSetMM          = 35
	prSetMMExeFile   = 13
	prSetMMMap       = 14
	ptraceModeAttach = 0x02
)

// prctlCode is the task_prctl hook (int option, unsigned long arg2,
// ...): nobody but the gate's owner may change what its executable is.
func prctlCode() asm.Instructions {
	g := &gen{}
	g.prologue(2)
	g.Emit(
		arg(rTmp, 0),
		asm.LSh.Imm(rTmp, 32), asm.RSh.Imm(rTmp, 32),
		asm.JNE.Imm(rTmp, prSetMM, "allow"),
		arg(rTmp, 1),
		asm.JEq.Imm(rTmp, prSetMMExeFile, "exe"),
		asm.JEq.Imm(rTmp, prSetMMMap, "exe"),
		asm.Ja.Label("allow"),
	)
	g.Label("exe")
	g.ownerOr(ReasonExeChange, cmdPrctl, rTmp)
	return g.epilogue()
}

// ptraceCode is the ptrace_access_check hook (struct task_struct *child,
// unsigned int mode): attaching to an allowed loader (ptrace,
// /proc/PID/mem, process_vm_writev, pidfd_getfd) would make its
// authority anyone's.
func ptraceCode() asm.Instructions {
	g := &gen{}
	g.prologue(2)
	g.Emit(
		arg(asm.R1, 1),
		asm.And.Imm(asm.R1, ptraceModeAttach),
		asm.JEq.Imm(asm.R1, 0, "allow"),
		arg(rObj, 0),
	)
	g.identity()
	g.Emit(
		asm.Mov.Reg(asm.R1, rFlags),
		asm.And.Imm(asm.R1, AllowLoad|AllowManage),
		asm.JEq.Imm(asm.R1, 0, "allow"),
		asm.Mov.Imm(rTmp, -1),
	)
	g.ownerOr(ReasonPtrace, cmdPtrace, rTmp)
	return g.epilogue()
}
