package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Stack returns the addresses of stack id in the stack trace map name,
// innermost first. A stack the kernel could not record (a negative id)
// or no longer holds has no frames.
func (s *Session) Stack(name string, id int64) ([]uint64, error) {
	m := s.coll.Maps[name]
	if m == nil {
		return nil, fmt.Errorf("no stack map %s", name)
	}
	if id < 0 || id > 1<<32-1 {
		return nil, nil
	}
	var val []byte
	if err := m.Lookup(uint32(id), &val); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read stack %d: %w", id, err)
	}
	var frames []uint64
	for i := 0; i+8 <= len(val); i += 8 {
		ip := binary.LittleEndian.Uint64(val[i:])
		if ip == 0 {
			break
		}
		frames = append(frames, ip)
	}
	return frames, nil
}

// Zero sets every value of a user map to zero and keeps its keys, as
// bpftrace's zero() does.
func (s *Session) Zero(id int) error {
	m := s.maps[id]
	var zero any = make([]byte, m.ValueSize())
	if m.Type() == ebpf.PerCPUHash {
		// A per-CPU value is one slot per possible CPU.
		n, err := ebpf.PossibleCPU()
		if err != nil {
			return err
		}
		vals := make([][]byte, n)
		for i := range vals {
			vals[i] = zero.([]byte)
		}
		zero = vals
	}
	keys, err := mapKeys(m)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := m.Update(k, zero, ebpf.UpdateExist); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}
