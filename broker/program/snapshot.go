package program

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"
	"sort"
	"strings"
	"unsafe"
)

// RawEntry is one map element as a backend stores it: the key bytes and
// one value per CPU (a single value for maps that are not per-CPU).
type RawEntry struct {
	Key  []byte
	Vals [][]byte
}

// MapEntry is one key of a map snapshot with its value reduced over CPUs.
type MapEntry struct {
	Keys []Value // one per subscript; empty for a map without subscript
	// Value holds Plain, Count, Sum, Min and Max results.
	Value Value
	// Avg and Stats.
	Count uint64
	Total int64
	// Hist and Lhist: counts per bucket index, as laid out in the Map doc.
	Buckets []uint64
}

// MapSnapshot is the content of one map at one moment. Read it through
// Len and Entry: a snapshot read from a map (SnapshotBuilder) keeps its
// entries compact — the subscripts' bytes as the map holds them and one
// reduced value each, in flat arrays — so that a map of a million keys
// costs tens of bytes per key rather than a decoded MapEntry each; one
// built by hand lists its Entries.
type MapSnapshot struct {
	Map *Map
	// Entries are a snapshot's entries decoded, when it was built entry
	// by entry rather than by a SnapshotBuilder.
	Entries []MapEntry
	// Resolve, when set, completes the host-resolved kinds (stacks,
	// symbols, user names) of every key and value Entry decodes, as
	// they are printed rather than all at once.
	Resolve func(*Value)

	c *compact
}

// compact is a SnapshotBuilder's result, one slot per entry.
type compact struct {
	n    int
	ks   int      // subscript bytes per key
	keys []byte   // n × ks: the subscripts as the map stores them
	ints []uint64 // the reduced value (Count, Sum, Min, Max, a Plain Int) or the total (Avg, Stats)
	cnts []uint64 // Avg, Stats: the count
	vs   int      // Plain non-Int: value bytes per entry
	vals []byte   // n × vs
	hist [][]uint64
}

// Len is the number of entries.
func (s *MapSnapshot) Len() int {
	if s.c != nil {
		return s.c.n
	}
	return len(s.Entries)
}

// Entry decodes entry i into e, in the order the snapshot was read (not
// sorted). e's Keys are reused, and a string key is a view of the
// snapshot's memory, so printing a map allocates nothing per key for
// integer and string subscripts.
func (s *MapSnapshot) Entry(i int, e *MapEntry) {
	if s.c == nil {
		*e = s.Entries[i]
	} else {
		// Field by field: a Value is large, and a million of them are
		// printed one after another.
		c, m := s.c, s.Map
		e.Keys = s.Keys(i, e.Keys[:0])
		e.Count, e.Total, e.Buckets = 0, 0, nil
		switch m.Agg {
		case Hist, Lhist:
			e.Value = Value{}
			e.Buckets = c.hist[i]
		case Avg, Stats:
			e.Total, e.Count = int64(c.ints[i]), c.cnts[i]
			setInt(&e.Value, &m.Value, average(e.Total, e.Count, m.Value.Signed))
		case Plain:
			if c.vals != nil {
				e.Value = Decode(m.Value, c.vals[i*c.vs:])
			} else {
				setInt(&e.Value, &m.Value, c.ints[i])
			}
		default:
			setInt(&e.Value, &m.Value, c.ints[i])
		}
	}
	if s.Resolve != nil {
		for k := range e.Keys {
			s.Resolve(&e.Keys[k])
		}
		s.Resolve(&e.Value)
	}
}

// Keys appends entry i's subscripts to dst, decoded but not resolved:
// what ordering the entries needs.
func (s *MapSnapshot) Keys(i int, dst []Value) []Value {
	if s.c == nil {
		return append(dst, s.Entries[i].Keys...)
	}
	c := s.c
	k := c.keys[i*c.ks : (i+1)*c.ks]
	off := 0
	for j := range s.Map.Keys {
		t := &s.Map.Keys[j]
		dst = slices.Grow(dst, 1)[:len(dst)+1]
		v := &dst[len(dst)-1]
		switch t.Kind {
		case Int:
			setInt(v, t, DecodeInt(t, k[off:]))
		case String:
			setInt(v, t, 0)
			v.Str = stringView(k[off : off+t.Size])
		default:
			*v = Decode(*t, k[off:])
		}
		off += t.Size
	}
	return dst
}

// setInt makes v an integer of type t, reusing v's memory: what Decode
// makes, without building and copying a Value.
func setInt(v *Value, t *Type, x uint64) {
	v.Type = *t
	v.Int = x
	v.Str, v.Elems, v.Raw, v.Lines = "", nil, nil, nil
}

// stringView is a string up to the first NUL of b, which must not
// change while the string is used: a snapshot's own memory.
func stringView(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// Decoded returns every entry decoded, ordered by key (integers by their
// signedness, strings bytewise), each with its own memory: for tests and
// small maps, not for printing, which orders entries as bpftrace does.
func (s *MapSnapshot) Decoded() []MapEntry {
	out := make([]MapEntry, s.Len())
	for i := range out {
		e := MapEntry{Keys: make([]Value, 0, len(s.Map.Keys))}
		s.Entry(i, &e)
		for k := range e.Keys {
			e.Keys[k].Str = strings.Clone(e.Keys[k].Str)
		}
		out[i] = e
	}
	sort.SliceStable(out, func(i, j int) bool { return compareKeys(out[i].Keys, out[j].Keys) < 0 })
	return out
}

func compareKeys(a, b []Value) int {
	for i := range a {
		if i >= len(b) {
			return 1
		}
		if c := Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

// RawKey is entry i's subscript bytes as the map stores them, or nil for
// a snapshot built entry by entry: what lets a printer order a million
// keys without decoding them.
func (s *MapSnapshot) RawKey(i int) []byte {
	if s.c == nil {
		return nil
	}
	return s.c.keys[i*s.c.ks : (i+1)*s.c.ks]
}

// Int is entry i's reduced integer without decoding its keys: the value
// of a Count, Sum, Min, Max or Plain Int map.
func (s *MapSnapshot) Int(i int) uint64 {
	if s.c == nil {
		return s.Entries[i].Value.Int
	}
	return s.c.ints[i]
}

// Avg is entry i's total and count (Avg, Stats).
func (s *MapSnapshot) Avg(i int) (total int64, count uint64) {
	if s.c == nil {
		return s.Entries[i].Total, s.Entries[i].Count
	}
	return int64(s.c.ints[i]), s.c.cnts[i]
}

// Buckets is entry i's histogram (Hist, Lhist).
func (s *MapSnapshot) Buckets(i int) []uint64 {
	if s.c == nil {
		return s.Entries[i].Buckets
	}
	return s.c.hist[i]
}

// SnapshotBuilder reduces a map's raw elements, one at a time, into a
// compact MapSnapshot: sums for counts, the smallest set value for min,
// totals and counts for avg, and bucket vectors for histograms (grouped
// by subscript). It keeps nothing of what it is given.
type SnapshotBuilder struct {
	m      *Map
	c      compact
	groups map[string]int // Hist, Lhist: entry by subscript
}

// NewSnapshotBuilder starts a snapshot of m; sizeHint is the number of
// elements expected, if known.
func NewSnapshotBuilder(m *Map, sizeHint int) *SnapshotBuilder {
	b := &SnapshotBuilder{m: m, c: compact{ks: m.KeySize()}}
	switch m.Agg {
	case Hist, Lhist:
		b.groups = map[string]int{}
	case Plain:
		if m.Value.Kind != Int {
			b.c.vs = m.Value.Size
			b.c.vals = make([]byte, 0, sizeHint*b.c.vs)
		}
	}
	if m.Agg != Hist && m.Agg != Lhist {
		b.c.keys = make([]byte, 0, sizeHint*b.c.ks)
		if b.c.vals == nil {
			b.c.ints = make([]uint64, 0, sizeHint)
		}
		if m.Agg == Avg || m.Agg == Stats {
			b.c.cnts = make([]uint64, 0, sizeHint)
		}
	}
	return b
}

// Add adds one element: its key and its value on each CPU (one value for
// maps that are not per-CPU). Malformed elements (a key or value shorter
// than the map's types) are skipped.
func (b *SnapshotBuilder) Add(key []byte, vals [][]byte) {
	m, c := b.m, &b.c
	le := binary.LittleEndian
	if len(key) < c.ks {
		return
	}
	switch m.Agg {
	case Hist, Lhist:
		if len(key) < c.ks+8 {
			return
		}
		idx := le.Uint64(key[c.ks:])
		if idx > 1<<16 {
			return
		}
		sub := key[:c.ks]
		i, ok := b.groups[string(sub)]
		if !ok {
			i = c.n
			b.groups[string(sub)] = i
			c.keys = append(c.keys, sub...)
			c.hist = append(c.hist, nil)
			c.n++
		}
		h := c.hist[i]
		for uint64(len(h)) <= idx {
			h = append(h, 0)
		}
		for _, v := range vals {
			if len(v) >= 8 {
				h[idx] += le.Uint64(v)
			}
		}
		c.hist[i] = h
		return
	case Plain:
		if len(vals) == 0 || len(vals[0]) < m.Value.Size {
			return
		}
		if c.vals != nil {
			c.vals = append(c.vals, vals[0][:c.vs]...)
		} else {
			c.ints = append(c.ints, Decode(m.Value, vals[0]).Int)
		}
	case Count, Sum:
		var s uint64
		for _, v := range vals {
			if len(v) >= 8 {
				s += le.Uint64(v)
			}
		}
		c.ints = append(c.ints, s)
	case Min, Max:
		var x uint64
		first := true
		for _, v := range vals {
			if len(v) < 16 || le.Uint64(v[8:]) == 0 {
				continue
			}
			y := le.Uint64(v)
			c := compareInt(y, x, m.Value.Signed)
			if first || (m.Agg == Min && c < 0) || (m.Agg == Max && c > 0) {
				x, first = y, false
			}
		}
		c.ints = append(c.ints, x)
	case Avg, Stats:
		var total int64
		var count uint64
		for _, v := range vals {
			if len(v) >= 16 {
				total += int64(le.Uint64(v))
				count += le.Uint64(v[8:])
			}
		}
		c.ints = append(c.ints, uint64(total))
		c.cnts = append(c.cnts, count)
	default:
		return
	}
	c.keys = append(c.keys, key[:c.ks]...)
	c.n++
}

// Snapshot returns what was added. The builder must not be used after.
func (b *SnapshotBuilder) Snapshot() *MapSnapshot {
	b.groups = nil
	c := b.c
	return &MapSnapshot{Map: b.m, c: &c}
}

// BuildSnapshot reduces raw per-CPU entries to what the user sees (see
// SnapshotBuilder).
func BuildSnapshot(m *Map, raws []RawEntry) *MapSnapshot {
	b := NewSnapshotBuilder(m, len(raws))
	for _, r := range raws {
		b.Add(r.Key, r.Vals)
	}
	return b.Snapshot()
}

// compareInt orders two integers' bits, as signed or unsigned.
func compareInt(a, b uint64, signed bool) int {
	if signed {
		return cmp.Compare(int64(a), int64(b))
	}
	return cmp.Compare(a, b)
}

// average is an Avg map's value: the total over the count, with C's
// truncating division when signed, the total when nothing was counted.
func average(total int64, count uint64, signed bool) uint64 {
	if count == 0 {
		return uint64(total)
	}
	if signed {
		return uint64(total / int64(count))
	}
	return uint64(total) / count
}
