package output

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"
	"strconv"
	"strings"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/internal/cxxsort"
)

// ordered returns the entries of snap in the order bpftrace prints them,
// keeping only the last top when top > 0 (print(@m, top)).
//
// bpftrace 0.17 orders a map in one of three ways:
//   - count, sum, min, max and integer-valued maps: by value, ascending,
//     signed or not as the value is. bpftrace starts from the kernel's hash
//     order, which varies from run to run, so equal values come out in no
//     fixed order; we break ties by key (keyLess order).
//   - hist, lhist (by the sum of their buckets), avg and stats (by the
//     average): std::sort starting from the keys' raw bytes order. We replay
//     both, so ties come out as bpftrace prints them: e.g. key 256 (bytes
//     00 01 ...) before key 1 (01 00 ...).
//   - everything else (string and tuple values): by key, integers compared
//     as unsigned, so -1 comes after 256.
//
// stats maps ignore top (bpftrace warns "print()'s top and div arguments
// are ignored when used on stats() maps").
func ordered(snap *program.MapSnapshot, top int) []int32 {
	m := snap.Map
	var idx []int32
	switch {
	case m.Agg == program.Hist || m.Agg == program.Lhist:
		idx = sortByBytesThen(snap, func(i int) int64 {
			var sum uint64
			for _, c := range snap.Buckets(i) {
				sum += c
			}
			// bpftrace sums into an int64; counts never get near the sign bit.
			return int64(sum)
		})
	case m.Agg == program.Avg || m.Agg == program.Stats:
		idx = sortByBytesThen(snap, func(i int) int64 { return average(snap.Avg(i)) })
		if m.Agg == program.Stats {
			top = 0
		}
	case valueSorted(m):
		var flip uint64
		if m.Agg != program.Count && m.Value.Signed {
			flip = 1 << 63 // signed order, compared unsigned
		}
		idx = keyOrder(snap).sort(func(i int) uint64 { return snap.Int(i) ^ flip })
	default:
		idx = keyOrder(snap).sort(nil)
	}
	if top > 0 && len(idx) > top {
		idx = idx[len(idx)-top:]
	}
	return idx
}

// printable returns the snapshot bpftrace would print. bpftrace 0.17
// keeps a count() without subscript in a per-CPU array, whose one slot
// always exists: such a map prints "@c: 0" when never incremented,
// cleared or deleted, in text and JSON alike.
func printable(snap *program.MapSnapshot) *program.MapSnapshot {
	m := snap.Map
	if snap.Len() == 0 && m.Agg == program.Count && len(m.Keys) == 0 {
		return &program.MapSnapshot{Map: m, Entries: []program.MapEntry{{Value: program.Value{Type: program.Type{Kind: program.Int, Size: 8}}}}}
	}
	return snap
}

func valueSorted(m *program.Map) bool {
	switch m.Agg {
	case program.Count, program.Sum, program.Min, program.Max:
		return true
	case program.Plain:
		return m.Value.Kind == program.Int
	}
	return false
}

// keys orders a snapshot's entries by their subscripts, ties by where
// they are in the snapshot so that the order does not depend on the
// sort. The subscripts are laid out once as bytes (buf, entry i at
// off[i]) that compare as the order needs; where they cannot be (a
// hand-built snapshot whose keys disagree with its map), they are
// compared decoded.
type keys struct {
	buf     []byte
	off     []int32
	short   bool // every entry's bytes are the same length, at most 8
	decoded [][]program.Value
}

// forceDecoded makes keyOrder compare keys decoded, for a test that the
// two orders agree.
var forceDecoded = false

// keyOrder orders by bpftrace's sort_by_key (compareKeys), through
// sortKey's layout.
func keyOrder(snap *program.MapSnapshot) *keys {
	if forceDecoded {
		return decodedKeys(snap)
	}
	if k := rawKeyOrder(snap); k != nil {
		return k
	}
	k := &keys{off: make([]int32, snap.Len()+1)}
	var scratch []program.Value
	var widths, w []int
	for i := range snap.Len() {
		scratch = snap.Keys(i, scratch[:0])
		var ok bool
		k.buf, w, ok = sortKey(k.buf, w[:0], snap.Map, scratch)
		if i == 0 {
			widths = append(widths, w...)
		}
		if !ok || !slices.Equal(w, widths) {
			return decodedKeys(snap)
		}
		k.off[i+1] = int32(len(k.buf))
	}
	k.short = len(k.buf) <= 8*snap.Len()
	return k
}

// rawKeyOrder is keyOrder straight from a compact snapshot's raw keys,
// without decoding them, when every subscript is an integer or a string;
// nil otherwise.
func rawKeyOrder(snap *program.MapSnapshot) *keys {
	n := snap.Len()
	m := snap.Map
	if n == 0 || snap.RawKey(0) == nil {
		return nil
	}
	width := 0
	for _, t := range m.Keys {
		switch t.Kind {
		case program.Int:
			width += 8
		case program.String:
			width += t.Size
		default:
			return nil
		}
	}
	k := &keys{buf: make([]byte, 0, n*width), off: make([]int32, n+1), short: width <= 8}
	for i := range n {
		raw := snap.RawKey(i)
		off := 0
		for j := range m.Keys {
			t := &m.Keys[j]
			if t.Kind == program.Int {
				k.buf = binary.BigEndian.AppendUint64(k.buf, program.DecodeInt(t, raw[off:]))
			} else {
				f := raw[off : off+t.Size]
				if z := bytes.IndexByte(f, 0); z >= 0 {
					f = f[:z]
				}
				k.buf = appendPadded(k.buf, f, t.Size)
			}
			off += t.Size
		}
		k.off[i+1] = int32(len(k.buf))
	}
	return k
}

func decodedKeys(snap *program.MapSnapshot) *keys {
	k := &keys{decoded: make([][]program.Value, snap.Len())}
	for i := range k.decoded {
		k.decoded[i] = snap.Keys(i, nil)
	}
	return k
}

// item is one entry as a sort sees it, what it is ordered by held
// together so that a million entries sort without chasing indices: a
// value (or nothing), the first 8 bytes of its key's layout, big-endian,
// and the entry.
type item struct {
	val, key uint64
	i        int32
}

// sort returns the entries' indices ordered by val (unsigned; nil: not at
// all), then by key.
func (k *keys) sort(val func(i int) uint64) []int32 {
	n := len(k.decoded)
	if k.decoded == nil {
		n = len(k.off) - 1
	}
	items := make([]item, n)
	for i := range items {
		it := item{i: int32(i)}
		if val != nil {
			it.val = val(i)
		}
		if k.decoded == nil {
			var p [8]byte
			copy(p[:], k.buf[k.off[i]:k.off[i+1]])
			it.key = binary.BigEndian.Uint64(p[:])
		}
		items[i] = it
	}
	slices.SortFunc(items, k.compare)
	idx := make([]int32, n)
	for n, it := range items {
		idx[n] = it.i
	}
	return idx
}

func (k *keys) compare(a, b item) int {
	if a.val != b.val {
		return cmp.Compare(a.val, b.val)
	}
	if a.key != b.key {
		return cmp.Compare(a.key, b.key)
	}
	if !k.short {
		var c int
		if k.decoded != nil {
			c = compareKeys(k.decoded[a.i], k.decoded[b.i])
		} else {
			c = bytes.Compare(k.buf[k.off[a.i]:k.off[a.i+1]], k.buf[k.off[b.i]:k.off[b.i+1]])
		}
		if c != 0 {
			return c
		}
	}
	return cmp.Compare(a.i, b.i)
}

// sortKey appends subscripts laid out so that bytes.Compare orders two
// keys of one map as compareKeys does, provided every field has the same
// width in both (widths has each one's): integers as 8 bytes big-endian
// (compared unsigned), strings padded with NULs to their size, other
// kinds as valueBytes lays them out. ok is false where that does not
// hold.
func sortKey(b []byte, widths []int, m *program.Map, keys []program.Value) (_ []byte, _ []int, ok bool) {
	if len(keys) != len(m.Keys) {
		return b, widths, false
	}
	for i, v := range keys {
		if v.Type.Kind != m.Keys[i].Kind {
			return b, widths, false
		}
		start := len(b)
		switch v.Type.Kind {
		case program.Int:
			b = binary.BigEndian.AppendUint64(b, v.Int)
		case program.String:
			if len(v.Str) > v.Type.Size || strings.IndexByte(v.Str, 0) >= 0 {
				return b, widths, false
			}
			b = appendPadded(b, v.Str, v.Type.Size)
		default:
			b = valueBytes(b, v)
		}
		widths = append(widths, len(b)-start)
	}
	return b, widths, true
}

// appendPadded appends s and NULs up to size bytes: a string subscript
// as sortKey lays it out.
func appendPadded[S ~string | ~[]byte](b []byte, s S, size int) []byte {
	b = append(b, s...)
	for range size - len(s) {
		b = append(b, 0)
	}
	return b
}

// sortByBytesThen orders entries the way bpftrace's print_map_hist and
// print_map_stats do: collect into a std::map keyed by the raw key bytes
// (keyBytes), then std::sort by the metric.
func sortByBytesThen(snap *program.MapSnapshot, metric func(i int) int64) []int32 {
	n := snap.Len()
	k := &keys{off: make([]int32, n+1)}
	metrics := make([]int64, n)
	var scratch []program.Value
	for i := range n {
		scratch = snap.Keys(i, scratch[:0])
		k.buf = keyBytes(k.buf, scratch)
		k.off[i+1] = int32(len(k.buf))
		metrics[i] = metric(i)
	}
	idx := k.sort(nil)
	cxxsort.Sort(idx, func(a, b *int32) bool { return metrics[*a] < metrics[*b] })
	return idx
}

// average is bpftrace's total / count with C's truncating division, 0 for
// an empty aggregate.
func average(total int64, count uint64) int64 {
	if count == 0 {
		return 0
	}
	return total / int64(count)
}

// compareKeys is bpftrace's sort_by_key: by the first key, then the
// next, with integers compared as unsigned and strings bytewise.
func compareKeys(a, b []program.Value) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := keyCompare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

func keyCompare(a, b program.Value) int {
	if a.Type.Kind != b.Type.Kind {
		return int(a.Type.Kind) - int(b.Type.Kind)
	}
	switch a.Type.Kind {
	case program.Int:
		switch {
		case a.Int < b.Int:
			return -1
		case a.Int > b.Int:
			return 1
		}
		return 0
	case program.String:
		return strings.Compare(a.Str, b.Str)
	}
	return bytes.Compare(valueBytes(nil, a), valueBytes(nil, b))
}

// keyBytes appends the keys as they sit in the BPF map key: integers
// little-endian, strings NUL-padded. Padding between fields does not
// change how two keys of one map compare, so none is added.
func keyBytes(b []byte, keys []program.Value) []byte {
	for _, k := range keys {
		b = valueBytes(b, k)
	}
	return b
}

func valueBytes(b []byte, v program.Value) []byte {
	switch v.Type.Kind {
	case program.Int:
		var x [8]byte
		binary.LittleEndian.PutUint64(x[:], v.Int)
		n := v.Type.Size
		if n != 1 && n != 2 && n != 4 {
			n = 8
		}
		return append(b, x[:n]...)
	case program.String:
		b = append(b, v.Str...)
		for i := len(v.Str); i < v.Type.Size; i++ {
			b = append(b, 0)
		}
		// A NUL ends the string even when it fills its field, as in C.
		return append(b, 0)
	case program.Tuple, program.Record, program.Array:
		for _, e := range v.Elems {
			b = valueBytes(b, e)
		}
	default:
		b = append(b, v.Raw...)
	}
	return b
}

// appendInt renders an integer map value divided by div as bpftrace
// does: count and unsigned values as uint64, signed ones with C's
// truncating division.
func appendInt(b []byte, v program.Value, unsigned bool, div int) []byte {
	d := int64(div)
	if d <= 0 {
		d = 1
	}
	if unsigned || !v.Type.Signed {
		return strconv.AppendUint(b, v.Int/uint64(d), 10)
	}
	return strconv.AppendInt(b, int64(v.Int)/d, 10)
}
