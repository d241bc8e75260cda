package elfdebug

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

type section struct {
	name string
	typ  elf.SectionType
	data []byte
}

// elfWith is a 64-bit little-endian ELF file with sections and nothing
// else: no program headers, no symbols.
func elfWith(sections ...section) []byte {
	le := binary.LittleEndian
	var data, shstrtab bytes.Buffer
	shstrtab.WriteByte(0)
	type shdr struct {
		name      uint32
		typ       elf.SectionType
		off, size uint64
	}
	hdrs := []shdr{{}} // SHN_UNDEF
	for _, s := range append(sections, section{".shstrtab", elf.SHT_STRTAB, nil}) {
		name := uint32(shstrtab.Len())
		shstrtab.WriteString(s.name + "\x00")
		if s.data == nil {
			s.data = shstrtab.Bytes()
		}
		hdrs = append(hdrs, shdr{name, s.typ, uint64(64 + data.Len()), uint64(len(s.data))})
		data.Write(s.data)
	}
	shoff := uint64(64 + data.Len())
	out := make([]byte, 64, int(shoff)+64*len(hdrs))
	copy(out, "\x7fELF\x02\x01\x01")
	le.PutUint16(out[16:], uint16(elf.ET_DYN))
	le.PutUint16(out[18:], uint16(elf.EM_X86_64))
	le.PutUint32(out[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(out[40:], shoff)
	le.PutUint16(out[52:], 64) // e_ehsize
	le.PutUint16(out[58:], 64) // e_shentsize
	le.PutUint16(out[60:], uint16(len(hdrs)))
	le.PutUint16(out[62:], uint16(len(hdrs)-1)) // .shstrtab is last
	out = append(out, data.Bytes()...)
	for _, h := range hdrs {
		var b [64]byte
		le.PutUint32(b[0:], h.name)
		le.PutUint32(b[4:], uint32(h.typ))
		le.PutUint64(b[24:], h.off)
		le.PutUint64(b[32:], h.size)
		le.PutUint64(b[48:], 1) // sh_addralign
		out = append(out, b[:]...)
	}
	return out
}

func parse(t *testing.T, img []byte) *elf.File {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// debuglink is a .gnu_debuglink section: the name, NUL-padded to a
// multiple of 4, then the CRC.
func debuglink(name string, crc uint32) section {
	b := append([]byte(name), make([]byte, 4-len(name)%4+4)...)
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc)
	return section{".gnu_debuglink", elf.SHT_PROGBITS, b}
}

// buildIDNote is a .note.gnu.build-id section with the build ID id.
func buildIDNote(id []byte) section {
	b := make([]byte, 16, 16+len(id))
	binary.LittleEndian.PutUint32(b[0:], 4)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(id)))
	binary.LittleEndian.PutUint32(b[8:], 3) // NT_GNU_BUILD_ID
	copy(b[12:], "GNU\x00")
	return section{".note.gnu.build-id", elf.SHT_NOTE, append(b, id...)}
}

func TestDebugLink(t *testing.T) {
	f := parse(t, elfWith(debuglink("bin.debug", 0x12345678)))
	if name, crc, ok := DebugLink(f); name != "bin.debug" || crc != 0x12345678 || !ok {
		t.Errorf("DebugLink = %q, %#x, %v", name, crc, ok)
	}
	if name, _, ok := DebugLink(parse(t, elfWith())); ok {
		t.Errorf("DebugLink without the section = %q", name)
	}
	// A name that is not a plain file name is not followed.
	for _, name := range []string{"../../etc/x", "sub/x", ".", ".."} {
		if name, _, ok := DebugLink(parse(t, elfWith(debuglink(name, 0)))); ok {
			t.Errorf("debug link %q followed", name)
		}
	}
}

func TestBuildID(t *testing.T) {
	if id := BuildID(parse(t, elfWith(buildIDNote([]byte{0xab, 0xcd, 0xef, 0x01})))); id != "abcdef01" {
		t.Errorf("BuildID = %q, want abcdef01", id)
	}
	if id := BuildID(parse(t, elfWith())); id != "" {
		t.Errorf("BuildID without the note = %q", id)
	}
}

// TestFile checks where File looks, in which order, and the CRC check.
func TestFile(t *testing.T) {
	debug := []byte("the debug file")
	crc := crc32.ChecksumIEEE(debug)
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	bin := filepath.Join(dir, "bin", "prog")
	os.MkdirAll(filepath.Dir(bin), 0o755)
	f := parse(t, elfWith(buildIDNote([]byte{0xab, 0xcd, 0xef}), debuglink("prog.debug", crc)))

	next := filepath.Join(dir, "bin", "prog.debug")
	inDebug := filepath.Join(dir, "bin", ".debug", "prog.debug")
	underRoot := root + filepath.Join(dir, "bin", "prog.debug")
	byID := filepath.Join(root, ".build-id", "ab", "cdef.debug")
	write := func(t *testing.T, path string, data []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(path) })
	}
	check := func(t *testing.T, want string) {
		t.Helper()
		if got := File(root, bin, f); got != want {
			t.Errorf("File = %q, want %q", got, want)
		}
	}

	t.Run("none", func(t *testing.T) { check(t, "") })
	t.Run("under the root", func(t *testing.T) {
		write(t, underRoot, debug)
		check(t, underRoot)
	})
	t.Run(".debug before the root", func(t *testing.T) {
		write(t, underRoot, debug)
		write(t, inDebug, debug)
		check(t, inDebug)
	})
	t.Run("next to the file first", func(t *testing.T) {
		write(t, inDebug, debug)
		write(t, next, debug)
		check(t, next)
	})
	t.Run("CRC mismatch", func(t *testing.T) {
		// The first file found is the one checked: a good one further
		// on does not count.
		write(t, next, append(debug, 0))
		write(t, inDebug, debug)
		check(t, "")
	})
	t.Run("the file itself", func(t *testing.T) {
		self := parse(t, elfWith(debuglink("prog", crc)))
		write(t, bin, debug)
		write(t, filepath.Join(dir, "bin", ".debug", "prog"), debug)
		if got, want := File(root, bin, self), filepath.Join(dir, "bin", ".debug", "prog"); got != want {
			t.Errorf("File = %q, want %q", got, want)
		}
	})
	t.Run("not a regular file", func(t *testing.T) {
		if err := syscall.Mkfifo(next, 0o644); err != nil {
			t.Skip(err)
		}
		t.Cleanup(func() { os.Remove(next) })
		check(t, "") // without blocking on the pipe
	})
	t.Run("build ID first, unchecked", func(t *testing.T) {
		write(t, next, debug)
		write(t, byID, []byte("any contents"))
		check(t, byID)
	})
}
