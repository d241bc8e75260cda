// Package elfdebug finds the separate debug file of an ELF file (the one
// that holds the symbols a stripped binary lacks) the way bcc 0.26 does
// for bpftrace 0.17, for the uprobe symbol listing (bpf/uprobe) and for
// user-space symbolization (internal/symbols).
package elfdebug

import (
	"bytes"
	"debug/elf"
	"encoding/hex"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/tracebroker/tracebroker/internal/regfile"
)

// DefaultRoot is where separate debug files are installed.
const DefaultRoot = "/usr/lib/debug"

// File returns the separate debug file of the ELF file f, read from path,
// or "" when there is none. As bcc looks, that is the file named by f's
// build ID under root/.build-id, if it exists; else the file that
// .gnu_debuglink names, looked for next to path, in the .debug directory
// next to it and under root followed by path's directory, in that order.
// Only the first of those that exists counts, and only if its CRC-32 is
// the one in the link (bpftrace asks bcc to check it).
//
// root is normally DefaultRoot; tests point it elsewhere.
func File(root, path string, f *elf.File) string { return find(root, path, f, true) }

// UnderRoot is File without the places beside path: only root's
// build-id tree and root followed by path's directory count. Whoever
// may write beside a binary may plant a debug file there (or a symlink
// to any file, whose symbols would then be read); only root's
// administrator writes under root.
func UnderRoot(root, path string, f *elf.File) string { return find(root, path, f, false) }

func find(root, path string, f *elf.File, beside bool) string {
	if id := BuildID(f); len(id) > 2 {
		p := filepath.Join(root, ".build-id", id[:2], id[2:]+".debug")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	name, crc, ok := DebugLink(f)
	if !ok {
		return ""
	}
	dir := filepath.Dir(path)
	var found string
	candidates := []string{
		filepath.Join(dir, name),
		filepath.Join(dir, ".debug", name),
		// bcc's "/usr/lib/debug%s/%s" with the binary's directory.
		root + dir + "/" + name,
	}
	if !beside {
		candidates = candidates[2:]
	}
	for _, c := range candidates {
		// The file itself may be what the link names; bcc skips it (its
		// own symbols are read anyway).
		if c == filepath.Join(dir, name) && sameFile(c, path) {
			continue
		}
		if _, err := os.Stat(c); err == nil {
			found = c
			break
		}
	}
	if found == "" || !crcMatches(found, crc) {
		return ""
	}
	return found
}

// BuildID is the hex GNU build ID from the .note.gnu.build-id section of
// f, or "" when it has none (or a malformed one).
func BuildID(f *elf.File) string {
	s := f.Section(".note.gnu.build-id")
	if s == nil || s.Type != elf.SHT_NOTE || s.Size > 4096 {
		return ""
	}
	data, err := s.Data()
	if err != nil || len(data) <= 16 {
		return ""
	}
	namesz, descsz := f.ByteOrder.Uint32(data[0:4]), f.ByteOrder.Uint32(data[4:8])
	if namesz != 4 || string(data[12:16]) != "GNU\x00" {
		return ""
	}
	if descsz == 0 || uint64(descsz) > uint64(len(data)-16) || descsz > 64 {
		return ""
	}
	return hex.EncodeToString(data[16 : 16+descsz])
}

// DebugLink is the file name and CRC-32 of the .gnu_debuglink section of
// f; ok is false when it has none, a malformed one, or one whose name is
// not a plain file name.
func DebugLink(f *elf.File) (name string, crc uint32, ok bool) {
	s := f.Section(".gnu_debuglink")
	if s == nil || s.Size > 4096 || s.Type == elf.SHT_NOBITS {
		return "", 0, false
	}
	data, err := s.Data()
	if err != nil || len(data) <= 5 {
		return "", 0, false
	}
	n := bytes.IndexByte(data, 0)
	if n <= 0 || n > len(data)-4 {
		return "", 0, false
	}
	name = string(data[:n])
	// A link is a file name; one that climbs out of the directories
	// searched is not followed.
	if bytes.IndexByte(data[:n], '/') >= 0 || name == "." || name == ".." {
		return "", 0, false
	}
	return name, f.ByteOrder.Uint32(data[len(data)-4:]), true
}

func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

// crcMatches checks a debug file against the CRC-32 in the debug link, as
// bpftrace asks bcc to (check_debug_file_crc). Only a regular file can
// match: opening a named pipe would block, and a device may never end.
func crcMatches(path string, want uint32) bool {
	f, _, err := regfile.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	h := crc32.NewIEEE()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	return h.Sum32() == want
}
