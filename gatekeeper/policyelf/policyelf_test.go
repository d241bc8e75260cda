package policyelf

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/tracebroker/tracebroker/gatekeeper/abi"
	"github.com/tracebroker/tracebroker/interp"
)

const section = "gatekeeper"

// trustedKeys is the gatekeeper's key map: key id -> role bits.
func trustedKeys() *ebpf.MapSpec {
	return &ebpf.MapSpec{
		Name:       "trusted_keys",
		Type:       ebpf.Hash,
		KeySize:    abi.KeyIDSize,
		ValueSize:  8,
		MaxEntries: 1024,
	}
}

func field(t testing.TB, name string) abi.Field {
	t.Helper()
	f, ok := abi.Lookup(name)
	if !ok {
		t.Fatalf("abi has no field %q", name)
	}
	return f
}

// copySigner copies the request's program_signer (r6 = ctx) to the stack
// and points r2 at it: the key of a trusted_keys lookup.
func copySigner(t testing.TB) asm.Instructions {
	signer := field(t, "program_signer").Offset
	var insns asm.Instructions
	for i := 0; i < abi.KeyIDSize; i += 8 {
		insns = append(insns,
			asm.LoadMem(asm.R2, asm.R6, int16(signer+i), asm.DWord),
			asm.StoreMem(asm.RFP, int16(-abi.KeyIDSize+i), asm.R2, asm.DWord))
	}
	return append(insns,
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -abi.KeyIDSize))
}

// missValue is what lookupProgram returns when the key is not in the map:
// a 64-bit immediate, so the program has an lddw besides the map load.
const missValue = 1 << 40

// lookupProgram returns trusted_keys[req.program_signer], or missValue.
// Its jumps name their targets by label.
func lookupProgram(t testing.TB) asm.Instructions {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadImm(asm.R7, missValue, asm.DWord),
	}
	insns = append(insns, copySigner(t)...)
	return append(insns,
		asm.LoadMapPtr(asm.R1, 0).WithReference("trusted_keys"),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "miss"),
		asm.LoadMem(asm.R0, asm.R0, 0, asm.DWord),
		asm.Return(),
		asm.Mov.Reg(asm.R0, asm.R7).WithSymbol("miss"),
		asm.Return(),
	)
}

// policyProgram is testdata/gatekeeper/example_policy.c written with asm,
// as the script compiler would emit it.
func policyProgram(t testing.TB) asm.Instructions {
	off := func(name string) int16 { return int16(field(t, name).Offset) }
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, off("uid"), asm.Word),
		asm.JNE.Imm(asm.R2, 0, "not_root"),
		asm.Mov.Imm(asm.R0, abi.Any),
		asm.Return(),
		asm.LoadMem(asm.R2, asm.R6, off("broker_verified"), asm.Byte).WithSymbol("not_root"),
		asm.JEq.Imm(asm.R2, 0, "signed"),
		asm.LoadMem(asm.R2, asm.R6, off("covers"), asm.Byte),
		asm.JNE.Imm(asm.R2, abi.CoversSourceOfProgram, "signed"),
		asm.Mov.Imm(asm.R0, abi.Interpreter),
		asm.Return(),
		asm.LoadMem(asm.R2, asm.R6, off("program_signed"), asm.Byte).WithSymbol("signed"),
		asm.JEq.Imm(asm.R2, 0, "deny"),
	}
	insns = append(insns, copySigner(t)...)
	return append(insns,
		asm.LoadMapPtr(asm.R1, 0).WithReference("trusted_keys"),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "deny"),
		asm.LoadMem(asm.R0, asm.R0, 0, asm.DWord),
		asm.And.Imm(asm.R0, abi.RoleRelease),
		asm.JEq.Imm(asm.R0, 0, "deny"),
		asm.Mov.Imm(asm.R0, abi.Any),
		asm.Return(),
		asm.Mov.Imm(asm.R0, abi.Deny).WithSymbol("deny"),
		asm.Return(),
	)
}

func write(t testing.TB, insns asm.Instructions, maps ...*ebpf.MapSpec) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, section, insns, maps); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return b.Bytes()
}

// keyID is a key id as the map holds it: the id, NUL-padded.
func keyID(id string) []byte {
	k := make([]byte, abi.KeyIDSize)
	copy(k[:abi.KeyIDSize-1], id)
	return k
}

const (
	releaseKey = "1111111111111111111111111111111111111111111111111111111111111111"
	brokerKey  = "2222222222222222222222222222222222222222222222222222222222222222"
	otherKey   = "3333333333333333333333333333333333333333333333333333333333333333"
)

// request encodes a Request with the given fields set (abi.Put values)
// and everything else zero, but for abi_version.
func request(t testing.TB, fields map[string]any) []byte {
	t.Helper()
	buf := make([]byte, abi.Size)
	if err := abi.Put(buf, field(t, "abi_version"), uint64(abi.Version)); err != nil {
		t.Fatal(err)
	}
	for name, v := range fields {
		if err := abi.Put(buf, field(t, name), v); err != nil {
			t.Fatal(err)
		}
	}
	return buf
}

// mapByName finds one of the interpreter maps a program uses.
func mapByName(t testing.TB, p *interp.Program, name string) *interp.Map {
	t.Helper()
	for _, m := range p.Maps() {
		if m.Name() == name {
			return m
		}
	}
	t.Fatalf("the program uses no map %q", name)
	return nil
}

// sameInsns compares instructions as the bytes they marshal to, with the
// map loads' names compared separately: metadata (labels, symbols, line
// info) is ignored.
func sameInsns(t *testing.T, got, want asm.Instructions) {
	t.Helper()
	raw := func(insns asm.Instructions) []asm.Instruction {
		var b bytes.Buffer
		if err := slices.Clone(insns).Marshal(&b, binary.LittleEndian); err != nil {
			t.Fatalf("marshal: %v", err)
		}
		out, err := asm.AppendInstructions(nil, &b, binary.LittleEndian, "linux")
		if err != nil {
			t.Fatalf("unmarshal: %v", err)
		}
		return out
	}
	g, w := raw(got), raw(want)
	if len(g) != len(w) {
		t.Fatalf("%d instructions, want %d:\n%v\nwant\n%v", len(g), len(w), got, want)
	}
	for i := range g {
		a, b := g[i], w[i]
		if a.OpCode != b.OpCode || a.Dst != b.Dst || a.Src != b.Src || a.Offset != b.Offset || a.Constant != b.Constant {
			t.Errorf("insn %d: %v, want %v", i, a, b)
		}
		if got[i].IsLoadFromMap() || want[i].IsLoadFromMap() {
			if got[i].Reference() != want[i].Reference() {
				t.Errorf("insn %d: map %q, want %q", i, got[i].Reference(), want[i].Reference())
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	insns := lookupProgram(t)
	obj := write(t, insns, trustedKeys())

	t.Run("cilium", func(t *testing.T) {
		coll, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(obj))
		if err != nil {
			t.Fatalf("LoadCollectionSpecFromReader: %v", err)
		}
		if len(coll.Programs) != 1 || coll.Programs[ProgramName] == nil {
			t.Fatalf("programs %v, want only %q", coll.Programs, ProgramName)
		}
		ps := coll.Programs[ProgramName]
		if ps.SectionName != section || ps.License != License {
			t.Errorf("section %q license %q, want %q %q", ps.SectionName, ps.License, section, License)
		}
		sameInsns(t, ps.Instructions, insns)
		if len(coll.Maps) != 1 {
			t.Fatalf("maps %v, want trusted_keys only", coll.Maps)
		}
		got, want := coll.Maps["trusted_keys"], trustedKeys()
		if got == nil || got.Name != want.Name || got.Type != want.Type || got.KeySize != want.KeySize ||
			got.ValueSize != want.ValueSize || got.MaxEntries != want.MaxEntries || got.Flags != want.Flags || got.Extra != nil {
			t.Errorf("map spec %+v, want %+v", got, want)
		}
	})

	t.Run("interp", func(t *testing.T) {
		for _, name := range []string{ProgramName, ""} {
			p, err := interp.LoadELFReader(bytes.NewReader(obj), name, interp.Options{})
			if err != nil {
				t.Fatalf("LoadELFReader(%q): %v", name, err)
			}
			const roles = 0xfeedbeef00000011 // all 64 bits come back
			if err := mapByName(t, p, "trusted_keys").Update(keyID(releaseKey), binary.LittleEndian.AppendUint64(nil, roles), 0); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				signer string
				want   uint64
			}{
				{releaseKey, roles},
				{otherKey, missValue},
			} {
				got, err := p.Run(&interp.Env{}, request(t, map[string]any{"program_signer": tc.signer}))
				if err != nil || got != tc.want {
					t.Errorf("program %q, signer %.8s…: %#x, %v; want %#x", name, tc.signer, got, err, uint64(tc.want))
				}
			}
		}
	})
}

// TestObjectShape checks, with debug/elf alone, that the object has the
// shape clang gives a policy, and that the committed clang example does
// too: the same checks pass on both.
func TestObjectShape(t *testing.T) {
	clangObj, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		obj  []byte
	}{
		{"policyelf", write(t, policyProgram(t), trustedKeys())},
		{"clang", clangObj},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := elf.NewFile(bytes.NewReader(tc.obj))
			if err != nil {
				t.Fatal(err)
			}
			if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB || f.Type != elf.ET_REL || f.Machine != elf.EM_BPF {
				t.Errorf("header: %v %v %v %v", f.Class, f.Data, f.Type, f.Machine)
			}
			prog := f.Section(section)
			if prog == nil || prog.Type != elf.SHT_PROGBITS || prog.Flags != elf.SHF_ALLOC|elf.SHF_EXECINSTR {
				t.Fatalf("program section: %+v", prog)
			}
			if b := f.Section(".BTF"); b == nil || b.Type != elf.SHT_PROGBITS {
				t.Errorf(".BTF: %+v", b)
			}
			if lic := f.Section("license"); lic == nil {
				t.Error("no license section")
			} else if data, _ := lic.Data(); string(data) != License+"\x00" {
				t.Errorf("license %q", data)
			}
			syms, err := f.Symbols()
			if err != nil {
				t.Fatal(err)
			}
			byName := map[string]elf.Symbol{}
			for _, s := range syms {
				byName[s.Name] = s
			}
			fn, ok := byName[ProgramName]
			if !ok || f.Sections[fn.Section] != prog || fn.Value != 0 || fn.Size != prog.Size ||
				elf.ST_TYPE(fn.Info) != elf.STT_FUNC || elf.ST_BIND(fn.Info) != elf.STB_GLOBAL {
				t.Errorf("symbol %s: %+v", ProgramName, fn)
			}
			m, ok := byName["trusted_keys"]
			if !ok || f.Sections[m.Section].Name != ".maps" ||
				elf.ST_TYPE(m.Info) != elf.STT_OBJECT || elf.ST_BIND(m.Info) != elf.STB_GLOBAL {
				t.Errorf("symbol trusted_keys: %+v", m)
			}

			rel := f.Section(".rel" + section)
			if rel == nil || rel.Type != elf.SHT_REL || f.Sections[rel.Info] != prog || f.Sections[rel.Link].Type != elf.SHT_SYMTAB {
				t.Fatalf("relocation section: %+v", rel)
			}
			data, err := rel.Data()
			if err != nil {
				t.Fatal(err)
			}
			code, err := prog.Data()
			if err != nil {
				t.Fatal(err)
			}
			rels := make([]elf.Rel64, len(data)/16)
			if err := binary.Read(bytes.NewReader(data), binary.LittleEndian, rels); err != nil {
				t.Fatal(err)
			}
			if len(rels) != 1 {
				t.Fatalf("%d relocations, want 1 (the trusted_keys load)", len(rels))
			}
			r := rels[0]
			if elf.R_TYPE64(r.Info) != rBPF6464 || syms[elf.R_SYM64(r.Info)-1].Name != "trusted_keys" {
				t.Errorf("relocation %+v", r)
			}
			// At an lddw r1 with src 0 and imm 0, what clang leaves.
			if r.Off+16 > uint64(len(code)) || !bytes.Equal(code[r.Off:r.Off+16], []byte{0x18, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) {
				t.Errorf("relocation at %d: not a bare lddw r1", r.Off)
			}
		})
	}
}

// TestRelocationOffsets checks the relocations' byte offsets when lddw
// instructions (two slots each) come before the map loads, with two maps
// and a map used twice.
func TestRelocationOffsets(t *testing.T) {
	other := &ebpf.MapSpec{Name: "counts", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 4, Flags: 0}
	insns := asm.Instructions{
		asm.LoadImm(asm.R0, 1<<33, asm.DWord),                   // slots 0-1
		asm.LoadMapPtr(asm.R1, 0).WithReference("counts"),       // slots 2-3
		asm.LoadImm(asm.R2, -1, asm.DWord),                      // slots 4-5
		asm.LoadMapPtr(asm.R3, 0).WithReference("trusted_keys"), // slots 6-7
		asm.LoadMapPtr(asm.R4, 0).WithReference("counts"),       // slots 8-9
		asm.Return(),
	}
	obj := write(t, insns, trustedKeys(), other)
	f, err := elf.NewFile(bytes.NewReader(obj))
	if err != nil {
		t.Fatal(err)
	}
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	data, err := f.Section(".rel" + section).Data()
	if err != nil {
		t.Fatal(err)
	}
	rels := make([]elf.Rel64, len(data)/16)
	if err := binary.Read(bytes.NewReader(data), binary.LittleEndian, rels); err != nil {
		t.Fatal(err)
	}
	type rel struct {
		off uint64
		sym string
	}
	var got []rel
	for _, r := range rels {
		got = append(got, rel{r.Off, syms[elf.R_SYM64(r.Info)-1].Name})
	}
	want := []rel{{16, "counts"}, {48, "trusted_keys"}, {64, "counts"}}
	if !slices.Equal(got, want) {
		t.Errorf("relocations %v, want %v", got, want)
	}

	coll, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(obj))
	if err != nil {
		t.Fatal(err)
	}
	sameInsns(t, coll.Programs[ProgramName].Instructions, insns)
	if m := coll.Maps["counts"]; m == nil || m.Type != ebpf.Array || m.KeySize != 4 || m.MaxEntries != 4 {
		t.Errorf("counts: %+v", m)
	}
	p, err := interp.LoadELFReader(bytes.NewReader(obj), ProgramName, interp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range p.Maps() {
		names = append(names, m.Name())
	}
	if !slices.Equal(names, []string{"counts", "trusted_keys"}) {
		t.Errorf("interp maps %v, want counts, trusted_keys", names)
	}
	if got, err := p.Run(&interp.Env{}, nil); err != nil || got != 1<<33 {
		t.Errorf("run: %#x, %v", got, err)
	}
}

func TestWriteErrors(t *testing.T) {
	ret := asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	withMap := func(ins asm.Instruction) asm.Instructions {
		return asm.Instructions{ins, asm.Mov.Imm(asm.R0, 0), asm.Return()}
	}
	spec := func(f func(*ebpf.MapSpec)) []*ebpf.MapSpec {
		ms := trustedKeys()
		f(ms)
		return []*ebpf.MapSpec{ms}
	}
	tests := []struct {
		name    string
		section string
		insns   asm.Instructions
		maps    []*ebpf.MapSpec
		want    string
	}{
		{"no instructions", section, nil, nil, "no instructions"},
		{"empty section name", "", ret, nil, "empty section name"},
		{".text", ".text", ret, nil, `section ".text"`},
		{"section named like maps", "maps/policy", ret, nil, `section name "maps/policy"`},
		{"section named like the license", "license", ret, nil, `section name "license"`},
		{"section named like a table", ".symtab", ret, nil, "taken by the object's own tables"},
		{"unknown map", section, withMap(asm.LoadMapPtr(asm.R1, 0).WithReference("nosuch")), []*ebpf.MapSpec{trustedKeys()},
			`insn 0: map "nosuch" is not among the maps given`},
		{"map load without a name", section, withMap(asm.LoadMapPtr(asm.R1, 3)), []*ebpf.MapSpec{trustedKeys()},
			"insn 0 (LoadMapPtr dst: r1 fd: 3): map load with no map name"},
		{"direct map value load", section, withMap(asm.LoadMapValue(asm.R1, 0, 8).WithReference("trusted_keys")), []*ebpf.MapSpec{trustedKeys()},
			"direct load of a map value: not supported"},
		{"bpf-to-bpf call", section, asm.Instructions{
			asm.Call.Label("helper"), asm.Return(),
			asm.Mov.Imm(asm.R0, 1).WithSymbol("helper"), asm.Return(),
		}, nil, "insn 0 (Call -1 <helper>): bpf-to-bpf calls are not supported: a policy is one function"},
		{"function pointer", section, withMap(asm.Instruction{OpCode: asm.LoadImmOp(asm.DWord), Dst: asm.R1, Src: asm.PseudoFunc, Constant: -1}.WithReference("f")), nil,
			"bpf-to-bpf calls are not supported"},
		{"kfunc call", section, withMap(asm.Instruction{OpCode: asm.Call.Op(asm.ImmSource), Src: asm.PseudoKfuncCall, Constant: -1}), nil,
			"kfunc calls are not supported"},
		{"unresolved label", section, asm.Instructions{asm.Ja.Label("nowhere"), asm.Return()}, nil, `symbol "nowhere"`},
		{"nil map spec", section, ret, []*ebpf.MapSpec{nil}, "map 0: nil MapSpec"},
		{"map name not an identifier", section, ret, spec(func(ms *ebpf.MapSpec) { ms.Name = "trusted-keys" }), `name "trusted-keys": want a C identifier`},
		{"map without a name", section, ret, spec(func(ms *ebpf.MapSpec) { ms.Name = "" }), `name "": want a C identifier`},
		{"map named like the program", section, ret, spec(func(ms *ebpf.MapSpec) { ms.Name = ProgramName }), `map name "gatekeeper_policy" is taken`},
		{"map declared twice", section, ret, []*ebpf.MapSpec{trustedKeys(), trustedKeys()}, `map "trusted_keys" is declared twice`},
		{"map without a type", section, ret, spec(func(ms *ebpf.MapSpec) { ms.Type = ebpf.UnspecifiedMap }), "no map type"},
		{"map contents", section, ret, spec(func(ms *ebpf.MapSpec) { ms.Contents = []ebpf.MapKV{{Key: keyID(releaseKey), Value: uint64(1)}} }),
			`map "trusted_keys": initial Contents: not supported`},
		{"key type of the wrong size", section, ret, spec(func(ms *ebpf.MapSpec) { ms.Key = &btf.Int{Name: "u32", Size: 4} }),
			"is 4 bytes, but the spec says 72"},
		{"pinned map", section, ret, spec(func(ms *ebpf.MapSpec) { ms.Pinning = ebpf.PinByName }), "Pinning"},
		{"map of maps", section, ret, spec(func(ms *ebpf.MapSpec) { ms.Type = ebpf.HashOfMaps; ms.InnerMap = trustedKeys() }), "InnerMap"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			err := Write(&b, tc.section, tc.insns, tc.maps)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Write: %v, want an error containing %q", err, tc.want)
			}
			if b.Len() != 0 {
				t.Errorf("wrote %d bytes despite the error", b.Len())
			}
		})
	}
}

// TestWriteKeepsInput checks that Write leaves the caller's instructions
// as they were (map references and labels), so they can be written again.
func TestWriteKeepsInput(t *testing.T) {
	insns := lookupProgram(t)
	first := write(t, insns, trustedKeys())
	if !slices.ContainsFunc(insns, func(ins asm.Instruction) bool { return ins.IsLoadFromMap() && ins.Reference() == "trusted_keys" }) {
		t.Fatal("Write dropped the map reference from its input")
	}
	if second := write(t, insns, trustedKeys()); !bytes.Equal(first, second) {
		t.Error("writing the same program twice gave different objects")
	}
}

// TestMapDeclarations round-trips map specs through Write and cilium/ebpf:
// sizes or BTF types, flags, and maps no instruction uses.
func TestMapDeclarations(t *testing.T) {
	u32 := &btf.Int{Name: "unsigned int", Size: 4}
	u64 := &btf.Typedef{Name: "__u64", Type: &btf.Int{Name: "unsigned long long", Size: 8}}
	specs := []*ebpf.MapSpec{
		trustedKeys(),
		{Name: "nopre", Type: ebpf.Hash, KeySize: 8, ValueSize: 16, MaxEntries: 64, Flags: 1}, // BPF_F_NO_PREALLOC
		{Name: "typed", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 4, Key: u32, Value: u64},
		{Name: "events", Type: ebpf.RingBuf, MaxEntries: 4096},
	}
	insns := asm.Instructions{
		asm.LoadMapPtr(asm.R1, 0).WithReference("typed"),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	}
	obj := write(t, insns, specs...)
	coll, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(obj))
	if err != nil {
		t.Fatal(err)
	}
	if len(coll.Maps) != len(specs) {
		t.Errorf("%d maps, want %d", len(coll.Maps), len(specs))
	}
	for _, want := range specs {
		got := coll.Maps[want.Name]
		if got == nil {
			t.Errorf("no map %q", want.Name)
			continue
		}
		if got.Type != want.Type || got.KeySize != want.KeySize || got.ValueSize != want.ValueSize ||
			got.MaxEntries != want.MaxEntries || got.Flags != want.Flags {
			t.Errorf("%s: %v, want %v", want.Name, got, want)
		}
		if (got.Key == nil) != (want.Key == nil) || (got.Value == nil) != (want.Value == nil) {
			t.Errorf("%s: key, value types %v, %v; want %v, %v", want.Name, got.Key, got.Value, want.Key, want.Value)
		}
		if want.Value != nil && got.Value.TypeName() != want.Value.TypeName() {
			t.Errorf("%s: value type %v, want %v", want.Name, got.Value, want.Value)
		}
	}
	p, err := interp.LoadELFReader(bytes.NewReader(obj), "", interp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Maps()) != 1 || p.Maps()[0].Name() != "typed" {
		t.Errorf("interp maps: %v, want typed only (the one used)", p.Maps())
	}
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteError(t *testing.T) {
	err := Write(errWriter{}, section, lookupProgram(t), []*ebpf.MapSpec{trustedKeys()})
	if err == nil || err.Error() != "policyelf: disk full" {
		t.Errorf("Write: %v", err)
	}
}

// TestKernelLoad loads an object from Write into the running kernel
// through cilium/ebpf, as a socket filter (a program of ALU, stack and a
// map lookup, which any program type allows), and runs it there with
// BPF_PROG_TEST_RUN: the relocation must tie the load to the kernel map.
func TestKernelLoad(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to load programs")
	}
	insns := asm.Instructions{
		asm.LoadImm(asm.R7, 1000, asm.DWord),
		asm.Mov.Imm(asm.R3, 0),
	}
	for i := 0; i < abi.KeyIDSize; i += 8 { // an all-zero key
		insns = append(insns, asm.StoreMem(asm.RFP, int16(-abi.KeyIDSize+i), asm.R3, asm.DWord))
	}
	insns = append(insns,
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -abi.KeyIDSize),
		asm.LoadMapPtr(asm.R1, 0).WithReference("trusted_keys"),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "miss"),
		asm.LoadMem(asm.R0, asm.R0, 0, asm.DWord),
		asm.Return(),
		asm.Mov.Reg(asm.R0, asm.R7).WithSymbol("miss"),
		asm.Return(),
	)
	obj := write(t, insns, trustedKeys())
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(obj))
	if err != nil {
		t.Fatal(err)
	}
	spec.Programs[ProgramName].Type = ebpf.SocketFilter
	coll, err := ebpf.NewCollection(spec)
	if errors.Is(err, os.ErrPermission) || errors.Is(err, ebpf.ErrNotSupported) {
		t.Skipf("the kernel refuses BPF here: %v", err)
	}
	if err != nil {
		t.Fatalf("NewCollection: %v", err)
	}
	defer coll.Close()
	prog, m := coll.Programs[ProgramName], coll.Maps["trusted_keys"]
	if prog == nil || m == nil {
		t.Fatalf("collection: %v", coll)
	}
	run := func() uint32 {
		t.Helper()
		ret, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 14)}) // an Ethernet header
		if errors.Is(err, os.ErrPermission) || errors.Is(err, ebpf.ErrNotSupported) {
			t.Skipf("BPF_PROG_TEST_RUN refused: %v", err)
		}
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		return ret
	}
	if got := run(); got != 1000 {
		t.Errorf("empty map: %d, want 1000", got)
	}
	if err := m.Put(make([]byte, abi.KeyIDSize), uint64(42)); err != nil {
		t.Fatal(err)
	}
	if got := run(); got != 42 {
		t.Errorf("after trusted_keys[0…] = 42: %d, want 42", got)
	}
}
