// Package policyelf writes a compiled gatekeeper policy as an eBPF ELF
// relocatable object, the shape `clang -target bpf -c` produces, so that
// one loader (interp.LoadELFReader, which reads objects with cilium/ebpf's
// LoadCollectionSpecFromReader) takes both the policies `tracebroker
// gatekeeper compile` writes and policies written in C.
//
// The object holds what clang emits for a one-function policy with
// libbpf-style maps (testdata/gatekeeper/example_policy.c is one):
//
//   - the program section (SEC("gatekeeper") in C) with one global
//     function, ProgramName, covering the whole section;
//   - a "license" section holding License, with its _license symbol;
//   - a ".maps" section with one global object symbol per map, and a
//     ".BTF" section whose ".maps" DATASEC describes each map as clang
//     describes `struct { __uint(type, T); __uint(key_size, K); ... }
//     NAME SEC(".maps")`: BTF-defined maps;
//   - a REL section, ".rel" + the program section's name, with one
//     R_BPF_64_64 relocation per map load (at the load's byte offset, on
//     the map's symbol; the lddw itself left with src 0 and imm 0), as
//     clang emits for `&map`;
//   - .symtab, and .strtab for both symbol and section names.
//
// There is no .BTF.ext (no line or function info) and no debug info.
//
// # Why BTF-defined maps
//
// cilium/ebpf v0.22 reads both BTF-defined maps (".maps") and legacy
// struct bpf_map_def entries (any section named "maps..."), and legacy
// definitions would need no BTF. But libbpf 1.0 and later, and so
// bpftool, refuse legacy maps ("legacy map definitions in 'maps' section
// are not supported by libbpf v1.0+"), legacy maps are the deprecated
// form, and clang-built policies use .maps. The BTF is small and
// cilium/ebpf's btf.Builder marshals it, so the object takes the one form
// every current loader reads: cilium/ebpf (and with it
// interp.LoadELFReader), libbpf, bpftool, and the kernel through either.
// A map is declared by key_size and value_size, or by its key and value
// types when the MapSpec has them (Key, Value; their sizes must match).
// What the gatekeeper's maps do not need is refused rather than half
// written: initial Contents, InnerMap, Pinning, NumaNode, MapExtra, Extra.
// A spec's Tags are not written.
//
// # The program's name
//
// cilium/ebpf names a program after its function symbol, not its section,
// and interp.LoadELFReader picks a program by that name (or takes the
// only one when given ""). clang refuses a function named like its
// section (`SEC("gatekeeper") int gatekeeper(...)` fails with "symbol
// 'gatekeeper' is already defined"), so the function is always
// ProgramName, "gatekeeper_policy", here and in a C policy
// (testdata/gatekeeper/example_policy.c): load either with
// LoadELFReader(r, policyelf.ProgramName, opts), or with "".
package policyelf

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// ProgramName is the name of the program's function symbol, under which
// cilium/ebpf and interp.LoadELFReader find the program.
const ProgramName = "gatekeeper_policy"

// License is the contents of the license section. The policy runs in the
// interpreter, but a GPL-compatible license keeps every helper available
// should the object ever be loaded into the kernel.
const License = "GPL"

// MapsSection is the name of the section of BTF-defined maps.
const MapsSection = ".maps"

// rBPF6464 is R_BPF_64_64, the relocation of a 64-bit immediate load
// (lddw) to a symbol's address: how clang ties `&map` to the map.
const rBPF6464 = 1

// Write writes an ELF64 little-endian EM_BPF ET_REL object with one
// program section named section (e.g. "gatekeeper") holding insns, a
// "license" section, the maps the instructions reference (by asm
// reference name, e.g. asm.LoadMapPtr(r, 0).WithReference("trusted_keys"))
// declared from specs (BTF-defined, in ".maps"), and the relocations that
// tie each map load to its map symbol.
//
// Every spec in maps is declared, whether or not an instruction uses it;
// a map load naming a map not in maps is an error. Jumps may still name
// their targets by label (asm Symbol/Reference metadata): they are
// resolved as Instructions.Marshal resolves them. A program that calls
// another BPF function (bpf-to-bpf call, function pointer) or a kfunc, or
// that loads a map value directly (asm.LoadMapValue: global data), is
// refused: a policy is one function, and its maps are lookup maps.
// Nothing is written unless the whole object can be.
func Write(w io.Writer, section string, insns asm.Instructions, maps []*ebpf.MapSpec) error {
	obj, err := build(section, insns, maps)
	if err != nil {
		return err
	}
	if _, err := w.Write(obj); err != nil {
		return fmt.Errorf("policyelf: %w", err)
	}
	return nil
}

// reloc is one map load to relocate: its byte offset in the program
// section and the index of the map.
type reloc struct {
	off uint64
	m   int
}

func build(section string, insns asm.Instructions, maps []*ebpf.MapSpec) ([]byte, error) {
	if err := checkSection(section); err != nil {
		return nil, err
	}
	index := map[string]int{}
	for i, ms := range maps {
		if err := checkMap(ms); err != nil {
			return nil, fmt.Errorf("policyelf: map %d: %w", i, err)
		}
		if ms.Name == ProgramName || ms.Name == "_license" {
			return nil, fmt.Errorf("policyelf: map name %q is taken by another symbol of the object", ms.Name)
		}
		if _, dup := index[ms.Name]; dup {
			return nil, fmt.Errorf("policyelf: map %q is declared twice", ms.Name)
		}
		index[ms.Name] = i
	}
	code, relocs, err := encode(insns, index)
	if err != nil {
		return nil, err
	}

	var o object
	strtab := o.section(".strtab", elf.SHT_STRTAB, 0, 1, nil)
	prog := o.section(section, elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_EXECINSTR, 8, code)
	rel := -1
	if len(relocs) > 0 {
		rel = o.section(".rel"+section, elf.SHT_REL, elf.SHF_INFO_LINK, 8, nil)
	}
	license := o.section("license", elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_WRITE, 1, append([]byte(License), 0))
	mapsec := -1
	var defs *mapDefs
	if len(maps) > 0 {
		if defs, err = btfMaps(maps); err != nil {
			return nil, err
		}
		mapsec = o.section(MapsSection, elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_WRITE, 8, make([]byte, defs.size))
		o.section(".BTF", elf.SHT_PROGBITS, 0, 4, defs.btf)
	}
	symtab := o.section(".symtab", elf.SHT_SYMTAB, 0, 8, nil)

	// Symbols: the null symbol (the only local one), the program, the
	// maps (so map i is symbol mapSym0+i), the license.
	syms := []elf.Sym64{{}}
	syms = append(syms, elf.Sym64{
		Name:  o.str(ProgramName),
		Info:  elf.ST_INFO(elf.STB_GLOBAL, elf.STT_FUNC),
		Shndx: uint16(prog),
		Size:  uint64(len(code)),
	})
	mapSym0 := len(syms)
	for i, ms := range maps {
		syms = append(syms, elf.Sym64{
			Name:  o.str(ms.Name),
			Info:  elf.ST_INFO(elf.STB_GLOBAL, elf.STT_OBJECT),
			Shndx: uint16(mapsec),
			Value: uint64(defs.offsets[i]),
			Size:  uint64(defs.sizes[i]),
		})
	}
	syms = append(syms, elf.Sym64{
		Name:  o.str("_license"),
		Info:  elf.ST_INFO(elf.STB_GLOBAL, elf.STT_OBJECT),
		Shndx: uint16(license),
		Size:  uint64(len(License) + 1),
	})
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, syms); err != nil {
		return nil, fmt.Errorf("policyelf: %w", err)
	}
	o.secs[symtab].data = b.Bytes()
	o.secs[symtab].hdr.Link = uint32(strtab)
	o.secs[symtab].hdr.Info = 1 // index of the first global symbol
	o.secs[symtab].hdr.Entsize = uint64(binary.Size(elf.Sym64{}))

	if rel >= 0 {
		rels := make([]elf.Rel64, len(relocs))
		for i, r := range relocs {
			rels[i] = elf.Rel64{Off: r.off, Info: elf.R_INFO(uint32(mapSym0+r.m), rBPF6464)}
		}
		var b bytes.Buffer
		if err := binary.Write(&b, binary.LittleEndian, rels); err != nil {
			return nil, fmt.Errorf("policyelf: %w", err)
		}
		o.secs[rel].data = b.Bytes()
		o.secs[rel].hdr.Link = uint32(symtab)
		o.secs[rel].hdr.Info = uint32(prog)
		o.secs[rel].hdr.Entsize = uint64(binary.Size(elf.Rel64{}))
	}
	// Last, as symbol names were added above.
	o.secs[strtab].data = o.strtab.Bytes()
	return o.bytes(strtab)
}

// reservedPrefixes are section names cilium/ebpf classifies by name
// before it looks at a section's type and flags: a program section named
// so would not be read as a program.
var reservedPrefixes = []string{"license", "version", "maps", ".maps", ".data", ".rodata", ".bss", ".rel", ".BTF", ".kconfig", ".ksyms", ".struct_ops"}

func checkSection(section string) error {
	switch {
	case section == "":
		return errors.New("policyelf: empty section name")
	case strings.IndexByte(section, 0) >= 0:
		return fmt.Errorf("policyelf: section name %q contains NUL", section)
	case section == ".text":
		return errors.New(`policyelf: section ".text": cilium/ebpf takes .text for library code, not a program; name the section (e.g. "gatekeeper")`)
	case section == ".symtab" || section == ".strtab":
		return fmt.Errorf("policyelf: section name %q is taken by the object's own tables", section)
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(section, p) {
			return fmt.Errorf("policyelf: section name %q: loaders take a section named %s... for something other than a program", section, p)
		}
	}
	return nil
}

// checkMap refuses what Write does not declare.
func checkMap(ms *ebpf.MapSpec) error {
	if ms == nil {
		return errors.New("nil MapSpec")
	}
	if !isIdent(ms.Name) {
		return fmt.Errorf("name %q: want a C identifier, as a map's symbol in a C policy is", ms.Name)
	}
	var unsupported []string
	if ms.Type == ebpf.UnspecifiedMap {
		unsupported = append(unsupported, "no map type")
	}
	if len(ms.Contents) > 0 {
		unsupported = append(unsupported, "initial Contents")
	}
	if ms.InnerMap != nil {
		unsupported = append(unsupported, "InnerMap")
	}
	if ms.Pinning != ebpf.PinNone {
		unsupported = append(unsupported, "Pinning")
	}
	if ms.NumaNode != 0 {
		unsupported = append(unsupported, "NumaNode")
	}
	if ms.MapExtra != 0 {
		unsupported = append(unsupported, "MapExtra")
	}
	if ms.Extra != nil && ms.Extra.Len() > 0 {
		unsupported = append(unsupported, "Extra")
	}
	if len(unsupported) > 0 {
		return fmt.Errorf("map %q: %s: not supported (a policy map is declared by type, key, value, max_entries and map_flags only)", ms.Name, strings.Join(unsupported, ", "))
	}
	return nil
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && '0' <= c && c <= '9':
		default:
			return false
		}
	}
	return true
}

// encode marshals insns with every map load replaced by the bare lddw
// clang leaves for the loader (src 0, imm 0), and returns the relocations
// for them.
func encode(insns asm.Instructions, maps map[string]int) ([]byte, []reloc, error) {
	if len(insns) == 0 {
		return nil, nil, errors.New("policyelf: no instructions")
	}
	insns = append(asm.Instructions(nil), insns...) // Marshal resolves jumps in place
	var relocs []reloc
	iter := insns.Iterate()
	for iter.Next() {
		ins, i := iter.Ins, iter.Index
		switch {
		case ins.IsFunctionCall(), ins.IsLoadOfFunctionPointer():
			return nil, nil, fmt.Errorf("policyelf: insn %d (%v): bpf-to-bpf calls are not supported: a policy is one function", i, *ins)
		case ins.IsKfuncCall():
			return nil, nil, fmt.Errorf("policyelf: insn %d (%v): kfunc calls are not supported", i, *ins)
		case !ins.IsLoadFromMap():
			continue
		}
		name := ins.Reference()
		switch {
		case ins.Src == asm.PseudoMapValue:
			return nil, nil, fmt.Errorf("policyelf: insn %d (%v): direct load of a map value: not supported (load the map pointer and look the value up)", i, *ins)
		case name == "":
			return nil, nil, fmt.Errorf("policyelf: insn %d (%v): map load with no map name (asm.LoadMapPtr(r, 0).WithReference(NAME))", i, *ins)
		}
		m, ok := maps[name]
		if !ok {
			return nil, nil, fmt.Errorf("policyelf: insn %d: map %q is not among the maps given", i, name)
		}
		relocs = append(relocs, reloc{off: uint64(iter.Offset) * asm.InstructionSize, m: m})
		bare := asm.Instruction{OpCode: ins.OpCode, Dst: ins.Dst}
		if sym := ins.Symbol(); sym != "" { // a jump target
			bare = bare.WithSymbol(sym)
		}
		*ins = bare
	}
	var b bytes.Buffer
	if err := insns.Marshal(&b, binary.LittleEndian); err != nil {
		return nil, nil, fmt.Errorf("policyelf: %w", err)
	}
	return b.Bytes(), relocs, nil
}

// object is an ELF relocatable object being laid out.
type object struct {
	secs   []osection // secs[0] is the null section
	strtab bytes.Buffer
}

type osection struct {
	hdr  elf.Section64
	data []byte
}

func (o *object) str(s string) uint32 {
	if o.strtab.Len() == 0 {
		o.strtab.WriteByte(0)
	}
	off := uint32(o.strtab.Len())
	o.strtab.WriteString(s)
	o.strtab.WriteByte(0)
	return off
}

// section adds a section and returns its index.
func (o *object) section(name string, typ elf.SectionType, flags elf.SectionFlag, align uint64, data []byte) int {
	if len(o.secs) == 0 {
		o.secs = append(o.secs, osection{})
	}
	o.secs = append(o.secs, osection{
		hdr: elf.Section64{
			Name:      o.str(name),
			Type:      uint32(typ),
			Flags:     uint64(flags),
			Addralign: align,
		},
		data: data,
	})
	return len(o.secs) - 1
}

// bytes lays the object out: the header, the sections' contents in order,
// each at its alignment, then the section header table.
func (o *object) bytes(shstrndx int) ([]byte, error) {
	const ehsize = 64 // binary.Size(elf.Header64{})
	out := make([]byte, ehsize)
	pad := func(align uint64) {
		for align > 1 && uint64(len(out))%align != 0 {
			out = append(out, 0)
		}
	}
	for i := 1; i < len(o.secs); i++ {
		s := &o.secs[i]
		pad(s.hdr.Addralign)
		s.hdr.Off = uint64(len(out))
		s.hdr.Size = uint64(len(s.data))
		out = append(out, s.data...)
	}
	pad(8)
	shoff := uint64(len(out))
	hdr := elf.Header64{
		Type:      uint16(elf.ET_REL),
		Machine:   uint16(elf.EM_BPF),
		Version:   uint32(elf.EV_CURRENT),
		Shoff:     shoff,
		Ehsize:    ehsize,
		Shentsize: uint16(binary.Size(elf.Section64{})),
		Shnum:     uint16(len(o.secs)),
		Shstrndx:  uint16(shstrndx),
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	hdr.Ident[elf.EI_OSABI] = byte(elf.ELFOSABI_NONE)

	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, hdr); err != nil {
		return nil, fmt.Errorf("policyelf: %w", err)
	}
	if b.Len() != ehsize {
		return nil, fmt.Errorf("policyelf: ELF header is %d bytes, want %d", b.Len(), ehsize)
	}
	copy(out, b.Bytes())
	b.Reset()
	for _, s := range o.secs {
		if err := binary.Write(&b, binary.LittleEndian, s.hdr); err != nil {
			return nil, fmt.Errorf("policyelf: %w", err)
		}
	}
	return append(out, b.Bytes()...), nil
}
