// Package elfsymtest makes hostile ELF files for the tests of the
// symbol readers and of what feeds them untrusted files (uprobe targets,
// the binaries of traced processes).
package elfsymtest

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
)

// NameBomb is an ELF64 file (no program headers, nothing to run) whose
// .symtab holds n function symbols that all name the same string of
// nameLen bytes: a file of n*24 + nameLen bytes that a reader copying
// each symbol's name turns into n*nameLen bytes of names.
func NameBomb(n, nameLen int) []byte {
	const ehsize, shentsize = 64, 64
	shstr := []byte("\x00.symtab\x00.strtab\x00.shstrtab\x00")
	strtab := append(append([]byte{0}, bytes.Repeat([]byte{'A'}, nameLen)...), 0)
	var symtab bytes.Buffer
	le := binary.LittleEndian
	for i := range n {
		var e [24]byte
		le.PutUint32(e[0:], 1) // the one name
		e[4] = byte(elf.STB_GLOBAL)<<4 | byte(elf.STT_FUNC)
		le.PutUint16(e[6:], 1)
		le.PutUint64(e[8:], 0x1000+uint64(i)*16)
		le.PutUint64(e[16:], 16)
		symtab.Write(e[:])
	}
	symOff := uint64(ehsize)
	strOff := symOff + uint64(symtab.Len())
	shstrOff := strOff + uint64(len(strtab))
	shOff := (shstrOff + uint64(len(shstr)) + 7) &^ 7

	var f bytes.Buffer
	var h [ehsize]byte
	copy(h[:], elf.ELFMAG)
	h[elf.EI_CLASS], h[elf.EI_DATA], h[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	le.PutUint16(h[16:], uint16(elf.ET_EXEC))
	le.PutUint16(h[18:], uint16(elf.EM_X86_64))
	le.PutUint32(h[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(h[40:], shOff)
	le.PutUint16(h[52:], ehsize)
	le.PutUint16(h[54:], 56)
	le.PutUint16(h[58:], shentsize)
	le.PutUint16(h[60:], 4) // sections
	le.PutUint16(h[62:], 3) // .shstrtab
	f.Write(h[:])
	f.Write(symtab.Bytes())
	f.Write(strtab)
	f.Write(shstr)
	for uint64(f.Len()) < shOff {
		f.WriteByte(0)
	}
	section := func(name uint32, typ elf.SectionType, off, size uint64, link uint32, entsize uint64) {
		var s [shentsize]byte
		le.PutUint32(s[0:], name)
		le.PutUint32(s[4:], uint32(typ))
		le.PutUint64(s[24:], off)
		le.PutUint64(s[32:], size)
		le.PutUint32(s[40:], link)
		le.PutUint64(s[48:], 1) // addralign
		le.PutUint64(s[56:], entsize)
		f.Write(s[:])
	}
	section(0, elf.SHT_NULL, 0, 0, 0, 0)
	section(1, elf.SHT_SYMTAB, symOff, uint64(symtab.Len()), 2, 24)
	section(9, elf.SHT_STRTAB, strOff, uint64(len(strtab)), 0, 0)
	section(17, elf.SHT_STRTAB, shstrOff, uint64(len(shstr)), 0, 0)
	return f.Bytes()
}
