package bpf

import "github.com/cilium/ebpf"

// UserMap is a session's user map by id, for tests that fill it.
func (s *Session) UserMap(id int) *ebpf.Map { return s.maps[id] }

// SetBatch turns batched map reads on or off, for tests and benchmarks
// that compare them with element-by-element reads; it returns the
// setting it replaced.
func SetBatch(on bool) bool { old := useBatch; useBatch = on; return old }
