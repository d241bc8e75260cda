package probelist

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/internal/dwarfargs"
	"github.com/tracebroker/tracebroker/internal/elfdebug"
)

// listUprobeArgs lists uprobe:PATH:PATTERN as bpftrace -lv does: each
// function with its parameters from the file's DWARF, "TYPE NAME" a
// line. A file without DWARF (its own, or a separate debug file's) is
// listed without them, after bpftrace's warning on stderr.
func listUprobeArgs(w, stderr io.Writer, path, pattern string) error {
	info, err := loadDebugInfo(path)
	var notELF *elf.FormatError
	if errors.As(err, &notELF) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, os.ErrNotExist) {
		// Not an ELF file: the listing says so as -l does.
		return uprobe.List(w, path, pattern)
	}
	if err != nil {
		if errors.Is(err, dwarfargs.ErrNoDebugInfo) {
			fmt.Fprintf(stderr, "WARNING: No DWARF found for \"%s\", cannot show parameter info\n", path)
		} else {
			fmt.Fprintf(stderr, "WARNING: %s: %v: cannot show parameter info\n", path, err)
		}
		return uprobe.List(w, path, pattern)
	}
	return uprobe.ListVerbose(w, path, pattern, func(fn string) []string {
		if !info.HasFunc(fn) {
			return nil
		}
		params, err := info.Params(fn)
		if err != nil {
			return nil
		}
		lines := make([]string, len(params))
		for i, p := range params {
			lines[i] = p.CType + " " + p.Name
		}
		return lines
	})
}

// loadDebugInfo reads the DWARF of the ELF file at path, or of its
// separate debug file when it has none of its own.
func loadDebugInfo(path string) (*dwarfargs.Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := dwarfargs.Load(f)
	if !errors.Is(err, dwarfargs.ErrNoDebugInfo) {
		return info, err
	}
	ef, eerr := elf.NewFile(f)
	if eerr != nil {
		return nil, err
	}
	dbg := elfdebug.File(elfdebug.DefaultRoot, path, ef)
	if dbg == "" {
		return nil, err
	}
	df, derr := os.Open(dbg)
	if derr != nil {
		return nil, err
	}
	defer df.Close()
	return dwarfargs.Load(df)
}
