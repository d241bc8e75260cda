package recording

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf/collector"
)

var castagnoli = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// Writer writes a recording at its path as it goes, a chunk of records
// at a time: what it has written stays readable if the recorder is
// killed.
type Writer struct {
	f    *os.File
	path string
	// Lost, when set, counts the events lost so far: every chunk
	// records it, so a recording cut short still says what it missed.
	Lost func() uint64

	buf     []byte    // the chunk being filled: its head, then records
	count   int       // records in buf
	since   time.Time // when buf got its first record
	events  int
	bytes   int64 // written and buffered, framing included
	maxSize int64
	err     error // the first failed write: the file ends before it
}

// ErrFull is a recording that reached its size limit.
var ErrFull = errors.New("the recording reached its size limit")

// Create starts a recording at path with h, and writes its header.
// maxSize bounds the file (0: no bound).
//
// A recording holds what every process did on its probes, so the file
// is made 0600. An existing regular file of the recorder's is truncated
// (as bpftrace -o does); anything else at path is refused: a symbolic
// link, a device or FIFO, another user's file or a file with other hard
// links (a path planted for the recorder, often root, to write through).
func Create(path string, h *Header, maxSize int64) (*Writer, error) {
	hh := *h
	hh.Version = Version
	if err := hh.check(Version); err != nil {
		return nil, err
	}
	hb, err := json.Marshal(&hh)
	if err != nil {
		return nil, err
	}
	if len(hb) > MaxHeader {
		return nil, fmt.Errorf("recording header of %d bytes, more than %d", len(hb), MaxHeader)
	}
	f, err := openOutput(path)
	if err != nil {
		return nil, err
	}
	w := &Writer{f: f, path: path, maxSize: maxSize, buf: make([]byte, 0, chunkHead+chunkFixed+FlushSize+collector.MaxRecord)}
	head := append([]byte(Magic), make([]byte, 8)...)
	binary.LittleEndian.PutUint32(head[len(Magic):], uint32(len(hb)))
	binary.LittleEndian.PutUint32(head[len(Magic)+4:], crc32.Checksum(hb, castagnoli()))
	head = append(head, hb...)
	if maxSize > 0 && int64(len(head)+endSize) > maxSize {
		w.Abort()
		return nil, fmt.Errorf("a recording's header takes %d bytes: --max-size %d leaves no room", len(head)+endSize, maxSize)
	}
	if _, err := f.Write(head); err != nil {
		w.Abort()
		return nil, err
	}
	w.bytes = int64(len(head))
	return w, nil
}

// openOutput opens path for a recording; see Create.
func openOutput(path string) (*os.File, error) {
	// O_NONBLOCK: opening a FIFO must not wait for a reader; it is
	// refused below. It changes nothing for a regular file.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		switch {
		case errors.Is(err, syscall.ELOOP):
			return nil, fmt.Errorf("%s is a symbolic link: a recording is not written through one; give the file's own path", path)
		case errors.Is(err, syscall.ENXIO), errors.Is(err, syscall.EISDIR):
			return nil, fmt.Errorf("%s is not a regular file: a recording is written to a file", path)
		}
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, err
	}
	var refuse string
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		refuse = "is not a regular file: a recording is written to a file"
	case st.Nlink > 1:
		refuse = fmt.Sprintf("has %d hard links: a recording is written to a file of its own", st.Nlink)
	case int(st.Uid) != os.Geteuid():
		refuse = fmt.Sprintf("belongs to uid %d: a recording is not written into another user's file", st.Uid)
	}
	if refuse != "" {
		f.Close()
		return nil, fmt.Errorf("%s %s", path, refuse)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Write adds one collector record. It reaches the file with its chunk:
// when the chunk holds FlushSize bytes, at Flush, or at Close.
func (w *Writer) Write(rec []byte) error {
	if len(rec) < collector.HeaderSize || len(rec) > collector.MaxRecord {
		return fmt.Errorf("%s: a record of %d bytes (%d to %d)", w.path, len(rec), collector.HeaderSize, collector.MaxRecord)
	}
	if w.err != nil {
		return w.err
	}
	if w.count > 0 && len(w.buf)+len(rec) > chunkHead+chunkFixed+FlushSize {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	need := int64(len(rec))
	if w.count == 0 {
		need += chunkHead + chunkFixed
	}
	if w.maxSize > 0 && w.bytes+need+endSize > w.maxSize {
		return ErrFull
	}
	if w.count == 0 {
		w.since = time.Now()
		w.buf = w.buf[:chunkHead+chunkFixed]
	}
	w.buf = append(w.buf, rec...)
	w.count++
	w.events++
	w.bytes += need
	return nil
}

// FlushBy says when the records held must reach the file: FlushInterval
// after the first of them; zero when none is held.
func (w *Writer) FlushBy() time.Time {
	if w.count == 0 {
		return time.Time{}
	}
	return w.since.Add(FlushInterval)
}

// Flush writes the records held as one chunk.
func (w *Writer) Flush() error {
	if w.count == 0 || w.err != nil {
		return w.err
	}
	var lost uint64
	if w.Lost != nil {
		lost = w.Lost()
	}
	err := w.writeChunk(kindRecords, w.count, lost)
	w.count = 0
	return err
}

// writeChunk frames w.buf (its head reserved, records after) and writes
// it with one write.
func (w *Writer) writeChunk(kind uint32, count int, lost uint64) error {
	b := w.buf
	le := binary.LittleEndian
	le.PutUint32(b[0:], uint32(len(b)-chunkHead))
	le.PutUint32(b[8:], kind)
	le.PutUint32(b[12:], uint32(count))
	le.PutUint64(b[16:], lost)
	le.PutUint64(b[24:], monotonic())
	le.PutUint32(b[4:], crc32.Checksum(b[chunkHead:], castagnoli()))
	if _, err := w.f.Write(b); err != nil {
		w.err = fmt.Errorf("write %s: %w", w.path, err)
	}
	return w.err
}

func monotonic() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// Events and Bytes say how much was written: Bytes is the file's size
// once closed.
func (w *Writer) Events() int  { return w.events }
func (w *Writer) Bytes() int64 { return w.bytes + endSize }
func (w *Writer) Path() string { return w.path }

// Close writes the records held, the end chunk with the count of events
// lost, and syncs the file.
func (w *Writer) Close(lost uint64) error {
	err := w.Flush()
	if err == nil {
		w.buf = w.buf[:chunkHead+chunkFixed]
		err = w.writeChunk(kindEnd, w.events, lost)
	}
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil && err != w.err {
		err = fmt.Errorf("write %s: %w", w.path, err)
	}
	return err
}

// Abort drops a recording that never started: its file is removed if
// it is still the one at its path.
func (w *Writer) Abort() {
	fi, err := w.f.Stat()
	w.f.Close()
	if err != nil {
		return
	}
	if at, err := os.Lstat(w.path); err == nil && os.SameFile(fi, at) {
		os.Remove(w.path)
	}
}
