// Package recording is the file format of `tracebroker record`: the
// events interpreter mode's collectors copied, with what a later replay
// needs to compile a script against them (the probes, their tracepoint
// formats and uprobe targets) and without the kernel or any privilege.
//
// # Format, version 1
//
// A recording is, in order:
//
//	magic     8 bytes: "TBREC1\n\x00"
//	hlen      u32 little-endian: the header's length, at most MaxHeader
//	header    hlen bytes of JSON: Header
//	records   each a bpf/collector record (its layout: size first, at most
//	          collector.MaxRecord bytes), whose probe field indexes
//	          Header.Probes
//	trailer   16 bytes: u32 16, u16 0xffff, u16 0, u64 events lost while
//	          recording
//
// A recording cut short (the recorder killed) has no trailer: a reader
// returns every complete record and says so. Nothing in it is trusted:
// every size is checked before it is used.
package recording

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/compile"
)

// Magic starts every recording.
const Magic = "TBREC1\n\x00"

const (
	Version   = 1
	MaxHeader = 1 << 20
	MaxProbes = 4096
	// MaxCPUs is the most CPUs a recording's host may have had: Linux's
	// largest NR_CPUS. What a replay allocates for them is bounded when
	// it starts (broker's maxInterpMapBytes).
	MaxCPUs = 8192
	// trailerProbe marks the trailer record.
	trailerProbe = 0xffff
	trailerSize  = 16
)

// Header describes a recording.
type Header struct {
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	Host    string    `json:"host,omitempty"`
	Kernel  string    `json:"kernel,omitempty"`
	// CPUs is how many CPUs the recording host had: per-CPU maps of a
	// replay keep this many copies.
	CPUs int `json:"cpus"`
	// StartNs is the monotonic clock when recording started: elapsed
	// counts from it in a replay.
	StartNs uint64 `json:"start_ns"`
	// Cpid is the pid of the command recorded with -c, for cpid.
	Cpid int `json:"cpid,omitempty"`
	// Script is what was recorded for: its probes, and what it reads.
	Script Script  `json:"script"`
	Probes []Probe `json:"probes"`
}

type Script struct {
	Name   string `json:"name"`
	Source string `json:"source"`
}

// Probe is one recorded attach point and what its events carry.
type Probe struct {
	Name     string              `json:"name"`
	Kind     string              `json:"kind"`
	Category string              `json:"category,omitempty"`
	Event    string              `json:"event,omitempty"`
	Path     string              `json:"path,omitempty"`
	Func     string              `json:"func,omitempty"`
	Offset   uint64              `json:"offset,omitempty"`
	CtxLen   int                 `json:"ctx_len"`
	Strings  []program.CtxString `json:"strings,omitempty"`
	// KStack and UStack say the records carry the event's stacks.
	KStack bool `json:"kstack,omitempty"`
	UStack bool `json:"ustack,omitempty"`
	// Fields are a tracepoint's format (or a tp_btf's arguments), for
	// compiling scripts against the recording.
	Fields []compile.Field `json:"fields,omitempty"`
}

// Writer writes a recording. It writes beside the file and renames at
// Close, so a recording that exists is a whole one.
type Writer struct {
	f       *os.File
	w       *bufio.Writer
	path    string
	events  int
	bytes   int64
	maxSize int64
}

// ErrFull is a recording that reached its size limit.
var ErrFull = errors.New("the recording reached its size limit")

// Create starts a recording at path with h. maxSize bounds the file
// (0: no bound).
func Create(path string, h *Header, maxSize int64) (*Writer, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	if len(hb) > MaxHeader {
		return nil, fmt.Errorf("recording header of %d bytes, more than %d", len(hb), MaxHeader)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, err
	}
	w := &Writer{f: f, w: bufio.NewWriterSize(f, 1<<20), path: path, maxSize: maxSize}
	w.w.WriteString(Magic)
	w.w.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(hb))))
	w.w.Write(hb)
	w.bytes = int64(len(Magic) + 4 + len(hb))
	return w, nil
}

// Write appends one collector record.
func (w *Writer) Write(rec []byte) error {
	if len(rec) < collector.HeaderSize || len(rec) > collector.MaxRecord {
		return fmt.Errorf("record of %d bytes", len(rec))
	}
	if w.maxSize > 0 && w.bytes+int64(len(rec))+trailerSize > w.maxSize {
		return ErrFull
	}
	if _, err := w.w.Write(rec); err != nil {
		return err
	}
	w.events++
	w.bytes += int64(len(rec))
	return nil
}

// Events and Bytes say how much was written.
func (w *Writer) Events() int  { return w.events }
func (w *Writer) Bytes() int64 { return w.bytes + trailerSize }
func (w *Writer) Path() string { return w.path }

// Close writes the trailer with the count of events lost, and puts the
// recording in place.
func (w *Writer) Close(lost uint64) error {
	var t [trailerSize]byte
	binary.LittleEndian.PutUint32(t[0:], trailerSize)
	binary.LittleEndian.PutUint16(t[4:], trailerProbe)
	binary.LittleEndian.PutUint64(t[8:], lost)
	w.w.Write(t[:])
	err := w.w.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.f.Name(), w.path)
	}
	if err != nil {
		os.Remove(w.f.Name())
	}
	return err
}

// Abort drops the recording.
func (w *Writer) Abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

// Reader reads a recording.
type Reader struct {
	r       *bufio.Reader
	h       Header
	buf     []byte
	lost    uint64
	trailer bool
	events  int
}

// Open opens a recording file.
func Open(name string) (*Reader, io.Closer, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s: not a regular file", name)
	}
	r, err := NewReader(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return r, f, nil
}

// NewReader reads the header of a recording from r.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var pre [len(Magic) + 4]byte
	if _, err := io.ReadFull(br, pre[:]); err != nil {
		return nil, fmt.Errorf("not a recording: %w", err)
	}
	if string(pre[:len(Magic)]) != Magic {
		return nil, errors.New("not a recording (no TBREC1 magic): make one with tracebroker record")
	}
	n := binary.LittleEndian.Uint32(pre[len(Magic):])
	if n > MaxHeader {
		return nil, fmt.Errorf("recording header of %d bytes, more than %d", n, MaxHeader)
	}
	hb := make([]byte, n)
	if _, err := io.ReadFull(br, hb); err != nil {
		return nil, fmt.Errorf("recording header: %w", err)
	}
	rd := &Reader{r: br, buf: make([]byte, collector.MaxRecord)}
	dec := json.NewDecoder(strings.NewReader(string(hb)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rd.h); err != nil {
		return nil, fmt.Errorf("recording header: %w", err)
	}
	if err := rd.h.check(); err != nil {
		return nil, err
	}
	return rd, nil
}

func (h *Header) check() error {
	switch {
	case h.Version != Version:
		return fmt.Errorf("recording version %d; this tracebroker reads version %d", h.Version, Version)
	case len(h.Probes) == 0 || len(h.Probes) > MaxProbes:
		return fmt.Errorf("recording of %d probes (1 to %d)", len(h.Probes), MaxProbes)
	case h.CPUs < 1 || h.CPUs > MaxCPUs:
		return fmt.Errorf("recording of %d CPUs (1 to %d)", h.CPUs, MaxCPUs)
	}
	for i, p := range h.Probes {
		if p.CtxLen < 0 || p.CtxLen > collector.MaxContext || len(p.Strings) > collector.MaxStrings {
			return fmt.Errorf("recorded probe %d (%s): context of %d bytes and %d strings", i, p.Name, p.CtxLen, len(p.Strings))
		}
	}
	return nil
}

func (r *Reader) Header() *Header { return &r.h }

// Next returns the next record, valid until the next call; io.EOF after
// the last. A record that is not whole, or names no recorded probe, is an
// error.
func (r *Reader) Next() ([]byte, error) {
	if r.trailer {
		return nil, io.EOF
	}
	if _, err := io.ReadFull(r.r, r.buf[:4]); err != nil {
		if err == io.EOF {
			return nil, io.EOF // cut short, between records
		}
		return nil, fmt.Errorf("record %d: %w", r.events+1, err)
	}
	size := int(binary.LittleEndian.Uint32(r.buf))
	if size == trailerSize {
		if _, err := io.ReadFull(r.r, r.buf[4:trailerSize]); err != nil {
			return nil, fmt.Errorf("trailer: %w", err)
		}
		if binary.LittleEndian.Uint16(r.buf[4:]) != trailerProbe {
			return nil, fmt.Errorf("record %d of %d bytes", r.events+1, size)
		}
		r.lost = binary.LittleEndian.Uint64(r.buf[8:])
		r.trailer = true
		return nil, io.EOF
	}
	if size < collector.HeaderSize || size > collector.MaxRecord {
		return nil, fmt.Errorf("record %d of %d bytes (%d to %d)", r.events+1, size, collector.HeaderSize, collector.MaxRecord)
	}
	if _, err := io.ReadFull(r.r, r.buf[4:size]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, io.EOF // cut short in the middle of a record: it never was whole
		}
		return nil, fmt.Errorf("record %d: %w", r.events+1, err)
	}
	var rec collector.Record
	if err := collector.Decode(r.buf[:size], &rec); err != nil {
		return nil, fmt.Errorf("record %d: %w", r.events+1, err)
	}
	if rec.Probe >= len(r.h.Probes) {
		return nil, fmt.Errorf("record %d of probe %d; the recording has %d", r.events+1, rec.Probe, len(r.h.Probes))
	}
	r.events++
	return r.buf[:size], nil
}

// Complete says the recording ended with its trailer; Lost is the count
// of events lost while recording (0 without the trailer).
func (r *Reader) Complete() bool { return r.trailer }
func (r *Reader) Lost() uint64   { return r.lost }
func (r *Reader) Events() int    { return r.events }

// The recorded kernel: what the compiler asks of the kernel, answered
// from the header, so a script compiles against a recording with no
// tracefs, BTF or binaries at hand.

// Tracepoints answers for the recorded tracepoints.
func (h *Header) Tracepoints() compile.Tracepoints { return recordedTPs{h} }

type recordedTPs struct{ h *Header }

func (t recordedTPs) Match(category, name string) ([][2]string, error) {
	var out [][2]string
	for _, p := range t.h.Probes {
		if p.Kind != program.Tracepoint.String() {
			continue
		}
		okc, _ := path.Match(category, p.Category)
		okn, _ := path.Match(name, p.Event)
		if okc && okn {
			out = append(out, [2]string{p.Category, p.Event})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("tracepoint %s:%s is not in the recording", category, name)
	}
	return out, nil
}

func (t recordedTPs) Fields(category, name string) ([]compile.Field, error) {
	for _, p := range t.h.Probes {
		if p.Kind == program.Tracepoint.String() && p.Category == category && p.Event == name {
			return p.Fields, nil
		}
	}
	return nil, fmt.Errorf("tracepoint %s:%s is not in the recording", category, name)
}

// BTFTracepoints answers for the recorded tp_btf probes.
func (h *Header) BTFTracepoints() compile.BTFTracepoints { return recordedBTF{h} }

type recordedBTF struct{ h *Header }

func (t recordedBTF) Match(pattern string) ([]string, error) {
	var out []string
	for _, p := range t.h.Probes {
		if ok, _ := path.Match(pattern, p.Event); ok && p.Kind == program.TpBTF.String() {
			out = append(out, p.Event)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (t recordedBTF) Args(name string) ([]compile.Field, error) {
	for _, p := range t.h.Probes {
		if p.Kind == program.TpBTF.String() && p.Event == name {
			return p.Fields, nil
		}
	}
	return nil, fmt.Errorf("tp_btf:%s is not in the recording", name)
}

// Uprobes answers for the recorded uprobes.
func (h *Header) Uprobes() compile.Uprobes { return recordedUprobes{h} }

type recordedUprobes struct{ h *Header }

func (u recordedUprobes) Resolve(target, fn string) ([]compile.UprobeTarget, error) {
	var out []compile.UprobeTarget
	seen := map[compile.UprobeTarget]bool{}
	for _, p := range u.h.Probes {
		if p.Kind != program.Uprobe.String() && p.Kind != program.Uretprobe.String() {
			continue
		}
		if p.Path != target && filepath.Base(p.Path) != target {
			continue
		}
		if ok, _ := path.Match(fn, p.Func); !ok {
			continue
		}
		t := compile.UprobeTarget{Path: p.Path, Func: p.Func, Offset: p.Offset}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("uprobe %s:%s is not in the recording", target, fn)
	}
	return out, nil
}
