package daemon

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/token"
)

// MaxObjectMapBytes bounds the kernel memory the maps of a token
// holder's object may ask for, all together: a script's maps are bounded
// by max-map-keys and its one ring buffer, an object's by this. No
// request may take the memory other sessions need.
const MaxObjectMapBytes = 64 << 20

// authorizeObjectMaps refuses a token holder's object whose maps would
// take more than MaxObjectMapBytes of kernel memory, before anything is
// created. Root on the socket is not held back, as with run.
func authorizeObjectMaps(tok *token.Token) func(*program.Program) error {
	return func(p *program.Program) error {
		if tok == nil || p.Object == nil {
			return nil
		}
		cpus, err := ebpf.PossibleCPU()
		if err != nil {
			return err
		}
		var total uint64
		for name, m := range p.Object.Spec.Maps {
			n := mapBytes(m, uint64(cpus))
			if total += n; n > MaxObjectMapBytes || total > MaxObjectMapBytes {
				return &scopeError{fmt.Sprintf("the object's maps would take more than %d MiB of kernel memory (%s alone: %d bytes): a token's trace may take at most that", MaxObjectMapBytes>>20, name, n)}
			}
		}
		return nil
	}
}

// mapBytes is about what the kernel allocates for a map: its entries'
// keys and values, per CPU for a per-CPU map; a ring buffer's data
// pages; for a perf event array, the buffers the broker opens on it, one
// per CPU of bpf.PerfBufferSize (an object may declare many).
func mapBytes(m *ebpf.MapSpec, cpus uint64) uint64 {
	entries := uint64(m.MaxEntries)
	switch m.Type {
	case ebpf.RingBuf:
		return entries
	case ebpf.PerfEventArray:
		return cpus * bpf.PerfBufferSize
	case ebpf.PerCPUHash, ebpf.PerCPUArray, ebpf.LRUCPUHash:
		return entries * (uint64(m.KeySize) + cpus*((uint64(m.ValueSize)+7)&^7))
	}
	return entries * (uint64(m.KeySize) + uint64(m.ValueSize))
}
