package broker

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/tracebroker/tracebroker/broker/program"
)

// maxInterpMapBytes bounds what the interpreter allocates for one
// program's maps, all of them together. It allocates every map whole
// when the session starts, and a per-CPU map once per CPU: a recording
// whose header claims 8192 CPUs used to make a replay allocate 1.3 GB
// before reading an event. 256 MiB holds the default maps (4096 keys)
// of a script with a dozen aggregations over 200 CPUs.
const maxInterpMapBytes = 256 << 20

// interpMapBytes is about what interp.NewMap allocates for the maps of
// prog with cpus copies of the per-CPU ones: values (8-aligned, a copy
// per CPU), keys and the slot bookkeeping of hashes, ring buffers.
func interpMapBytes(prog *program.Program, cpus int) uint64 {
	var n uint64
	for _, m := range prog.Maps {
		entries := uint64(m.MaxEntries)
		stride := uint64(m.ValueSize+7) &^ 7
		switch m.Type {
		case ebpf.RingBuf:
			n += entries
		case ebpf.StackTrace:
			// A table of the session's, filled from the records.
		case ebpf.PerCPUArray:
			n += entries * stride * uint64(cpus)
		case ebpf.PerCPUHash:
			n += entries * (stride*uint64(cpus) + uint64(m.KeySize) + 13)
		case ebpf.Array:
			n += entries * stride
		default:
			n += entries * (stride + uint64(m.KeySize) + 13)
		}
	}
	return n
}

// checkInterpMaps refuses, before anything is allocated, a program whose
// maps the interpreter could not hold within maxInterpMapBytes.
func checkInterpMaps(prog *program.Program, cpus int) error {
	if n := interpMapBytes(prog, cpus); n > maxInterpMapBytes {
		return fmt.Errorf("interpreter mode: the program's maps need %d MiB with a copy of each per-CPU map for each of %d CPUs, more than %d MiB; use smaller maps (--max-map-keys)",
			n>>20, cpus, maxInterpMapBytes>>20)
	}
	return nil
}
