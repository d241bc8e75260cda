package uprobe

import (
	"debug/elf"
	"os"
	"path/filepath"
	"testing"

	"github.com/tracebroker/tracebroker/internal/elfdebug"
)

// TestTargetDebugFile: a stripped binary's DWARF is found where its
// symbols are: beside it through .gnu_debuglink when opened without a
// scope, only under the debug root when a scope opened it (whoever may
// write beside a binary could plant a debug file there).
func TestTargetDebugFile(t *testing.T) {
	dir := t.TempDir()
	full := buildC(t, dir, "full", "-g", "-Wl,--build-id")
	bin, dbg := splitDebug(t, dir, full)
	underRoot := buildIDPath(t, bin)
	scope := &Scope{Allows: func(string) bool { return true }}
	tests := []struct {
		name   string
		scope  *Scope
		inRoot bool // the debug file is under the root too
		want   string
	}{
		{"beside, unscoped", nil, false, dbg},
		{"beside, scoped", scope, false, ""},
		{"under the root, scoped", scope, true, underRoot},
		{"under the root, unscoped", nil, true, underRoot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.RemoveAll(debugRoot)
			if tt.inRoot {
				os.MkdirAll(filepath.Dir(underRoot), 0o755)
				b, _ := os.ReadFile(dbg)
				os.WriteFile(underRoot, b, 0o644)
			}
			target, err := OpenTarget(bin, tt.scope)
			if err != nil {
				t.Fatal(err)
			}
			defer target.Close()
			if got := target.DebugFile(); got != tt.want {
				t.Errorf("DebugFile() = %q, want %q", got, tt.want)
			}
		})
	}
}

// buildIDPath is where, under debugRoot, bin's separate debug file is
// found by its build ID; the test skips when gcc made none.
func buildIDPath(t *testing.T, bin string) string {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	id := elfdebug.BuildID(f)
	f.Close()
	if id == "" {
		t.Skip("skipping: gcc made no build ID")
	}
	return filepath.Join(debugRoot, ".build-id", id[:2], id[2:]+".debug")
}

// splitDebug strips full into dir/bin, with its debug information in
// dir/bin.debug beside it (linked by .gnu_debuglink), and points the
// build-ID lookup at dir/debugroot, empty, until the test ends.
func splitDebug(t *testing.T, dir, full string) (bin, dbg string) {
	t.Helper()
	bin = filepath.Join(dir, "bin")
	dbg = filepath.Join(dir, "bin.debug")
	run(t, "objcopy", "--only-keep-debug", full, dbg)
	run(t, "objcopy", "--strip-all", "--add-gnu-debuglink="+dbg, full, bin)
	old := debugRoot
	t.Cleanup(func() { debugRoot = old })
	debugRoot = filepath.Join(dir, "debugroot")
	return bin, dbg
}
