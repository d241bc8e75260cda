package interp

import (
	"sync"
)

// ringState is a ring buffer with the kernel's accounting
// (kernel/bpf/ringbuf.c), so programs see the same answers here as in the
// kernel: a record takes its length plus an 8-byte header, rounded up to
// 8, at the producer position when it is reserved; the reader takes
// records in reservation order, stops at one still reserved, skips
// discarded ones, and only the reader's passing frees their space. The
// producer may never get a whole ring ahead of the reader.
type ringState struct {
	mu     sync.Mutex
	size   uint64
	prod   uint64 // producer position: bytes ever reserved
	cons   uint64 // consumer position: bytes ever passed by the reader
	recs   []ringRec
	first  uint64 // sequence number of recs[0]
	notify chan struct{}
}

type ringRec struct {
	buf   []byte
	cost  uint64
	state uint8
}

const (
	recBusy = iota
	recCommitted
	recDiscarded
)

// Flags of ringbuf_output, submit and discard, and the kernel's query
// selectors.
const (
	ringNoWakeup    = 1
	ringForceWakeup = 2

	rbAvailData = 0
	rbRingSize  = 1
	rbConsPos   = 2
	rbProdPos   = 3
)

func (r *ringState) init(size uint32) {
	r.size = uint64(size)
	r.notify = make(chan struct{}, 1)
}

func ringCost(n int) uint64 { return (uint64(n) + 8 + 7) &^ 7 }

// ringReserve returns a record's sequence number and buffer, or false
// when the ring has no room.
func (m *Map) ringReserve(n int) (uint64, []byte, bool) {
	r := &m.ring
	cost := ringCost(n)
	r.mu.Lock()
	defer r.mu.Unlock()
	if cost > r.size || r.prod+cost-r.cons > r.size-1 {
		return 0, nil, false
	}
	r.prod += cost
	buf := make([]byte, n)
	r.recs = append(r.recs, ringRec{buf: buf, cost: cost})
	return r.first + uint64(len(r.recs)) - 1, buf, true
}

// ringFinish commits or discards the reserved record seq.
func (m *Map) ringFinish(seq uint64, commit bool, flags uint64) {
	r := &m.ring
	r.mu.Lock()
	rec := &r.recs[seq-r.first]
	if commit {
		rec.state = recCommitted
	} else {
		rec.state = recDiscarded
	}
	r.mu.Unlock()
	if commit && flags&ringNoWakeup == 0 {
		select {
		case r.notify <- struct{}{}:
		default:
		}
	}
}

// ringOutput copies data in as one committed record; false when it does
// not fit.
func (m *Map) ringOutput(data []byte, flags uint64) bool {
	seq, rec, ok := m.ringReserve(len(data))
	if !ok {
		return false
	}
	copy(rec, data)
	m.ringFinish(seq, true, flags)
	return true
}

// ReadRecord takes the next record of a ring buffer, if one is ready: in
// reservation order, skipping discarded ones, waiting behind one not yet
// submitted.
func (m *Map) ReadRecord() ([]byte, bool) {
	r := &m.ring
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.recs) > 0 && r.recs[0].state != recBusy {
		rec := r.recs[0]
		r.recs[0] = ringRec{}
		r.recs = r.recs[1:]
		r.first++
		r.cons += rec.cost
		if len(r.recs) == 0 {
			r.recs = r.recs[:0:0] // let the backing array go
		}
		if rec.state == recCommitted {
			return rec.buf, true
		}
	}
	return nil, false
}

// Ready is signalled (without blocking the writer) after records are
// submitted; a reader waits on it, then drains with ReadRecord.
func (m *Map) Ready() <-chan struct{} { return m.ring.notify }

// ringQuery is ringbuf_query.
func (m *Map) ringQuery(flag uint64) uint64 {
	r := &m.ring
	r.mu.Lock()
	defer r.mu.Unlock()
	switch flag {
	case rbAvailData:
		return r.prod - r.cons
	case rbRingSize:
		return r.size
	case rbConsPos:
		return r.cons
	case rbProdPos:
		return r.prod
	}
	return 0
}
