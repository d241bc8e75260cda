package symbols

import (
	"strconv"
	"strings"
)

// pointer formats an address as bpftrace prints an unresolved one, through
// C++'s operator<<(const void*): "0x" and lower-case hex, but a bare "0"
// for the null pointer (libstdc++ adds no base prefix to zero).
func pointer(addr uint64) string {
	if addr == 0 {
		return "0"
	}
	return "0x" + strconv.FormatUint(addr, 16)
}

// withOffset is bpftrace's "name+offset", the offset in decimal.
func withOffset(s Symbol) string {
	return s.Name + "+" + strconv.FormatUint(s.Offset, 10)
}

// stack lays out frames as bpftrace 0.17's get_stack does: a leading
// newline, then one line per address up to the first zero, indented by
// indent spaces in bpftrace mode and by a tab (after which frame puts the
// hex address) in perf mode.
func stack(addrs []uint64, perf bool, indent int, frame func(uint64) string) string {
	var b strings.Builder
	b.WriteByte('\n')
	pad := strings.Repeat(" ", max(indent, 0))
	for _, a := range addrs {
		if a == 0 {
			break
		}
		if perf {
			b.WriteByte('\t')
		} else {
			b.WriteString(pad)
		}
		b.WriteString(frame(a))
		b.WriteByte('\n')
	}
	return b.String()
}
