package output

import (
	"testing"
	"time"
)

// TestStrftime checks every conversion against glibc's strftime (the
// expectations were printed by Python's time.strftime, which calls it).
func TestStrftime(t *testing.T) {
	gmt := time.FixedZone("GMT", 0)
	a := time.Date(2026, 11, 5, 3, 4, 5, 678901234, gmt)
	b := time.Date(2027, 1, 3, 15, 0, 9, 0, gmt)
	tests := []struct {
		at     time.Time
		format string
		want   string
	}{
		{a, "%a %A %b %B %C %d %D %e %F %g %G %H %I %j %k %l %m %M %p %P %r %R %s %S %T %u %U %V %w %W %x %X %y %Y %z %Z %%",
			"Thu Thursday Nov November 20 05 11/05/26  5 2026-11-05 26 2026 03 03 309  3  3 11 04 AM am 03:04:05 AM 03:04 1793847845 05 03:04:05 4 44 45 4 44 11/05/26 03:04:05 26 2026 +0000 GMT %"},
		{a, "%c", "Thu Nov  5 03:04:05 2026"},
		{a, "%h|%n|%t|%q", "Nov|\n|\t|%q"},
		{b, "%U %V %W %g %G %I %l %p %j %u %w %e", "01 53 00 26 2026 03  3 PM 003 7 0  3"},
		// bpftrace's extension: microseconds.
		{a, "%H:%M:%S.%f", "03:04:05.678901"},
		{a, "trailing %", "trailing %"},
	}
	for _, tc := range tests {
		if got := Strftime(tc.format, tc.at); got != tc.want {
			t.Errorf("Strftime(%q) = %q, want %q", tc.format, got, tc.want)
		}
	}
}
