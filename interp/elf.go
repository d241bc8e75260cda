package interp

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
)

// ErrNotELF is wrapped by the error of LoadELF for input that is not an
// ELF file at all.
var ErrNotELF = errors.New("not an ELF object")

// LoadELF loads one program of an eBPF ELF object, as clang -target bpf
// writes it, with a new interpreter map for every map the program uses.
// See LoadELFReader.
func LoadELF(path, program string, opts Options) (*Program, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("interp: %w", err)
	}
	defer f.Close()
	p, err := LoadELFReader(f, program, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// LoadELFReader loads the program named program from an eBPF ELF object.
// An empty name means the object's only program; an object with several
// is an error that lists them. The object is read by cilium/ebpf's
// LoadCollectionSpecFromReader, so it takes what the kernel path takes:
// programs in their SEC() sections with their subprograms linked in,
// BTF-defined and legacy maps, and global data (.data, .rodata, .bss, as
// one-entry arrays holding the section's contents).
//
// Every map the program uses becomes a new Map (NewMap with
// MapOptions{}), filled with the spec's initial contents, and is appended
// to opts.Maps; Program.Maps lists them in order of first use.
//
// An object with no program section but global functions in .text (what
// bpf_conformance's ELF writer emits for its runner's --elf option, and
// what clang makes of C with no SEC() annotations) offers those
// functions as its programs, provided .text needs no relocation.
func LoadELFReader(r io.ReaderAt, program string, opts Options) (*Program, error) {
	var magic [4]byte
	if n, _ := r.ReadAt(magic[:], 0); n < len(magic) || string(magic[:]) != elf.ELFMAG {
		return nil, fmt.Errorf("interp: %w (no ELF magic number)", ErrNotELF)
	}
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("interp: %w", err)
	}
	if !slices.ContainsFunc(f.Sections, isProgramSection) {
		// cilium/ebpf would hide the .text functions, and it wants a
		// symbol at the target of every bpf-to-bpf call, which the
		// conformance runner's objects do not have.
		return loadTextFunction(f, program, opts)
	}
	coll, err := ebpf.LoadCollectionSpecFromReader(r)
	if err != nil {
		return nil, fmt.Errorf("interp: %w", err)
	}
	names := make([]string, 0, len(coll.Programs))
	for name := range coll.Programs {
		names = append(names, name)
	}
	name, err := pickProgram(names, program)
	if err != nil {
		return nil, err
	}
	spec := coll.Programs[name]

	maps := map[string]*Map{}
	for i, ins := range spec.Instructions {
		if !ins.IsLoadFromMap() {
			continue
		}
		ref := ins.Reference()
		if ref == "" || maps[ref] != nil {
			continue
		}
		ms, ok := coll.Maps[ref]
		if !ok {
			return nil, fmt.Errorf("interp: program %q: insn %d uses map %q, which the object does not define", name, i, ref)
		}
		m, err := NewMapFromSpec(ms, coll.ByteOrder)
		if err != nil {
			return nil, fmt.Errorf("program %q: %w", name, err)
		}
		maps[ref] = m
	}
	p, err := LoadInstructions(spec.Instructions, maps, opts)
	if err != nil {
		return nil, fmt.Errorf("program %q: %w", name, err)
	}
	return p, nil
}

// pickProgram chooses want among names, or the only one when want is "".
func pickProgram(names []string, want string) (string, error) {
	slices.Sort(names)
	switch {
	case len(names) == 0:
		return "", errors.New("interp: the object has no programs")
	case want == "" && len(names) == 1:
		return names[0], nil
	case want == "":
		return "", fmt.Errorf("interp: the object has %d programs (%s): name one", len(names), strings.Join(names, ", "))
	case slices.Contains(names, want):
		return want, nil
	default:
		return "", fmt.Errorf("interp: no program %q in the object (it has %s)", want, strings.Join(names, ", "))
	}
}

// NewMapFromSpec creates a map (NewMap with MapOptions{}) and stores the
// spec's initial contents, encoded in byte order bo (nil: little-endian):
// the section bytes of a global-data map, or a BTF map's initialiser.
func NewMapFromSpec(ms *ebpf.MapSpec, bo binary.ByteOrder) (*Map, error) {
	m, err := NewMap(ms, MapOptions{})
	if err != nil {
		return nil, err
	}
	if err := m.Fill(ms.Contents, bo); err != nil {
		return nil, err
	}
	return m, nil
}

// Fill stores a spec's initial contents (MapSpec.Contents: a section's
// bytes, a BTF map's initialiser), encoded in byte order bo (nil:
// little-endian).
func (m *Map) Fill(contents []ebpf.MapKV, bo binary.ByteOrder) error {
	if bo == nil {
		bo = binary.LittleEndian
	}
	for _, kv := range contents {
		k, err := binary.Append(nil, bo, kv.Key)
		if err != nil {
			return fmt.Errorf("interp: map %q: key %v of the initial contents: %w", m.name, kv.Key, err)
		}
		v, err := binary.Append(nil, bo, kv.Value)
		if err != nil {
			return fmt.Errorf("interp: map %q: value of the initial contents: %w", m.name, err)
		}
		if err := m.Update(k, v, 0); err != nil {
			return fmt.Errorf("interp: initial contents: %w", err)
		}
	}
	return nil
}

// isProgramSection reports whether s holds code other than .text, which
// cilium/ebpf treats as library code, not programs.
func isProgramSection(s *elf.Section) bool {
	return s.Type == elf.SHT_PROGBITS && s.Flags&elf.SHF_EXECINSTR != 0 && s.Size > 0 && s.Name != ".text"
}

// loadTextFunction is LoadELFReader for an object whose code is all in
// .text: its global functions are the programs, taken as they are.
func loadTextFunction(f *elf.File, program string, opts Options) (*Program, error) {
	if f.ByteOrder != binary.LittleEndian {
		return nil, errors.New("interp: big-endian object: the interpreter runs little-endian bytecode")
	}
	text := f.Section(".text")
	if text == nil || text.Size == 0 || text.Flags&elf.SHF_EXECINSTR == 0 {
		return nil, errors.New("interp: the object has no programs")
	}
	textIdx := slices.Index(f.Sections, text)
	syms, err := f.Symbols()
	if err != nil {
		return nil, fmt.Errorf("interp: .text: %w", err)
	}
	funcs := map[string]elf.Symbol{}
	for _, s := range syms {
		if int(s.Section) == textIdx && elf.ST_TYPE(s.Info) == elf.STT_FUNC && elf.ST_BIND(s.Info) == elf.STB_GLOBAL {
			funcs[s.Name] = s
		}
	}
	if len(funcs) == 0 {
		return nil, errors.New("interp: the object has no programs (and no global function in .text)")
	}
	for _, s := range f.Sections {
		if (s.Type == elf.SHT_REL || s.Type == elf.SHT_RELA) && int(s.Info) == textIdx && s.Size > 0 {
			return nil, errors.New("interp: the object has no program section, and its .text functions need relocations (maps, calls): put the program in a SEC() section")
		}
	}
	names := make([]string, 0, len(funcs))
	for name := range funcs {
		names = append(names, name)
	}
	name, err := pickProgram(names, program)
	if err != nil {
		return nil, err
	}
	sym := funcs[name]
	data, err := text.Data()
	if err != nil {
		return nil, fmt.Errorf("interp: .text: %w", err)
	}
	size := sym.Size
	if size == 0 { // hand-made objects may leave it out: to the end of .text
		size = uint64(len(data)) - min(sym.Value, uint64(len(data)))
	}
	if sym.Value > uint64(len(data)) || size > uint64(len(data))-sym.Value {
		return nil, fmt.Errorf("interp: function %q lies outside .text", name)
	}
	// Nothing to link: the bytes are the program, as Load takes it.
	p, err := Load(data[sym.Value:sym.Value+size], opts)
	if err != nil {
		return nil, fmt.Errorf("function %q: %w", name, err)
	}
	return p, nil
}
