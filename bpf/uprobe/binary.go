package uprobe

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// FindBinary resolves a probe's PATH as bpftrace does: a path containing
// '/' is used as is (must exist and be a regular file); otherwise it is
// looked up in $PATH (e.g. "bash" -> /usr/bin/bash). Errors say what was
// not found; a missing file wraps fs.ErrNotExist.
//
// The $PATH lookup takes the first directory holding an ELF file that is
// executable or a shared object, as bpftrace's resolve_binary_path does
// (so a shell script of the same name earlier in $PATH is passed over).
// Unlike bpftrace, it does not first try the name relative to the working
// directory, and it skips empty and relative $PATH entries, as
// os/exec.LookPath refuses results relative to the working directory.
// Wildcards in PATH are not supported.
func FindBinary(target string) (string, error) {
	if target == "" {
		return "", errors.New("uprobe target file is empty")
	}
	if strings.Contains(target, "*") {
		return "", fmt.Errorf("uprobe target file %q: wildcards in the path are not supported", target)
	}
	if strings.Contains(target, "/") {
		fi, err := os.Stat(target)
		if errors.Is(err, fs.ErrNotExist) {
			return "", notFound(fmt.Sprintf("uprobe target file %q does not exist", target))
		}
		if err != nil {
			return "", fmt.Errorf("uprobe target file %q: %w", target, err)
		}
		if !fi.Mode().IsRegular() {
			return "", fmt.Errorf("uprobe target file %q is not a regular file (%s)", target, fileKind(fi.Mode()))
		}
		return target, nil
	}
	env := os.Getenv("PATH")
	for _, dir := range filepath.SplitList(env) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		if p := filepath.Join(dir, target); probeable(p) {
			return p, nil
		}
	}
	// A library's short name, as bpftrace takes it: uprobe:libc:fread.
	if p, ok := findLibrary(target); ok {
		return p, nil
	}
	return "", notFound(fmt.Sprintf("uprobe target file %q not found in $PATH or the loader's cache", target))
}

// notFound is an error that says what was not found and is
// fs.ErrNotExist for errors.Is.
type notFound string

func (e notFound) Error() string { return string(e) }
func (e notFound) Unwrap() error { return fs.ErrNotExist }

// probeable is bpftrace's test for a $PATH candidate (bcc_elf_is_exe or
// bcc_elf_is_shared_obj): a regular ELF file that is executable or of
// type ET_DYN.
func probeable(path string) bool {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	// O_NONBLOCK: what was a regular file at the Stat may be a FIFO
	// now, whose open would wait for a writer.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	var h [18]byte // e_ident and e_type
	if n, _ := f.ReadAt(h[:], 0); n < len(h) || string(h[:4]) != elf.ELFMAG {
		return false
	}
	if unix.Access(path, unix.X_OK) == nil {
		return true
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if elf.Data(h[elf.EI_DATA]) == elf.ELFDATA2MSB {
		bo = binary.BigEndian
	}
	return elf.Type(bo.Uint16(h[16:18])) == elf.ET_DYN
}
