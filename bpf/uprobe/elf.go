package uprobe

import (
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/tracebroker/tracebroker/internal/elfdebug"
	"github.com/tracebroker/tracebroker/internal/elfsym"
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

// errNotELF and errMalformed are wrapped by errors about the file's
// contents; the messages name the file.
var (
	errNotELF    = elfsym.ErrNotELF
	errMalformed = elfsym.ErrMalformed
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
	return functionsOf(f, size, path, elfdebug.File)
}

// functionsOf is Functions of the open file f of size bytes, named path
// in errors; debugFile finds its separate debug file (elfdebug.File, or
// elfdebug.UnderRoot).
func functionsOf(f io.ReaderAt, size int64, path string, debugFile func(root, path string, f *elf.File) string) ([]Symbol, error) {
	ef, err := elfsym.NewFile(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	syms, err := tableSymbols(ef, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if dbg := debugFile(debugRoot, path, ef); dbg != "" {
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
	ef, err := elfsym.NewFile(r)
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
	return addressOffset(f, path, addr)
}

func addressOffset(f io.ReaderAt, path string, addr uint64) (uint64, error) {
	ef, err := elfsym.NewFile(f)
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

// fileSymbols reads the function symbols of the ELF file at path.
func fileSymbols(path string) ([]elfsym.Sym, error) {
	f, size, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ef, err := elfsym.NewFile(f)
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
func tableSymbols(f *elf.File, size int64) ([]elfsym.Sym, error) {
	syms, err := elfsym.Read(f, size, func(t elf.SymType) bool { return t == elf.STT_FUNC || t == elf.STT_GNU_IFUNC })
	if err != nil {
		return nil, err
	}
	return syms, nil
}

// resolve keeps the first symbol of each name, computes offsets with the
// file's program headers and sorts by name (byte order, as bpftrace's
// std::set of names).
func resolve(syms []elfsym.Sym, progs []*elf.Prog) []Symbol {
	seen := make(map[string]bool, len(syms))
	out := make([]Symbol, 0, len(syms))
	for _, s := range syms {
		if seen[s.Name] {
			continue
		}
		seen[s.Name] = true
		off, _ := fileOffset(progs, s.Value)
		out = append(out, Symbol{Name: s.Name, Addr: s.Value, Size: s.Size, Offset: off})
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
