package program

import (
	"encoding/binary"
	"sort"
)

// RawEntry is one map element as a backend stores it: the key bytes and
// one value per CPU (a single value for maps that are not per-CPU).
type RawEntry struct {
	Key  []byte
	Vals [][]byte
}

// BuildSnapshot reduces raw per-CPU entries to what the user sees: sums for
// counts, the smallest set value for min, totals and counts for avg, and
// bucket vectors for histograms (grouped by subscript). Entries come back
// ordered by key so that output does not depend on hash order.
func BuildSnapshot(m *Map, raws []RawEntry) *MapSnapshot {
	snap := &MapSnapshot{Map: m}
	le := binary.LittleEndian
	keyOf := func(b []byte) []Value {
		vals := make([]Value, len(m.Keys))
		off := 0
		for i, t := range m.Keys {
			vals[i] = Decode(t, b[off:])
			off += t.Size
		}
		return vals
	}
	switch m.Agg {
	case Hist, Lhist:
		ks := m.KeySize()
		groups := map[string]int{}
		for _, r := range raws {
			if len(r.Key) < ks+8 {
				continue
			}
			sub := string(r.Key[:ks])
			i, ok := groups[sub]
			if !ok {
				i = len(snap.Entries)
				groups[sub] = i
				snap.Entries = append(snap.Entries, MapEntry{Keys: keyOf(r.Key)})
			}
			idx := le.Uint64(r.Key[ks:])
			if idx > 1<<16 {
				continue
			}
			e := &snap.Entries[i]
			for uint64(len(e.Buckets)) <= idx {
				e.Buckets = append(e.Buckets, 0)
			}
			for _, v := range r.Vals {
				e.Buckets[idx] += le.Uint64(v)
			}
		}
	default:
		for _, r := range raws {
			e := MapEntry{Keys: keyOf(r.Key)}
			switch m.Agg {
			case Plain:
				if len(r.Vals) > 0 {
					e.Value = Decode(m.Value, r.Vals[0])
				}
			case Count, Sum:
				var s uint64
				for _, v := range r.Vals {
					s += le.Uint64(v)
				}
				e.Value = Value{Type: m.Value, Int: s}
			case Min, Max:
				first := true
				for _, v := range r.Vals {
					if le.Uint64(v[8:]) == 0 {
						continue
					}
					x := Value{Type: m.Value, Int: le.Uint64(v)}
					c := Compare(x, e.Value)
					if first || (m.Agg == Min && c < 0) || (m.Agg == Max && c > 0) {
						e.Value, first = x, false
					}
				}
				if first {
					e.Value = Value{Type: m.Value}
				}
			case Avg, Stats:
				for _, v := range r.Vals {
					e.Total += int64(le.Uint64(v))
					e.Count += le.Uint64(v[8:])
				}
				e.Value = Value{Type: m.Value, Int: uint64(e.Total)}
				if e.Count > 0 {
					if m.Value.Signed {
						e.Value.Int = uint64(e.Total / int64(e.Count))
					} else {
						e.Value.Int = uint64(e.Total) / e.Count
					}
				}
			}
			snap.Entries = append(snap.Entries, e)
		}
	}
	sort.SliceStable(snap.Entries, func(i, j int) bool {
		return compareKeys(snap.Entries[i].Keys, snap.Entries[j].Keys) < 0
	})
	return snap
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
