package uprobe

import (
	"debug/elf"
	"os"
)

// DebugFile is the target's separate debug file, where the DWARF of a
// stripped binary is, or "" when it has none: the file Functions reads
// the symbols of, found the same way (under the debug root only, for a
// scoped open).
func (t *Target) DebugFile() string {
	var found string
	t.Read(func(f *os.File, _ int64) error {
		ef, err := elf.NewFile(f)
		if err != nil {
			return err
		}
		found = t.debugFile(debugRoot, t.name, ef)
		return nil
	})
	return found
}
