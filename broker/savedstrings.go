package broker

import (
	"bytes"
	"container/list"
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

type savedEntry struct {
	key  savedKey
	data []byte // the string and its NUL
}

// savedStore is the saved strings, oldest first in order.
type savedStore struct {
	maxEntries, maxBytes int
	bytes                int
	order                *list.List // of *savedEntry
	byKey                map[savedKey]*list.Element
	// evicted counts strings dropped to keep within the bounds.
	evicted uint64
}

func newSavedStore(maxEntries, maxBytes int) *savedStore {
	return &savedStore{maxEntries: maxEntries, maxBytes: maxBytes, order: list.New(), byKey: map[savedKey]*list.Element{}}
}

// put keeps data (copied) for (tgid, addr), replacing what was kept
// there: the newest copy is what the process's memory holds.
func (s *savedStore) put(tgid uint32, addr uint64, data []byte) {
	k := savedKey{tgid, addr}
	if el, ok := s.byKey[k]; ok {
		e := el.Value.(*savedEntry)
		s.bytes -= len(e.data)
		e.data = append(e.data[:0], data...)
		s.bytes += len(e.data)
		s.order.MoveToBack(el)
	} else {
		s.byKey[k] = s.order.PushBack(&savedEntry{key: k, data: bytes.Clone(data)})
		s.bytes += len(data)
	}
	for s.order.Len() > s.maxEntries || s.bytes > s.maxBytes {
		el := s.order.Front()
		e := el.Value.(*savedEntry)
		s.order.Remove(el)
		delete(s.byKey, e.key)
		s.bytes -= len(e.data)
		s.evicted++
	}
}

// get is the string kept for (tgid, addr), nil if none.
func (s *savedStore) get(tgid uint32, addr uint64) []byte {
	if el, ok := s.byKey[savedKey{tgid, addr}]; ok {
		return el.Value.(*savedEntry).data
	}
	return nil
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
		for _, e := range s.rec.Strings {
			if e.Addr == addr && len(e.Data) <= collector.MaxString && bytes.IndexByte(e.Data, 0) >= 0 {
				s.saved.put(s.rec.TGID, addr, e.Data)
				break
			}
		}
	}
}
