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
		// %f is bpftrace's, in strftime() only: libc prints it as written.
		{a, "%H:%M:%S.%f", "03:04:05.%f"},
		{a, "trailing %", "trailing %"},
	}
	for _, tc := range tests {
		if got := Strftime(tc.format, tc.at); got != tc.want {
			t.Errorf("Strftime(%q) = %q, want %q", tc.format, got, tc.want)
		}
	}
}

// TestTimestamp: strftime() values replace every %f textually before libc
// sees the format, and fail as libc does into bpftrace's 64-byte buffer:
// "(?)" for a result of 64 bytes or more, or an empty one (recorded from
// bpftrace 0.17).
func TestTimestamp(t *testing.T) {
	at := time.Date(2026, 11, 5, 3, 4, 5, 678901234, time.FixedZone("GMT", 0))
	tests := []struct {
		format, want string
		ok           bool
	}{
		{"%H:%M:%S.%f", "03:04:05.678901", true},
		{"%%%f", "%678901", true},
		{"%c%c%Y%Y%Yabc", "Thu Nov  5 03:04:05 2026Thu Nov  5 03:04:05 2026202620262026abc", true},
		{"%c%c%Y%Y%Yabcd", "(?)", false},
		{"%c%c%Y%Y%Y%f", "(?)", false},
		{"", "(?)", false},
	}
	for _, tc := range tests {
		if got, ok := Timestamp(tc.format, at); got != tc.want || ok != tc.ok {
			t.Errorf("Timestamp(%q) = %q, %v; want %q, %v", tc.format, got, ok, tc.want, tc.ok)
		}
	}
	if got, ok := Time("%f|%Y", at); got != "%f|2026" || !ok {
		t.Errorf("Time(%%f|%%Y) = %q, %v; want %%f|2026: time() has no %%f", got, ok)
	}
	if _, ok := Time("%c%c%Y%Y%Yabcd", at); ok {
		t.Errorf("Time of a 64-byte result succeeded; libc fails into bpftrace's buffer")
	}
}
