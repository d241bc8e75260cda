package symbols

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tracebroker/tracebroker/internal/cxxsort"
	"github.com/tracebroker/tracebroker/internal/elfdebug"
)

// usym is a symbol of a user-space file: an ELF symbol (st_value and
// st_size) or a perf map entry.
type usym struct {
	start, size uint64
	name        string
}

// fileSyms is what one file contributes to user symbolization: its ELF
// type, its loadable segments and its symbols in bcc's order.
type fileSyms struct {
	typ   elf.Type // ET_EXEC, ET_DYN, or ET_NONE for anything bcc cannot read
	loads []load   // PT_LOAD program headers, executable ones first
	// textDelta is sh_addr - sh_offset of .text, bcc 0.26's conversion
	// for an ET_DYN file, used only for a file offset no PT_LOAD holds.
	textDelta uint64
	syms      []usym // sorted as bcc's std::sort leaves them
}

type load struct{ off, filesz, vaddr uint64 }

// debugRoot is where separate debug files are installed; a variable so
// that tests can point it elsewhere.
var debugRoot = elfdebug.DefaultRoot

// maxSection bounds the size of a symbol or string table read from a
// file: far above any real one (libc's debug .symtab is 240 KiB), far
// below what would exhaust memory.
const maxSection = 256 << 20

var errMalformed = errors.New("malformed ELF file")

// readFileSyms reads the symbols of the ELF file f (opened as path, size
// bytes) the way bcc does for bpftrace's ustack and usym: every symbol of
// any type (bpftrace asks for BCC_SYM_ALL_TYPES, so a data object inside
// .text resolves too) with a name and a nonzero st_value, from every
// SHT_SYMTAB and SHT_DYNSYM section in section order, those of the
// separate debug file (if one is installed) coming first. A file that is
// not an ELF executable or shared object has no symbols: bcc treats its
// mappings as unknown.
func readFileSyms(f io.ReaderAt, path string, size int64) *fileSyms {
	ef, err := newELF(f)
	if err != nil || (ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN) {
		return &fileSyms{}
	}
	out := &fileSyms{typ: ef.Type}
	for _, wantX := range []bool{true, false} {
		for _, p := range ef.Progs {
			if p.Type == elf.PT_LOAD && (p.Flags&elf.PF_X != 0) == wantX {
				out.loads = append(out.loads, load{p.Off, p.Filesz, p.Vaddr})
			}
		}
	}
	if s := ef.Section(".text"); s != nil {
		out.textDelta = s.Addr - s.Offset
	}
	var syms []usym
	if dbg := elfdebug.File(debugRoot, path, ef); dbg != "" {
		// As in bcc, a debug file that cannot be read adds nothing.
		syms = debugSyms(dbg)
	}
	// A malformed table ends the listing, as in bcc, keeping what came
	// before it.
	own, _ := tableSymbols(ef, size)
	syms = append(syms, own...)
	cxxsort.Sort(syms, func(a, b *usym) bool { return a.start < b.start })
	out.syms = syms
	return out
}

func debugSyms(path string) []usym {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	ef, err := newELF(f)
	if err != nil {
		return nil
	}
	syms, _ := tableSymbols(ef, fi.Size())
	return syms
}

// vaddr converts the file offset off of an ET_DYN file to the virtual
// address its symbols use: through the PT_LOAD header whose file contents
// hold off (an executable one first), else through .text as bcc does.
func (f *fileSyms) vaddr(off uint64) uint64 {
	for _, l := range f.loads {
		if off >= l.off && off-l.off < l.filesz {
			return off - l.off + l.vaddr
		}
	}
	return off + f.textDelta
}

// find is bcc's ProcSyms::Module::find_addr: from the last symbol
// starting at or below off, step back while symbols start at or below
// off, and take the first that contains it (start <= off < start+size),
// so that a function nested in another resolves to the inner one when
// off is inside it and to the outer one otherwise. The walk stops at a
// symbol that ends below the start of the one it began with: none before
// it can be an enclosing one. A symbol of size 0 never matches.
func find(syms []usym, off uint64) (*usym, bool) {
	// upper_bound: the first symbol starting above off.
	lo, hi := 0, len(syms)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if syms[m].start > off {
			hi = m
		} else {
			lo = m + 1
		}
	}
	if lo == 0 {
		return nil, false
	}
	i := lo - 1
	limit := syms[i].start
	for ; off >= syms[i].start; i-- {
		s := &syms[i]
		if off < s.start+s.size {
			return s, true
		}
		if limit > s.start+s.size || i == 0 {
			break
		}
	}
	return nil, false
}

// newELF parses the ELF headers of r. debug/elf has panicked on some
// malformed inputs in the past; a panic is an error here.
func newELF(r io.ReaderAt) (f *elf.File, err error) {
	var magic [4]byte
	if n, _ := r.ReadAt(magic[:], 0); n < len(magic) || string(magic[:]) != elf.ELFMAG {
		return nil, errors.New("not an ELF file")
	}
	defer func() {
		if p := recover(); p != nil {
			f, err = nil, fmt.Errorf("%w: %v", errMalformed, p)
		}
	}()
	return elf.NewFile(r)
}

// tableSymbols reads the symbols of every SHT_SYMTAB and SHT_DYNSYM
// section, in section order and table order, as bcc's listsymbols visits
// them. (A debug file's .dynsym is SHT_NOBITS: it has no entries.) No
// table or string table is read past size, the size of the file.
func tableSymbols(f *elf.File, size int64) (syms []usym, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", errMalformed, p)
		}
	}()
	for _, s := range f.Sections {
		if s.Type != elf.SHT_SYMTAB && s.Type != elf.SHT_DYNSYM {
			continue
		}
		if syms, err = readTable(f, s, size, syms); err != nil {
			return syms, fmt.Errorf("%w: section %s: %v", errMalformed, s.Name, err)
		}
	}
	return syms, nil
}

// readTable appends the symbols of the table s to out.
func readTable(f *elf.File, s *elf.Section, size int64, out []usym) ([]usym, error) {
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
	strs, err := strtab.Data()
	if err != nil {
		return out, err
	}
	bo := f.ByteOrder
	for off := uint64(0); off+entsize <= uint64(len(data)); off += entsize {
		e := data[off : off+entsize]
		var (
			nameOff     uint32
			value, size uint64
		)
		if f.Class == elf.ELFCLASS32 {
			nameOff, value, size = bo.Uint32(e[0:4]), uint64(bo.Uint32(e[4:8])), uint64(bo.Uint32(e[8:12]))
		} else {
			nameOff, value, size = bo.Uint32(e[0:4]), bo.Uint64(e[8:16]), bo.Uint64(e[16:24])
		}
		if value == 0 {
			continue
		}
		name, ok := cstring(strs, nameOff)
		if !ok || name == "" {
			continue
		}
		out = append(out, usym{start: value, size: size, name: name})
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
