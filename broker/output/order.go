package output

import (
	"bytes"
	"encoding/binary"
	"slices"
	"sort"
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
	idx := make([]int32, snap.Len())
	for i := range idx {
		idx[i] = int32(i)
	}
	switch {
	case m.Agg == program.Hist || m.Agg == program.Lhist:
		sortByBytesThen(snap, idx, func(i int) int64 {
			var sum uint64
			for _, c := range snap.Buckets(i) {
				sum += c
			}
			// bpftrace sums into an int64; counts never get near the sign bit.
			return int64(sum)
		})
	case m.Agg == program.Avg || m.Agg == program.Stats:
		sortByBytesThen(snap, idx, func(i int) int64 { return average(snap.Avg(i)) })
		if m.Agg == program.Stats {
			top = 0
		}
	case valueSorted(m):
		signed := m.Agg != program.Count && m.Value.Signed
		keys := keyOrder(snap)
		sort.Slice(idx, func(a, b int) bool {
			i, j := idx[a], idx[b]
			if x, y := snap.Int(int(i)), snap.Int(int(j)); x != y {
				if signed {
					return int64(x) < int64(y)
				}
				return x < y
			}
			return keys.less(i, j)
		})
	default:
		keys := keyOrder(snap)
		sort.Slice(idx, func(a, b int) bool { return keys.less(idx[a], idx[b]) })
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

// keys orders a snapshot's entries by their subscripts, as bpftrace's
// sort_by_key does (keyLess), ties by where they are in the snapshot so
// that the order does not depend on the sort. The subscripts are laid
// out once as bytes that compare as keyLess does (sortKey); where they
// cannot be (a hand-built snapshot whose keys disagree with its map),
// they are compared decoded.
type keys struct {
	buf     []byte
	off     []int32
	decoded [][]program.Value
}

// forceDecoded makes keyOrder compare keys decoded, for a test that the
// two orders agree.
var forceDecoded = false

func keyOrder(snap *program.MapSnapshot) *keys {
	if forceDecoded {
		return decodedKeys(snap)
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
	return k
}

func decodedKeys(snap *program.MapSnapshot) *keys {
	k := &keys{decoded: make([][]program.Value, snap.Len())}
	for i := range k.decoded {
		k.decoded[i] = snap.Keys(i, nil)
	}
	return k
}

func (k *keys) less(i, j int32) bool {
	var c int
	if k.decoded != nil {
		c = compareKeys(k.decoded[i], k.decoded[j])
	} else {
		c = bytes.Compare(k.buf[k.off[i]:k.off[i+1]], k.buf[k.off[j]:k.off[j+1]])
	}
	if c != 0 {
		return c < 0
	}
	return i < j
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
			b = append(b, v.Str...)
			for range v.Type.Size - len(v.Str) {
				b = append(b, 0)
			}
		default:
			b = valueBytes(b, v)
		}
		widths = append(widths, len(b)-start)
	}
	return b, widths, true
}

// sortByBytesThen orders entries the way bpftrace's print_map_hist and
// print_map_stats do: collect into a std::map keyed by the raw key bytes,
// then std::sort by the metric.
func sortByBytesThen(snap *program.MapSnapshot, idx []int32, metric func(i int) int64) {
	n := snap.Len()
	buf, off := []byte(nil), make([]int32, n+1)
	metrics := make([]int64, n)
	var scratch []program.Value
	for i := range n {
		scratch = snap.Keys(i, scratch[:0])
		buf = keyBytes(buf, scratch)
		off[i+1] = int32(len(buf))
		metrics[i] = metric(i)
	}
	sort.Slice(idx, func(a, b int) bool {
		i, j := idx[a], idx[b]
		if c := bytes.Compare(buf[off[i]:off[i+1]], buf[off[j]:off[j+1]]); c != 0 {
			return c < 0
		}
		return i < j
	})
	cxxsort.Sort(idx, func(a, b *int32) bool { return metrics[*a] < metrics[*b] })
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
