package broker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/tracebroker/tracebroker/internal/regfile"
)

// The builtins the broker carries out itself, at the event, with its own
// privileges: cat() prints a file, system() runs a command. The compiler
// classes cat() as reading the host (read:kernel for a token holder) and
// takes system() only under --unsafe, which the daemon never sets.

// catBytesMax is how much of a file cat() prints, bpftrace's
// BPFTRACE_CAT_BYTES_MAX (default 10 KiB).
func catBytesMax() int64 {
	if v, err := strconv.ParseInt(os.Getenv("BPFTRACE_CAT_BYTES_MAX"), 10, 64); err == nil && v > 0 {
		return min(v, 1<<30)
	}
	return 10 << 10
}

// cat prints the file path names, as bpftrace's cat() does: at most
// catBytesMax bytes of it, or an error on standard error.
func (r *runner) cat(path string) {
	// Not os.Open: a FIFO at the path would block the run.
	f, _, err := regfile.Open(path)
	if err == nil {
		defer f.Close()
		var b []byte
		if b, err = io.ReadAll(io.LimitReader(f, catBytesMax())); err == nil {
			r.out.Cat(string(b))
			return
		}
	}
	fmt.Fprintf(r.req.Stderr, "ERROR: failed to open file '%s': %s\n", path, errnoText(err))
}

// maxSystemOutput bounds what one system() command's output is kept of.
const maxSystemOutput = 1 << 20

// system runs command line with /bin/sh -c, as bpftrace's system() does
// (popen), and prints its standard output. Once the run is ending the
// command is not started: a storm of events would hold the run's end
// for as many commands.
func (r *runner) system(line string) {
	if r.ctx != nil && r.ctx.Err() != nil {
		return
	}
	cmd := exec.CommandContext(r.ctx, "/bin/sh", "-c", line)
	var out bytes.Buffer
	cmd.Stdout = &limitWriter{w: &out, n: maxSystemOutput}
	cmd.Stderr = r.req.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			fmt.Fprintf(r.req.Stderr, "ERROR: system(\"%s\"): %v\n", line, err)
		}
	}
	r.out.System(out.String())
}

// limitWriter keeps the first n bytes written and drops the rest.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

// errnoText is strerror's text of err's errno ("No such file or
// directory"), or err's own.
func errnoText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		msg := errno.Error()
		return strings.ToUpper(msg[:1]) + msg[1:]
	}
	return err.Error()
}
