package recording

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"time"

	"github.com/tracebroker/tracebroker/bpf/collector"
)

// Reader reads a recording, of either version.
type Reader struct {
	r       *bufio.Reader
	h       Header
	version int
	buf     []byte // version 1: a record; version 2: a chunk's body
	pos     int    // the next record in buf
	left    int    // records left in buf
	offset  int64  // bytes read of the file
	chunks  int
	lost    uint64
	end     bool   // the file ended as its recorder finished it
	cut     string // why the file ends before that
	events  int
	last    uint64 // the last record's ktime
	probe   int    // and its probe
	endMono uint64 // when the recorder finished (version 2)
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
	rd := &Reader{r: bufio.NewReaderSize(r, 64<<10)}
	var magic [len(Magic)]byte
	if err := rd.read(magic[:]); err != nil {
		return nil, fmt.Errorf("not a recording: %w", err)
	}
	switch string(magic[:]) {
	case Magic:
		rd.version = 2
	case MagicV1:
		rd.version = 1
	default:
		return nil, errors.New("not a recording (no TBREC magic): make one with tracebroker record")
	}
	pre := make([]byte, 4*rd.version) // hlen, and hcrc in version 2
	if err := rd.read(pre); err != nil {
		return nil, headerCut(err)
	}
	n := binary.LittleEndian.Uint32(pre)
	if n > MaxHeader {
		return nil, fmt.Errorf("recording header of %d bytes, more than %d", n, MaxHeader)
	}
	hb := make([]byte, n)
	if err := rd.read(hb); err != nil {
		return nil, headerCut(err)
	}
	if rd.version == 2 && crc32.Checksum(hb, castagnoli()) != binary.LittleEndian.Uint32(pre[4:]) {
		return nil, errors.New("recording header fails its checksum: the file is damaged")
	}
	dec := json.NewDecoder(bytes.NewReader(hb))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rd.h); err != nil {
		return nil, fmt.Errorf("recording header: %w", err)
	}
	if err := rd.h.check(rd.version); err != nil {
		return nil, err
	}
	if rd.version == 1 {
		rd.buf = make([]byte, collector.MaxRecord)
	}
	return rd, nil
}

func headerCut(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("the file ends inside the recording's header: its recorder stopped before writing it, and it holds no events")
	}
	return fmt.Errorf("recording header: %w", err)
}

// read fills b from the file, counting what it read.
func (r *Reader) read(b []byte) error {
	n, err := io.ReadFull(r.r, b)
	r.offset += int64(n)
	return err
}

func (r *Reader) Header() *Header { return &r.h }

// Version is the file's format.
func (r *Reader) Version() int { return r.version }

// Next returns the next record, valid until the next call; io.EOF after
// the last whole one. A record of a whole chunk that does not decode, or
// names no recorded probe, is an error: no recorder wrote it.
func (r *Reader) Next() ([]byte, error) {
	if r.version == 1 {
		return r.nextV1()
	}
	for r.left == 0 {
		if r.end || r.cut != "" {
			return nil, io.EOF
		}
		if err := r.chunk(); err != nil {
			return nil, err
		}
	}
	b := r.buf[r.pos:]
	if len(b) < 4 {
		return nil, fmt.Errorf("chunk %d: record %d is not in it", r.chunks, r.events+1)
	}
	size := int(binary.LittleEndian.Uint32(b))
	if size < collector.HeaderSize || size > collector.MaxRecord || size > len(b) {
		return nil, fmt.Errorf("chunk %d: record %d of %d bytes (%d to %d, in %d left)", r.chunks, r.events+1, size, collector.HeaderSize, collector.MaxRecord, len(b))
	}
	rec := b[:size]
	if err := r.record(rec); err != nil {
		return nil, err
	}
	r.pos += size
	r.left--
	if r.left == 0 && r.pos != len(r.buf) {
		return nil, fmt.Errorf("chunk %d: %d bytes after its last record", r.chunks, len(r.buf)-r.pos)
	}
	return rec, nil
}

// record checks a record and counts it.
func (r *Reader) record(b []byte) error {
	var rec collector.Record
	if err := collector.Decode(b, &rec); err != nil {
		return fmt.Errorf("record %d: %w", r.events+1, err)
	}
	if rec.Probe >= len(r.h.Probes) {
		return fmt.Errorf("record %d of probe %d; the recording has %d", r.events+1, rec.Probe, len(r.h.Probes))
	}
	r.events++
	r.last, r.probe = rec.Ktime, rec.Probe
	return nil
}

// chunk reads the next chunk. One that is not whole ends what can be
// read, and says why: the recorder was killed while writing it, or a
// crash lost it.
func (r *Reader) chunk() error {
	at := r.offset
	var hd [chunkHead]byte
	if err := r.read(hd[:]); err != nil {
		switch {
		case errors.Is(err, io.EOF):
			r.cut = fmt.Sprintf("the file ends after chunk %d, without its end: its recorder was killed, or is still writing it", r.chunks)
			return nil
		case errors.Is(err, io.ErrUnexpectedEOF):
			r.cut = fmt.Sprintf("the file ends inside chunk %d at byte %d", r.chunks+1, at)
			return nil
		}
		return err
	}
	le := binary.LittleEndian
	n := int(le.Uint32(hd[:]))
	if n < chunkFixed || n > MaxChunk {
		r.cut = fmt.Sprintf("chunk %d at byte %d claims %d bytes: it is damaged", r.chunks+1, at, n)
		return nil
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	if err := r.read(r.buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			r.cut = fmt.Sprintf("the file ends inside chunk %d at byte %d", r.chunks+1, at)
			return nil
		}
		return err
	}
	if crc32.Checksum(r.buf, castagnoli()) != le.Uint32(hd[4:]) {
		r.cut = fmt.Sprintf("chunk %d at byte %d fails its checksum: a torn write", r.chunks+1, at)
		return nil
	}
	kind, count := le.Uint32(r.buf), int(le.Uint32(r.buf[4:]))
	r.chunks++
	r.lost = le.Uint64(r.buf[8:])
	switch kind {
	case kindRecords:
		if count < 1 || count > (n-chunkFixed)/collector.HeaderSize {
			return fmt.Errorf("chunk %d of %d bytes claims %d records", r.chunks, n, count)
		}
		r.pos, r.left = chunkFixed, count
	case kindEnd:
		if n != chunkFixed || count != r.events {
			return fmt.Errorf("the end of the recording counts %d records in %d bytes; the file holds %d", count, n-chunkFixed, r.events)
		}
		r.end, r.endMono = true, le.Uint64(r.buf[16:])
		if _, err := r.r.Peek(1); err != io.EOF {
			return fmt.Errorf("bytes after the end of the recording (byte %d)", r.offset)
		}
	default:
		return fmt.Errorf("chunk %d of kind %d", r.chunks, kind)
	}
	return nil
}

// nextV1 reads a version 1 record, or its trailer.
func (r *Reader) nextV1() ([]byte, error) {
	if r.end || r.cut != "" {
		return nil, io.EOF
	}
	at := r.offset
	if err := r.read(r.buf[:4]); err != nil {
		if err == io.EOF {
			r.cut = "the file ends without its trailer"
			return nil, io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			r.cut = fmt.Sprintf("the file ends inside record %d at byte %d", r.events+1, at)
			return nil, io.EOF
		}
		return nil, fmt.Errorf("record %d: %w", r.events+1, err)
	}
	size := int(binary.LittleEndian.Uint32(r.buf))
	if size == trailerSize {
		if err := r.read(r.buf[4:trailerSize]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				r.cut = fmt.Sprintf("the file ends inside its trailer at byte %d", at)
				return nil, io.EOF
			}
			return nil, fmt.Errorf("trailer: %w", err)
		}
		if binary.LittleEndian.Uint16(r.buf[4:]) != trailerProbe {
			return nil, fmt.Errorf("record %d of %d bytes", r.events+1, size)
		}
		r.lost = binary.LittleEndian.Uint64(r.buf[8:])
		r.end = true
		return nil, io.EOF
	}
	if size < collector.HeaderSize || size > collector.MaxRecord {
		return nil, fmt.Errorf("record %d of %d bytes (%d to %d)", r.events+1, size, collector.HeaderSize, collector.MaxRecord)
	}
	if err := r.read(r.buf[4:size]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			r.cut = fmt.Sprintf("the file ends inside record %d at byte %d", r.events+1, at)
			return nil, io.EOF // it never was whole
		}
		return nil, fmt.Errorf("record %d: %w", r.events+1, err)
	}
	if err := r.record(r.buf[:size]); err != nil {
		return nil, err
	}
	return r.buf[:size], nil
}

// Complete says the file ended as its recorder finished it; Lost is the
// count of events lost while recording (a recording cut short: up to its
// last whole chunk; version 1: 0).
func (r *Reader) Complete() bool { return r.end }
func (r *Reader) Lost() uint64   { return r.lost }
func (r *Reader) Events() int    { return r.events }

// Cut says why a recording read to its last record was cut short: "" if
// it was not.
func (r *Reader) Cut() string { return r.cut }

// Elapsed is the time from the start of the recording to its last
// record read.
func (r *Reader) Elapsed() time.Duration {
	if r.events == 0 || r.last < r.h.StartNs {
		return 0
	}
	return time.Duration(r.last - r.h.StartNs)
}

// CutShort describes a recording read to its end that was cut short,
// for a warning: which record it ends at, when, and why; "" if it was
// not cut short.
func (r *Reader) CutShort() string {
	if r.cut == "" {
		return ""
	}
	if r.events == 0 {
		return "cut short before its first event: " + r.cut
	}
	at := fmt.Sprintf("%s after it started", r.Elapsed().Round(time.Millisecond))
	if !r.h.Created.IsZero() {
		at += r.h.Created.Add(r.Elapsed()).UTC().Format(", at 2006-01-02 15:04:05.000 UTC")
	}
	return fmt.Sprintf("cut short after event %d, %s: %s", r.events, at, r.cut)
}
