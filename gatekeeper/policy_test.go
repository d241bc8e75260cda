package gatekeeper

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/gatekeeper/abi"
	"github.com/tracebroker/tracebroker/interp"
)

// TestHostilePolicies: what a broken or malicious policy can do is deny,
// quickly. Each case is refused at load (loadErr) or denies at run time
// with the reason and error given.
func TestHostilePolicies(t *testing.T) {
	lookup := asm.Instructions{ // r0 = trusted_keys[key on the stack], or exit deny
		asm.LoadMapPtr(asm.R1, 0).WithReference(TrustedKeysMap),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -abi.KeyIDSize),
		asm.FnMapLookupElem.Call(),
		asm.JNE.Imm(asm.R0, 0, "found"),
		asm.Return(),
	}
	tests := []struct {
		name    string
		insns   asm.Instructions
		budget  uint64
		uid     uint32
		loadErr string // substring of NewPolicy's error
		reason  string // substring of the denial's reason
		is      error  // the run error wraps it
	}{
		{name: "endless loop", insns: asm.Instructions{asm.Mov.Imm(asm.R0, 3), asm.Ja.Label("loop").WithSymbol("loop")},
			reason: "policy error: interp: insn 1 (goto pc-1): instruction budget exhausted (100000 instructions)", is: interp.ErrBudget},
		{name: "endless loop through a conditional", insns: asm.Instructions{
			asm.Mov.Imm(asm.R0, 0), asm.Add.Imm(asm.R0, 1).WithSymbol("l"), asm.JNE.Imm(asm.R0, 0, "l"), asm.Return()},
			reason: "instruction budget exhausted", is: interp.ErrBudget},
		{name: "a real policy over a tiny budget", insns: mixedPolicy(), budget: 5, uid: 1000,
			reason: "instruction budget exhausted", is: interp.ErrBudget},
		{name: "read past the end", insns: cat(asm.LoadMem(asm.R0, asm.R1, int16(abi.Size), asm.Byte), asm.Return()),
			loadErr: fmt.Sprintf("insn 0: reads 1 bytes at Request offset %d, outside the %d-byte Request (ABI version 1)", abi.Size, abi.Size)},
		{name: "read straddling the end", insns: cat(asm.Mov.Reg(asm.R6, asm.R1), asm.Add.Imm(asm.R6, int32(abi.Size)-56), asm.LoadMem(asm.R0, asm.R6, 52, asm.DWord), asm.Return()),
			loadErr: fmt.Sprintf("insn 2: reads 8 bytes at Request offset %d", abi.Size-4)},
		{name: "read before the start", insns: cat(asm.Sub.Imm(asm.R1, 8), asm.LoadMem(asm.R0, asm.R1, 0, asm.Byte), asm.Return()),
			loadErr: "reads 1 bytes at Request offset -8"},
		{name: "read past the end on one path only", insns: cat(
			asm.Mov.Reg(asm.R6, asm.R1), ld(asm.R2, asm.R6, "uid"), asm.JEq.Imm(asm.R2, 0, "ok"),
			asm.LoadMem(asm.R0, asm.R6, 2000, asm.Word), label("ok", ret(Any))),
			loadErr: "insn 3: reads 4 bytes at Request offset 2000"},
		{name: "read past the end at an offset known only at run time", insns: cat(
			ld(asm.R2, asm.R1, "uid"), asm.Add.Reg(asm.R1, asm.R2), asm.LoadMem(asm.R0, asm.R1, 0, asm.Byte), ret(Any)),
			uid: 5000, reason: "policy error: interp: insn 2 (r0 = *(u8 *)(r1 +0)): memory access fault: read of 1 bytes at 0x1100000000001388: context+5000 (" + fmt.Sprint(abi.Size) + " bytes)", is: interp.ErrFault},
		{name: "probe_read_kernel past the end", insns: cat(
			asm.Mov.Reg(asm.R3, asm.R1), asm.Add.Imm(asm.R3, int32(abi.Size)-4), asm.Mov.Reg(asm.R1, asm.R10), asm.Add.Imm(asm.R1, -8),
			asm.Mov.Imm(asm.R2, 8), asm.FnProbeReadKernel.Call(), ret(Any)),
			loadErr: fmt.Sprintf("insn 5: probe_read_kernel reads 8 bytes at Request offset %d", abi.Size-4)},
		{name: "probe_read_kernel_str at the end", insns: cat(
			asm.Mov.Reg(asm.R3, asm.R1), asm.Add.Imm(asm.R3, int32(abi.Size)), asm.Mov.Reg(asm.R1, asm.R10), asm.Add.Imm(asm.R1, -8),
			asm.Mov.Imm(asm.R2, 8), asm.FnProbeReadKernelStr.Call(), ret(Any)),
			loadErr: fmt.Sprintf("probe_read_kernel_str reads 8 bytes at Request offset %d", abi.Size)},
		{name: "probe_read_kernel_str of the last field", insns: cat(
			asm.Mov.Reg(asm.R3, asm.R1), asm.Add.Imm(asm.R3, int32(mustField("artifact").Offset)), asm.Mov.Reg(asm.R1, asm.R10), asm.Add.Imm(asm.R1, -512),
			asm.Mov.Imm(asm.R2, 512), asm.FnProbeReadKernelStr.Call(), ret(Any))},
		{name: "ktime_get_ns", insns: cat(asm.FnKtimeGetNs.Call(), ret(Any)),
			loadErr: "insn 0 calls helper ktime_get_ns (5): a policy may call only map_lookup_elem, probe_read_kernel, probe_read_kernel_str"},
		{name: "ringbuf_output", insns: cat(asm.FnRingbufOutput.Call(), ret(Any)),
			loadErr: "calls helper ringbuf_output (130)"},
		{name: "map_update_elem", insns: cat(asm.FnMapUpdateElem.Call(), ret(Any)),
			loadErr: "calls helper map_update_elem (2)"},
		{name: "get_current_uid_gid", insns: cat(asm.FnGetCurrentUidGid.Call(), ret(Any)),
			loadErr: "calls helper get_current_uid_gid (15)"},
		{name: "a helper nobody has", insns: cat(asm.BuiltinFunc(4000).Call(), ret(Any)),
			loadErr: "calls helper"},
		{name: "callx", insns: cat(asm.Mov.Imm(asm.R2, 1), asm.Instruction{OpCode: asm.Call.Op(asm.RegSource), Dst: asm.R2}, ret(Any)),
			loadErr: "insn 1: callx"},
		{name: "another map", insns: cat(asm.LoadMapPtr(asm.R1, 0).WithReference("counts"), ret(Any)),
			loadErr: `insn 0 uses map "counts": a policy may use only trusted_keys`},
		{name: "returns 7", insns: ret(7), reason: "policy error: policy returned 7, not a verdict"},
		{name: "returns -1", insns: withImm(ret(Deny), -1), reason: "policy returned -1, not a verdict"},
		{name: "writes the Request", insns: cat(stImm(asm.R1, 16, 0, asm.Word), ret(Any)),
			loadErr: "insn 0: stores into the Request (r1+16): the Request is read-only"},
		{name: "writes trusted_keys", insns: cat(lookup, label("found", asm.Instructions{stImm(asm.R0, 0, -1, asm.DWord)}), ret(Any)),
			loadErr: "insn 7: stores through r0, which is not provably a pointer to the policy's stack"},
		{name: "atomic add into trusted_keys", insns: cat(lookup, label("found", asm.Instructions{asm.Mov.Imm(asm.R1, 1)}),
			asm.StoreXAdd(asm.R0, asm.R1, asm.DWord), ret(Any)),
			loadErr: "an atomic operation writes through r0"},
		{name: "probe_read_kernel into trusted_keys", insns: cat(lookup, label("found", asm.Instructions{asm.Mov.Reg(asm.R1, asm.R0)}),
			asm.Mov.Imm(asm.R2, 8), asm.Mov.Reg(asm.R3, asm.R10), asm.Add.Imm(asm.R3, -8), asm.FnProbeReadKernel.Call(), ret(Any)),
			loadErr: "probe_read_kernel writes through r1, which is not provably a pointer to the policy's stack"},
		{name: "a stack pointer spilled and reloaded is not trusted", insns: cat(
			asm.Mov.Reg(asm.R2, asm.R10), asm.Add.Imm(asm.R2, -16), asm.StoreMem(asm.R10, -8, asm.R2, asm.DWord),
			asm.LoadMem(asm.R3, asm.R10, -8, asm.DWord), stImm(asm.R3, 0, 1, asm.DWord), ret(Any)),
			loadErr: "insn 4: stores through r3"},
		{name: "stack writes through a copy of r10 are fine", insns: cat(
			asm.Mov.Reg(asm.R2, asm.R10), asm.Add.Imm(asm.R2, -16), stImm(asm.R2, 8, 1, asm.DWord),
			stImm(asm.R10, -16, 2, asm.DWord), ret(Any))},
		{name: "stack pointer moved by a run-time amount", insns: cat(
			ld(asm.R3, asm.R1, "form"), asm.Mov.Reg(asm.R2, asm.R10), asm.Sub.Reg(asm.R2, asm.R3), stImm(asm.R2, -8, 1, asm.Byte), ret(Any)),
			loadErr: "insn 3: stores through r2"},
		{name: "empty", insns: asm.Instructions{}, loadErr: "empty program"},
		{name: "reads an unwritten register", insns: cat(asm.Mov.Reg(asm.R0, asm.R5), asm.Return()), loadErr: "r5 is read before it is written"},
		{name: "falls off the end", insns: asm.Instructions{asm.Mov.Imm(asm.R0, 0)}, loadErr: "falls through"},
		{name: "legacy packet access", insns: cat(asm.LoadAbs(0, asm.Byte), ret(Any)), loadErr: "BPF_ABS/BPF_IND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPolicy("hostile", tt.insns, PolicyOptions{Roles: testRoles, Budget: tt.budget})
			if tt.loadErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.loadErr) {
					t.Fatalf("NewPolicy: %v; want an error with %q", err, tt.loadErr)
				}
				if !strings.HasPrefix(err.Error(), "gatekeeper: policy hostile: ") {
					t.Errorf("error %q does not name the policy", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewPolicy: %v", err)
			}
			g := mustGatekeeper(t, Config{Default: "loose", Platform: jitOn})
			g.Load(p)
			start := time.Now()
			d := g.Decide(&Request{UID: tt.uid})
			if took := time.Since(start); took > 250*time.Millisecond {
				t.Errorf("Decide took %v", took)
			}
			if tt.reason == "" {
				if d.Verdict != Any {
					t.Errorf("Decide = %+v, want any", d)
				}
				return
			}
			if d.Verdict != Deny || d.Mode != "" || !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("Decide = %+v; want a denial with %q", d, tt.reason)
			}
			if !strings.HasPrefix(d.Reason, "policy error: ") {
				t.Errorf("reason %q: not a policy error", d.Reason)
			}
			_, err = p.Run((&Request{UID: tt.uid}).Encode())
			var re *interp.RunError
			if tt.is != nil && (!errors.Is(err, tt.is) || !errors.As(err, &re)) {
				t.Errorf("Run error %v, want a RunError wrapping %v", err, tt.is)
			}
		})
	}
}

// stImm is asm.StoreImm for every size (cilium's refuses DWord, which
// the ISA has).
func stImm(dst asm.Register, off int16, v int64, size asm.Size) asm.Instruction {
	return asm.Instruction{OpCode: asm.StoreImmOp(size), Dst: dst, Offset: off, Constant: v}
}

// withImm sets the immediate of the first instruction.
func withImm(insns asm.Instructions, imm int64) asm.Instructions {
	out := append(asm.Instructions(nil), insns...)
	out[0].Constant = imm
	return out
}

func TestPolicyRun(t *testing.T) {
	p := mustPolicy(t, "mixed", mixedPolicy(), PolicyOptions{Roles: testRoles})
	tests := []struct {
		name    string
		req     []byte
		want    Verdict
		wantErr string
	}{
		{"root", (&Request{}).Encode(), Any, ""},
		{"release signer", (&Request{UID: 1, ProgramSigned: true, ProgramSigner: releaseKey}).Encode(), JIT, ""},
		{"broker signer", (&Request{UID: 1, ProgramSigned: true, ProgramSigner: brokerKey}).Encode(), Deny, ""},
		{"short", make([]byte, abi.Size-1), Deny, fmt.Sprintf("request is %d bytes, not %d (ABI version 1)", abi.Size-1, abi.Size)},
		{"long", make([]byte, abi.Size+8), Deny, fmt.Sprintf("request is %d bytes", abi.Size+8)},
		{"nil", nil, Deny, "request is 0 bytes"},
	}
	for _, tt := range tests {
		v, err := p.Run(tt.req)
		if v != tt.want || (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: Run = %v, %v; want %v, %q", tt.name, v, err, tt.want, tt.wantErr)
		}
	}
	req := (&Request{UID: 1, ProgramSigned: true, ProgramSigner: releaseKey}).Encode()
	if n := testing.AllocsPerRun(100, func() { p.Run(req) }); n > 0 && !raceEnabled {
		t.Errorf("Run allocates %.1f times", n)
	}
}

// TestTrustedKeys: the map holds the configured roles, or every trusted
// key with every role.
func TestTrustedKeys(t *testing.T) {
	k1, _ := attest.GenerateKey()
	k2, _ := attest.GenerateKey()
	trust := attest.NewTrust(k1.Public(), k2.Public())
	// release -> jit, else deny
	insns := cat(asm.Mov.Reg(asm.R6, asm.R1), trustedRole(asm.R6, "program_signer", abi.RoleRelease, "no"), ret(JIT), label("no", ret(Deny)))
	tests := []struct {
		name   string
		opts   PolicyOptions
		signer string
		want   Verdict
	}{
		{"trust only: every key has every role", PolicyOptions{Trust: trust}, k1.ID, JIT},
		{"trust only: the other key", PolicyOptions{Trust: trust}, k2.ID, JIT},
		{"trust only: a stranger", PolicyOptions{Trust: trust}, untrustedKey, Deny},
		{"roles: release", PolicyOptions{Trust: trust, Roles: map[string]uint64{k1.ID: abi.RoleRelease}}, k1.ID, JIT},
		{"roles: broker only", PolicyOptions{Trust: trust, Roles: map[string]uint64{k1.ID: abi.RoleBroker}}, k1.ID, Deny},
		{"roles: not listed", PolicyOptions{Trust: trust, Roles: map[string]uint64{k1.ID: abi.RoleRelease}}, k2.ID, Deny},
		{"nothing trusted", PolicyOptions{}, k1.ID, Deny},
		{"empty signer", PolicyOptions{Trust: trust}, "", Deny},
		{"a prefix of a key id", PolicyOptions{Trust: trust}, k1.ID[:63], Deny},
	}
	for _, tt := range tests {
		p := mustPolicy(t, "trusted", insns, tt.opts)
		v, err := p.Run((&Request{ProgramSigner: tt.signer}).Encode())
		if err != nil || v != tt.want {
			t.Errorf("%s: Run = %v, %v; want %v", tt.name, v, err, tt.want)
		}
	}
	if _, err := NewPolicy("bad", insns, PolicyOptions{Roles: map[string]uint64{"not-a-key": 1}}); err == nil || !strings.Contains(err.Error(), `trusted key "not-a-key" is not a key id`) {
		t.Errorf("bad key id: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadPolicyFile(t *testing.T) {
	key, err := attest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := attest.GenerateKey()
	trust := attest.NewTrust(key.Public())
	sign := func(role attest.Role, k *attest.PrivateKey) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			if _, err := attest.SignArtifact(path, k, attest.ArtifactPredicate{Role: role, Name: "test policy"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name    string
		object  string // under testdata; "" for a text file
		prepare func(t *testing.T, path string)
		opts    PolicyOptions
		wantErr string
		is      error
	}{
		{name: "signed", object: "policy.o", prepare: sign(attest.RolePolicy, key), opts: PolicyOptions{Trust: trust}},
		{name: "signed, signer has the policy role", object: "policy.o", prepare: sign(attest.RolePolicy, key),
			opts: PolicyOptions{Trust: trust, Roles: map[string]uint64{key.ID: abi.RolePolicy | abi.RoleRelease}}},
		{name: "one byte appended after signing", object: "policy.o", prepare: func(t *testing.T, path string) {
			sign(attest.RolePolicy, key)(t, path)
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte{0})
			f.Close()
		}, opts: PolicyOptions{Trust: trust}, wantErr: "digest mismatch"},
		{name: "unsigned", object: "policy.o", opts: PolicyOptions{Trust: trust},
			wantErr: "not signed (no "},
		{name: "unsigned, allowed for development", object: "policy.o", opts: PolicyOptions{Trust: trust, Unsigned: true}},
		{name: "signed for the wrong role", object: "policy.o", prepare: sign(attest.RoleBroker, key), opts: PolicyOptions{Trust: trust},
			wantErr: "wrong role: signed as broker, wanted policy"},
		{name: "signed by an untrusted key", object: "policy.o", prepare: sign(attest.RolePolicy, other), opts: PolicyOptions{Trust: trust},
			wantErr: "untrusted key"},
		{name: "no trust at all", object: "policy.o", prepare: sign(attest.RolePolicy, key), opts: PolicyOptions{},
			wantErr: "untrusted key"},
		{name: "signer lacks the policy role", object: "policy.o", prepare: sign(attest.RolePolicy, key),
			opts: PolicyOptions{Trust: trust, Roles: map[string]uint64{key.ID: abi.RoleRelease}}, wantErr: "does not have the policy role"},
		{name: "garbage signature", object: "policy.o", prepare: func(t *testing.T, path string) {
			os.WriteFile(path+".sig", []byte("{}"), 0o644)
		}, opts: PolicyOptions{Trust: trust}, wantErr: "malformed envelope"},
		{name: "not an ELF object", prepare: sign(attest.RolePolicy, key), opts: PolicyOptions{Trust: trust},
			wantErr: "not an ELF object", is: interp.ErrNotELF},
		{name: "writable global", object: "stateful.o", prepare: sign(attest.RolePolicy, key), opts: PolicyOptions{Trust: trust},
			wantErr: `uses map ".bss": a policy may use only trusted_keys and constants (.rodata); it keeps no state`},
		{name: "read-only constants", object: "constants.o", prepare: sign(attest.RolePolicy, key), opts: PolicyOptions{Trust: trust}},
		{name: "ktime", object: "ktime.o", prepare: sign(attest.RolePolicy, key), opts: PolicyOptions{Trust: trust},
			wantErr: "calls helper ktime_get_ns (5)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "policy.o")
			if tt.object != "" {
				copyFile(t, filepath.Join("testdata", tt.object), path)
			} else {
				os.WriteFile(path, []byte("gatekeeper { return any; }\n"), 0o644)
			}
			if tt.prepare != nil {
				tt.prepare(t, path)
			}
			p, err := LoadPolicyFile(path, tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadPolicyFile: %v; want an error with %q", err, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "gatekeeper: policy "+path+": ") {
					t.Errorf("error %q does not name the file", err)
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("error %v does not wrap %v", err, tt.is)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadPolicyFile: %v", err)
			}
			digest, _ := attest.FileDigest(path)
			if p.Digest() != "sha256:"+digest || p.Name() != path {
				t.Errorf("digest %s name %s, want sha256:%s %s", p.Digest(), p.Name(), digest, path)
			}
			if tt.opts.Unsigned != p.Unsigned() || !tt.opts.Unsigned && p.Signer() != key.ID {
				t.Errorf("signer %q unsigned %v", p.Signer(), p.Unsigned())
			}
			// testdata/policy.c is mixedPolicy in C: the same decisions
			// (constants.o also admits uid 4242).
			g := mustGatekeeper(t, Config{Default: "strict", Platform: jitOn})
			g.Load(p)
			for _, c := range []struct {
				req  Request
				want Verdict
			}{
				{Request{UID: 0}, Any},
				{Request{UID: 1, ProgramSigned: true, ProgramSigner: key.ID}, JIT},
				{Request{UID: 1, ProgramSigned: true, ProgramSigner: other.ID}, Deny},
				{Request{UID: 1, BrokerVerified: true}, Interpreter},
				{Request{UID: 1}, Deny},
				{Request{UID: 4242}, Deny}, // constants.o: Any
			} {
				if c.req.UID == 4242 && tt.object == "constants.o" {
					c.want = Any
				}
				d := g.Decide(&c.req)
				if c.want == JIT && tt.opts.Roles != nil && tt.opts.Roles[key.ID]&abi.RoleRelease == 0 {
					c.want = Deny
				}
				if d.Verdict != c.want || d.PolicyDigest != p.Digest() || d.Policy != path {
					t.Errorf("Decide(%+v) = %+v, want %v", c.req, d, c.want)
				}
				if strings.Contains(d.Reason, reasonUnsigned) != tt.opts.Unsigned {
					t.Errorf("reason %q (unsigned %v)", d.Reason, tt.opts.Unsigned)
				}
			}
		})
	}
	t.Run("not a regular file", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := LoadPolicyFile(dir, PolicyOptions{Unsigned: true}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("LoadPolicyFile(dir) = %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := LoadPolicyFile(filepath.Join(t.TempDir(), "nope.o"), PolicyOptions{}); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("LoadPolicyFile(missing) = %v", err)
		}
	})
}

// bytecode marshals insns for the fuzzer's corpus, map loads as fd 0.
func bytecode(t testing.TB, insns asm.Instructions) []byte {
	insns = append(asm.Instructions(nil), insns...)
	for i, ins := range insns {
		if ins.IsLoadFromMap() {
			insns[i] = asm.LoadMapPtr(ins.Dst, 0).WithMetadata(ins.Metadata)
		}
	}
	var b bytes.Buffer
	if err := insns.Marshal(&b, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// FuzzPolicyBytecode: whatever bytes a policy is made of, NewPolicy
// refuses it or it runs to a verdict or an error, within its budget.
func FuzzPolicyBytecode(f *testing.F) {
	for _, insns := range []asm.Instructions{
		mixedPolicy(), realisticPolicy(), ret(Any), ret(7),
		{asm.Mov.Imm(asm.R0, 3), asm.Ja.Label("l").WithSymbol("l")},
		cat(ld(asm.R2, asm.R1, "uid"), asm.Add.Reg(asm.R1, asm.R2), asm.LoadMem(asm.R0, asm.R1, 0, asm.Byte), ret(Any)),
	} {
		f.Add(bytecode(f, insns), uint32(0))
		f.Add(bytecode(f, insns), uint32(1000))
	}
	g := func() *Gatekeeper {
		g, err := New(Config{Default: "strict", Platform: jitOn, Roles: testRoles})
		if err != nil {
			f.Fatal(err)
		}
		return g
	}()
	f.Fuzz(func(t *testing.T, code []byte, uid uint32) {
		insns, err := asm.AppendInstructions(nil, bytes.NewReader(code), binary.LittleEndian, "linux")
		if err != nil {
			return
		}
		for i := range insns {
			if insns[i].IsLoadFromMap() {
				insns[i] = insns[i].WithReference(TrustedKeysMap)
			}
		}
		p, err := NewPolicy("fuzz", insns, PolicyOptions{Roles: testRoles, Budget: 20000})
		if err != nil {
			if p != nil {
				t.Fatal("a policy and an error")
			}
			return
		}
		// The platform flags as Decide will fill them, so both runs
		// see the same bytes.
		req := &Request{UID: uid, ProgramSigned: true, ProgramSigner: releaseKey, Attach: "tracepoint:x:y", JITAvailable: jitOn.JITAvailable}
		start := time.Now()
		v, err := p.Run(req.Encode())
		if took := time.Since(start); took > time.Second {
			t.Fatalf("a run of at most 20000 instructions took %v", took)
		}
		if err == nil && v > Any {
			t.Fatalf("Run = %d without an error", v)
		}
		if err != nil && v != Deny {
			t.Fatalf("Run = %v with error %v", v, err)
		}
		// The same through Decide, with the policy's maps untouched.
		g.Load(p)
		d := g.Decide(req)
		if d.Reason == "" || (err != nil) != (d.Verdict == Deny && strings.HasPrefix(d.Reason, "policy error: ")) {
			t.Fatalf("Decide = %+v after Run = %v, %v", d, v, err)
		}
		if v2, err2 := p.Run(req.Encode()); v2 != v || (err2 == nil) != (err == nil) {
			t.Fatalf("second run %v, %v; first %v, %v: the policy kept state", v2, err2, v, err)
		}
	})
}

// TestLoadPolicyFileFIFO: a named pipe planted as the policy or its
// signature is refused at once. Opening one for reading blocks until a
// writer comes, which would hang start-up (and, with it, every decision
// under the loose default with a policy configured) for as long as the
// planter likes.
func TestLoadPolicyFileFIFO(t *testing.T) {
	key, err := attest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	trust := attest.NewTrust(key.Public())
	for _, which := range []string{"policy", "signature"} {
		t.Run(which, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "policy.o")
			fifo := path
			if which == "signature" {
				copyFile(t, filepath.Join("testdata", "policy.o"), path)
				fifo = path + attest.SigSuffix
			}
			if err := syscall.Mkfifo(fifo, 0o644); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := LoadPolicyFile(path, PolicyOptions{Trust: trust})
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "not a regular file") {
					t.Fatalf("LoadPolicyFile: %v; want a refusal: not a regular file", err)
				}
			case <-time.After(5 * time.Second):
				// Unblock the reader so the test process can end.
				if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
					f.Close()
				}
				t.Fatalf("LoadPolicyFile blocked on the FIFO %s", fifo)
			}
		})
	}
}

// Program gives another runtime what interp runs: the same instructions
// and maps with the same contents, as copies.
func TestPolicyProgram(t *testing.T) {
	k1, _ := attest.GenerateKey()
	k2, _ := attest.GenerateKey()
	trust := attest.NewTrust(k1.Public(), k2.Public())
	insns := cat(asm.Mov.Reg(asm.R6, asm.R1), trustedRole(asm.R6, "program_signer", abi.RoleRelease, "no"), ret(JIT), label("no", ret(Deny)))
	p := mustPolicy(t, "trusted", insns, PolicyOptions{Trust: trust, Roles: map[string]uint64{k1.ID: abi.RoleRelease, k2.ID: abi.RoleBroker}})
	got, maps := p.Program()
	var a, b bytes.Buffer
	if err := insns.Marshal(&a, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	if err := got.Marshal(&b, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) || !bytes.Equal(b.Bytes(), p.prog.Code()) {
		t.Error("Program's instructions are not the policy's")
	}
	if len(maps) != 1 || maps[0].Name != TrustedKeysMap || maps[0].Type != ebpf.Hash || maps[0].KeySize != abi.KeyIDSize || maps[0].MaxEntries != 2 {
		t.Fatalf("maps: %v", maps)
	}
	ids := []string{k1.ID, k2.ID}
	roles := []uint64{abi.RoleRelease, abi.RoleBroker}
	if ids[0] > ids[1] {
		ids[0], ids[1], roles[0], roles[1] = ids[1], ids[0], roles[1], roles[0]
	}
	for i, kv := range maps[0].Contents {
		key, value := kv.Key.([]byte), kv.Value.([]byte)
		if string(bytes.TrimRight(key, "\x00")) != ids[i] || len(key) != abi.KeyIDSize || binary.LittleEndian.Uint64(value) != roles[i] {
			t.Errorf("entry %d: %q -> %x, want %s -> %#x", i, key, value, ids[i], roles[i])
		}
	}
	// Copies: changing them changes nothing of the policy's.
	maps[0].Contents = nil
	got[0] = asm.Mov.Imm(asm.R0, int32(Any))
	again, maps2 := p.Program()
	if len(maps2[0].Contents) != 2 || again[0].OpCode != insns[0].OpCode {
		t.Error("Program returned the policy's own instructions or maps")
	}

	// A file's constants come with the bytes the file has.
	fp, err := LoadPolicyFile(filepath.Join("testdata", "constants.o"), PolicyOptions{Trust: trust, Unsigned: true})
	if err != nil {
		t.Fatal(err)
	}
	_, fmaps := fp.Program()
	spec, err := ebpf.LoadCollectionSpec(filepath.Join("testdata", "constants.o"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range fmaps {
		names = append(names, m.Name)
		if want, ok := spec.Maps[m.Name]; ok && m.Name != TrustedKeysMap {
			if fmt.Sprint(m.Contents) != fmt.Sprint(want.Contents) {
				t.Errorf("%s: contents %v, want %v", m.Name, m.Contents, want.Contents)
			}
		}
	}
	if len(names) < 2 || names[0] != TrustedKeysMap || !strings.HasPrefix(names[1], ".rodata") {
		t.Errorf("maps of constants.o: %v", names)
	}
}
