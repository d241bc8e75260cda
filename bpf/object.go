package bpf

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/perf"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/tracebroker/tracebroker/bpf/object"
	"github.com/tracebroker/tracebroker/bpf/ring"
	"github.com/tracebroker/tracebroker/broker/program"
)

// ObjectSession is a loaded program-only object (program.Object): a
// Session for attaching and detaching its probes, and readers of the
// ring buffers and perf event arrays its records come through.
type ObjectSession struct {
	*Session
	readers []recordReader
}

// recordReader is one record map's reader: a ring buffer's or a perf
// event array's.
type recordReader struct {
	name string
	ring *ring.Reader
	perf *perf.Reader
}

// PerfBufferSize is what each CPU's perf buffer of an object's perf
// event array holds.
const PerfBufferSize = 256 << 10

// LoadObject creates the object's maps and loads its programs through
// the verifier, as the object declares them (types, attach targets, CO-RE
// relocations against the running kernel). Nothing is attached. On error
// nothing is left behind.
func LoadObject(p *program.Program, opts Options) (s *ObjectSession, err error) {
	obj := p.Object
	if obj == nil {
		return nil, errors.New("not an object's program")
	}
	spec := obj.Spec.Copy()
	// Only the probes the gatekeeper judged are loaded, and the maps
	// they use; each program keeps its ELF name.
	keep := map[string]bool{}
	for _, n := range obj.Progs {
		keep[n] = true
	}
	for n := range spec.Programs {
		if !keep[n] {
			delete(spec.Programs, n)
		}
	}
	for name, m := range spec.Maps {
		// Parse checked this; a copy made elsewhere must not pin either.
		m.Pinning = ebpf.PinNone
		// The variables' values, as set, go into their sections' bytes
		// here: cilium/ebpf would otherwise map each section into this
		// process's memory for its Variables, a mapping that holds the
		// map in the kernel until the garbage collector unmaps it,
		// long after the trace has ended.
		if data, ok := object.SectionData(&program.Object{Spec: spec}, name); ok {
			m.Contents = []ebpf.MapKV{{Key: uint32(0), Value: data}}
		}
	}
	spec.Variables = nil
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{})
	if err != nil {
		return nil, objectLoadError(p, err)
	}
	s = &ObjectSession{Session: &Session{prog: p, coll: coll, pid: opts.PID}}
	defer func() {
		if err != nil {
			s.Close()
			s = nil
		}
	}()
	for _, n := range obj.Progs {
		s.progs = append(s.progs, coll.Programs[n])
	}
	for _, name := range slices.Sorted(maps.Keys(obj.Records)) {
		m := coll.Maps[name]
		r := recordReader{name: name}
		if m.Type() == ebpf.RingBuf {
			r.ring, err = ring.NewReader(m, ring.Options{})
		} else {
			r.perf, err = perf.NewReader(m, PerfBufferSize)
		}
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", name, err)
		}
		s.readers = append(s.readers, r)
	}
	return s, nil
}

// objectLoadError is loadError for an object: its probes are named by
// their programs' ELF names.
func objectLoadError(p *program.Program, err error) error {
	return loadError(p, p.Object.Progs, err)
}

// Record is one record from an object's ring buffer or perf event array.
type Record struct {
	Map  string
	Data []byte
	CPU  int // perf event arrays only; -1 for a ring buffer
}

// ReadRecords reads every record map until stop is closed, then what is
// left in them, calling emit for each record, from one goroutine at a
// time. It returns how many records perf event arrays lost for lack of
// room (a ring buffer's losses are the program's to count: reserve
// fails in it).
func (s *ObjectSession) ReadRecords(stop <-chan struct{}, emit func(Record)) (lost uint64, err error) {
	if len(s.readers) == 0 {
		// Nothing to read: the object's output is its maps.
		<-stop
		return 0, nil
	}
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		first error
	)
	for _, r := range s.readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := r.run(stop, func(rec Record) {
				mu.Lock()
				defer mu.Unlock()
				emit(rec)
			})
			mu.Lock()
			defer mu.Unlock()
			lost += n
			if err != nil && first == nil {
				first = fmt.Errorf("read %s: %w", r.name, err)
			}
		}()
	}
	wg.Wait()
	return lost, first
}

// poll is how often a reader looks whether it should stop: each read
// waits at most this long.
const poll = 50 * time.Millisecond

func (r recordReader) run(stop <-chan struct{}, emit func(Record)) (lost uint64, err error) {
	var (
		rrec     ringbuf.Record
		prec     perf.Record
		stopping bool
	)
	for {
		deadline := time.Now().Add(poll)
		if !stopping {
			select {
			case <-stop:
				stopping = true
			default:
			}
		}
		if stopping {
			// What is in the buffer now, then no more.
			deadline = time.Now()
		}
		var rec Record
		if r.ring != nil {
			err = r.ring.Read(deadline, &rrec)
			rec = Record{Map: r.name, Data: rrec.RawSample, CPU: -1}
		} else {
			r.perf.SetDeadline(deadline)
			err = r.perf.ReadInto(&prec)
			lost += prec.LostSamples
			rec = Record{Map: r.name, Data: prec.RawSample, CPU: prec.CPU}
			if err == nil && prec.LostSamples > 0 {
				continue
			}
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			if stopping {
				return lost, nil
			}
			continue
		case err != nil:
			return lost, err
		}
		emit(rec)
	}
}

// Dump reads every element of one of the object's maps by name. A
// per-CPU map's values are per CPU; an array's elements that are all
// zero bytes are left out, as elements never written.
func (s *ObjectSession) Dump(name string) ([]program.RawEntry, error) {
	m := s.coll.Maps[name]
	if m == nil {
		return nil, fmt.Errorf("no map %s", name)
	}
	var out []program.RawEntry
	it := m.Iterate()
	var key []byte
	if PerCPU(m.Type()) {
		var vals [][]byte
		for it.Next(&key, &vals) {
			e := program.RawEntry{Key: slices.Clone(key)}
			for _, v := range vals {
				e.Vals = append(e.Vals, slices.Clone(v))
			}
			if Written(m.Type(), e) {
				out = append(out, e)
			}
		}
	} else {
		var val []byte
		for it.Next(&key, &val) {
			if e := (program.RawEntry{Key: key, Vals: [][]byte{val}}); Written(m.Type(), e) {
				out = append(out, program.RawEntry{Key: slices.Clone(key), Vals: [][]byte{slices.Clone(val)}})
			}
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read map %s: %w", name, err)
	}
	return out, nil
}

// PerCPU says whether a map of type t keeps a value per CPU.
func PerCPU(t ebpf.MapType) bool {
	return t == ebpf.PerCPUHash || t == ebpf.PerCPUArray || t == ebpf.LRUCPUHash
}

// Written says whether Dump keeps an element of a map of type t: every
// element of a hash map, but of an array only those with a byte set (all
// of an array's elements exist, and one never written is all zeros).
func Written(t ebpf.MapType, e program.RawEntry) bool {
	if t != ebpf.Array && t != ebpf.PerCPUArray {
		return true
	}
	for _, v := range e.Vals {
		if slices.ContainsFunc(v, func(c byte) bool { return c != 0 }) {
			return true
		}
	}
	return false
}

// Close detaches, closes the readers and releases everything.
func (s *ObjectSession) Close() {
	s.Detach()
	for _, r := range s.readers {
		if r.ring != nil {
			r.ring.Close()
		}
		if r.perf != nil {
			r.perf.Close()
		}
	}
	s.readers = nil
	s.Session.Close()
}
