package broker

import (
	"bytes"
	"encoding/binary"

	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/broker/program"
)

// Interpreter mode answers a read from what the collector copied with
// the event being run. A pointer saved at one probe and read at another
// (opensnoop's @filename[tid]) is read at an event whose record does not
// hold it: the compiler has the probe that takes the pointer copy the
// string (program.CtxString.Saved), and the session keeps those copies
// here, keyed by process and address, for the later read. The store is
// bounded in entries and bytes, oldest out first: a tracer must not
// grow without bound because the traced processes open files and never
// return. A read its eviction leaves unanswered is counted, as every
// read the interpreter cannot answer is.

// Default bounds of the saved strings: 64 Ki strings, 8 MiB of them
// (a string is at most collector.MaxString bytes).
const (
	defaultSavedEntries = 1 << 16
	defaultSavedBytes   = 8 << 20
)

type savedKey struct {
	tgid uint32
	addr uint64
}

// savedNode is one string, in a list of them oldest first, linked by
// index into the store's nodes: evicted nodes and their buffers are
// reused, so that a full store allocates nothing per event.
type savedNode struct {
	key        savedKey
	data       []byte // the string and its NUL
	prev, next int32
}

// savedStore is the saved strings.
type savedStore struct {
	maxEntries, maxBytes int
	bytes                int
	nodes                []savedNode
	free                 []int32
	head, tail           int32 // -1: none
	byKey                map[savedKey]int32
	// evicted counts strings dropped to keep within the bounds.
	evicted uint64
}

func newSavedStore(maxEntries, maxBytes int) *savedStore {
	return &savedStore{maxEntries: maxEntries, maxBytes: maxBytes, head: -1, tail: -1, byKey: map[savedKey]int32{}}
}

func (s *savedStore) len() int { return len(s.byKey) }

func (s *savedStore) unlink(i int32) {
	n := &s.nodes[i]
	if n.prev >= 0 {
		s.nodes[n.prev].next = n.next
	} else {
		s.head = n.next
	}
	if n.next >= 0 {
		s.nodes[n.next].prev = n.prev
	} else {
		s.tail = n.prev
	}
}

func (s *savedStore) pushBack(i int32) {
	n := &s.nodes[i]
	n.prev, n.next = s.tail, -1
	if s.tail >= 0 {
		s.nodes[s.tail].next = i
	} else {
		s.head = i
	}
	s.tail = i
}

// put keeps data (copied) for (tgid, addr), replacing what was kept
// there: the newest copy is what the process's memory holds.
func (s *savedStore) put(tgid uint32, addr uint64, data []byte) {
	k := savedKey{tgid, addr}
	i, ok := s.byKey[k]
	if ok {
		s.unlink(i)
	} else {
		if n := len(s.free); n > 0 {
			i, s.free = s.free[n-1], s.free[:n-1]
		} else {
			s.nodes = append(s.nodes, savedNode{})
			i = int32(len(s.nodes) - 1)
		}
		s.nodes[i].key = k
		s.byKey[k] = i
	}
	n := &s.nodes[i]
	s.bytes += len(data) - len(n.data)
	n.data = append(n.data[:0], data...)
	s.pushBack(i)
	for len(s.byKey) > s.maxEntries || s.bytes > s.maxBytes {
		h := s.head
		s.unlink(h)
		delete(s.byKey, s.nodes[h].key)
		s.bytes -= len(s.nodes[h].data)
		s.nodes[h].data = s.nodes[h].data[:0]
		s.free = append(s.free, h)
		s.evicted++
	}
}

// get is the string kept for (tgid, addr); ok is false if none is. An
// empty string with ok is a copy that failed: the memory was not there
// to read (not yet paged in) at the probe that took the pointer.
func (s *savedStore) get(tgid uint32, addr uint64) (data []byte, ok bool) {
	if i, ok := s.byKey[savedKey{tgid, addr}]; ok {
		return s.nodes[i].data, true
	}
	return nil, false
}

// savedOffsets are, per probe, the context offsets of the pointers whose
// strings its records bring for a read at another probe.
func savedOffsets(prog *program.Program) [][]int {
	var out [][]int
	for i, p := range prog.Probes {
		for _, c := range p.CtxStrings {
			if !c.Saved {
				continue
			}
			for len(out) <= i {
				out = append(out, nil)
			}
			out[i] = append(out[i], c.Off)
		}
	}
	return out
}

// keepSaved keeps the strings the record of probe i brings for reads at
// other probes: each saved pointer in its context, and the entry the
// collector read behind it.
func (s *interpSession) keepSaved(i int) {
	if i >= len(s.savedOffs) {
		return
	}
	for _, off := range s.savedOffs[i] {
		if off+8 > len(s.rec.Context) {
			continue
		}
		addr := binary.LittleEndian.Uint64(s.rec.Context[off:])
		if addr < nullPage {
			continue
		}
		tried, kept := false, false
		for _, e := range s.rec.Strings {
			if e.Addr != addr {
				continue
			}
			tried = true
			if len(e.Data) <= collector.MaxString && bytes.IndexByte(e.Data, 0) >= 0 {
				s.saved.put(s.rec.TGID, addr, e.Data)
				kept = true
				break
			}
		}
		if tried && !kept {
			// The newest state of that memory: the copy failed.
			s.saved.put(s.rec.TGID, addr, nil)
		}
	}
}
