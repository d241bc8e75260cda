package output

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// strftimeBuf is the buffer bpftrace 0.17 formats a time into (STRLEN,
// 64 bytes with the NUL). libc's strftime returns 0 when the result does
// not fit, or is empty, and bpftrace then logs StrftimeFailed and prints
// "(?)" for a strftime() value, nothing for time().
const strftimeBuf = 64

// StrftimeFailed is the error bpftrace logs when libc's strftime fails.
const StrftimeFailed = "ERROR: strftime returned 0"

// Timestamp formats a strftime() value as bpftrace 0.17 does: each "%f" is
// first replaced by the microseconds, 6 digits (a plain text substitution,
// as bpftrace's regex_replace, so "%%f" is replaced too), then libc formats
// the rest. ok is false where libc's strftime fails; the text is "(?)".
func Timestamp(format string, t time.Time) (string, bool) {
	format = strings.ReplaceAll(format, "%f", fmt.Sprintf("%06d", t.Nanosecond()/1000))
	if s, ok := Time(format, t); ok {
		return s, true
	}
	return "(?)", false
}

// Time formats time()'s format: libc's strftime alone (%f is not a
// conversion there). ok is false where it fails; nothing is printed then.
func Time(format string, t time.Time) (string, bool) {
	s := Strftime(format, t)
	return s, s != "" && len(s) < strftimeBuf
}

// Strftime formats t as the C library's strftime does in the C locale.
// bpftrace hands strftime() and time() formats to libc, so scripts use
// C's conversions, not Go's layouts. An unknown conversion is printed as
// written.
func Strftime(format string, t time.Time) string {
	var b []byte
	pad := func(v, width int) {
		s := strconv.Itoa(v)
		for i := len(s); i < width; i++ {
			b = append(b, '0')
		}
		b = append(b, s...)
	}
	space := func(v int) {
		if v < 10 {
			b = append(b, ' ')
		}
		b = strconv.AppendInt(b, int64(v), 10)
	}
	hour12 := func() int {
		h := t.Hour() % 12
		if h == 0 {
			h = 12
		}
		return h
	}
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 == len(format) {
			b = append(b, c)
			continue
		}
		i++
		switch format[i] {
		case '%':
			b = append(b, '%')
		case 'a':
			b = append(b, t.Weekday().String()[:3]...)
		case 'A':
			b = append(b, t.Weekday().String()...)
		case 'b', 'h':
			b = append(b, t.Month().String()[:3]...)
		case 'B':
			b = append(b, t.Month().String()...)
		case 'c':
			b = append(b, Strftime("%a %b %e %H:%M:%S %Y", t)...)
		case 'C':
			pad(t.Year()/100, 2)
		case 'd':
			pad(t.Day(), 2)
		case 'D':
			b = append(b, Strftime("%m/%d/%y", t)...)
		case 'e':
			space(t.Day())
		case 'F':
			b = append(b, Strftime("%Y-%m-%d", t)...)
		case 'g':
			y, _ := t.ISOWeek()
			pad(y%100, 2)
		case 'G':
			y, _ := t.ISOWeek()
			b = strconv.AppendInt(b, int64(y), 10)
		case 'H':
			pad(t.Hour(), 2)
		case 'I':
			pad(hour12(), 2)
		case 'j':
			pad(t.YearDay(), 3)
		case 'k':
			space(t.Hour())
		case 'l':
			space(hour12())
		case 'm':
			pad(int(t.Month()), 2)
		case 'M':
			pad(t.Minute(), 2)
		case 'n':
			b = append(b, '\n')
		case 'p':
			if t.Hour() < 12 {
				b = append(b, "AM"...)
			} else {
				b = append(b, "PM"...)
			}
		case 'P':
			if t.Hour() < 12 {
				b = append(b, "am"...)
			} else {
				b = append(b, "pm"...)
			}
		case 'r':
			b = append(b, Strftime("%I:%M:%S %p", t)...)
		case 'R':
			b = append(b, Strftime("%H:%M", t)...)
		case 's':
			b = strconv.AppendInt(b, t.Unix(), 10)
		case 'S':
			pad(t.Second(), 2)
		case 't':
			b = append(b, '\t')
		case 'T', 'X':
			b = append(b, Strftime("%H:%M:%S", t)...)
		case 'u':
			wd := int(t.Weekday())
			if wd == 0 {
				wd = 7
			}
			b = strconv.AppendInt(b, int64(wd), 10)
		case 'U':
			pad((t.YearDay()+6-int(t.Weekday()))/7, 2)
		case 'V':
			_, w := t.ISOWeek()
			pad(w, 2)
		case 'w':
			b = strconv.AppendInt(b, int64(t.Weekday()), 10)
		case 'W':
			pad((t.YearDay()+6-(int(t.Weekday())+6)%7)/7, 2)
		case 'x':
			b = append(b, Strftime("%m/%d/%y", t)...)
		case 'y':
			pad(t.Year()%100, 2)
		case 'Y':
			b = strconv.AppendInt(b, int64(t.Year()), 10)
		case 'z':
			_, off := t.Zone()
			sign := byte('+')
			if off < 0 {
				sign, off = '-', -off
			}
			b = append(b, sign)
			pad(off/3600, 2)
			pad(off%3600/60, 2)
		case 'Z':
			name, _ := t.Zone()
			b = append(b, name...)
		default:
			b = append(b, '%', format[i])
		}
	}
	return string(b)
}
