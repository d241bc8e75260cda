// Package output turns a program's events into bpftrace's text or JSON
// output, byte for byte as bpftrace 0.17 prints them.
//
// A run is printed as: AttachedProbes once the probes are attached, then
// Printf, Map (print()) and Lost in event order, then Exit with every user
// map when the run ends (after the END probe's own output).
package output

import (
	"bufio"
	"io"
	"sort"
	"sync"

	"github.com/tracebroker/tracebroker/broker/program"
)

// Printer prints the messages of one run. Each call writes its message and
// flushes it, so output appears live (unless Batched: then Flush does); a
// Printer is safe for concurrent use.
// Write errors are sticky and reported by Flush.
type Printer interface {
	// AttachedProbes reports how many probes were attached.
	AttachedProbes(n int)
	// Printf prints the result of one printf() call, already formatted
	// (see Sprintf).
	Printf(text string)
	// Value prints what one print(VALUE) of a value printed: text, as
	// Printf does, or in JSON v itself.
	Value(text string, v program.Value)
	// Map prints a map as print(@m, top, div) does: top > 0 keeps only the
	// last top entries in print order, div > 1 divides the values.
	Map(snap *program.MapSnapshot, top, div int)
	// Join prints what one join() call read, already joined.
	Join(text string)
	// Time prints the result of one time() call, already formatted
	// (see Strftime).
	Time(text string)
	// Cat prints what one cat() read of its file.
	Cat(text string)
	// System prints what one system() command wrote.
	System(text string)
	// Lost reports n events lost by the kernel ring buffer.
	Lost(n uint64)
	// Exit prints what bpftrace prints when a run ends: two newlines
	// (in JSON mode too) and then every map, ordered by name, each as
	// Map(m, 0, 1). Pass every user map of the program, empty ones
	// included: an empty map still prints blank lines in text mode.
	Exit(maps []*program.MapSnapshot)
	// Flush writes anything buffered and returns the first write error.
	Flush() error
}

// NewText returns a Printer of bpftrace's default text format.
func NewText(w io.Writer, opts ...Option) Printer {
	return newPrinter(w, textFormat{}, opts)
}

// NewJSON returns a Printer of bpftrace's `-f json` format: one JSON
// object per line.
func NewJSON(w io.Writer, opts ...Option) Printer {
	return newPrinter(w, jsonFormat{}, opts)
}

// Option changes how a Printer writes.
type Option func(*printer)

// Batched leaves messages in the buffer until Flush, for a caller that
// flushes whenever it has nothing more to print at once: one write per
// burst of events instead of one per event, and output still live.
func Batched() Option { return func(p *printer) { p.batched = true } }

// Console sends to w what bpftrace 0.17 writes to its standard output
// even when -o sends its output to a file: the two newlines Exit starts
// with (std::cout, where the rest goes through its output stream).
func Console(w io.Writer) Option { return func(p *printer) { p.console = w } }

func newPrinter(w io.Writer, f format, opts []Option) *printer {
	p := &printer{w: bufio.NewWriterSize(w, 64<<10), f: f}
	for _, o := range opts {
		o(p)
	}
	return p
}

// format renders messages; printer adds locking, buffering and errors.
type format interface {
	attachedProbes(b []byte, n int) []byte
	printf(b []byte, text string) []byte
	value(b []byte, text string, v program.Value) []byte
	// mapSnap renders a map; it passes what it has rendered so far to
	// spill between entries, which may write it out and return it
	// emptied, so that a map of a million keys is never held whole.
	mapSnap(b []byte, snap *program.MapSnapshot, top, div int, spill func([]byte) []byte) []byte
	lost(b []byte, n uint64) []byte
	// message renders join and time output; typ is the JSON type.
	message(b []byte, typ, text string) []byte
}

type printer struct {
	mu      sync.Mutex
	w       *bufio.Writer
	f       format
	buf     []byte
	err     error
	batched bool
	console io.Writer
}

// emit writes one message and flushes it: bpftrace ends every line with
// std::endl, so a consumer reading the pipe sees each message at once.
func (p *printer) emit(render func([]byte) []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = render(p.buf[:0])
	if p.err != nil {
		return
	}
	if _, err := p.w.Write(p.buf); err != nil {
		p.err = err
		return
	}
	if p.batched {
		return
	}
	if err := p.w.Flush(); err != nil {
		p.err = err
	}
}

func (p *printer) AttachedProbes(n int) {
	p.emit(func(b []byte) []byte { return p.f.attachedProbes(b, n) })
}

func (p *printer) Printf(text string) {
	p.emit(func(b []byte) []byte { return p.f.printf(b, text) })
}

func (p *printer) Value(text string, v program.Value) {
	p.emit(func(b []byte) []byte { return p.f.value(b, text, v) })
}

func (p *printer) Map(snap *program.MapSnapshot, top, div int) {
	p.emit(func(b []byte) []byte { return p.f.mapSnap(b, snap, top, div, p.spill) })
}

// spillSize is how much of a long message (a large map) is rendered
// before it is written out.
const spillSize = 64 << 10

// spill writes b out once it is spillSize long and returns it emptied;
// called under p.mu, by a message being rendered.
func (p *printer) spill(b []byte) []byte {
	if len(b) < spillSize {
		return b
	}
	if p.err == nil {
		if _, err := p.w.Write(b); err != nil {
			p.err = err
		}
	}
	return b[:0]
}

func (p *printer) Join(text string) {
	p.emit(func(b []byte) []byte { return p.f.message(b, "join", text) })
}

func (p *printer) Time(text string) {
	p.emit(func(b []byte) []byte { return p.f.message(b, "time", text) })
}

func (p *printer) Cat(text string) {
	p.emit(func(b []byte) []byte { return p.f.message(b, "cat", text) })
}

// System's JSON type is bpftrace's: "syscall".
func (p *printer) System(text string) {
	p.emit(func(b []byte) []byte { return p.f.message(b, "syscall", text) })
}

func (p *printer) Lost(n uint64) {
	p.emit(func(b []byte) []byte { return p.f.lost(b, n) })
}

func (p *printer) Exit(maps []*program.MapSnapshot) {
	if p.console != nil {
		p.mu.Lock()
		if _, err := io.WriteString(p.console, "\n\n"); err != nil && p.err == nil {
			p.err = err
		}
		p.mu.Unlock()
	}
	p.emit(func(b []byte) []byte {
		// bpftrace writes these straight to stdout, even with -f json.
		if p.console == nil {
			b = append(b, "\n\n"...)
		}
		for _, m := range SortByName(maps) {
			b = p.f.mapSnap(b, m, 0, 1, p.spill)
		}
		return b
	})
}

func (p *printer) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = p.w.Flush()
	}
	return p.err
}

// ByName returns the indices of maps in the order bpftrace dumps them at
// exit (see SortByName).
func ByName(maps []*program.Map) []int {
	ids := make([]int, len(maps))
	for i := range ids {
		ids[i] = i
	}
	sort.SliceStable(ids, func(a, b int) bool { return maps[ids[a]].Name < maps[ids[b]].Name })
	return ids
}

// SortByName returns the maps in the order bpftrace dumps them at exit:
// by name, bytewise ("@" < "@A" < "@_x" < "@a"), as bpftrace keeps its
// maps in a std::map keyed by name. Nil snapshots are dropped.
func SortByName(maps []*program.MapSnapshot) []*program.MapSnapshot {
	out := make([]*program.MapSnapshot, 0, len(maps))
	for _, m := range maps {
		if m != nil && m.Map != nil {
			out = append(out, m)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Map.Name < out[j].Map.Name })
	return out
}
