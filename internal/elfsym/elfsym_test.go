package elfsym

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/tracebroker/tracebroker/internal/elfsym/elfsymtest"
)

// TestNamesCostTheirTable: a file whose symbols all name one long string
// costs what the file holds, not its symbols times the string: the
// traced processes' binaries and uprobe targets are anyone's files, and
// a 3 MB file naming a 1 MB string 100,000 times made the daemon
// allocate 100 GB.
func TestNamesCostTheirTable(t *testing.T) {
	for _, tt := range []struct {
		name      string
		n, length int
		want      int // symbols read
	}{
		{"short names", 4000, 64, 4000},
		{"one long name", 2000, 64 << 10, 0},  // past MaxName: no symbols
		{"longest name", 2000, MaxName, 2000}, // each shares the table
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := elfsymtest.NameBomb(tt.n, tt.length)
			f, err := NewFile(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			syms, err := Read(f, int64(len(b)), nil)
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			if len(syms) != tt.want {
				t.Errorf("%d symbols, want %d", len(syms), tt.want)
			}
			// The table's bytes, its names once and a Sym per entry.
			limit := uint64(3*len(b) + tt.n*128)
			if got := after.TotalAlloc - before.TotalAlloc; got > limit {
				t.Errorf("reading a %d-byte file allocated %d bytes, more than %d", len(b), got, limit)
			}
		})
	}
}

// BenchmarkRead reads the symbols of the go command (its .symtab:
// about 20,000 symbols).
func BenchmarkRead(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(runtime.GOROOT(), "bin", "go"))
	if err != nil {
		b.Skip(err)
	}
	f, err := NewFile(bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		syms, err := Read(f, int64(len(data)), nil)
		if err != nil || len(syms) == 0 {
			b.Fatal(len(syms), err)
		}
	}
}
