// Package abi is the gatekeeper's Request: the fixed, versioned,
// little-endian struct a policy program gets as its context. The script
// compiler reads Fields to type `req.NAME`; the gatekeeper encodes a
// request with Encode. Both sides use this one table, so a policy and the
// broker cannot disagree on an offset. gatekeeper/ABI.md documents it.
package abi

import (
	"encoding/binary"
	"fmt"
)

// Version is the ABI version in the first field. A policy may check it.
// New fields are only ever appended and Size grows with them, but the
// version stays: a version-1 policy reads the same bytes, its check of
// abi_version included, under every extension (see ABI.md).
const Version = 1

// Kind is how a field is laid out.
type Kind uint8

const (
	Uint   Kind = iota + 1 // little-endian unsigned integer of Size bytes
	Bool                   // one byte, 0 or 1
	String                 // NUL-padded bytes; the last byte is always NUL
)

// Field is one member of the Request.
type Field struct {
	Name   string // as policies write it (req.NAME) and as JSON names it
	Offset int
	Size   int
	Kind   Kind
	Doc    string
}

// Form is what kind of code a request submits.
const (
	FormSource   = 1 // script or generator source, compiled by the broker
	FormBytecode = 2 // eBPF bytecode
	FormPIC      = 3 // position-independent native code
	FormNative   = 4 // native code
)

// Covers says what the program's signature covers.
const (
	CoversProgram         = 1 // the program's bytes alone
	CoversPackage         = 2 // a package the program ships in
	CoversRepository      = 3 // a repository's metadata
	CoversSourceOfProgram = 4 // the generator that produced it (a verified broker or plugin)
)

// Token scope bits (token_scope).
const (
	ScopeTrace      = 1 << 0 // "trace": may run traces
	ScopeProbe      = 1 << 1 // at least one "probe:PATTERN" scope
	ScopeGen        = 1 << 2 // at least one "gen:NAME" scope
	ScopeReadKernel = 1 << 3 // "read:kernel": any kernel memory, kernel addresses
	ScopeReadUser   = 1 << 4 // "read:user": any user memory
)

// Read class bits (reads): what memory a program reads besides its own
// stack and maps, as the broker classified it (broker/program.Reads). A
// token's probe: scopes grant the first two; ReadUser needs the
// read:user scope, ReadKernel and ReadKernelAddr read:kernel.
const (
	ReadContext     = 1 << 0 // the probe's own context (tracepoint record, arguments, registers)
	ReadUserContext = 1 << 1 // user memory through the context's user pointers (filename, argv, a uprobe's arg0)
	ReadUser        = 1 << 2 // user memory at any other address
	ReadKernel      = 1 << 3 // kernel memory other than the context
	ReadKernelAddr  = 1 << 4 // values that reveal kernel addresses (kaddr, ksym, kstack(perf))
)

// Role bits, the values of the trusted-keys map (key id -> roles).
const (
	RoleBroker    = 1 << 0
	RoleGenerator = 1 << 1
	RoleCollector = 1 << 2
	RolePolicy    = 1 << 3
	RoleRelease   = 1 << 4 // signs programs offline: strict admits what it signed
	// RolePackage and RoleRepository sign packages (a bundle of an app's
	// eBPF objects) and repositories (a directory's signed index): the
	// strict default admits their programs as it admits the release
	// key's, and a policy can trust a vendor for one and not the other.
	RolePackage    = 1 << 5
	RoleRepository = 1 << 6
)

// RoleBits maps role names (as trusted(KEYID, "ROLE") and --trust write
// them) to their bits.
var RoleBits = map[string]uint64{
	"broker": RoleBroker, "generator": RoleGenerator, "collector": RoleCollector,
	"policy": RolePolicy, "release": RoleRelease, "package": RolePackage, "repository": RoleRepository,
}

// Verdicts: what a policy returns.
const (
	Deny        = 0
	Interpreter = 1
	JIT         = 2
	Any         = 3
)

// VerdictNames are the verdicts as policies write them (return jit;).
var VerdictNames = map[string]int{"deny": Deny, "interpreter": Interpreter, "jit": JIT, "any": Any}

// KeyIDSize is the size of a key id field: 64 hex digits and a NUL.
const KeyIDSize = 72

// Fields is the layout, in order. Offsets are natural (every integer is
// aligned to its size) so that a C policy can declare the same struct.
var Fields = layout([]Field{
	{Name: "abi_version", Size: 4, Kind: Uint, Doc: "ABI version (1)"},
	{Name: "form", Size: 1, Kind: Uint, Doc: "1 source, 2 bytecode, 3 pic, 4 native"},
	{Name: "covers", Size: 1, Kind: Uint, Doc: "what the signature covers: 1 program, 2 package, 3 repository, 4 source-of-program; 0 unsigned"},
	{Name: "hvci", Size: 1, Kind: Bool, Doc: "code integrity forbids new native code"},
	{Name: "jit_available", Size: 1, Kind: Bool, Doc: "the kernel JIT is enabled"},
	{Name: "kernel_interpreter", Size: 1, Kind: Bool, Doc: "the kernel has its eBPF interpreter"},
	{Name: "program_signed", Size: 1, Kind: Bool, Doc: "the program carries a signature that verified"},
	{Name: "broker_verified", Size: 1, Kind: Bool, Doc: "the submitting broker's binary verified against a trusted key"},
	{Name: "generator_verified", Size: 1, Kind: Bool, Doc: "the generator (plugin) verified against a trusted key"},
	{Name: "token_present", Size: 1, Kind: Bool, Doc: "the request came with a valid token"},
	{Name: "uid", Size: 4, Kind: Uint, Doc: "requester uid"},
	{Name: "gid", Size: 4, Kind: Uint, Doc: "requester gid"},
	{Name: "insn_count", Size: 4, Kind: Uint, Doc: "instructions in the program"},
	{Name: "token_scope", Size: 8, Kind: Uint, Doc: "scope bits: 1 trace, 2 probe:, 4 gen:, 8 read:kernel, 16 read:user"},
	{Name: "helpers0", Size: 8, Kind: Uint, Doc: "helpers used: bit N for helper id N (0-63)"},
	{Name: "helpers1", Size: 8, Kind: Uint, Doc: "helper ids 64-127"},
	{Name: "helpers2", Size: 8, Kind: Uint, Doc: "helper ids 128-191"},
	{Name: "helpers3", Size: 8, Kind: Uint, Doc: "helper ids 192-255"},
	{Name: "program_type", Size: 32, Kind: String, Doc: "probe kind: tracepoint, rawtracepoint, tp_btf, uprobe, uretprobe, kprobe, kretprobe, kfunc (fentry), kretfunc (fexit), profile, interval, begin, end"},
	{Name: "attach", Size: 128, Kind: String, Doc: "attach target as bpftrace names it (tracepoint:syscalls:sys_enter_openat)"},
	{Name: "program_signer", Size: KeyIDSize, Kind: String, Doc: "key id that signed the program"},
	{Name: "broker_digest", Size: 80, Kind: String, Doc: "sha256:HEX of the broker binary"},
	{Name: "broker_signer", Size: KeyIDSize, Kind: String, Doc: "key id that signed the broker"},
	{Name: "generator_digest", Size: 80, Kind: String, Doc: "sha256:HEX of the generator"},
	{Name: "generator_signer", Size: KeyIDSize, Kind: String, Doc: "key id that signed the generator"},
	{Name: "generator", Size: 64, Kind: String, Doc: "generator name: script, or a plugin's name"},
	{Name: "token_subject", Size: 128, Kind: String, Doc: "the token's sub claim"},
	{Name: "artifact", Size: 256, Kind: String, Doc: "path of the artifact (program file, plugin binary)"},
	// Appended since the first layout (see ABI.md's versioning).
	{Name: "reads", Size: 8, Kind: Uint, Doc: "memory the program reads: 1 its context, 2 user memory through the context's pointers, 4 any user memory, 8 kernel memory, 16 kernel addresses"},
})

// Size is the Request's size in bytes.
var Size = func() int {
	last := Fields[len(Fields)-1]
	return (last.Offset + last.Size + 7) &^ 7
}()

func layout(fs []Field) []Field {
	off := 0
	for i := range fs {
		align := fs[i].Size
		if fs[i].Kind == String || align > 8 {
			align = 1
		}
		off = (off + align - 1) &^ (align - 1)
		fs[i].Offset = off
		off += fs[i].Size
	}
	return fs
}

// Lookup finds a field by name.
func Lookup(name string) (Field, bool) {
	for _, f := range Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// Put writes one field into a Request buffer of Size bytes: an integer
// (Uint, Bool) or a string, truncated so the last byte stays NUL.
func Put(buf []byte, f Field, v any) error {
	if len(buf) < Size {
		return fmt.Errorf("abi: buffer of %d bytes, want %d", len(buf), Size)
	}
	dst := buf[f.Offset : f.Offset+f.Size]
	switch f.Kind {
	case String:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("abi: %s is a string", f.Name)
		}
		clear(dst)
		copy(dst[:f.Size-1], s)
	case Bool:
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("abi: %s is a boolean", f.Name)
		}
		dst[0] = 0
		if b {
			dst[0] = 1
		}
	case Uint:
		n, ok := v.(uint64)
		if !ok {
			return fmt.Errorf("abi: %s is an integer", f.Name)
		}
		if f.Size < 8 && n >= 1<<(8*f.Size) {
			return fmt.Errorf("abi: %s = %d does not fit in %d bytes", f.Name, n, f.Size)
		}
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], n)
		copy(dst, w[:f.Size])
	}
	return nil
}
