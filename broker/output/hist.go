package output

import "strconv"

// barWidth is the width of bpftrace's histogram bars.
const barWidth = 52

// histRange is bpftrace's hist_prepare: the first and last bucket with a
// positive count and the largest count. bpftrace reads counts into a C
// int here, so a count is truncated to 32 bits for these decisions (but
// printed whole).
func histRange(b []uint64) (lo, hi int, max int32) {
	lo, hi = -1, -1
	for i, c := range b {
		v := int32(c)
		if v > 0 {
			if lo == -1 {
				lo = i
			}
			hi = i
		}
		if v > max {
			max = v
		}
	}
	return lo, hi, max
}

// lhistRange is bpftrace's lhist_prepare: rows run from the first to the
// last positive bucket among the n+2 buckets; none when every count is 0.
func lhistRange(b []uint64, min, max, step int64) (lo, hi int, maxCount int32, n int64, ok bool) {
	if step != 0 {
		n = (max - min) / step
	}
	found := false
	for _, c := range b {
		v := int32(c)
		if v != 0 {
			found = true
		}
		if v > maxCount {
			maxCount = v
		}
	}
	if !found {
		return 0, 0, 0, n, false
	}
	lo, hi = -1, 0
	for i := int64(0); i <= n+1 && i < int64(len(b)); i++ {
		if b[i] > 0 {
			if lo == -1 {
				lo = int(i)
			}
			hi = int(i)
		}
	}
	if lo == -1 {
		lo = 0
	}
	return lo, hi, maxCount, n, true
}

// bar computes the bar length in C float arithmetic, as bpftrace's
// `int bar_width = values.at(i)/(float)max_value*max_width` does: the
// float32 rounding decides some lengths. Only a count of 2^31 or more,
// which the 32-bit maximum misjudges, could exceed the full width (and
// crash bpftrace); such bars are cut to the full width.
func bar(count uint64, max int32) int {
	if max <= 0 {
		return 0
	}
	w := float32(count) / float32(max) * float32(barWidth)
	if w >= barWidth {
		return barWidth
	}
	if w < 0 {
		return 0
	}
	return int(w)
}

// histLabel is bpftrace's hist_index_label: 2^power with a K/M/G/T suffix.
func histLabel(power int) string {
	suffix := ""
	switch {
	case power >= 40:
		suffix, power = "T", power-40
	case power >= 30:
		suffix, power = "G", power-30
	case power >= 20:
		suffix, power = "M", power-20
	case power >= 10:
		suffix, power = "K", power-10
	}
	return strconv.FormatInt(int64(1)<<uint(power&63), 10) + suffix
}

// lhistLabel is bpftrace's lhist_index_label: exact multiples of 1M or 1K
// get a suffix.
func lhistLabel(n int64) string {
	const kilo, mega = 1024, 1048576
	switch {
	case n == 0:
		return "0"
	case n%mega == 0:
		return strconv.FormatInt(n/mega, 10) + "M"
	case n%kilo == 0:
		return strconv.FormatInt(n/kilo, 10) + "K"
	}
	return strconv.FormatInt(n, 10)
}

// histBounds gives the JSON min and max of hist bucket i >= 3. bpftrace
// 0.17 computes them as C ints (`1 << (i - 2)`), so from 2^31 on they wrap
// as x86 shifts do: bucket 33, where every value >= 2^31 lands, reads
// "min": -2147483648, "max": 0.
func histBounds(i int) (lo, hi int64) {
	shl := func(n int) int32 { return int32(uint32(1) << uint(n&31)) }
	return int64(shl(i - 2)), int64(shl(i-1) - 1)
}

// textHistRow appends one bar chart row: label left in 16 columns, count
// right in 8, then the bar padded to 52.
func textHistRow(b []byte, label string, count uint64, width int) []byte {
	b = append(b, label...)
	for i := len(label); i < 16; i++ {
		b = append(b, ' ')
	}
	c := strconv.FormatUint(count, 10)
	for i := len(c); i < 8; i++ {
		b = append(b, ' ')
	}
	b = append(b, c...)
	b = append(b, " |"...)
	for i := 0; i < width; i++ {
		b = append(b, '@')
	}
	for i := width; i < barWidth; i++ {
		b = append(b, ' ')
	}
	return append(b, "|\n"...)
}
