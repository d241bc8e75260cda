package lsmgate

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// BenchmarkProgLoad is what the gate adds to a BPF_PROG_LOAD (a
// two-instruction program, loaded and closed): without the gate; under
// it by an allowed loader (the owner, a copy of this binary), whose
// executable the gate identifies and looks up; refused (identity, count,
// record); and a type the gate does not guard, which it lets through
// after reading the program type. It runs where BPF LSM does: make
// vmtest-bench.
func BenchmarkProgLoad(b *testing.B) {
	needGate(b)
	kerneltest.Exclusive(b)
	// The kernel's first loads cost more (allocators, the JIT's pages):
	// warm it up, so that what is compared is the gate.
	for i := 0; i < 500; i++ {
		if err := rawLoad(progTracepoint); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		typ  uint32
	}{{"no_gate", progTracepoint}, {"no_gate_unguarded", progSocketFilter}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if err := rawLoad(c.typ); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	dir := b.TempDir()
	bpffs := testBpffs(b, dir)
	h, _ := startOwner(b, filepath.Join(dir, "owner.test"), filepath.Join(bpffs, "gate"))
	b.Run("gate_allowed", func(b *testing.B) {
		reply := strings.Fields(h.ask(fmt.Sprint("bench ", b.N)))
		if len(reply) != 3 || reply[1] != "ok" {
			b.Fatalf("owner: %q", reply)
		}
		ns, _ := strconv.ParseFloat(reply[2], 64)
		// The owner's own clock: the round trip to it is not the load's.
		b.ReportMetric(ns/float64(b.N), "load-ns/op")
	})
	b.Run("gate_refused", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := rawLoad(progTracepoint); !errors.Is(err, unix.EPERM) {
				b.Fatalf("got %v, want EPERM", err)
			}
		}
	})
	b.Run("gate_unguarded", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := rawLoad(progSocketFilter); err != nil {
				b.Fatal(err)
			}
		}
	})
}
