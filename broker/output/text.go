package output

import (
	"strconv"
	"strings"

	"github.com/tracebroker/tracebroker/broker/program"
)

type textFormat struct{}

func (textFormat) attachedProbes(b []byte, n int) []byte {
	b = append(b, "Attaching "...)
	b = strconv.AppendInt(b, int64(n), 10)
	if n == 1 {
		return append(b, " probe...\n"...)
	}
	return append(b, " probes...\n"...)
}

func (textFormat) printf(b []byte, text string) []byte { return append(b, text...) }

func (textFormat) value(b []byte, text string, _ program.Value) []byte { return append(b, text...) }

// message: join() ends its line, time() prints its format as it is.
func (textFormat) message(b []byte, typ, text string) []byte {
	b = append(b, text...)
	if typ == "join" {
		b = append(b, '\n')
	}
	return b
}

// lost has no singular form in bpftrace: "Lost 1 events".
func (textFormat) lost(b []byte, n uint64) []byte {
	b = append(b, "Lost "...)
	b = strconv.AppendUint(b, n, 10)
	return append(b, " events\n"...)
}

// mapSnap prints entries joined by "\n" and then one more "\n" (two for
// avg and stats), so an empty map still prints a blank line and each
// histogram is followed by a blank line.
func (textFormat) mapSnap(b []byte, snap *program.MapSnapshot, top, div int, spill func([]byte) []byte) []byte {
	if snap == nil || snap.Map == nil {
		return b
	}
	snap = printable(snap)
	m := snap.Map
	if div <= 0 {
		div = 1
	}
	var e program.MapEntry
	for n, i := range ordered(snap, top) {
		if n > 0 {
			b = append(b, '\n')
			b = spill(b)
		}
		snap.Entry(int(i), &e)
		b = textKey(b, m, e.Keys)
		b = append(b, ": "...)
		switch m.Agg {
		case program.Hist:
			b = append(b, '\n')
			b = textHist(b, e.Buckets, div)
		case program.Lhist:
			// lhist ignores div in bpftrace 0.17.
			b = append(b, '\n')
			b = textLhist(b, e.Buckets, m.Min, m.Max, m.Step)
		case program.Stats:
			b = append(b, "count "...)
			b = strconv.AppendInt(b, int64(e.Count), 10)
			b = append(b, ", average "...)
			b = strconv.AppendInt(b, average(e.Total, e.Count), 10)
			b = append(b, ", total "...)
			b = strconv.AppendInt(b, e.Total, 10)
		case program.Avg:
			b = strconv.AppendInt(b, average(e.Total, e.Count)/int64(div), 10)
		default:
			b = textValue(b, m, e.Value, div)
		}
	}
	b = append(b, '\n')
	if m.Agg == program.Avg || m.Agg == program.Stats {
		b = append(b, '\n')
	}
	return b
}

// textKey renders "@name[k1, k2]": strings bare, tuples parenthesised.
func textKey(b []byte, m *program.Map, keys []program.Value) []byte {
	b = append(b, m.Name...)
	if len(m.Keys) == 0 && len(keys) == 0 {
		return b
	}
	b = append(b, '[')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendKey(b, k)
	}
	return append(b, ']')
}

// appendKey is append(b, k.String()...) without the string for the
// kinds most keys are.
func appendKey(b []byte, k program.Value) []byte {
	switch {
	case k.Type.Kind == program.Int && !k.Type.Pointer:
		if k.Type.Signed {
			return strconv.AppendInt(b, int64(k.Int), 10)
		}
		return strconv.AppendUint(b, k.Int, 10)
	case k.Type.Kind == program.String:
		return append(b, k.Str...)
	}
	return append(b, k.String()...)
}

func textValue(b []byte, m *program.Map, v program.Value, div int) []byte {
	if v.Type.Kind == program.Int {
		return appendInt(b, v, m.Agg == program.Count, div)
	}
	return append(b, v.ValueString()...)
}

func textHist(b []byte, buckets []uint64, div int) []byte {
	lo, hi, max := histRange(buckets)
	if hi == -1 {
		return b
	}
	for i := lo; i <= hi; i++ {
		var label string
		switch i {
		case 0:
			label = "(..., 0)"
		case 1:
			label = "[0]"
		case 2:
			label = "[1]"
		default:
			label = "[" + histLabel(i-2) + ", " + histLabel(i-1) + ")"
		}
		// The count is divided, the bar is not.
		b = textHistRow(b, label, buckets[i]/uint64(div), bar(buckets[i], max))
	}
	return b
}

func textLhist(b []byte, buckets []uint64, min, max, step int64) []byte {
	lo, hi, maxCount, n, ok := lhistRange(buckets, min, max, step)
	if !ok {
		return b
	}
	for i := lo; i <= hi; i++ {
		var label string
		switch int64(i) {
		case 0:
			label = "(..., " + lhistLabel(min) + ")"
		case n + 1:
			label = "[" + lhistLabel(max) + ", ...)"
		default:
			var sb strings.Builder
			sb.WriteString("[")
			sb.WriteString(lhistLabel(int64(i-1)*step + min))
			sb.WriteString(", ")
			sb.WriteString(lhistLabel(int64(i)*step + min))
			sb.WriteString(")")
			label = sb.String()
		}
		var c uint64
		if i < len(buckets) {
			c = buckets[i]
		}
		b = textHistRow(b, label, c, bar(c, maxCount))
	}
	return b
}
