package lsmgate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/gatekeeper"
	"github.com/tracebroker/tracebroker/gatekeeper/abi"
	"github.com/tracebroker/tracebroker/internal/asmgen"
)

// Config flags.
const (
	// FlagLoose lets uid 0 load tracing programs with any loader, as
	// without the gate (the loose default); strict admits only the
	// allowed loaders.
	FlagLoose = 1
	// FlagDenyOthers refuses programs of the unguarded types (cgroup,
	// socket filters, XDP...) to loaders that are not allowed too.
	FlagDenyOthers = 2
	// FlagPolicy: a gatekeeper policy replaces tb_gate_policy (an
	// extension program is attached to it), and it, not the default by
	// loader identity, decides every guarded load. The stub that
	// tb_gate_policy is without a policy is then never what decides: if
	// the extension went away it runs, returns VerdictNoPolicy, and the
	// load is refused.
	FlagPolicy = 4
)

// Allow flags of a loader.
const (
	// AllowLoad lets the executable load programs of guarded types.
	AllowLoad = 1
	// AllowManage makes it the gate's owner: it may read and write the
	// gate's maps, remove its pins and release it.
	AllowManage = 2
)

// Reasons a refusal is counted and recorded under (the counts map's
// index, a record's reason).
const (
	ReasonLoad       = 1 // a guarded program type from a loader not allowed
	ReasonModified   = 2 // an allowed loader's file changed since it was measured
	ReasonOtherLoad  = 3 // an unguarded type, refused by FlagDenyOthers
	ReasonGateObject = 4 // a descriptor of the gate's own map or link
	ReasonPin        = 5 // removing or renaming over one of the gate's pins
	ReasonUmount     = 6 // unmounting the bpffs that holds the pins
	ReasonExeChange  = 7 // prctl(PR_SET_MM) changing what the executable is
	ReasonPtrace     = 8 // attaching to an allowed loader
	ReasonPolicy     = 9 // a guarded program type the policy did not allow
	ReasonLost       = 15
	numReasons       = 16
)

// ReasonText says what a refusal reason means.
func ReasonText(r uint32) string {
	switch r {
	case ReasonLoad:
		return "tracing program from a loader that is not allowed"
	case ReasonModified:
		return "allowed loader modified since it was measured"
	case ReasonOtherLoad:
		return "program type refused to loaders that are not allowed"
	case ReasonGateObject:
		return "access to the gate's own map or link"
	case ReasonPin:
		return "removing or replacing the gate's pins"
	case ReasonUmount:
		return "unmounting the gate's bpffs"
	case ReasonExeChange:
		return "changing a process's executable (PR_SET_MM)"
	case ReasonPtrace:
		return "attaching to an allowed loader (ptrace, process memory)"
	case ReasonPolicy:
		return "tracing program the gatekeeper policy did not allow"
	case ReasonLost:
		return "records lost (ring buffer full)"
	}
	return fmt.Sprintf("reason %d", r)
}

// Operations in a record that are not bpf(2) commands.
const (
	cmdUnlink = 1000 + iota
	cmdRename
	cmdUmount
	cmdPrctl
	cmdPtrace
)

// OpName names a record's operation: a bpf(2) command or another hook.
func OpName(cmd uint32) string {
	switch cmd {
	case cmdProgLoad:
		return "BPF_PROG_LOAD"
	case cmdMapGetFDByID:
		return "map descriptor"
	case cmdLinkGetFDByID:
		return "BPF_LINK_GET_FD_BY_ID"
	case cmdLinkDetach:
		return "BPF_LINK_DETACH or BPF_LINK_UPDATE"
	case cmdUnlink:
		return "unlink"
	case cmdRename:
		return "rename"
	case cmdUmount:
		return "umount"
	case cmdPrctl:
		return "prctl(PR_SET_MM)"
	case cmdPtrace:
		return "ptrace"
	}
	return fmt.Sprintf("bpf command %d", cmd)
}

// The config map's value: version 1, little-endian. The cfg* constants
// are its field offsets, which the code uses (TestConfigLayout checks
// them against the struct).
type config struct {
	Version uint32
	Flags   uint32
	Guarded uint64 // bit N: program type N is guarded
	Offsets Offsets
	PinDev  uint32 // the pins' bpffs, a kernel dev_t
	MapIDs  [maxIDs]uint32
	LinkIDs [maxIDs]uint32
}

const configVersion = 1

// maxIDs bounds the gate's own maps and links: its maps, the policy's,
// its hooks' links and the policy's.
const maxIDs = 16

const (
	cfgFlags          = 4
	cfgGuarded        = 8
	cfgTaskMM         = 16
	cfgMMExeFile      = 20
	cfgFileInode      = 24
	cfgInodeIno       = 28
	cfgInodeSB        = 32
	cfgSBDev          = 36
	cfgInodeCtimeSec  = 40
	cfgInodeCtimeNsec = 44
	cfgTaskFiles      = 48
	cfgFilesFdt       = 52
	cfgFdtMaxFds      = 56
	cfgFdtFd          = 60
	cfgFilePrivate    = 64
	cfgLinkID         = 68
	cfgMapID          = 72
	cfgDentryInode    = 76
	cfgMntSB          = 80
	cfgPinDev         = 84
	cfgMapIDs         = 88
	cfgLinkIDs        = cfgMapIDs + 4*maxIDs
	configSize        = cfgLinkIDs + 4*maxIDs
)

// An allow entry: key (dev u32, pad u32, ino u64), value as below.
type allowKey struct {
	Dev uint32
	_   uint32
	Ino uint64
}

// Verified, Digest and Signer are the loader's identity as the policy's
// Request gives it (broker_verified, broker_digest, broker_signer): what
// user space measured, NUL-padded to the Request's field sizes.
type allowValue struct {
	Flags     uint32
	Verified  uint32 // 1: its manifest verified (role broker)
	CtimeSec  int64
	CtimeNsec uint32
	_         uint32
	Digest    [digestSize]byte // "sha256:HEX"
	Signer    [abi.KeyIDSize]byte
}

const (
	allowFlags     = 0
	allowVerified  = 4
	allowCtimeSec  = 8
	allowCtimeNsec = 16
	allowDigest    = 24
	allowSigner    = allowDigest + digestSize
	allowSize      = allowSigner + abi.KeyIDSize
	digestSize     = 80 // the Request's broker_digest
)

// Record is one refusal, as the gate sends it to its events ring
// buffer (64 bytes, little-endian).
type Record struct {
	TimeNs uint64 // CLOCK_MONOTONIC
	Reason uint32
	PID    uint32
	UID    uint32
	Cmd    uint32 // a bpf(2) command, or the hook (OpName)
	Arg    uint32 // the program type of a load, the gate object's id
	Dev    uint32 // the caller's executable (a kernel dev_t), 0 if none
	Ino    uint64
	Flags  uint32 // the caller's allow flags (flagModified: it changed)
	// Verdict is, for ReasonPolicy, what the policy returned (0, deny,
	// or a value that is no verdict), or VerdictBusy; else 0.
	Verdict uint32
	Comm    [16]byte
}

// RecordSize is the size of a Record in the ring buffer.
const RecordSize = 64

const (
	recTime    = 0
	recReason  = 8
	recPID     = 12
	recUID     = 16
	recCmd     = 20
	recArg     = 24
	recDev     = 28
	recIno     = 32
	recFlags   = 40
	recVerdict = 44
	recComm    = 48
)

// Program types the gate guards by default: whatever reads or changes
// the kernel's behaviour outside a cgroup or a socket (kprobe,
// tracepoint, perf_event, raw_tracepoint, raw_tracepoint_writable,
// tracing, ext, lsm, syscall).
var defaultGuarded = []ebpf.ProgramType{
	ebpf.Kprobe, ebpf.TracePoint, ebpf.PerfEvent, ebpf.RawTracepoint,
	ebpf.RawTracepointWritable, ebpf.Tracing, ebpf.Extension, ebpf.LSM, ebpf.Syscall,
}

func guardedMask(types []ebpf.ProgramType) uint64 {
	var m uint64
	for _, t := range types {
		m |= 1 << uint(t)
	}
	return m
}

// Map names.
const (
	mapConfig  = "gate_config"
	mapAllow   = "gate_allow"
	mapProtect = "gate_protect"
	mapCounts  = "gate_counts"
	mapEvents  = "gate_events"
	mapInfo    = "gate_info"
	// The policy's Request: the template user space fills with what it
	// knows once (abi_version, form, covers, the platform flags), the
	// program type names, and the per-CPU scratch a load's Request is
	// built in (a Request does not fit on a BPF stack).
	mapTemplate = "gate_template"
	mapTypes    = "gate_types"
	mapRequest  = "gate_request"
)

const (
	maxLoaders   = 256
	maxProtected = 64
	eventsSize   = 64 << 10
	infoSize     = 8 << 10
)

// mapSpecs are the gate's maps, in the order of the object's table.
func mapSpecs() []*ebpf.MapSpec {
	return []*ebpf.MapSpec{
		{Name: mapConfig, Type: ebpf.Array, KeySize: 4, ValueSize: configSize, MaxEntries: 1},
		{Name: mapAllow, Type: ebpf.Hash, KeySize: 16, ValueSize: allowSize, MaxEntries: maxLoaders},
		{Name: mapProtect, Type: ebpf.Hash, KeySize: 16, ValueSize: 4, MaxEntries: maxProtected},
		{Name: mapCounts, Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: numReasons},
		{Name: mapEvents, Type: ebpf.RingBuf, MaxEntries: eventsSize},
		// The operator's view of the gate (who enforced it, when, with
		// which loaders): kept in the kernel with the gate, as JSON.
		{Name: mapInfo, Type: ebpf.Array, KeySize: 4, ValueSize: infoSize, MaxEntries: 1},
		{Name: mapTemplate, Type: ebpf.Array, KeySize: 4, ValueSize: requestSize, MaxEntries: 1},
		{Name: mapTypes, Type: ebpf.Hash, KeySize: 8, ValueSize: programTypeSize, MaxEntries: maxTypes},
		{Name: mapRequest, Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: requestSize + 8, MaxEntries: 1},
	}
}

// requestSize is the Request's size (abi.Size, ABI version 1): the
// gate's code lays it out at constant offsets, and TestLayouts checks
// they are abi's. The scratch value is the Request and a busy word.
const (
	requestSize     = 1064
	requestBusy     = requestSize
	programTypeSize = 32 // the Request's program_type
	maxTypes        = 64
)

// anyAttach in a program type entry matches every expected attach type.
const anyAttach = ^uint32(0)

// programTypes is what the Request's program_type says of a kernel
// program type, looked up by (type, expected attach type), then (type,
// anyAttach): the probe kinds of abi's program_type where one kernel
// type is one kind, and the kernel's own name for the guarded types no
// script makes. A kprobe program may become a uprobe too, and a
// perf_event one a profile or an interval probe: the kernel sees a load,
// not how it will be attached, so a policy sees the first name. This
// table is data: user space fills the types map from it, and Object
// lists it, so the manifest signs it with the code.
var programTypes = []struct {
	Type   ebpf.ProgramType
	Attach uint32
	Name   string
}{
	{ebpf.Kprobe, anyAttach, "kprobe"},
	{ebpf.Kprobe, uint32(ebpf.AttachTraceUprobeMulti), "uprobe"},
	{ebpf.TracePoint, anyAttach, "tracepoint"},
	{ebpf.PerfEvent, anyAttach, "profile"},
	{ebpf.RawTracepoint, anyAttach, "rawtracepoint"},
	{ebpf.RawTracepointWritable, anyAttach, "rawtracepoint"},
	{ebpf.Tracing, uint32(ebpf.AttachTraceRawTp), "tp_btf"},
	{ebpf.Tracing, uint32(ebpf.AttachTraceFEntry), "kfunc"},
	{ebpf.Tracing, uint32(ebpf.AttachTraceFExit), "kretfunc"},
	{ebpf.Tracing, uint32(ebpf.AttachModifyReturn), "fmod_ret"},
	{ebpf.Tracing, uint32(ebpf.AttachTraceIter), "iter"},
	{ebpf.Extension, anyAttach, "freplace"},
	{ebpf.LSM, anyAttach, "lsm"},
	{ebpf.Syscall, anyAttach, "syscall"},
}

type typeKey struct{ Type, Attach uint32 }

// requestTemplate is the Request every policy evaluation starts from:
// what is the same for every load. The form and what the signature
// covers are those of what an allowed broker loads, a program it
// generated from source; whether the broker is one that verified is
// the loader's broker_verified.
func requestTemplate(p gatekeeper.Platform) []byte {
	r := gatekeeper.Request{
		ABIVersion: abi.Version, Form: abi.FormSource, Covers: abi.CoversSourceOfProgram,
		HVCI: p.HVCI, JITAvailable: p.JITAvailable, KernelInterpreter: p.KernelInterpreter,
	}
	return r.Encode()
}

// hook is one program of the gate: the LSM hook it attaches to.
type hook struct {
	prog, hook string
	code       func() asm.Instructions
}

var hooks = []hook{
	{"tb_gate_bpf", "bpf", bpfCode},
	{"tb_gate_map", "bpf_map", bpfMapCode},
	{"tb_gate_unlink", "inode_unlink", unlinkCode},
	{"tb_gate_rename", "inode_rename", renameCode},
	{"tb_gate_umount", "sb_umount", umountCode},
	{"tb_gate_prctl", "task_prctl", prctlCode},
	{"tb_gate_ptrace", "ptrace_access_check", ptraceCode},
}

// Name is the gate's artifact name: its manifest is NAME.bpf.sig.
const Name = "tb_gate"

// ObjectFile is the file name of the gate's object.
const ObjectFile = Name + ".bpf"

// collectionSpec is the gate as cilium loads it.
func collectionSpec() *ebpf.CollectionSpec {
	cs := &ebpf.CollectionSpec{Maps: map[string]*ebpf.MapSpec{}, Programs: map[string]*ebpf.ProgramSpec{}}
	for _, m := range mapSpecs() {
		cs.Maps[m.Name] = m
	}
	for _, h := range hooks {
		cs.Programs[h.prog] = &ebpf.ProgramSpec{
			Name:         h.prog,
			Type:         ebpf.LSM,
			AttachType:   ebpf.AttachLSMMac,
			AttachTo:     h.hook,
			Instructions: h.code(),
			License:      "GPL",
		}
	}
	return cs
}

// Object is the gate's object file, the bytes its manifest signs: a
// text header naming the maps, the program type names a policy's
// Request gets, the functions the kernel knows from BTF (where they
// start and their prototypes: a policy's extension must match
// tb_gate_policy's), and the programs with their hooks, each program's
// bytecode after its line. Map loads are BPF_PSEUDO_MAP_IDX
// (src 5) with the map's index in the header, as for the collectors, so
// the bytes are the same on every build and every kernel.
//
//	tracebroker gate object v1
//	config: v1 size 152
//	map 0: gate_config 2 key 4 value 152 entries 1
//	...
//	request: abi v1 size 1064, template gate_template, scratch gate_request
//	program type 2 attach any: kprobe
//	...
//	func tb_gate_bpf at 0: global int tb_gate_bpf(unsigned long long *ctx)
//	func tb_gate_bpf at N: global int tb_gate_policy(struct tb_request { ... } *req)
//	program tb_gate_bpf lsm/bpf: N
//	(N 8-byte instructions, little-endian, then a newline)
func Object() ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "tracebroker gate object v1\nconfig: v%d size %d\nrecord: size %d\nguarded: %#x\n", configVersion, configSize, RecordSize, guardedMask(defaultGuarded))
	index := map[string]int{}
	for i, m := range mapSpecs() {
		index[m.Name] = i
		fmt.Fprintf(&b, "map %d: %s %d key %d value %d entries %d\n", i, m.Name, uint32(m.Type), m.KeySize, m.ValueSize, m.MaxEntries)
	}
	fmt.Fprintf(&b, "request: abi v%d size %d, template %s, scratch %s\n", abi.Version, requestSize, mapTemplate, mapRequest)
	for _, t := range programTypes {
		attach := "any"
		if t.Attach != anyAttach {
			attach = fmt.Sprint(t.Attach)
		}
		fmt.Fprintf(&b, "program type %d attach %s: %s\n", uint32(t.Type), attach, t.Name)
	}
	for _, h := range hooks {
		insns := h.code()
		for it := insns.Iterate(); it.Next(); {
			if fn := btf.FuncMetadata(it.Ins); fn != nil {
				fmt.Fprintf(&b, "func %s at %d: %s\n", h.prog, it.Offset, funcDecl(fn))
			}
		}
		raw, err := asmgen.Encode(insns, index)
		if err != nil {
			return nil, fmt.Errorf("gate %s: %w", h.prog, err)
		}
		fmt.Fprintf(&b, "program %s lsm/%s: %d\n", h.prog, h.hook, len(raw)/8)
		b.Write(raw)
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// Digest is the hex SHA-256 of Object: what the gate's manifest
// (tb_gate.bpf.sig, role gate) must name. The code is fixed at build
// time, so failing to encode it is a bug: Digest panics then.
func Digest() string {
	obj, err := Object()
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(obj)
	return hex.EncodeToString(sum[:])
}
