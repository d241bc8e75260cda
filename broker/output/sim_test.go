package output

import (
	"math/rand"

	"github.com/tracebroker/tracebroker/broker/program"
)

// This file rebuilds, in Go, the map contents a bpftrace script produces,
// so golden tests can feed the Printer the same snapshots bpftrace printed.

var (
	tI64 = program.Type{Kind: program.Int, Size: 8, Signed: true}
	tU64 = program.Type{Kind: program.Int, Size: 8}
	tI32 = program.Type{Kind: program.Int, Size: 4, Signed: true}
	tU32 = program.Type{Kind: program.Int, Size: 4}
	tI16 = program.Type{Kind: program.Int, Size: 2, Signed: true}
	tI8  = program.Type{Kind: program.Int, Size: 1, Signed: true}
	tU8  = program.Type{Kind: program.Int, Size: 1}
	tStr = program.Type{Kind: program.String, Size: 64}
)

func I(x int64) program.Value  { return program.Value{Type: tI64, Int: uint64(x)} }
func U(x uint64) program.Value { return program.Value{Type: tU64, Int: x} }
func S(s string) program.Value { return program.Value{Type: tStr, Str: s} }

// N is an integer of type t holding x truncated and, when signed,
// sign-extended, as program.Decode would produce it.
func N(t program.Type, x int64) program.Value {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(uint64(x) >> (8 * i))
	}
	return program.Decode(t, b)
}

func Tup(elems ...program.Value) program.Value {
	t := program.Type{Kind: program.Tuple}
	off := 0
	for _, e := range elems {
		t.Elems = append(t.Elems, e.Type)
		t.Offs = append(t.Offs, off)
		off += e.Type.Size
	}
	t.Size = off
	return program.Value{Type: t, Elems: elems}
}

type state struct {
	maps []*mapState
	rnd  *rand.Rand
}

// simSeed seeds the shuffling of snapshots.
var simSeed int64 = 1

func newState() *state { return &state{rnd: rand.New(rand.NewSource(simSeed))} }

type mapState struct {
	st      *state
	m       *program.Map
	entries []*program.MapEntry
}

func (s *state) mp(name string, agg program.Agg, keys ...program.Type) *mapState {
	m := &program.Map{Name: name, Agg: agg, Keys: keys}
	switch agg {
	case program.Count, program.Hist, program.Lhist:
		m.Value = tU64
	case program.Plain:
	default:
		m.Value = tI64
	}
	ms := &mapState{st: s, m: m}
	s.maps = append(s.maps, ms)
	return ms
}

func (s *state) lhistMap(name string, min, max, step int64, keys ...program.Type) *mapState {
	ms := s.mp(name, program.Lhist, keys...)
	ms.m.Min, ms.m.Max, ms.m.Step = min, max, step
	return ms
}

func (ms *mapState) entry(keys []program.Value) *program.MapEntry {
	for _, e := range ms.entries {
		if len(e.Keys) != len(keys) {
			continue
		}
		same := true
		for i := range keys {
			if program.Compare(e.Keys[i], keys[i]) != 0 {
				same = false
			}
		}
		if same {
			return e
		}
	}
	e := &program.MapEntry{Keys: keys}
	switch ms.m.Agg {
	case program.Hist:
		e.Buckets = make([]uint64, program.HistBuckets)
	case program.Lhist:
		e.Buckets = make([]uint64, (ms.m.Max-ms.m.Min)/ms.m.Step+2)
	default:
		e.Value = program.Value{Type: ms.m.Value}
	}
	ms.entries = append(ms.entries, e)
	return e
}

func (ms *mapState) set(v program.Value, keys ...program.Value) {
	ms.m.Value = v.Type
	ms.entry(keys).Value = v
}

func (ms *mapState) count(keys ...program.Value) { ms.entry(keys).Value.Int++ }

func (ms *mapState) sum(x int64, keys ...program.Value) {
	e := ms.entry(keys)
	e.Value.Int += uint64(x)
}

// min and max follow bpftrace 0.17's code, which compares with the
// stored value, 0 for a new key: max() of a negative value never creates
// its key.
func (ms *mapState) min(x int64, keys ...program.Value) {
	for _, e := range ms.entries {
		if keysEqual(e.Keys, keys) {
			if x < int64(e.Value.Int) {
				e.Value.Int = uint64(x)
			}
			return
		}
	}
	ms.entry(keys).Value.Int = uint64(x)
}

func (ms *mapState) max(x int64, keys ...program.Value) {
	for _, e := range ms.entries {
		if keysEqual(e.Keys, keys) {
			if x > int64(e.Value.Int) {
				e.Value.Int = uint64(x)
			}
			return
		}
	}
	if x > 0 {
		ms.entry(keys).Value.Int = uint64(x)
	}
}

func keysEqual(a, b []program.Value) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if program.Compare(a[i], b[i]) != 0 {
			return false
		}
	}
	return true
}

func (ms *mapState) avg(x int64, keys ...program.Value) {
	e := ms.entry(keys)
	e.Count++
	e.Total += x
}

// histBucket is bpftrace 0.17's log2(): five halving steps, so every
// value >= 2^31 lands in bucket 33.
func histBucket(n int64) int {
	if n < 0 {
		return 0
	}
	if n == 0 {
		return 1
	}
	r := 2
	for i := 4; i >= 0; i-- {
		shift := 0
		if n >= int64(1)<<(1<<i) {
			shift = 1 << i
		}
		n >>= shift
		r += shift
	}
	return r
}

func (ms *mapState) hist(x int64, keys ...program.Value) {
	ms.entry(keys).Buckets[histBucket(x)]++
}

func (ms *mapState) lhist(x int64, keys ...program.Value) {
	m := ms.m
	n := (m.Max - m.Min) / m.Step
	var i int64
	switch {
	case x < m.Min:
		i = 0
	case x >= m.Max:
		i = n + 1
	default:
		i = (x-m.Min)/m.Step + 1
	}
	ms.entry(keys).Buckets[i]++
}

func (ms *mapState) del(keys ...program.Value) {
	for i, e := range ms.entries {
		if keysEqual(e.Keys, keys) {
			ms.entries = append(ms.entries[:i], ms.entries[i+1:]...)
			return
		}
	}
}

func (ms *mapState) clear() { ms.entries = nil }

func (ms *mapState) zero() {
	for _, e := range ms.entries {
		e.Value.Int, e.Count, e.Total = 0, 0, 0
		for i := range e.Buckets {
			e.Buckets[i] = 0
		}
	}
}

// snap copies the map in a shuffled order: the printed order must not
// depend on the order the executor reads the kernel map in.
func (ms *mapState) snap() *program.MapSnapshot {
	s := &program.MapSnapshot{Map: ms.m}
	for _, e := range ms.entries {
		c := *e
		c.Buckets = append([]uint64(nil), e.Buckets...)
		s.Entries = append(s.Entries, c)
	}
	ms.st.rnd.Shuffle(len(s.Entries), func(i, j int) { s.Entries[i], s.Entries[j] = s.Entries[j], s.Entries[i] })
	return s
}

func (s *state) snaps() []*program.MapSnapshot {
	var out []*program.MapSnapshot
	for _, ms := range s.maps {
		out = append(out, ms.snap())
	}
	// Exit must sort by name itself.
	s.rnd.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
