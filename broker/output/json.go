package output

import (
	"strconv"
	"unicode/utf8"

	"github.com/tracebroker/tracebroker/broker/program"
)

type jsonFormat struct{}

func (jsonFormat) attachedProbes(b []byte, n int) []byte {
	b = append(b, `{"type": "attached_probes", "data": {"probes": `...)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, "}}\n"...)
}

func (jsonFormat) printf(b []byte, text string) []byte {
	b = append(b, `{"type": "printf", "data": "`...)
	b = jsonEscape(b, text)
	return append(b, "\"}\n"...)
}

// value is print(VALUE)'s event: {"type": "value", "data": 5}.
func (jsonFormat) value(b []byte, _ string, v program.Value) []byte {
	b = append(b, `{"type": "value", "data": `...)
	b = jsonValue(b, v)
	return append(b, "}\n"...)
}

func (jsonFormat) message(b []byte, typ, text string) []byte {
	b = append(b, `{"type": "`...)
	b = append(b, typ...)
	b = append(b, `", "data": "`...)
	b = jsonEscape(b, text)
	return append(b, "\"}\n"...)
}

func (jsonFormat) lost(b []byte, n uint64) []byte {
	b = append(b, `{"type": "lost_events", "data": {"events": `...)
	b = strconv.AppendUint(b, n, 10)
	return append(b, "}}\n"...)
}

// mapSnap prints nothing for an empty map. avg maps are reported with type
// "stats", lhist maps with type "hist".
func (jsonFormat) mapSnap(b []byte, snap *program.MapSnapshot, top, div int, spill func([]byte) []byte) []byte {
	if snap == nil || snap.Map == nil {
		return b
	}
	snap = printable(snap)
	if snap.Len() == 0 {
		return b
	}
	m := snap.Map
	if div <= 0 {
		div = 1
	}
	typ := "map"
	switch m.Agg {
	case program.Hist, program.Lhist:
		typ = "hist"
	case program.Avg, program.Stats:
		typ = "stats"
	}
	b = append(b, `{"type": "`...)
	b = append(b, typ...)
	b = append(b, `", "data": {"`...)
	b = jsonEscape(b, m.Name)
	b = append(b, `": `...)
	order := ordered(snap, top)
	var e program.MapEntry
	keyed := len(m.Keys) > 0
	if !keyed && snap.Entries != nil {
		for _, i := range order {
			// Keep the JSON well-formed if the schema and the entries disagree.
			keyed = keyed || len(snap.Entries[i].Keys) > 0
		}
	}
	if keyed {
		b = append(b, '{')
	}
	for n, i := range order {
		if n > 0 {
			b = append(b, ", "...)
			b = spill(b)
		}
		snap.Entry(int(i), &e)
		if len(e.Keys) > 0 {
			b = jsonKey(b, e.Keys)
			b = append(b, ": "...)
		}
		switch m.Agg {
		case program.Hist:
			b = jsonHist(b, e.Buckets, div)
		case program.Lhist:
			b = jsonLhist(b, e.Buckets, m.Min, m.Max, m.Step)
		case program.Stats:
			b = append(b, `{"count": `...)
			b = strconv.AppendInt(b, int64(e.Count), 10)
			b = append(b, `, "average": `...)
			b = strconv.AppendInt(b, average(e.Total, e.Count), 10)
			b = append(b, `, "total": `...)
			b = strconv.AppendInt(b, e.Total, 10)
			b = append(b, '}')
		case program.Avg:
			b = strconv.AppendInt(b, average(e.Total, e.Count)/int64(div), 10)
		default:
			if e.Value.Type.Kind == program.Int {
				b = appendInt(b, e.Value, m.Agg == program.Count, div)
			} else {
				b = jsonValue(b, e.Value)
			}
		}
	}
	if keyed {
		b = append(b, '}')
	}
	return append(b, "}}\n"...)
}

// jsonKey renders the keys as one JSON string: the elements as text
// prints them, joined by "," without a space.
func jsonKey(b []byte, keys []program.Value) []byte {
	b = append(b, '"')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		switch k.Type.Kind {
		case program.Int:
			b = appendKey(b, k)
		case program.String:
			b = jsonEscape(b, k.Str)
		default:
			b = jsonEscape(b, k.String())
		}
	}
	return append(b, '"')
}

// jsonValue renders integers bare, strings quoted and tuples as arrays
// without spaces.
func jsonValue(b []byte, v program.Value) []byte {
	switch v.Type.Kind {
	case program.Int:
		return append(b, v.Decimal()...)
	case program.String:
		b = append(b, '"')
		b = jsonEscape(b, v.Str)
		return append(b, '"')
	case program.Tuple, program.Array:
		b = append(b, '[')
		for i, e := range v.Elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonValue(b, e)
		}
		return append(b, ']')
	case program.Record:
		// As bpftrace: { "weight": 1048576, "inv_weight": 4194304 }.
		b = append(b, "{ "...)
		for i, e := range v.Elems {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = append(b, '"')
			b = jsonEscape(b, v.Type.Names[i])
			b = append(b, `": `...)
			b = jsonValue(b, e)
		}
		return append(b, " }"...)
	default:
		// Symbols, stacks, names, addresses, times, buffers: their text,
		// stacks indented as a value's are.
		b = append(b, '"')
		b = jsonEscape(b, v.ValueString())
		return append(b, '"')
	}
}

func jsonHist(b []byte, buckets []uint64, div int) []byte {
	lo, hi, _ := histRange(buckets)
	if hi == -1 {
		return append(b, "[]"...)
	}
	b = append(b, '[')
	for i := lo; i <= hi; i++ {
		if i > lo {
			b = append(b, ", "...)
		}
		b = append(b, '{')
		switch i {
		case 0:
			b = append(b, `"max": -1, `...)
		case 1:
			b = append(b, `"min": 0, "max": 0, `...)
		case 2:
			b = append(b, `"min": 1, "max": 1, `...)
		default:
			l, h := histBounds(i)
			b = append(b, `"min": `...)
			b = strconv.AppendInt(b, l, 10)
			b = append(b, `, "max": `...)
			b = strconv.AppendInt(b, h, 10)
			b = append(b, ", "...)
		}
		b = append(b, `"count": `...)
		b = strconv.AppendUint(b, buckets[i]/uint64(div), 10)
		b = append(b, '}')
	}
	return append(b, ']')
}

func jsonLhist(b []byte, buckets []uint64, min, max, step int64) []byte {
	lo, hi, _, n, ok := lhistRange(buckets, min, max, step)
	if !ok {
		return append(b, "[]"...)
	}
	b = append(b, '[')
	for i := lo; i <= hi; i++ {
		if i > lo {
			b = append(b, ", "...)
		}
		b = append(b, '{')
		switch int64(i) {
		case 0:
			b = append(b, `"max": `...)
			b = strconv.AppendInt(b, min-1, 10)
			b = append(b, ", "...)
		case n + 1:
			b = append(b, `"min": `...)
			b = strconv.AppendInt(b, max, 10)
			b = append(b, ", "...)
		default:
			b = append(b, `"min": `...)
			b = strconv.AppendInt(b, int64(i-1)*step+min, 10)
			b = append(b, `, "max": `...)
			b = strconv.AppendInt(b, int64(i)*step+min-1, 10)
			b = append(b, ", "...)
		}
		var c uint64
		if i < len(buckets) {
			c = buckets[i]
		}
		b = append(b, `"count": `...)
		b = strconv.AppendUint(b, c, 10)
		b = append(b, '}')
	}
	return append(b, ']')
}

// jsonEscape is bpftrace's json_escape where that gives valid JSON:
// `\"`, `\\`, `\n`, `\r`, `\t`, other control characters as `\u00XX`,
// DEL raw. bpftrace 0.17 also "escapes" every byte >= 0x80 as the
// sign-extended C char it tests (é, c3 a9, becomes \uffffffc3\uffffffa9),
// which no JSON parser takes. Here UTF-8 is written as it is, which JSON
// allows, and each byte that is not UTF-8 becomes U+FFFD, as
// encoding/json and most JSON writers do: a traced string is bytes that
// JSON cannot carry, and the replacement says so where a code point
// chosen for the byte (\u00XX) would pass for a character it is not —
// U+009B, a terminal's CSI, among them. Text output keeps the bytes.
func jsonEscape(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch {
		case c == '"':
			b = append(b, `\"`...)
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '\r':
			b = append(b, `\r`...)
		case c == '\t':
			b = append(b, `\t`...)
		case c <= 0x1f:
			b = append(b, `\u00`...)
			b = append(b, hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
		i++
	}
	return b
}
