package output

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand"
	"testing"

	"github.com/tracebroker/tracebroker/broker/program"
)

// TestCompactPrintsAsDecoded: a snapshot read from a map (compact: raw
// keys, ordered through sortKey) prints byte for byte what the same
// entries print decoded and compared one by one (compareKeys), for every
// aggregation, with integer keys of every size and sign, strings, tuples
// and several subscripts, many ties, top and div, in text and JSON.
func TestCompactPrintsAsDecoded(t *testing.T) {
	tStr8 := program.Type{Kind: program.String, Size: 8}
	tup := Tup(N(tI32, 0), program.Value{Type: tStr8}).Type
	keySets := map[string][]program.Type{
		"none":     nil,
		"u64":      {tU64},
		"s64":      {tI64},
		"s32":      {tI32},
		"u8":       {tU8},
		"s16":      {tI16},
		"string":   {tStr8},
		"s32,str":  {tI32, tStr8},
		"str,u8":   {tStr8, tU8},
		"tuple":    {tup},
		"u8,tuple": {tU8, tup},
	}
	aggs := []program.Agg{program.Plain, program.Count, program.Sum, program.Min, program.Max, program.Avg, program.Stats, program.Hist, program.Lhist}
	rnd := rand.New(rand.NewSource(7))
	for name, keyTypes := range keySets {
		for _, agg := range aggs {
			for _, signed := range []bool{false, true} {
				m := &program.Map{Name: "@m", Keys: keyTypes, Agg: agg, Value: program.Type{Kind: program.Int, Size: 8, Signed: signed}, Min: 0, Max: 100, Step: 10}
				if agg == program.Plain && signed {
					m.Value = tStr8 // a string-valued map: ordered by key
				}
				raws := randomRaws(rnd, m, 300)
				compact := program.BuildSnapshot(m, raws)
				decoded := &program.MapSnapshot{Map: m, Entries: compact.Decoded()}
				rnd.Shuffle(len(decoded.Entries), func(i, j int) {
					decoded.Entries[i], decoded.Entries[j] = decoded.Entries[j], decoded.Entries[i]
				})
				for _, pr := range []struct {
					name string
					new  func(w *bytes.Buffer) Printer
				}{
					{"text", func(w *bytes.Buffer) Printer { return NewText(w) }},
					{"json", func(w *bytes.Buffer) Printer { return NewJSON(w) }},
				} {
					for _, td := range [][2]int{{0, 1}, {5, 3}} {
						var a, b bytes.Buffer
						pa, pb := pr.new(&a), pr.new(&b)
						pa.Map(compact, td[0], td[1])
						forceDecoded = true
						pb.Map(decoded, td[0], td[1])
						forceDecoded = false
						pa.Flush()
						pb.Flush()
						if a.String() != b.String() {
							t.Errorf("%s %v signed=%v %s top=%d div=%d: compact\n%s\ndecoded\n%s", name, agg, signed, pr.name, td[0], td[1], a.String(), b.String())
						}
					}
				}
			}
		}
	}
}

// randomRaws makes n distinct raw elements of m over 2 CPUs, from small
// ranges so that values and key prefixes tie often.
func randomRaws(rnd *rand.Rand, m *program.Map, n int) []program.RawEntry {
	seen := map[string]bool{}
	var raws []program.RawEntry
	for tries := 0; len(raws) < n && tries < 10*n; tries++ {
		var key []byte
		for _, t := range m.Keys {
			key = appendRandom(rnd, key, t)
		}
		if len(m.Keys) == 0 {
			key = make([]byte, 8) // a map without subscript has one zero key
		}
		if m.Agg == program.Hist || m.Agg == program.Lhist {
			key = binary.LittleEndian.AppendUint64(key, uint64(rnd.Intn(12)))
		}
		if seen[string(key)] {
			continue
		}
		seen[string(key)] = true
		e := program.RawEntry{Key: key}
		for range 2 {
			var v []byte
			switch m.Agg {
			case program.Plain:
				if m.Value.Kind == program.String {
					v = appendRandom(rnd, nil, m.Value)
				} else {
					v = binary.LittleEndian.AppendUint64(nil, uint64(rnd.Intn(7)-3))
				}
			case program.Min, program.Max, program.Avg, program.Stats:
				v = binary.LittleEndian.AppendUint64(nil, uint64(rnd.Intn(9)-4))
				v = binary.LittleEndian.AppendUint64(v, uint64(rnd.Intn(3)))
			default:
				v = binary.LittleEndian.AppendUint64(nil, uint64(rnd.Intn(4)))
			}
			e.Vals = append(e.Vals, v)
		}
		raws = append(raws, e)
	}
	return raws
}

func appendRandom(rnd *rand.Rand, b []byte, t program.Type) []byte {
	switch t.Kind {
	case program.Int:
		x := uint64(rnd.Intn(5)) - 2 // -2..2: both signs, sign extension
		if rnd.Intn(4) == 0 {
			x = uint64(rnd.Intn(1000))
		}
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], x)
		return append(b, w[:t.Size]...)
	case program.String:
		s := []byte(fmt.Sprintf("%.*s", rnd.Intn(t.Size), []string{"a", "ab", "b", "abc", "", "ba"}[rnd.Intn(6)]))
		s = append(s, make([]byte, t.Size-len(s))...)
		return append(b, s...)
	case program.Tuple:
		start := len(b)
		b = append(b, make([]byte, t.Size)...)
		for i, et := range t.Elems {
			copy(b[start+t.Offs[i]:], appendRandom(rnd, nil, et))
		}
		return b
	}
	panic(t.Kind)
}

// BenchmarkPrintMap prints a count map of 10^4 to 10^6 integer keys, as
// at exit: the order bpftrace prints (by count, then by key) and the
// text, from a snapshot already read (bpf's BenchmarkSnapshot reads it).
func BenchmarkPrintMap(b *testing.B) {
	m := &program.Map{Name: "@", Keys: []program.Type{tU64}, Agg: program.Count, Value: tU64}
	for _, n := range []int{10000, 100000, 1000000} {
		sb := program.NewSnapshotBuilder(m, n)
		rnd := rand.New(rand.NewSource(1))
		vals := [][]byte{make([]byte, 8), make([]byte, 8)}
		for _, k := range rnd.Perm(n) {
			binary.LittleEndian.PutUint64(vals[0], uint64(1+k%3))
			sb.Add(binary.LittleEndian.AppendUint64(nil, uint64(k)), vals)
		}
		snap := sb.Snapshot()
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				pr := NewText(io.Discard)
				pr.Map(snap, 0, 1)
				pr.Flush()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/key")
		})
	}
}
