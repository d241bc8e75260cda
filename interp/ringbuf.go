package interp

import (
	"sync"
)

// ringState is a ring buffer's queue of submitted records. Capacity is
// accounted like the kernel's: a record takes its length plus an 8-byte
// header, rounded up to 8, from submission until the reader takes it,
// and a reservation holds its space until it is submitted or discarded.
type ringState struct {
	mu     sync.Mutex
	size   uint64
	used   uint64
	recs   [][]byte
	head   int
	notify chan struct{}
}

func (r *ringState) init(size uint32) {
	r.size = uint64(size)
	r.notify = make(chan struct{}, 1)
}

func ringCost(n int) uint64 { return (uint64(n) + 8 + 7) &^ 7 }

func (m *Map) ringReserve(n int) ([]byte, bool) {
	r := &m.ring
	cost := ringCost(n)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.used+cost > r.size {
		return nil, false
	}
	r.used += cost
	return make([]byte, n), true
}

func (m *Map) ringRelease(n int) {
	r := &m.ring
	r.mu.Lock()
	r.used -= ringCost(n)
	r.mu.Unlock()
}

func (m *Map) ringCommit(rec []byte) {
	r := &m.ring
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// ringOutput copies data in as one record; false when it does not fit.
func (m *Map) ringOutput(data []byte) bool {
	rec, ok := m.ringReserve(len(data))
	if !ok {
		return false
	}
	copy(rec, data)
	m.ringCommit(rec)
	return true
}

// ReadRecord takes the oldest submitted record of a ring buffer, if any.
func (m *Map) ReadRecord() ([]byte, bool) {
	r := &m.ring
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.head == len(r.recs) {
		return nil, false
	}
	rec := r.recs[r.head]
	r.recs[r.head] = nil
	r.head++
	if r.head == len(r.recs) {
		r.recs, r.head = r.recs[:0], 0
	}
	r.used -= ringCost(len(rec))
	return rec, true
}

// Ready is signalled (without blocking the writer) after records are
// submitted; a reader waits on it, then drains with ReadRecord.
func (m *Map) Ready() <-chan struct{} { return m.ring.notify }

// ringAvail is what ringbuf_query(BPF_RB_AVAIL_DATA) reports: bytes
// submitted and not yet read.
func (m *Map) ringQuery(flag uint64) uint64 {
	r := &m.ring
	r.mu.Lock()
	defer r.mu.Unlock()
	switch flag {
	case 0: // BPF_RB_AVAIL_DATA
		var n uint64
		for _, rec := range r.recs[r.head:] {
			n += ringCost(len(rec))
		}
		return n
	case 1: // BPF_RB_RING_SIZE
		return r.size
	}
	return 0
}
