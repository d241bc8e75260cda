package uprobe

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/tracebroker/tracebroker/internal/elfdebug"
)

// Symbol is a function symbol of an ELF file.
type Symbol struct {
	Name   string
	Addr   uint64 // st_value (virtual address)
	Size   uint64
	Offset uint64 // file offset to attach at (what the uprobe PMU wants)
}

// debugRoot is where separate debug files are installed; a variable so
// that tests can point it elsewhere.
var debugRoot = elfdebug.DefaultRoot

// maxSection bounds the size of a symbol or string table read from a
// file: far above any real one (libc's debug .symtab is 240 KiB), far
// below what would exhaust memory.
const maxSection = 256 << 20

// errNotELF and errMalformed are wrapped by errors about the file's
// contents; the messages name the file.
var (
	errNotELF    = errors.New("not an ELF file")
	errMalformed = errors.New("malformed ELF file")
)

// Functions lists the function symbols of the ELF file at path, sorted by
// name, each name once.
//
// The symbols are those bpftrace 0.17 lists (through libbcc): of type
// STT_FUNC or STT_GNU_IFUNC, with a name and a nonzero st_value, from the
// .dynsym and .symtab of the file and of its separate debug file, if one
// is installed (see the package documentation). A nonzero st_value is the
// test, as in bcc, not st_shndx: the one kind of undefined symbol with a
// value, the canonical PLT entry of an imported function whose address a
// non-PIE executable takes, is listed as bpftrace lists it (its Offset is
// that of the PLT stub; its Size is 0).
//
// When a name appears more than once (a static function in two
// compilation units, or a name in both .dynsym and .symtab), the one
// bpftrace attaches to wins: the first in the file's section order
// (.dynsym comes before .symtab), and the debug file only for names the
// file itself lacks.
//
// Offset is the file offset of Addr through the PT_LOAD program header
// that holds it (an executable one first); it is 0 for a symbol no
// segment backs, which cannot be probed. A file without any function
// symbol (stripped, with no or an empty .dynsym) is an error.
func Functions(path string) ([]Symbol, error) {
	f, size, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ef, err := newFile(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	syms, err := tableSymbols(ef, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if dbg := elfdebug.File(debugRoot, path, ef); dbg != "" {
		// As in bcc, a debug file that cannot be read is ignored.
		if dsyms, err := fileSymbols(dbg); err == nil {
			syms = append(syms, dsyms...)
		}
	}
	out := resolve(syms, ef.Progs)
	if len(out) == 0 {
		return nil, &strippedError{path}
	}
	return out, nil
}

// functionsFrom is Functions for an ELF image of size bytes in memory or
// any other reader, without the debug file lookup (which needs a path).
func functionsFrom(r io.ReaderAt, size int64) ([]Symbol, error) {
	ef, err := newFile(r)
	if err != nil {
		return nil, err
	}
	syms, err := tableSymbols(ef, size)
	if err != nil {
		return nil, err
	}
	out := resolve(syms, ef.Progs)
	if len(out) == 0 {
		return nil, &strippedError{"ELF image"}
	}
	return out, nil
}

// strippedError is the error of an ELF file without function symbols.
type strippedError struct{ path string }

func (e *strippedError) Error() string { return "no symbols: " + e.path + " is stripped" }

// AddressOffset converts a virtual address (uprobe:PATH:0xADDR, as
// bpftrace interprets it) to the file offset, through the PT_LOAD program
// headers: addr - p_vaddr + p_offset of the segment holding addr, an
// executable one first. An address that no segment backs with file
// contents is an error.
//
// bpftrace 0.17 additionally requires, unless --unsafe, that addr lie
// within a symbol ("Could not resolve address: PATH:0xADDR"), at its start
// for a uretprobe, and on an instruction boundary; Functions gives the
// symbols for those checks.
func AddressOffset(path string, addr uint64) (uint64, error) {
	f, _, err := openRegular(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	ef, err := newFile(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	off, ok := fileOffset(ef.Progs, addr)
	if !ok {
		return 0, fmt.Errorf("%s: address 0x%x is not in a loadable segment", path, addr)
	}
	return off, nil
}

// openRegular opens path for reading after checking that it is a regular
// file, so that a directory or a device gives a clear error instead of a
// read error or a hang. It returns the file's size too.
func openRegular(path string) (*os.File, int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("%s: not a regular file (%s)", path, fileKind(fi.Mode()))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	// The file may have changed between the two calls: the size of what
	// was opened bounds the reads.
	if fi, err = f.Stat(); err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "mode " + m.String()
}

// newFile parses the ELF headers of r. debug/elf has panicked on some
// malformed inputs in the past; a panic is an error here.
func newFile(r io.ReaderAt) (f *elf.File, err error) {
	var magic [4]byte
	if n, _ := r.ReadAt(magic[:], 0); n < len(magic) || string(magic[:]) != elf.ELFMAG {
		return nil, errNotELF
	}
	defer func() {
		if p := recover(); p != nil {
			f, err = nil, fmt.Errorf("%w: %v", errMalformed, p)
		}
	}()
	f, err = elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	return f, nil
}

// rawSym is one function symbol as read from a table.
type rawSym struct {
	name        string
	value, size uint64
}

// fileSymbols reads the function symbols of the ELF file at path.
func fileSymbols(path string) ([]rawSym, error) {
	f, size, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ef, err := newFile(f)
	if err != nil {
		return nil, err
	}
	return tableSymbols(ef, size)
}

// tableSymbols reads the function symbols of every SHT_SYMTAB and
// SHT_DYNSYM section, in section order and table order, as bcc's
// bcc_elf_foreach_sym visits them. (A debug file's .dynsym is SHT_NOBITS
// and has no entries to read.) No table or string table is read past
// size, the size of the file.
func tableSymbols(f *elf.File, size int64) (syms []rawSym, err error) {
	defer func() {
		if p := recover(); p != nil {
			syms, err = nil, fmt.Errorf("%w: %v", errMalformed, p)
		}
	}()
	for _, s := range f.Sections {
		if s.Type != elf.SHT_SYMTAB && s.Type != elf.SHT_DYNSYM {
			continue
		}
		ss, err := readTable(f, s, size)
		if err != nil {
			return nil, fmt.Errorf("%w: section %s: %v", errMalformed, s.Name, err)
		}
		syms = append(syms, ss...)
	}
	return syms, nil
}

func readTable(f *elf.File, s *elf.Section, size int64) ([]rawSym, error) {
	entsize := uint64(elf.Sym64Size)
	if f.Class == elf.ELFCLASS32 {
		entsize = elf.Sym32Size
	}
	if s.Size%entsize != 0 {
		return nil, fmt.Errorf("size %d is not a multiple of %d", s.Size, entsize)
	}
	if err := inFile(s, size); err != nil {
		return nil, err
	}
	// A compressed table is nothing bcc can read either (libelf hands it
	// the compressed bytes).
	if s.Flags&elf.SHF_COMPRESSED != 0 {
		return nil, nil
	}
	// bcc resolves names through elf_strptr, which finds nothing in a
	// linked section that is not a string table: no names, no symbols.
	if s.Link == 0 || int(s.Link) >= len(f.Sections) {
		return nil, nil
	}
	strtab := f.Sections[s.Link]
	if strtab.Type != elf.SHT_STRTAB || strtab.Flags&elf.SHF_COMPRESSED != 0 {
		return nil, nil
	}
	if err := inFile(strtab, size); err != nil {
		return nil, fmt.Errorf("string table %s: %v", strtab.Name, err)
	}
	data, err := s.Data()
	if err != nil {
		return nil, err
	}
	strs, err := strtab.Data()
	if err != nil {
		return nil, err
	}
	bo := f.ByteOrder
	var out []rawSym
	for off := uint64(0); off+entsize <= uint64(len(data)); off += entsize {
		e := data[off : off+entsize]
		var (
			nameOff     uint32
			info        byte
			value, size uint64
		)
		if f.Class == elf.ELFCLASS32 {
			nameOff, value, size, info = bo.Uint32(e[0:4]), uint64(bo.Uint32(e[4:8])), uint64(bo.Uint32(e[8:12])), e[12]
		} else {
			nameOff, info, value, size = bo.Uint32(e[0:4]), e[4], bo.Uint64(e[8:16]), bo.Uint64(e[16:24])
		}
		if t := elf.ST_TYPE(info); t != elf.STT_FUNC && t != elf.STT_GNU_IFUNC {
			continue
		}
		if value == 0 {
			continue
		}
		name, ok := cstring(strs, nameOff)
		if !ok || name == "" {
			continue
		}
		out = append(out, rawSym{name: name, value: value, size: size})
	}
	return out, nil
}

// inFile checks that a section's contents lie within the file's size
// bytes (and below maxSection), before anything is allocated for them.
func inFile(s *elf.Section, size int64) error {
	if s.FileSize > maxSection {
		return fmt.Errorf("size %d is too large", s.FileSize)
	}
	if size < 0 || s.Offset > uint64(size) || s.FileSize > uint64(size)-s.Offset {
		return fmt.Errorf("contents at %d+%d are beyond the end of the file (%d bytes)", s.Offset, s.FileSize, size)
	}
	return nil
}

// cstring is the NUL-terminated string at off in a string table; like
// elf_strptr, nothing when off is out of range or the string unterminated.
func cstring(tab []byte, off uint32) (string, bool) {
	if uint64(off) >= uint64(len(tab)) {
		return "", false
	}
	n := bytes.IndexByte(tab[off:], 0)
	if n < 0 {
		return "", false
	}
	return string(tab[off : int(off)+n]), true
}

// resolve keeps the first symbol of each name, computes offsets with the
// file's program headers and sorts by name (byte order, as bpftrace's
// std::set of names).
func resolve(syms []rawSym, progs []*elf.Prog) []Symbol {
	seen := make(map[string]bool, len(syms))
	out := make([]Symbol, 0, len(syms))
	for _, s := range syms {
		if seen[s.name] {
			continue
		}
		seen[s.name] = true
		off, _ := fileOffset(progs, s.value)
		out = append(out, Symbol{Name: s.name, Addr: s.value, Size: s.size, Offset: off})
	}
	slices.SortFunc(out, func(a, b Symbol) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// fileOffset converts a virtual address to a file offset: addr - p_vaddr
// + p_offset of the PT_LOAD segment whose file contents hold addr. An
// executable segment is looked for first, as bcc does (it considers no
// other), then any loadable one. The same formula serves PIE executables,
// shared libraries and non-PIE (ET_EXEC) executables.
func fileOffset(progs []*elf.Prog, addr uint64) (uint64, bool) {
	for _, wantX := range []bool{true, false} {
		for _, p := range progs {
			if p.Type != elf.PT_LOAD || (wantX && p.Flags&elf.PF_X == 0) {
				continue
			}
			if addr < p.Vaddr || addr-p.Vaddr >= p.Filesz {
				continue
			}
			off := addr - p.Vaddr + p.Off
			if off < p.Off { // wrapped: a malformed header
				continue
			}
			return off, true
		}
	}
	return 0, false
}
