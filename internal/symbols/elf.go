package symbols

import (
	"debug/elf"
	"io"
	"os"

	"github.com/tracebroker/tracebroker/internal/cxxsort"
	"github.com/tracebroker/tracebroker/internal/elfdebug"
	"github.com/tracebroker/tracebroker/internal/elfsym"
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

// readFileSyms reads the symbols of the ELF file f (opened as path, size
// bytes) the way bcc does for bpftrace's ustack and usym: every symbol of
// any type (bpftrace asks for BCC_SYM_ALL_TYPES, so a data object inside
// .text resolves too) with a name and a nonzero st_value, from every
// SHT_SYMTAB and SHT_DYNSYM section in section order, those of the
// separate debug file (if one is installed) coming first. A file that is
// not an ELF executable or shared object has no symbols: bcc treats its
// mappings as unknown.
func readFileSyms(f io.ReaderAt, path string, size int64) *fileSyms {
	ef, err := elfsym.NewFile(f)
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
	ef, err := elfsym.NewFile(f)
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

// tableSymbols reads every named symbol with a nonzero value of every
// SHT_SYMTAB and SHT_DYNSYM section, in bcc's order. A malformed table
// ends the listing with the symbols before it.
func tableSymbols(f *elf.File, size int64) ([]usym, error) {
	syms, err := elfsym.Read(f, size, nil)
	out := make([]usym, len(syms))
	for i, s := range syms {
		out[i] = usym{start: s.Value, size: s.Size, name: s.Name}
	}
	return out, err
}
