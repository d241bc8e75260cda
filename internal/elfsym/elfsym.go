// Package elfsym reads ELF symbol tables as bcc (and so bpftrace) reads
// them, defensively: uprobe attachment and user symbolization both need
// the same symbols of the same files, and neither may be crashed or
// exhausted by a hostile one.
package elfsym

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxSection bounds the size of a symbol or string table read from a
// file: far above any real one (libc's debug .symtab is 240 KiB), far
// below what would exhaust memory.
const MaxSection = 256 << 20

// MaxName bounds a symbol's name: a symbol with a longer one is skipped.
// Real names are far shorter (a long C++ template instance is a few
// KiB); a printed stack repeats a name per frame, and a hostile file can
// make every symbol name one string as long as its string table.
const MaxName = 4096

// ErrNotELF and ErrMalformed are wrapped by errors about a file's
// contents.
var (
	ErrNotELF    = errors.New("not an ELF file")
	ErrMalformed = errors.New("malformed ELF file")
)

// Sym is one named symbol with a nonzero value.
type Sym struct {
	Name        string
	Value, Size uint64
	Type        elf.SymType
}

// NewFile parses the ELF headers of r. debug/elf has panicked on some
// malformed inputs in the past; a panic is an error here.
func NewFile(r io.ReaderAt) (f *elf.File, err error) {
	var magic [4]byte
	if n, _ := r.ReadAt(magic[:], 0); n < len(magic) || string(magic[:]) != elf.ELFMAG {
		return nil, ErrNotELF
	}
	defer func() {
		if p := recover(); p != nil {
			f, err = nil, fmt.Errorf("%w: %v", ErrMalformed, p)
		}
	}()
	f, err = elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return f, nil
}

// Read reads the symbols of every SHT_SYMTAB and SHT_DYNSYM section whose
// type keep accepts (nil keeps all), in section order and table order, as
// bcc visits them; symbols without a name or with a zero value are
// skipped, as bcc skips them. (A debug file's .dynsym is SHT_NOBITS: it
// has no entries.) No table or string table is read past size, the size
// of the file. On an error, the symbols of the tables before the bad one
// come back with it.
func Read(f *elf.File, size int64, keep func(elf.SymType) bool) (syms []Sym, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrMalformed, p)
		}
	}()
	for _, s := range f.Sections {
		if s.Type != elf.SHT_SYMTAB && s.Type != elf.SHT_DYNSYM {
			continue
		}
		if syms, err = readTable(f, s, size, keep, syms); err != nil {
			return syms, fmt.Errorf("%w: section %s: %v", ErrMalformed, s.Name, err)
		}
	}
	return syms, nil
}

// readTable appends the symbols of the table s to out.
func readTable(f *elf.File, s *elf.Section, size int64, keep func(elf.SymType) bool, out []Sym) ([]Sym, error) {
	entsize := uint64(elf.Sym64Size)
	if f.Class == elf.ELFCLASS32 {
		entsize = elf.Sym32Size
	}
	if s.Size%entsize != 0 {
		return out, fmt.Errorf("size %d is not a multiple of %d", s.Size, entsize)
	}
	if err := inFile(s, size); err != nil {
		return out, err
	}
	// A compressed table is nothing bcc can read either (libelf hands it
	// the compressed bytes).
	if s.Flags&elf.SHF_COMPRESSED != 0 {
		return out, nil
	}
	// bcc resolves names through elf_strptr, which finds nothing in a
	// linked section that is not a string table: no names, no symbols.
	if s.Link == 0 || int(s.Link) >= len(f.Sections) {
		return out, nil
	}
	strtab := f.Sections[s.Link]
	if strtab.Type != elf.SHT_STRTAB || strtab.Flags&elf.SHF_COMPRESSED != 0 {
		return out, nil
	}
	if err := inFile(strtab, size); err != nil {
		return out, fmt.Errorf("string table %s: %v", strtab.Name, err)
	}
	data, err := s.Data()
	if err != nil {
		return out, err
	}
	strData, err := strtab.Data()
	if err != nil {
		return out, err
	}
	// Names are substrings of one copy of the table: a copy per symbol
	// would cost the symbols times their names, and every symbol of a
	// hostile table can name the same long string.
	strs := string(strData)
	bo := f.ByteOrder
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
		t := elf.ST_TYPE(info)
		if keep != nil && !keep(t) {
			continue
		}
		if value == 0 {
			continue
		}
		name, ok := cstring(strs, nameOff)
		if !ok || name == "" {
			continue
		}
		out = append(out, Sym{Name: name, Value: value, Size: size, Type: t})
	}
	return out, nil
}

// inFile checks that a section's contents lie within the file's size
// bytes (and below MaxSection), before anything is allocated for them.
func inFile(s *elf.Section, size int64) error {
	if s.FileSize > MaxSection {
		return fmt.Errorf("size %d is too large", s.FileSize)
	}
	if size < 0 || s.Offset > uint64(size) || s.FileSize > uint64(size)-s.Offset {
		return fmt.Errorf("contents at %d+%d are beyond the end of the file (%d bytes)", s.Offset, s.FileSize, size)
	}
	return nil
}

// cstring is the NUL-terminated string at off in a string table, sharing
// its memory; like elf_strptr, nothing when off is out of range or the
// string unterminated, and nothing when it is longer than MaxName.
func cstring(tab string, off uint32) (string, bool) {
	if uint64(off) >= uint64(len(tab)) {
		return "", false
	}
	rest := tab[off:]
	n := strings.IndexByte(rest[:min(len(rest), MaxName+1)], 0)
	if n < 0 {
		return "", false
	}
	return rest[:n], true
}
