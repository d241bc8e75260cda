package bpf_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/broker/program"
)

// countMap loads a script whose map is a per-CPU count by a u64 key, and
// fills it with n keys from here, each CPU's count its key's value plus
// the CPU's number.
func countMap(t testing.TB, n int) (*bpf.Session, int) {
	t.Helper()
	needKernel(t)
	prog := compileScript(t, `tracepoint:syscalls:sys_enter_getppid { @[(uint64)args->__syscall_nr] = count(); }`, n)
	s, err := bpf.Load(prog, bpf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	m := s.UserMap(0)
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]uint64, 0, 4096)
	vals := make([]uint64, 0, 4096*cpus)
	flush := func() {
		if len(keys) == 0 {
			return
		}
		if _, err := m.BatchUpdate(keys, vals, nil); err != nil {
			t.Fatal(err)
		}
		keys, vals = keys[:0], vals[:0]
	}
	for k := range n {
		keys = append(keys, uint64(k))
		for c := range cpus {
			vals = append(vals, uint64(k+c))
		}
		if len(keys) == cap(keys) {
			flush()
		}
	}
	flush()
	return s, cpus
}

// TestBatchSnapshot: a map read in batches is the map read element by
// element, key for key and count for count.
func TestBatchSnapshot(t *testing.T) {
	lockKernel(t)
	s, cpus := countMap(t, 20000)
	batched, err := s.Snapshot(0)
	if err != nil {
		t.Fatal(err)
	}
	old := bpf.SetBatch(false)
	defer bpf.SetBatch(old)
	iterated, err := s.Snapshot(0)
	if err != nil {
		t.Fatal(err)
	}
	if batched.Len() != 20000 || iterated.Len() != 20000 {
		t.Fatalf("%d entries batched, %d iterated, want 20000", batched.Len(), iterated.Len())
	}
	byKey := func(snap *program.MapSnapshot) map[uint64]uint64 {
		out := map[uint64]uint64{}
		for _, e := range snap.Decoded() {
			out[e.Keys[0].Int] = e.Value.Int
		}
		return out
	}
	b, i := byKey(batched), byKey(iterated)
	if !reflect.DeepEqual(b, i) {
		t.Fatal("batched and iterated snapshots differ")
	}
	// Each count is the sum over CPUs: cpus*k + 0+1+...+(cpus-1).
	for k, v := range b {
		if want := uint64(cpus)*k + uint64(cpus*(cpus-1)/2); v != want {
			t.Fatalf("@[%d] = %d, want %d", k, v, want)
		}
	}
}

// BenchmarkSnapshot reads a per-CPU count map of 10^4 and 10^5 keys,
// in batches and element by element.
func BenchmarkSnapshot(b *testing.B) {
	lockKernel(b)
	for _, n := range []int{10000, 100000} {
		s, _ := countMap(b, n)
		for _, batch := range []bool{true, false} {
			b.Run(fmt.Sprintf("keys=%d/batch=%v", n, batch), func(b *testing.B) {
				old := bpf.SetBatch(batch)
				defer bpf.SetBatch(old)
				for b.Loop() {
					snap, err := s.Snapshot(0)
					if err != nil || snap.Len() != n {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/key")
			})
		}
		s.Close()
	}
}
