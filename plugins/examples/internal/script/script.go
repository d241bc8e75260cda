// Package script holds what the example generators share to turn
// parameters into script text: a parameter is data, and must never become
// code, whatever bytes it holds.
package script

import (
	"fmt"
	"strings"
)

const (
	// CommLen is the longest comm the kernel keeps (TASK_COMM_LEN less
	// its NUL): a longer one could never match `comm == "..."`.
	CommLen = 15
	// StrLen is the most bytes str() reads (bpftrace's 64 with the NUL):
	// a longer prefix could never match what str() returns.
	StrLen = 63
	// PIDMax is the kernel's PID_MAX_LIMIT on 64-bit machines: no process
	// has a larger pid.
	PIDMax = 1 << 22
)

// Quote returns s as a string literal of the script language. A quote or
// a backslash is escaped so it cannot end the literal or escape what
// follows it, and every byte outside printable ASCII is spelled \xNN, so
// a newline or a control character cannot break the script's lines. The
// scanner reads at most two hex digits after \x, so a digit after an
// escape stays a digit.
func Quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// CheckString rejects a string parameter that no kernel string can
// match: empty, longer than max bytes, or holding a NUL (where the
// kernel's strings end).
func CheckString(name, s string, max int) error {
	switch {
	case s == "":
		return fmt.Errorf("parameter %s: must not be empty", name)
	case len(s) > max:
		return fmt.Errorf("parameter %s: %q is %d bytes long; at most %d can match", name, s, len(s), max)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("parameter %s: %q contains a NUL byte", name, s)
	}
	return nil
}

// CheckPID rejects a pid no process can have.
func CheckPID(name string, pid int64) error {
	if pid <= 0 || pid > PIDMax {
		return fmt.Errorf("parameter %s: %d is not a process id (1 to %d)", name, pid, PIDMax)
	}
	return nil
}
