package symbols

import (
	"io"
	"runtime"
	"strings"
	"testing"
)

// zeros reads as n zero bytes: a sparse file, which costs its maker
// nothing.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), z.n))
	clear(p[:n])
	z.n -= int64(n)
	return n, nil
}

// TestPerfMapBounded: a perf map is the traced process's file, so what
// reading it costs is bounded whatever it holds: a 256 MiB "line" with no
// newline (a sparse file) was read whole into memory, once per change.
// Lines too long for a symbol are skipped, and the lines after them
// read.
func TestPerfMapBounded(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	syms := parsePerfMap(io.MultiReader(&zeros{256 << 20}, strings.NewReader("\n1000 10 jit_a\n")))
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Errorf("a 256 MiB line cost %d bytes", got)
	}
	if len(syms) != 0 {
		t.Errorf("%d symbols past the bound", len(syms))
	}
	long := "2000 10 " + strings.Repeat("x", 1<<20) + "\n"
	syms = parsePerfMap(strings.NewReader(long + "1000 10 jit_a\n"))
	if len(syms) != 1 || syms[0].name != "jit_a" {
		t.Errorf("after a 1 MiB line: %d symbols, want jit_a alone", len(syms))
	}
}
