package uprobe

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
)

// A tiny ELF writer for tests of cases no compiler produces on demand:
// 32-bit and big-endian files, odd symbol tables, segments that do not
// back a symbol.

type testSym struct {
	name  string
	typ   elf.SymType
	bind  elf.SymBind
	shndx elf.SectionIndex
	value uint64
	size  uint64
	// nameOff, when nonzero, replaces the string table offset of name.
	nameOff uint32
}

type testProg struct {
	typ                       elf.ProgType
	flags                     elf.ProgFlag
	off, vaddr, filesz, memsz uint64
}

type testELF struct {
	class  elf.Class
	order  binary.ByteOrder
	typ    elf.Type
	progs  []testProg
	dynsym []testSym // nil: no .dynsym/.dynstr
	symtab []testSym // nil: no .symtab/.strtab
	// symtabPad adds bytes to .symtab's size, to make it malformed.
	symtabPad int
	// extra sections, e.g. a .gnu_debuglink.
	extra []testSection
	// codeOff and codeSize place the "code" (0xcc bytes, in .text);
	// contents follow it. Zero means 0x1000 and 0x1000.
	codeOff, codeSize uint64
}

type testSection struct {
	name string
	typ  elf.SectionType
	data []byte
}

// bytes lays the file out as: ELF header, program headers, the "code"
// (so that segments have something to cover), section contents, section
// headers.
func (e testELF) bytes() []byte {
	if e.codeOff == 0 {
		e.codeOff, e.codeSize = 0x1000, 0x1000
	}
	is64 := e.class == elf.ELFCLASS64
	o := e.order
	if o == nil {
		o = binary.LittleEndian
	}
	ehsize, phentsize, shentsize := 52, 32, 40
	if is64 {
		ehsize, phentsize, shentsize = 64, 56, 64
	}

	type sec struct {
		name            string
		typ             elf.SectionType
		flags           elf.SectionFlag
		addr, off, size uint64
		link, info      uint32
		entsize         uint64
		data            []byte
	}
	secs := []sec{{}} // the null section
	secs = append(secs, sec{name: ".text", typ: elf.SHT_PROGBITS, flags: elf.SHF_ALLOC | elf.SHF_EXECINSTR, addr: e.codeOff, off: e.codeOff, size: e.codeSize})
	strtab := func(syms []testSym) ([]byte, []uint32) {
		b := []byte{0}
		offs := make([]uint32, len(syms))
		for i, s := range syms {
			offs[i] = uint32(len(b))
			b = append(append(b, s.name...), 0)
		}
		return b, offs
	}
	symbytes := func(syms []testSym, offs []uint32) []byte {
		var b bytes.Buffer
		write := func(v any) { binary.Write(&b, o, v) }
		// Entry 0 is the null symbol.
		all := append([]testSym{{}}, syms...)
		for i, s := range all {
			name := uint32(0)
			if i > 0 {
				name = offs[i-1]
				if s.nameOff != 0 {
					name = s.nameOff
				}
			}
			info := byte(s.bind)<<4 | byte(s.typ)&0xf
			if is64 {
				write(elf.Sym64{Name: name, Info: info, Shndx: uint16(s.shndx), Value: s.value, Size: s.size})
			} else {
				write(elf.Sym32{Name: name, Value: uint32(s.value), Size: uint32(s.size), Info: info, Shndx: uint16(s.shndx)})
			}
		}
		return b.Bytes()
	}
	entsize := uint64(elf.Sym32Size)
	if is64 {
		entsize = elf.Sym64Size
	}
	addTable := func(name, strname string, typ elf.SectionType, syms []testSym, pad int) {
		str, offs := strtab(syms)
		data := append(symbytes(syms, offs), make([]byte, pad)...)
		link := uint32(len(secs) + 1)
		secs = append(secs, sec{name: name, typ: typ, data: data, link: link, info: 1, entsize: entsize})
		secs = append(secs, sec{name: strname, typ: elf.SHT_STRTAB, data: str})
	}
	if e.dynsym != nil {
		addTable(".dynsym", ".dynstr", elf.SHT_DYNSYM, e.dynsym, 0)
	}
	if e.symtab != nil {
		addTable(".symtab", ".strtab", elf.SHT_SYMTAB, e.symtab, e.symtabPad)
	}
	for _, x := range e.extra {
		secs = append(secs, sec{name: x.name, typ: x.typ, data: x.data})
	}
	shstr := []byte{0}
	nameOff := make([]uint32, len(secs)+1)
	for i := range secs {
		if i == 0 {
			continue
		}
		nameOff[i] = uint32(len(shstr))
		shstr = append(append(shstr, secs[i].name...), 0)
	}
	nameOff[len(secs)] = uint32(len(shstr))
	shstr = append(append(shstr, ".shstrtab"...), 0)
	secs = append(secs, sec{name: ".shstrtab", typ: elf.SHT_STRTAB, data: shstr})

	// Contents go after the code.
	pos := e.codeOff + e.codeSize
	for i := range secs {
		if secs[i].data != nil {
			secs[i].off = pos
			secs[i].size = uint64(len(secs[i].data))
			pos += secs[i].size
			pos = (pos + 7) &^ 7
		}
	}
	shoff := pos

	var b bytes.Buffer
	write := func(v any) { binary.Write(&b, o, v) }
	ident := [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(e.class), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)}
	if o == binary.BigEndian {
		ident[elf.EI_DATA] = byte(elf.ELFDATA2MSB)
	}
	typ := e.typ
	if typ == 0 {
		typ = elf.ET_DYN
	}
	phoff := uint64(ehsize)
	if is64 {
		write(elf.Header64{Ident: ident, Type: uint16(typ), Machine: uint16(elf.EM_X86_64), Version: 1,
			Phoff: phoff, Shoff: shoff, Ehsize: uint16(ehsize), Phentsize: uint16(phentsize), Phnum: uint16(len(e.progs)),
			Shentsize: uint16(shentsize), Shnum: uint16(len(secs)), Shstrndx: uint16(len(secs) - 1)})
		for _, p := range e.progs {
			write(elf.Prog64{Type: uint32(p.typ), Flags: uint32(p.flags), Off: p.off, Vaddr: p.vaddr, Paddr: p.vaddr, Filesz: p.filesz, Memsz: p.memsz, Align: 0x1000})
		}
	} else {
		write(elf.Header32{Ident: ident, Type: uint16(typ), Machine: uint16(elf.EM_386), Version: 1,
			Phoff: uint32(phoff), Shoff: uint32(shoff), Ehsize: uint16(ehsize), Phentsize: uint16(phentsize), Phnum: uint16(len(e.progs)),
			Shentsize: uint16(shentsize), Shnum: uint16(len(secs)), Shstrndx: uint16(len(secs) - 1)})
		for _, p := range e.progs {
			write(elf.Prog32{Type: uint32(p.typ), Off: uint32(p.off), Vaddr: uint32(p.vaddr), Paddr: uint32(p.vaddr), Filesz: uint32(p.filesz), Memsz: uint32(p.memsz), Flags: uint32(p.flags), Align: 0x1000})
		}
	}
	out := make([]byte, shoff)
	copy(out, b.Bytes())
	for i := e.codeOff; i < e.codeOff+e.codeSize; i++ {
		out[i] = 0xcc
	}
	for _, s := range secs {
		if s.data != nil {
			copy(out[s.off:], s.data)
		}
	}
	b.Reset()
	for i, s := range secs {
		if is64 {
			write(elf.Section64{Name: nameOff[i], Type: uint32(s.typ), Flags: uint64(s.flags), Addr: s.addr, Off: s.off, Size: s.size, Link: s.link, Info: s.info, Addralign: 1, Entsize: s.entsize})
		} else {
			write(elf.Section32{Name: nameOff[i], Type: uint32(s.typ), Flags: uint32(s.flags), Addr: uint32(s.addr), Off: uint32(s.off), Size: uint32(s.size), Link: s.link, Info: s.info, Addralign: 1, Entsize: uint32(s.entsize)})
		}
	}
	return append(out, b.Bytes()...)
}
