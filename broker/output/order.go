package output

import (
	"bytes"
	"encoding/binary"
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
func ordered(snap *program.MapSnapshot, top int) []program.MapEntry {
	m := snap.Map
	entries := append([]program.MapEntry(nil), entriesOf(snap)...)
	switch {
	case m.Agg == program.Hist || m.Agg == program.Lhist:
		sortByBytesThen(entries, func(e *program.MapEntry) int64 {
			var sum uint64
			for _, c := range e.Buckets {
				sum += c
			}
			// bpftrace sums into an int64; counts never get near the sign bit.
			return int64(sum)
		})
	case m.Agg == program.Avg || m.Agg == program.Stats:
		sortByBytesThen(entries, func(e *program.MapEntry) int64 { return average(e) })
		if m.Agg == program.Stats {
			top = 0
		}
	case valueSorted(m):
		unsigned := m.Agg == program.Count
		sort.SliceStable(entries, func(i, j int) bool {
			a, b := entries[i].Value, entries[j].Value
			if a.Int != b.Int {
				if unsigned || !a.Type.Signed {
					return a.Int < b.Int
				}
				return int64(a.Int) < int64(b.Int)
			}
			return keyLess(entries[i].Keys, entries[j].Keys)
		})
	default:
		sort.SliceStable(entries, func(i, j int) bool { return keyLess(entries[i].Keys, entries[j].Keys) })
	}
	if top > 0 && len(entries) > top {
		entries = entries[len(entries)-top:]
	}
	return entries
}

// entriesOf returns the entries bpftrace would find in the map. bpftrace
// 0.17 keeps a count() without subscript in a per-CPU array, whose one
// slot always exists: such a map prints "@c: 0" when never incremented,
// cleared or deleted, in text and JSON alike.
func entriesOf(snap *program.MapSnapshot) []program.MapEntry {
	m := snap.Map
	if len(snap.Entries) == 0 && m.Agg == program.Count && len(m.Keys) == 0 {
		return []program.MapEntry{{Value: program.Value{Type: program.Type{Kind: program.Int, Size: 8}}}}
	}
	return snap.Entries
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

// sortByBytesThen orders entries the way bpftrace's print_map_hist and
// print_map_stats do: collect into a std::map keyed by the raw key bytes,
// then std::sort by the metric.
func sortByBytesThen(entries []program.MapEntry, metric func(*program.MapEntry) int64) {
	type item struct {
		key    []byte
		metric int64
		e      program.MapEntry
	}
	items := make([]item, len(entries))
	for i := range entries {
		items[i] = item{keyBytes(entries[i].Keys), metric(&entries[i]), entries[i]}
	}
	sort.SliceStable(items, func(i, j int) bool { return bytes.Compare(items[i].key, items[j].key) < 0 })
	cxxsort.Sort(items, func(a, b *item) bool { return a.metric < b.metric })
	for i := range items {
		entries[i] = items[i].e
	}
}

// average is bpftrace's total / count with C's truncating division, 0 for
// an empty aggregate.
func average(e *program.MapEntry) int64 {
	count := int64(e.Count)
	if count == 0 {
		return 0
	}
	return e.Total / count
}

// keyLess is bpftrace's sort_by_key: by the first key, then the next, with
// integers compared as unsigned and strings bytewise.
func keyLess(a, b []program.Value) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := keyCompare(a[i], b[i]); c != 0 {
			return c < 0
		}
	}
	return len(a) < len(b)
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

// keyBytes lays the keys out as they sit in the BPF map key: integers
// little-endian, strings NUL-padded. Padding between fields does not change
// how two keys of one map compare, so none is added.
func keyBytes(keys []program.Value) []byte {
	var b []byte
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

// intValue renders an integer map value divided by div as bpftrace does:
// count and unsigned values as uint64, signed ones with C's truncating
// division.
func intValue(v program.Value, unsigned bool, div int) string {
	d := int64(div)
	if d <= 0 {
		d = 1
	}
	if unsigned || !v.Type.Signed {
		return strconv.FormatUint(v.Int/uint64(d), 10)
	}
	return strconv.FormatInt(int64(v.Int)/d, 10)
}
