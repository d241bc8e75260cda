package main

import (
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The pure part of the tool: medians, reading the tools' status lines,
// comparing outputs, laying out tables. Tested without root.

// median is the middle value (the lower middle of an even count), or
// the zero value of none.
func median[T int64 | uint64 | int | float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// attachingCount reads bpftrace's "Attaching N probes..." (or "Attaching
// 1 probe..."): N, and whether line is one.
func attachingCount(line string) (int, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Attaching ")
	if !ok {
		return 0, false
	}
	num, tail, ok := strings.Cut(rest, " ")
	if !ok || (tail != "probes..." && tail != "probe...") {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// lostCount reads "Lost N events" (both tools say "events" even for 1).
func lostCount(line string) (uint64, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Lost ")
	if !ok {
		return 0, false
	}
	num, ok := strings.CutSuffix(rest, " events")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// scanStatus sums what the lines of an output say about the run: the
// first "Attaching N probes" (-1 if none) and all "Lost N events".
func scanStatus(text string) (attaching int, lost uint64) {
	attaching = -1
	for _, l := range strings.Split(text, "\n") {
		if n, ok := lostCount(l); ok {
			lost += n
		} else if n, ok := attachingCount(l); ok && attaching < 0 {
			attaching = n
		}
	}
	return attaching, lost
}

// mapLine reads one line of a map of integer keys and values as both
// tools print it, "@[42]: 1" or "@name[42]: 1".
func mapLine(line string) (key, value int64, ok bool) {
	if !strings.HasPrefix(line, "@") {
		return 0, 0, false
	}
	open := strings.IndexByte(line, '[')
	end := strings.Index(line, "]: ")
	if open < 0 || end < open {
		return 0, 0, false
	}
	k, err1 := strconv.ParseInt(line[open+1:end], 10, 64)
	v, err2 := strconv.ParseInt(line[end+3:], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return k, v, true
}

// keysCheck says how an output's map lines differ from the expected map
// @[k]: 1 for k in 1..n: the map lines, and the keys missing, repeated,
// out of range or with another count.
type keysCheck struct {
	lines, missing, repeated, outside, wrongCount int
}

func (k keysCheck) ok(n int) bool {
	return k.lines == n && k.missing == 0 && k.repeated == 0 && k.outside == 0 && k.wrongCount == 0
}

func (k keysCheck) String() string {
	return fmt.Sprintf("%d map lines, %d keys missing, %d repeated, %d out of range, %d with a count other than 1",
		k.lines, k.missing, k.repeated, k.outside, k.wrongCount)
}

// keyChecker checks map lines one at a time, against @[k]: 1 for k in
// 1..n.
type keyChecker struct {
	n    int
	seen []bool
	c    keysCheck
}

func newKeyChecker(n int) *keyChecker { return &keyChecker{n: n, seen: make([]bool, n+1)} }

func (kc *keyChecker) add(line string) {
	k, v, ok := mapLine(line)
	if !ok {
		return
	}
	kc.c.lines++
	switch {
	case k < 1 || k > int64(kc.n):
		kc.c.outside++
		return
	case kc.seen[k]:
		kc.c.repeated++
	}
	kc.seen[k] = true
	if v != 1 {
		kc.c.wrongCount++
	}
}

func (kc *keyChecker) result() keysCheck {
	c := kc.c
	for _, s := range kc.seen[1:] {
		if !s {
			c.missing++
		}
	}
	return c
}

// lineDigest is an output as a multiset of its lines, in a few bytes:
// the count and the sum of a hash of each line that compareOutputs
// compares, so that two outputs in different orders (bpftrace prints
// equal counts in hash order) compare equal without being held.
type lineDigest struct {
	lines int
	sum   uint64
}

func (d *lineDigest) add(line string) {
	if !comparableLine(line) {
		return
	}
	h := fnv.New64a()
	h.Write([]byte(line))
	d.lines++
	d.sum += h.Sum64()
}

// outputDiff compares two outputs as multisets of lines (sorted, since
// bpftrace prints equal counts in hash order); status lines ("Lost N
// events") and blank lines are left out, since they say how the run
// went, not what was traced.
type outputDiff struct {
	onlyA, onlyB   int
	firstA, firstB string // the first line of each that the other lacks
}

func (d outputDiff) same() bool { return d.onlyA == 0 && d.onlyB == 0 }

func comparableLine(l string) bool {
	_, lost := lostCount(l)
	return !lost && strings.TrimSpace(l) != ""
}

func comparable(lines []string) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		if comparableLine(l) {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

func compareOutputs(a, b []string) outputDiff {
	sa, sb := comparable(a), comparable(b)
	var d outputDiff
	i, j := 0, 0
	for i < len(sa) || j < len(sb) {
		switch {
		case j == len(sb) || (i < len(sa) && sa[i] < sb[j]):
			if d.onlyA == 0 {
				d.firstA = sa[i]
			}
			d.onlyA++
			i++
		case i == len(sa) || sb[j] < sa[i]:
			if d.onlyB == 0 {
				d.firstB = sb[j]
			}
			d.onlyB++
			j++
		default:
			i++
			j++
		}
	}
	return d
}

// ratio formats a/b as "0.123x", or "-" where there is no b.
func ratio(a, b float64) string {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return "-"
	}
	return fmt.Sprintf("%.3fx", a/b)
}

// goal says whether a ratio meets "at most limit".
func goal(a, b, limit float64) string {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return "-"
	}
	if a/b <= limit {
		return fmt.Sprintf("met (<= %.2fx)", limit)
	}
	return fmt.Sprintf("NOT met (<= %.2fx)", limit)
}

// table lays rows out in columns, the first row a header, each column as
// wide as its widest cell; numbers are not aligned to the right, to keep
// it simple to read in a terminal and in a diff.
func table(rows [][]string) string {
	var w []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(w) {
				w = append(w, 0)
			}
			w[i] = max(w[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	for ri, r := range rows {
		for i, c := range r {
			if i == len(r)-1 {
				b.WriteString(c)
				break
			}
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", w[i]-len([]rune(c))+2))
		}
		b.WriteByte('\n')
		if ri == 0 {
			total := 0
			for _, x := range w {
				total += x + 2
			}
			b.WriteString(strings.Repeat("-", total-2))
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// ms formats a duration in milliseconds, to 0.1 ms.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// secs formats a longer duration in seconds, to the millisecond.
func secs(d time.Duration) string {
	return fmt.Sprintf("%.3f s", d.Seconds())
}

// mib formats KiB (rusage's unit) as MiB.
func mib(kib int64) string {
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

// parseInts reads a comma-separated list of positive integers; "1e6"
// and "10^6" are accepted for sizes.
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		var n int
		if base, exp, ok := strings.Cut(f, "^"); ok {
			b, err1 := strconv.Atoi(base)
			e, err2 := strconv.Atoi(exp)
			if err1 != nil || err2 != nil || e < 0 || e > 18 {
				return nil, fmt.Errorf("bad size %q", f)
			}
			n = 1
			for range e {
				n *= b
			}
		} else if x, err := strconv.ParseFloat(f, 64); err == nil && x == math.Trunc(x) && x < 1e15 {
			n = int(x)
		} else {
			return nil, fmt.Errorf("bad size %q", f)
		}
		if n <= 0 {
			return nil, fmt.Errorf("bad size %q: must be positive", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// mapValue reads the value of a map line "@[anything]: N".
func mapValue(l string) (int64, bool) {
	if !strings.HasPrefix(l, "@") {
		return 0, false
	}
	i := strings.LastIndex(l, "]: ")
	if i < 0 {
		return 0, false
	}
	v, err := strconv.ParseInt(l[i+3:], 10, 64)
	return v, err == nil
}
