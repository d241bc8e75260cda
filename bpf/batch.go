package bpf

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/broker/program"
)

// haveBatch says, once, whether the kernel reads maps in batches
// (BPF_MAP_LOOKUP_BATCH, 5.6): a million keys then cost a few hundred
// system calls rather than two million.
var haveBatch = sync.OnceValue(haveMapBatch)

// batchSize is how many elements one BPF_MAP_LOOKUP_BATCH asks for. A
// hash map answers ENOSPC when one of its buckets holds more than that;
// the read then asks again for more.
const batchSize = 4096

// bpfMapLookupBatch is BPF_MAP_LOOKUP_BATCH.
const bpfMapLookupBatch = 24

// batchAttr is union bpf_attr's batch member.
type batchAttr struct {
	inBatch, outBatch, keys, values uint64
	count, mapFD                    uint32
	elemFlags, flags                uint64
}

// readBatches reads every element of a hash map (of any kind) in
// batches into flat buffers: keys (keySize bytes each) and values
// (valStride bytes each: the value size, or for a per-CPU map every
// CPU's value, each rounded to 8 bytes), calling each with each batch's
// count. The buffers are reused between calls: each must copy what it
// keeps.
func readBatches(m *ebpf.Map, valStride int, each func(keys, vals []byte, n int) error) error {
	keySize := int(m.KeySize())
	size := batchSize
	// The cursor is a bucket number (u32) for hash maps; key_size bytes
	// for others. Both fit in max(keySize, 8).
	in, out := make([]byte, max(keySize, 8)), make([]byte, max(keySize, 8))
	var keys, vals []byte
	first := true
	for {
		if len(keys) < size*keySize {
			keys, vals = make([]byte, size*keySize), make([]byte, size*valStride)
		}
		attr := batchAttr{
			outBatch: uint64(uintptr(unsafe.Pointer(&out[0]))),
			keys:     uint64(uintptr(unsafe.Pointer(&keys[0]))),
			values:   uint64(uintptr(unsafe.Pointer(&vals[0]))),
			count:    uint32(size),
			mapFD:    uint32(m.FD()),
		}
		if !first {
			attr.inBatch = uint64(uintptr(unsafe.Pointer(&in[0])))
		}
		_, _, errno := unix.Syscall(unix.SYS_BPF, bpfMapLookupBatch, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		runtime.KeepAlive(in)
		runtime.KeepAlive(out)
		runtime.KeepAlive(keys)
		runtime.KeepAlive(vals)
		n := int(attr.count)
		switch {
		case errno == unix.ENOSPC && n == 0:
			// A bucket larger than the batch: ask for more at once.
			size *= 2
			continue
		case errno != 0 && errno != unix.ENOENT:
			return fmt.Errorf("BPF_MAP_LOOKUP_BATCH: %w", errno)
		}
		if n > 0 {
			if err := each(keys[:n*keySize], vals[:n*valStride], n); err != nil {
				return err
			}
		}
		if errno == unix.ENOENT {
			return nil // the end: what it returned with it was the last
		}
		copy(in, out)
		first = false
	}
}

// useBatch lets a benchmark compare batched reads with the element by
// element iteration they replace.
var useBatch = true

func isHash(t ebpf.MapType) bool {
	return t == ebpf.Hash || t == ebpf.PerCPUHash || t == ebpf.LRUHash || t == ebpf.LRUCPUHash
}

// batchSnapshot reads a hash map whole, in batches, into b: nothing is
// allocated per key, and each batch's buffers are reused.
func batchSnapshot(m *ebpf.Map, b *program.SnapshotBuilder) error {
	vsize := int(m.ValueSize())
	cpus := 1
	stride := vsize
	if PerCPU(m.Type()) {
		n, err := ebpf.PossibleCPU()
		if err != nil {
			return err
		}
		cpus, stride = n, (vsize+7)&^7
	}
	ksize := int(m.KeySize())
	vals := make([][]byte, cpus)
	return readBatches(m, cpus*stride, func(keys, vb []byte, n int) error {
		for i := range n {
			for c := range cpus {
				off := (i*cpus + c) * stride
				vals[c] = vb[off : off+vsize]
			}
			b.Add(keys[i*ksize:(i+1)*ksize], vals)
		}
		return nil
	})
}
