package program

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// Object is what a Program loaded from a clang-built eBPF ELF object
// (libbpf's conventions) has that a generated one does not: the
// collection as the object declares it, and how to show its maps. Such
// a Program has no Schema and no events or config map; its Probes are
// its tracing programs, their Insns as the object has them.
type Object struct {
	// Spec is the object as parsed. Executors load a copy.
	Spec *ebpf.CollectionSpec
	// Progs names, parallel to Program.Probes, each probe's program in
	// Spec.Programs.
	Progs []string
	// Records are the object's ring buffers and perf event arrays, by
	// name, with the BTF type of their records (nil: not named, shown
	// as bytes).
	Records map[string]btf.Type
	// Printed are the maps printed when the trace ends, in order: every
	// hash, array and LRU map but the sections' own (.rodata, .data,
	// .bss, .kconfig).
	Printed []string
	// License is the object's license section.
	License string
}
