package lsmgate

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/gatekeeper"
	"github.com/tracebroker/tracebroker/gatekeeper/abi"
)

// field reads Request field name from an encoded request.
func field(req []byte, name string) []byte {
	f, ok := abi.Lookup(name)
	if !ok {
		panic(name)
	}
	return req[f.Offset : f.Offset+f.Size]
}

func TestRequestTemplate(t *testing.T) {
	for _, c := range []struct {
		name string
		p    gatekeeper.Platform
		want map[string]byte // one-byte fields; every other byte but abi_version is 0
	}{
		{"no platform flags", gatekeeper.Platform{}, map[string]byte{"form": abi.FormSource, "covers": abi.CoversSourceOfProgram}},
		{"JIT", gatekeeper.Platform{JITAvailable: true}, map[string]byte{"form": abi.FormSource, "covers": abi.CoversSourceOfProgram, "jit_available": 1}},
		{"all", gatekeeper.Platform{HVCI: true, JITAvailable: true, KernelInterpreter: true},
			map[string]byte{"form": abi.FormSource, "covers": abi.CoversSourceOfProgram, "hvci": 1, "jit_available": 1, "kernel_interpreter": 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := requestTemplate(c.p)
			if len(req) != requestSize {
				t.Fatalf("%d bytes, want %d", len(req), requestSize)
			}
			if v := binary.LittleEndian.Uint32(field(req, "abi_version")); v != abi.Version {
				t.Errorf("abi_version %d", v)
			}
			want := make([]byte, requestSize)
			copy(want, req[:4])
			for name, v := range c.want {
				f, _ := abi.Lookup(name)
				want[f.Offset] = v
			}
			if !bytes.Equal(req, want) {
				t.Errorf("template differs from its fields %v", c.want)
			}
		})
	}
}

// An allow entry holds the loader's identity as the Request's fields
// take it: NUL-padded, with a NUL at the end.
func TestLoaderValue(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	for _, c := range []struct {
		name     string
		l        Loader
		flags    uint32
		verified uint32
		digest   string
		wantErr  string
	}{
		{"verified owner", Loader{Path: "/o", Digest: hex64, Signer: hex64, Verified: true, Owner: true, CtimeSec: 5, CtimeNsec: 6}, AllowLoad | AllowManage, 1, "sha256:" + hex64, ""},
		{"unverified loader", Loader{Path: "/l", Digest: hex64}, AllowLoad, 0, "sha256:" + hex64, ""},
		{"digest too long", Loader{Path: "/x", Digest: strings.Repeat("a", 73)}, 0, 0, "", "does not fit"},
		{"signer too long", Loader{Path: "/x", Digest: hex64, Signer: strings.Repeat("a", abi.KeyIDSize)}, 0, 0, "", "does not fit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, err := loaderValue(c.l)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Flags != c.flags || v.Verified != c.verified || v.CtimeSec != c.l.CtimeSec || v.CtimeNsec != c.l.CtimeNsec {
				t.Errorf("value %+v", v)
			}
			if got := string(bytes.TrimRight(v.Digest[:], "\x00")); got != c.digest || v.Digest[len(v.Digest)-1] != 0 {
				t.Errorf("digest %q, want %q NUL-terminated", got, c.digest)
			}
			if got := string(bytes.TrimRight(v.Signer[:], "\x00")); got != c.l.Signer || v.Signer[len(v.Signer)-1] != 0 {
				t.Errorf("signer %q, want %q NUL-terminated", got, c.l.Signer)
			}
		})
	}
}

// The program type table: names a Request can hold and policies
// compare (abi's probe kinds where there is one), one entry per key,
// within the map, and every guarded type named.
func TestProgramTypes(t *testing.T) {
	seen := map[typeKey]bool{}
	named := map[ebpf.ProgramType]bool{}
	for _, e := range programTypes {
		k := typeKey{uint32(e.Type), e.Attach}
		if seen[k] {
			t.Errorf("%v attach %d twice", e.Type, e.Attach)
		}
		seen[k] = true
		named[e.Type] = true
		if e.Name == "" || len(e.Name) >= programTypeSize {
			t.Errorf("%v: name %q does not fit program_type", e.Type, e.Name)
		}
	}
	if len(programTypes) > maxTypes {
		t.Errorf("%d entries, the map holds %d", len(programTypes), maxTypes)
	}
	for _, g := range defaultGuarded {
		if !named[g] {
			t.Errorf("guarded type %v has no name for the policy", g)
		}
	}
	f, _ := abi.Lookup("program_type")
	for _, kind := range []string{"kprobe", "tracepoint", "rawtracepoint", "tp_btf", "kfunc", "kretfunc", "profile", "uprobe"} {
		if !strings.Contains(f.Doc, kind) {
			t.Errorf("%s is not a probe kind abi documents", kind)
		}
	}
}

// policyProgram: the policy's instructions as gatekeeper verified them,
// behind a guard that carries the prototype the kernel checks, and its
// maps read-only for the program.
func TestPolicyProgram(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.o")
	compilePolicy(t, path, strings.Replace(gatePolicySrc, "DIGEST", strings.Repeat("ab", 32), 1))
	p, err := gatekeeper.LoadPolicyFile(path, gatekeeper.PolicyOptions{Trust: attest.NewTrust(), Unsigned: true})
	if err != nil {
		t.Fatal(err)
	}
	cs, names, err := policyProgram(p)
	if err != nil {
		t.Fatal(err)
	}
	insns, maps := p.Program()
	insns, _, err = pruneUnreachable(insns)
	if err != nil {
		t.Fatal(err)
	}
	ps := cs.Programs[policyFuncName]
	if ps.Type != ebpf.Extension || ps.AttachTo != policyFuncName || len(ps.Instructions) != len(insns)+3 {
		t.Fatalf("program %v attach %q, %d instructions for a policy of %d", ps.Type, ps.AttachTo, len(ps.Instructions), len(insns))
	}
	fn := btf.FuncMetadata(&ps.Instructions[0])
	_, want := btfTypes()
	if fn == nil || funcDecl(fn) != funcDecl(want) {
		t.Errorf("the guard's function %v, want %s", fn, funcDecl(want))
	}
	for i, ins := range ps.Instructions[1:] {
		if btf.FuncMetadata(&ins) != nil {
			t.Errorf("instruction %d has function information", i+1)
		}
	}
	// NULL denies; anything else runs the policy's first instruction.
	g := ps.Instructions
	if g[0].OpCode.JumpOp() != asm.JNE || g[0].Dst != asm.R1 || g[0].Constant != 0 || g[0].Offset != 2 ||
		g[1].Constant != abi.Deny || g[2].OpCode.JumpOp() != asm.Exit {
		t.Errorf("guard: %v", g[:3])
	}
	if len(names) != len(maps) || names[0] != gatekeeper.TrustedKeysMap {
		t.Fatalf("maps %v", names)
	}
	for _, n := range names {
		if cs.Maps[n].Flags&unix.BPF_F_RDONLY_PROG == 0 {
			t.Errorf("map %s is writable by the program", n)
		}
	}
	var buf bytes.Buffer
	if err := ps.Instructions.Marshal(&buf, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}

	// A policy with a function of its own is not one the gate runs.
	sub := asm.Instructions{
		asm.Call.Label("f"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, int32(gatekeeper.Any)).WithSymbol("f"),
		asm.Return(),
	}
	sp, err := gatekeeper.NewPolicy("sub", sub, gatekeeper.PolicyOptions{Trust: attest.NewTrust()})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := policyProgram(sp); err == nil || !strings.Contains(err.Error(), "function of its own") {
		t.Errorf("policy with a subprogram: %v", err)
	}
}

// pruneUnreachable keeps what runs, and only that: a policy without dead
// code is unchanged, one with some decides every Request as before.
func TestPruneUnreachable(t *testing.T) {
	digest := strings.Repeat("ab", 32)
	path := filepath.Join(t.TempDir(), "policy.o")
	compilePolicy(t, path, strings.Replace(gatePolicySrc, "DIGEST", digest, 1))
	k, err := attest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	trust := attest.NewTrust(k.Public())
	compiled, err := gatekeeper.LoadPolicyFile(path, gatekeeper.PolicyOptions{Trust: trust, Unsigned: true})
	if err != nil {
		t.Fatal(err)
	}
	compiledInsns, _ := compiled.Program()
	deadAfterJa := asm.Instructions{
		asm.Mov.Imm(asm.R0, abi.Deny),
		asm.JEq.Imm(asm.R1, 0, "out"),
		asm.LoadMem(asm.R2, asm.R1, reqOff("uid"), asm.Word),
		asm.JEq.Imm(asm.R2, 0, "root"),
		asm.Mov.Imm(asm.R0, abi.Deny),
		asm.Ja.Label("out"),
		asm.Mov.Imm(asm.R0, 7), // dead
		asm.Ja.Label("out"),    // dead
		asm.Mov.Imm(asm.R0, abi.Any).WithSymbol("root"),
		asm.Return().WithSymbol("out"),
		asm.Mov.Imm(asm.R0, 9), // dead
		asm.Return(),           // dead
	}
	for _, c := range []struct {
		name    string
		insns   asm.Instructions
		dropped int // -1: some
	}{
		{"none dead", asm.Instructions{asm.Mov.Imm(asm.R0, abi.Any), asm.Return()}, 0},
		{"dead after a jump and at the end", deadAfterJa, 4},
		{"compiled policy", compiledInsns, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Jumps as raw offsets, as an object file has them.
			var buf bytes.Buffer
			if err := c.insns.Marshal(&buf, binary.LittleEndian); err != nil {
				t.Fatal(err)
			}
			rawInsns, err := asm.AppendInstructions(nil, bytes.NewReader(buf.Bytes()), binary.LittleEndian, "linux")
			if err != nil {
				t.Fatal(err)
			}
			for i := range rawInsns { // the object's relocations
				if ref := c.insns[i].Reference(); c.insns[i].IsLoadFromMap() {
					rawInsns[i] = rawInsns[i].WithReference(ref)
				}
			}
			for _, in := range []asm.Instructions{c.insns, rawInsns} {
				out, dropped, err := pruneUnreachable(slices.Clone(in))
				if err != nil {
					t.Fatal(err)
				}
				if c.dropped >= 0 && dropped != c.dropped || c.dropped < 0 && dropped == 0 || len(out) != len(in)-dropped {
					t.Errorf("dropped %d of %d (kept %d), want %d", dropped, len(in), len(out), c.dropped)
				}
				before := mustPolicy(t, in, trust)
				after := mustPolicy(t, out, trust)
				for _, r := range []gatekeeper.Request{
					{},
					{ABIVersion: 1, Form: 1, Covers: 4, ProgramType: "tracepoint", InsnCount: 2, BrokerVerified: true, BrokerSigner: k.ID, BrokerDigest: "sha256:" + digest},
					{ABIVersion: 1, Form: 1, Covers: 4, ProgramType: "tracepoint", InsnCount: 9, BrokerVerified: true, BrokerSigner: k.ID, BrokerDigest: "sha256:" + digest},
					{ABIVersion: 1, Form: 1, Covers: 4, UID: 1000, ProgramType: "tracepoint", BrokerVerified: true, BrokerSigner: k.ID, BrokerDigest: "sha256:" + digest},
				} {
					v1, err1 := before.Run(r.Encode())
					v2, err2 := after.Run(r.Encode())
					if v1 != v2 || (err1 == nil) != (err2 == nil) {
						t.Errorf("%+v: %v %v before, %v %v after", r, v1, err1, v2, err2)
					}
				}
			}
		})
	}
}

func mustPolicy(t *testing.T, insns asm.Instructions, trust *attest.Trust) *gatekeeper.Policy {
	t.Helper()
	p, err := gatekeeper.NewPolicy("p", insns, gatekeeper.PolicyOptions{Trust: trust})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The busy word's exchange reaches the kernel as BPF_XCHG, which
// fetches the old value: an atomic add would leave src as it was, and
// every Request would look busy.
func TestXchgEncoding(t *testing.T) {
	var buf bytes.Buffer
	if err := (asm.Instructions{xchg(asm.R6, asm.R1, requestBusy)}).Marshal(&buf, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if b[0] != 0xdb || b[1] != 0x16 || binary.LittleEndian.Uint16(b[2:]) != requestBusy || binary.LittleEndian.Uint32(b[4:]) != 0xe1 {
		t.Errorf("xchg encodes as %x, want db16 %04x e1000000", b, requestBusy)
	}
}
