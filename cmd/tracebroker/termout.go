package main

import (
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/internal/escape"
)

// terminalSafe is w for trace output: as it is when w is a file or a
// pipe, where bpftrace's bytes are what a program reading them expects,
// and with every control character but newline and tab shown escaped
// when w is a terminal, which would act on them (escape sequences in a
// traced comm or file name, which any local user controls). done writes
// what is left of a character cut off at the end.
func terminalSafe(w io.Writer) (out io.Writer, done func()) {
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		ew := escape.NewWriter(f)
		return ew, func() { ew.Flush() }
	}
	return w, func() {}
}

// isTerminal says whether f is a terminal: whether it answers the
// ioctl that reads a terminal's settings.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
