package gatekeeper

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/gatekeeper/abi"
	"github.com/tracebroker/tracebroker/internal/regfile"
	"github.com/tracebroker/tracebroker/interp"
)

// DefaultBudget is how many instructions a policy may execute per
// decision unless PolicyOptions says otherwise: some hundreds of
// microseconds at most, far beyond any real policy (tens to hundreds of
// instructions), so a runaway loop denies at once instead of stalling
// admission.
const DefaultBudget = 100000

// MaxPolicyFileSize bounds a policy object read: a compiled policy is
// kilobytes.
const MaxPolicyFileSize = 16 << 20

// TrustedKeysMap is the one map a policy may use: key id (abi.KeyIDSize
// bytes, the 64 hex digits NUL-padded) -> role bits (u64, abi.Role*).
// The gatekeeper fills it from the trust configuration.
const TrustedKeysMap = "trusted_keys"

// ELFSection is the section of an ELF object that holds the policy
// program (SEC("gatekeeper") in C).
const ELFSection = "gatekeeper"

// reasonUnsigned is how a Decision records a policy loaded without a
// signature.
const reasonUnsigned = "unsigned policy (development)"

// PolicyOptions configure loading a policy.
type PolicyOptions struct {
	// Trust verifies the policy file's signature (role policy).
	Trust *attest.Trust
	// Roles fills trusted_keys: key id -> role bits (abi.Role*). nil
	// means every key in Trust with every role. When set, a policy
	// file's signer must also have abi.RolePolicy here.
	Roles map[string]uint64
	// Unsigned loads a policy file without its signature, for
	// development; every Decision it makes says so.
	Unsigned bool
	// Budget is the instruction budget per run; 0 means DefaultBudget.
	Budget uint64
}

// Policy is a verified policy program with its trusted_keys filled. It
// is immutable: any number of goroutines may Run it (and Decide with
// it) at once.
type Policy struct {
	name     string
	digest   string
	signer   string
	unsigned bool
	prog     *interp.Program
	// What was verified, for Program: the instructions with their map
	// references, and the maps with the contents prog runs with.
	insns asm.Instructions
	maps  []*ebpf.MapSpec
}

// Name is the policy's path, or the name it was given.
func (p *Policy) Name() string { return p.name }

// Digest is "sha256:HEX" of the policy file, or of the bytecode of a
// policy built from instructions.
func (p *Policy) Digest() string { return p.digest }

// Signer is the key id that signed the policy file; "" for an unsigned
// file or a policy built from instructions.
func (p *Policy) Signer() string { return p.signer }

// Unsigned reports whether the policy was loaded without a signature.
func (p *Policy) Unsigned() bool { return p.unsigned }

// Program is the policy as an eBPF program for another runtime than
// interp (the kernel gate, gatekeeper/lsmgate, loads it as an extension
// of its own program): the instructions that were verified and vetted,
// whose map loads name the maps by reference, and the maps' specs with
// the contents every run of this Policy sees (trusted_keys as the trust
// configuration filled it, constants as the file had them). Both are
// copies: the Policy stays immutable.
func (p *Policy) Program() (asm.Instructions, []*ebpf.MapSpec) {
	maps := make([]*ebpf.MapSpec, len(p.maps))
	for i, m := range p.maps {
		maps[i] = m.Copy()
	}
	return slices.Clone(p.insns), maps
}

// policyHelpers is all a policy may call: the trusted-keys lookup and
// the copy the compiler uses to read strings out of the Request. A
// policy judges the Request and nothing else, so time, randomness, the
// current task, output and map updates are not there.
var policyHelpers = sync.OnceValue(func() []interp.Helper {
	var hs []interp.Helper
	for _, h := range interp.DefaultHelpers() {
		switch h.ID {
		case asm.FnMapLookupElem, asm.FnProbeReadKernel, asm.FnProbeReadKernelStr:
			hs = append(hs, h)
		}
	}
	return hs
})

// helperNames names helpers in errors as the kernel does.
var helperNames = sync.OnceValue(func() map[asm.BuiltinFunc]string {
	m := map[asm.BuiltinFunc]string{}
	for _, h := range interp.DefaultHelpers() {
		m[h.ID] = h.Name
	}
	return m
})

func helperName(fn asm.BuiltinFunc) string {
	if s, ok := helperNames()[fn]; ok {
		return s
	}
	return strings.TrimPrefix(fn.String(), "Fn")
}

// NewPolicy loads a policy the script compiler produced
// (compile.Policy's one probe): its instructions, with map loads naming
// TrustedKeysMap. name is what decisions call it (the script's path).
// The instructions are verified by interp and vetted (see vetPolicy)
// before anything runs.
func NewPolicy(name string, insns asm.Instructions, opts PolicyOptions) (*Policy, error) {
	if name == "" {
		name = "policy"
	}
	p := &Policy{name: name, unsigned: opts.Unsigned}
	if err := p.load(insns, nil, nil, opts); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(p.prog.Code())
	p.digest = "sha256:" + hex.EncodeToString(sum[:])
	return p, nil
}

// LoadPolicyFile loads a policy from an eBPF ELF object (clang -target
// bpf, or `tracebroker gatekeeper compile`): the program in section
// ELFSection. The file must be signed for attest.RolePolicy by a key in
// opts.Trust (PATH.sig beside it), unless opts.Unsigned. The file is
// read once, and the bytes whose digest was verified are the bytes
// loaded, so it cannot change between the check and the use; and the
// signature is checked before the ELF parser sees a byte of it.
//
// Besides trusted_keys (which must be declared as a hash of
// abi.KeyIDSize-byte keys and 8-byte values; the gatekeeper fills its
// own), the program may use read-only constants (.rodata*). Writable
// globals (.data, .bss) are refused: a policy keeps no state.
func LoadPolicyFile(path string, opts PolicyOptions) (*Policy, error) {
	fail := func(format string, args ...any) (*Policy, error) {
		return nil, fmt.Errorf("gatekeeper: policy %s: %w", path, fmt.Errorf(format, args...))
	}
	data, err := regfile.ReadFile(path, MaxPolicyFileSize)
	if err != nil {
		return fail("%w", err)
	}
	if !bytes.HasPrefix(data, []byte(elf.ELFMAG)) {
		return fail("%w (no ELF magic number): compile a policy script with `tracebroker gatekeeper compile`", interp.ErrNotELF)
	}
	sum := sha256.Sum256(data)
	hexDigest := hex.EncodeToString(sum[:])
	p := &Policy{name: path, digest: "sha256:" + hexDigest, unsigned: opts.Unsigned}
	if !opts.Unsigned {
		sigPath := path + attest.SigSuffix
		env, err := regfile.ReadFile(sigPath, attest.MaxEnvelopeSize)
		if errors.Is(err, fs.ErrNotExist) {
			return fail("not signed (no %s): sign it for role %s, or load it unsigned for development", sigPath, attest.RolePolicy)
		}
		if err != nil {
			return fail("signature: %w", err)
		}
		id, err := attest.VerifyManifest(env, hexDigest, opts.Trust, attest.RolePolicy)
		if err != nil {
			return fail("signature %s: %w", sigPath, err)
		}
		if opts.Roles != nil && opts.Roles[id.Signer]&abi.RolePolicy == 0 {
			return fail("signed by %s, which does not have the policy role", id.Signer)
		}
		p.signer = id.Signer
	}

	coll, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(data))
	if err != nil {
		return fail("%w", err)
	}
	var specs []*ebpf.ProgramSpec
	var sections []string
	for _, ps := range coll.Programs {
		if ps.SectionName == ELFSection {
			specs = append(specs, ps)
		}
		sections = append(sections, ps.SectionName)
	}
	switch len(specs) {
	case 0:
		sort.Strings(sections)
		return fail("no program in section %q (programs are in: %s)", ELFSection, strings.Join(slices.Compact(sections), ", "))
	case 1:
	default:
		return fail("%d programs in section %q: a policy is one", len(specs), ELFSection)
	}
	spec := specs[0]
	extra := map[string]*interp.Map{}
	var extraSpecs []*ebpf.MapSpec // in the order the program first uses them
	for _, ins := range spec.Instructions {
		ref := ins.Reference()
		if !ins.IsLoadFromMap() || ref == "" || extra[ref] != nil {
			continue
		}
		ms, ok := coll.Maps[ref]
		switch {
		case !ok:
			return fail("program %s uses map %q, which the object does not define", spec.Name, ref)
		case ref == TrustedKeysMap:
			if ms.Type != ebpf.Hash || ms.KeySize != abi.KeyIDSize || ms.ValueSize != 8 {
				return fail("map %s is %v with %d-byte keys and %d-byte values; want a hash of %d-byte keys and 8-byte values", ref, ms.Type, ms.KeySize, ms.ValueSize, abi.KeyIDSize)
			}
		case strings.HasPrefix(ref, ".rodata"):
			m, err := constantsMap(ms, coll.ByteOrder)
			if err != nil {
				return fail("%w", err)
			}
			extra[ref] = m
			extraSpecs = append(extraSpecs, ms)
		default:
			return fail("program %s uses map %q: a policy may use only %s and constants (.rodata); it keeps no state", spec.Name, ref, TrustedKeysMap)
		}
	}
	if err := p.load(spec.Instructions, extra, extraSpecs, opts); err != nil {
		return nil, err
	}
	return p, nil
}

// constantsMap is a .rodata section as interp sees it: a one-entry
// array holding the section's bytes.
func constantsMap(ms *ebpf.MapSpec, bo binary.ByteOrder) (*interp.Map, error) {
	if ms.Type != ebpf.Array {
		return nil, fmt.Errorf("map %s is %v, not an array", ms.Name, ms.Type)
	}
	return interp.NewMapFromSpec(ms, bo)
}

// load checks, verifies and vets insns and fills p.prog. Errors are
// wrapped once, as "gatekeeper: policy NAME: ...".
func (p *Policy) load(insns asm.Instructions, extra map[string]*interp.Map, extraSpecs []*ebpf.MapSpec, opts PolicyOptions) error {
	fail := func(err error) error {
		return fmt.Errorf("gatekeeper: policy %s: %w", p.name, err)
	}
	if err := checkInsns(insns, extra); err != nil {
		return fail(err)
	}
	keys, spec, err := trustedKeys(opts.Trust, opts.Roles)
	if err != nil {
		return fail(err)
	}
	maps := map[string]*interp.Map{TrustedKeysMap: keys}
	for name, m := range extra {
		maps[name] = m
	}
	specs := []*ebpf.MapSpec{spec}
	for _, ms := range extraSpecs {
		specs = append(specs, ms.Copy())
	}
	budget := opts.Budget
	if budget == 0 {
		budget = DefaultBudget
	}
	prog, err := interp.LoadInstructions(insns, maps, interp.Options{Helpers: policyHelpers(), Budget: budget})
	if err != nil {
		return fail(err)
	}
	if err := vetPolicy(prog.Code()); err != nil {
		return fail(err)
	}
	p.prog = prog
	p.insns = slices.Clone(insns)
	p.maps = specs
	return nil
}

// checkInsns refuses, with a message a policy author can act on, what
// interp would refuse less clearly (a helper outside the table) or would
// accept (callx, other maps).
func checkInsns(insns asm.Instructions, extra map[string]*interp.Map) error {
	allowed := make([]string, len(policyHelpers()))
	for i, h := range policyHelpers() {
		allowed[i] = h.Name
	}
	for it := insns.Iterate(); it.Next(); {
		ins, pc := it.Ins, int(it.Offset)
		switch {
		case ins.OpCode.JumpOp() == asm.Call && ins.OpCode.Source() == asm.RegSource:
			return fmt.Errorf("insn %d: callx: a policy calls helpers by constant id", pc)
		case ins.IsBuiltinCall():
			fn := asm.BuiltinFunc(ins.Constant)
			if !slices.ContainsFunc(policyHelpers(), func(h interp.Helper) bool { return h.ID == fn }) {
				return fmt.Errorf("insn %d calls helper %s (%d): a policy may call only %s", pc, helperName(fn), int64(ins.Constant), strings.Join(allowed, ", "))
			}
		case ins.IsKfuncCall():
			return fmt.Errorf("insn %d calls a kfunc: a policy may call only %s", pc, strings.Join(allowed, ", "))
		case ins.IsLoadFromMap():
			if ref := ins.Reference(); ref != TrustedKeysMap && extra[ref] == nil {
				if ref == "" {
					return fmt.Errorf("insn %d loads a map by number: name it %s", pc, TrustedKeysMap)
				}
				return fmt.Errorf("insn %d uses map %q: a policy may use only %s", pc, ref, TrustedKeysMap)
			}
		}
	}
	return nil
}

// allRoles is every role bit: what a trusted key has when no roles are
// configured.
var allRoles = func() uint64 {
	var bits uint64
	for _, b := range abi.RoleBits {
		bits |= b
	}
	return bits
}()

// effectiveRoles is the key id -> role bits table a policy and the
// strict default see: roles as configured, or every trusted key with
// every role.
func effectiveRoles(trust *attest.Trust, roles map[string]uint64) (map[string]uint64, error) {
	if roles == nil {
		out := map[string]uint64{}
		for _, id := range trust.IDs() {
			out[id] = allRoles
		}
		return out, nil
	}
	out := make(map[string]uint64, len(roles))
	for id, bits := range roles {
		if !isKeyID(id) {
			return nil, fmt.Errorf("trusted key %q is not a key id (64 lowercase hex digits)", id)
		}
		out[id] = bits
	}
	return out, nil
}

func isKeyID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// trustedKeys builds the policy's trusted_keys map, sized to fit, and
// its spec with the same entries (in key order, so that the same trust
// gives the same spec).
func trustedKeys(trust *attest.Trust, roles map[string]uint64) (*interp.Map, *ebpf.MapSpec, error) {
	table, err := effectiveRoles(trust, roles)
	if err != nil {
		return nil, nil, err
	}
	spec := &ebpf.MapSpec{
		Name: TrustedKeysMap, Type: ebpf.Hash, KeySize: abi.KeyIDSize, ValueSize: 8,
		MaxEntries: uint32(max(len(table), 1)),
	}
	m, err := interp.NewMap(spec.Copy(), interp.MapOptions{})
	if err != nil {
		return nil, nil, err
	}
	for _, id := range slices.Sorted(maps.Keys(table)) {
		key := make([]byte, abi.KeyIDSize)
		copy(key, id)
		value := binary.LittleEndian.AppendUint64(nil, table[id])
		if err := m.Update(key, value, 0); err != nil {
			return nil, nil, err
		}
		spec.Contents = append(spec.Contents, ebpf.MapKV{Key: key, Value: value})
	}
	return m, spec, nil
}

// Run runs the policy over an encoded Request (abi.Size bytes, as
// Request.Encode makes it). Anything but a verdict is an error, which
// Decide turns into a denial: a fault (interp bounds-checks every
// access, so a read past the Request faults here), the budget used up,
// or a return value outside 0-3. A run allocates nothing unless it
// fails.
func (p *Policy) Run(req []byte) (Verdict, error) {
	if len(req) != abi.Size {
		return Deny, fmt.Errorf("request is %d bytes, not %d (ABI version %d)", len(req), abi.Size, abi.Version)
	}
	r0, err := p.prog.Run(nil, req)
	if err != nil {
		return Deny, err
	}
	if r0 > uint64(Any) {
		return Deny, fmt.Errorf("policy returned %d, not a verdict", int64(r0))
	}
	return Verdict(r0), nil
}
