package plugins

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// Bounds on what one launch of a plugin may put in the host's log.
const (
	maxLogBytes = 64 << 10 // then one "dropped" message
	maxLineLen  = 4096     // longer lines are cut (stderr: logged in pieces)
	tailLines   = 8        // stderr lines kept for error messages
	tailLineLen = 300
)

// pluginLog routes one launch's output into the host's logger: what the
// plugin writes to stderr (before and after the handshake) and to
// os.Stdout after it at Info or above, go-plugin's own messages at
// Debug, all within maxLogBytes. It keeps the plugin's last stderr lines
// for error messages.
type pluginLog struct {
	l    *slog.Logger
	name string
	exe  string // the binary's base name: go-plugin names its stderr logger so

	mu      sync.Mutex
	used    int
	dropped int
	tail    []string
	writers []*lineWriter
	// raw follows what go-plugin relays of the plugin's standard
	// error, where the runtime writes a fatal panic; each writer
	// follows its own stream.
	raw     panicFilter
	panicky string // the message of a fatal panic, once seen
}

func newPluginLog(l *slog.Logger, name, exe string) *pluginLog {
	return &pluginLog{l: l.With("plugin", name), name: name, exe: exe}
}

// output logs one line the plugin wrote. Lines of a panic go at Debug:
// the panic itself is the call's error, in one line.
func (o *pluginLog) output(f *panicFilter, stream string, level slog.Level, line string, args ...any) {
	line = strings.TrimRight(line, "\r\n")
	if f != nil {
		o.mu.Lock()
		if f.stackLine(line) {
			level = slog.LevelDebug
			if o.panicky == "" {
				o.panicky = f.msg
			}
		}
		o.mu.Unlock()
	}
	if line == "" && len(args) == 0 {
		return
	}
	line = bound(strings.ToValidUTF8(line, "\uFFFD"), maxLineLen)
	size := len(line)
	args = append([]any(nil), args...)
	for i := range args {
		// Keys and values of the plugin's structured lines, bounded too.
		v := bound(strings.ToValidUTF8(fmt.Sprint(args[i]), "\uFFFD"), maxLineLen)
		args[i] = v
		size += len(v)
	}
	o.mu.Lock()
	if stream == "stderr" {
		o.tail = append(o.tail, bound(line, tailLineLen))
		if len(o.tail) > tailLines {
			o.tail = o.tail[1:]
		}
	}
	ok := o.spend(size)
	o.mu.Unlock()
	if ok {
		o.l.Log(context.Background(), level, line, append([]any{"stream", stream}, args...)...)
	}
}

// internal logs a message of go-plugin's own.
func (o *pluginLog) internal(msg string, args ...any) {
	o.mu.Lock()
	ok := o.spend(len(msg) + 16*len(args))
	o.mu.Unlock()
	if ok {
		o.l.Debug("go-plugin: "+msg, args...)
	}
}

// spend takes n bytes from the budget; o.mu is held.
func (o *pluginLog) spend(n int) bool {
	if o.used+n > maxLogBytes {
		o.dropped++
		return false
	}
	o.used += n
	return true
}

// close flushes partial lines and reports what was dropped.
func (o *pluginLog) close() {
	o.mu.Lock()
	ws := o.writers
	o.mu.Unlock()
	for _, w := range ws {
		w.flush()
	}
	o.mu.Lock()
	dropped := o.dropped
	o.dropped = 0
	o.mu.Unlock()
	if dropped > 0 {
		o.l.Warn("plugin output dropped: more than the log's limit per launch", "messages", dropped, "limit_bytes", maxLogBytes)
	}
}

// decorate appends the plugin's last stderr lines to the error of a
// plugin that exited or did not start.
func (o *pluginLog) decorate(err error) error {
	var c crashed
	if !errors.As(err, &c) {
		return err
	}
	o.mu.Lock()
	tail := append([]string(nil), o.tail...)
	msg := o.panicky
	o.mu.Unlock()
	if msg != "" {
		return panicked(o.name, "", msg)
	}
	if len(tail) == 0 {
		return c.error
	}
	return fmt.Errorf("%w; its last stderr lines:\n\t%s", c.error, strings.Join(tail, "\n\t"))
}

// writer is an io.Writer logging each line as output of stream.
func (o *pluginLog) writer(stream string) io.Writer {
	w := &lineWriter{o: o, stream: stream}
	o.mu.Lock()
	o.writers = append(o.writers, w)
	o.mu.Unlock()
	return w
}

type lineWriter struct {
	o      *pluginLog
	stream string
	panics panicFilter
	mu     sync.Mutex
	buf    []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxLineLen - len(w.buf)
			if len(p) > room {
				w.buf = append(w.buf, p[:room]...)
				w.emit()
				p = p[room:]
				continue
			}
			w.buf = append(w.buf, p...)
			break
		}
		w.buf = append(w.buf, p[:i]...)
		w.emit()
		p = p[i+1:]
	}
	return n, nil
}

// emit logs the buffered line; w.mu is held.
func (w *lineWriter) emit() {
	level := slog.LevelInfo
	if w.stream == "stdout" {
		// After the handshake stdout is not the protocol any more,
		// but printing on it is still a mistake worth seeing.
		level = slog.LevelWarn
	}
	f := &w.panics
	if w.stream != "stderr" {
		f = nil
	}
	w.o.output(f, w.stream, level, string(w.buf))
	w.buf = w.buf[:0]
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit()
	}
}

// hclog returns the go-plugin logger of the launch.
func (o *pluginLog) hclog() hclog.Logger { return &hcAdapter{o: o} }

// hcAdapter is an hclog.Logger over a pluginLog. go-plugin logs the
// plugin's stderr through the logger it names after the binary; that is
// the plugin's output, the rest go-plugin's own messages.
type hcAdapter struct {
	o       *pluginLog
	name    string
	implied []any
}

func (a *hcAdapter) Log(level hclog.Level, msg string, args ...any) {
	args = append(append([]any(nil), a.implied...), args...)
	if a.name != a.o.exe {
		a.o.internal(msg, args...)
		return
	}
	// A plain line comes at Debug, a panic at Error, an hclog JSON line
	// (sdk.Serve's logger) at its own level: the plugin's words are
	// worth Info at least.
	l := slog.LevelInfo
	switch level {
	case hclog.Warn:
		l = slog.LevelWarn
	case hclog.Error:
		l = slog.LevelError
	}
	a.o.output(&a.o.raw, "stderr", l, msg, dropTimestamp(args)...)
}

// dropTimestamp removes go-plugin's "timestamp" pair: slog has its own.
func dropTimestamp(args []any) []any {
	out := args[:0:0]
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && k == "timestamp" {
			continue
		}
		out = append(out, args[i], args[i+1])
	}
	return out
}

func (a *hcAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hcAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hcAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hcAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hcAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }
func (a *hcAdapter) IsTrace() bool                 { return true }
func (a *hcAdapter) IsDebug() bool                 { return true }
func (a *hcAdapter) IsInfo() bool                  { return true }
func (a *hcAdapter) IsWarn() bool                  { return true }
func (a *hcAdapter) IsError() bool                 { return true }
func (a *hcAdapter) ImpliedArgs() []any            { return a.implied }
func (a *hcAdapter) Name() string                  { return a.name }
func (a *hcAdapter) SetLevel(hclog.Level)          {}

// GetLevel is Trace so that go-plugin hands every line over; the host's
// slog handler decides what is shown.
func (a *hcAdapter) GetLevel() hclog.Level { return hclog.Trace }

func (a *hcAdapter) With(args ...any) hclog.Logger {
	return &hcAdapter{o: a.o, name: a.name, implied: append(append([]any(nil), a.implied...), args...)}
}

func (a *hcAdapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return &hcAdapter{o: a.o, name: name, implied: a.implied}
}

func (a *hcAdapter) ResetNamed(name string) hclog.Logger {
	return &hcAdapter{o: a.o, name: name, implied: a.implied}
}

func (a *hcAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(nil), "", 0)
}

func (a *hcAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return a.o.writer("go-plugin")
}
