// Package audit is the broker daemon's audit log: one record per request
// and decision, each chained to the one before it by hash, so that any
// edit, insertion, deletion or reordering of records is found by Verify,
// which names the first line that does not follow.
//
// # Format, version 1
//
// (FORMAT.md in this directory says the same, for readers without Go.)
//
// A log is a file of UTF-8 lines, each a JSON object terminated by '\n',
// with its fields in this order and no spaces, so that the bytes of a line
// are fixed when it is written:
//
//	{"v":1,"seq":N,"time":"T","prev":"H","event":"KIND","data":{...}}
//
// where
//
//   - v is the format version, 1. A reader refuses any other.
//   - seq numbers the records 1, 2, 3, … with no gaps.
//   - time is when the record was written, RFC 3339 in UTC with up to
//     nanoseconds.
//   - prev is the SHA-256, in lowercase hex, of the previous line's bytes
//     as stored, without its '\n'; 64 zeros for seq 1.
//   - event is the kind of record, a lowercase dotted name (the Event
//     constants); kinds under "audit." are written by this package only.
//   - data is a JSON object whose keys depend on event. Every string in
//     it (keys too) is at most MaxField bytes, a longer one cut and
//     marked with the whole one's SHA-256 and length (BoundString), and
//     the whole is at most MaxData bytes: Append leaves out values past
//     that and adds TruncatedKey to say so, rather than drop the record.
//
// Verification hashes lines as stored, never re-serialized, and parses a
// line only to read v, seq, time, prev, event and data. A line longer
// than MaxLine is an error, so verifying takes bounded memory.
//
// A file whose last bytes are not '\n' ends in a record cut off by a
// crash while it was being written (a torn tail). It was never complete,
// so never acknowledged to anyone: Verify reports it and succeeds on the
// records before it, and Open cuts it off and records that it did, as an
// "audit.recovered" record with data {"torn_bytes":N,"line":L}.
//
// # Rotation
//
// With Options.MaxSize the log is several files: PATH, and PATH.SEQ for
// each rotated file (SEQ its first record's seq, 20 digits). A new file
// begins with an "audit.rotated" record that continues the chain (seq
// and prev follow the last record of the file before it); when it makes
// more rotated files than Options.Keep, it names the oldest it deletes
// and the last record they held, and they are deleted once it is on
// disk. VerifyFiles checks a set of files as one chain: a set that
// begins after seq 1 must hold the record of the deletion of what came
// before.
//
// # What a chain cannot show
//
// The hash is not keyed: whoever can write the file can also rewrite
// every record after the one they changed, or cut whole records off the
// end, and the chain will still verify. Against that the daemon keeps
// anchors elsewhere: Append returns each record's Head (seq and hash)
// and Open and Close log it through slog, so that journald or a remote
// collector holds the latest head; an auditor compares it with the Head
// that Verify returns (tracebroker audit verify --expect-head SEQ:HASH).
//
// # Durability
//
// Each record is one write(2) of the whole line to a file opened with
// O_APPEND, then fsync(2), before Append returns. A write or sync that
// fails breaks the Log: every later Append fails, so the daemon refuses
// requests rather than act on them unrecorded. An exclusive flock keeps a
// second daemon from interleaving its records with the first's.
package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/internal/regfile"
)

const (
	// Version is the format version this package writes and reads.
	Version = 1
	// MaxLine bounds a line, in bytes without its newline; a longer line
	// is an error for Verify.
	MaxLine = 1 << 20
	// MaxData bounds a record's data, as JSON: Append cuts longer data
	// down to it (see TruncatedKey) rather than drop the record.
	MaxData = 64 << 10

	maxEvent = 64
)

// ZeroHash is the prev of the first record and the hash of an empty
// log's head.
const ZeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Event kinds the daemon records. Append takes any kind spelled like
// these; the names are here so that every writer spells them the same.
const (
	EventDaemonStart  = "daemon.start"
	EventDaemonStop   = "daemon.stop"
	EventDaemonReload = "daemon.reload"
	// A trace: its request (caller, token), its refusal or admission
	// (the gatekeeper's verdicts), its end.
	EventTraceRequest  = "trace.request"
	EventTraceRefused  = "trace.refused"
	EventTraceAdmitted = "trace.admitted"
	EventTraceEnd      = "trace.end"
	// EventSessionStop is an administrator stopping a session.
	EventSessionStop = "session.stop"
	// EventPeerLimited counts what the daemon's limits kept out of the
	// log for one peer: refusals not recorded one by one, connections
	// refused or closed before they authenticated.
	EventPeerLimited = "peer.limited"
	// EventRecovered is written by Open after cutting off a torn tail.
	EventRecovered = "audit.recovered"
	// EventRotated is the first record of a file that continues a
	// rotated log (see Options.MaxSize).
	EventRotated = "audit.rotated"
	// The kernel gate (gatekeeper/lsmgate): enforced and released by
	// an operator (tracebroker gatekeeper, into the gate's log), and
	// each refusal it made, drained by the daemon into its log.
	EventGateEnforced = "gate.enforced"
	EventGateReleased = "gate.released"
	EventGateRefused  = "gate.refused"
)

// Options configures a Log; the zero value is ready to use.
type Options struct {
	// Now is the clock for record times; nil is time.Now.
	Now func() time.Time
	// Logger receives the head at open and close, recoveries and
	// failures; nil logs nothing.
	Logger *slog.Logger
	// MaxSize, above zero, bounds the file: before a record would take
	// it past MaxSize bytes (at least MinMaxSize), it is renamed
	// PATH.SEQ, SEQ its first record's seq in 20 digits, and a new file
	// continues the chain from an audit.rotated record. Keep is how many
	// rotated files stay (0: DefaultKeep); the audit.rotated record that
	// makes one too many says which it deletes, then they are deleted.
	MaxSize int64
	Keep    int
}

// Log is an open audit log, appended to by one process at a time. Its
// methods are safe for concurrent use.
type Log struct {
	path string
	now  func() time.Time
	log  *slog.Logger

	mu     sync.Mutex
	f      *os.File
	head   Head
	size   int64 // bytes of complete, acknowledged records
	broken error
	closed bool

	rot rotation

	// write and sync are the system calls an Append makes, replaced in
	// tests to fail as a full disk or a failing device would.
	write func([]byte) (int, error)
	sync  func() error
}

// Open opens the log at path for appending, creating it (0600; the
// directory must exist) if it is missing. An existing log is verified
// first, to learn its head: a broken chain is refused with the
// *VerifyError, since extending it would bury the break, and the
// administrator must move it aside; a torn tail is cut off and recorded.
// Only one Log may be open on a file at a time, across processes.
func Open(path string, o Options) (*Log, error) {
	if o.MaxSize != 0 && o.MaxSize < MinMaxSize {
		return nil, fmt.Errorf("audit log: a maximum size of %d bytes is below the least, %d", o.MaxSize, MinMaxSize)
	}
	if o.Keep < 0 {
		return nil, fmt.Errorf("audit log: keeping %d rotated files", o.Keep)
	}
	l := &Log{path: path, now: o.Now, log: o.Logger, rot: rotation{maxSize: o.MaxSize, keep: o.Keep}}
	if l.rot.keep == 0 {
		l.rot.keep = DefaultKeep
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	// O_NONBLOCK so that a FIFO planted at path is refused here rather
	// than blocking until something reads it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("audit log %s: %w", path, regfile.ErrNotRegular)
	}
	if err := control(f, func(fd int) error { return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) }); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("audit log %s is locked by another process (is another daemon using it?)", path)
		}
		return nil, fmt.Errorf("audit log %s: flock: %w", path, err)
	}
	if fi.Size() == 0 {
		// A new file's name is durable only once its directory is.
		if err := syncDir(filepath.Dir(path)); err != nil {
			return nil, fmt.Errorf("audit log %s: %w", path, err)
		}
	}

	// Read through a second descriptor (the first is write-only), and
	// make sure it is the file that is locked.
	r, rfi, err := regfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	// The current file may continue a rotated log.
	v := verifier{allowContinue: true}
	if !os.SameFile(fi, rfi) {
		err = errors.New("the file was replaced while it was being opened")
	} else {
		err = v.run(r)
	}
	r.Close()
	if err != nil {
		return nil, fmt.Errorf("audit log %s: %w; refusing to extend it (move it aside to start a new log)", path, err)
	}

	l.f = f
	l.head, l.size = v.res.Head, v.end
	l.write, l.sync = l.writeOnce, f.Sync
	if err := l.openRotated(fi, &v); err != nil {
		return nil, fmt.Errorf("audit log %s: %w", path, err)
	}
	if v.res.TornTail {
		if err := l.recover(v.res); err != nil {
			return nil, err
		}
	}
	ok = true
	l.log.Info("audit log opened", "path", path, "records", l.head.Seq, "head", l.head.String())
	return l, nil
}

// recover cuts off a torn tail and puts that on the record.
func (l *Log) recover(res Result) error {
	l.log.Warn("audit log ends in a record cut off by a crash; removing it",
		"path", l.path, "line", res.TornLine, "bytes", res.TornBytes)
	if err := l.f.Truncate(l.size); err != nil {
		return fmt.Errorf("audit log %s: cutting off the torn record: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit log %s: %w", l.path, err)
	}
	data := struct {
		TornBytes int `json:"torn_bytes"`
		Line      int `json:"line"`
	}{res.TornBytes, res.TornLine}
	body, err := marshalData(data)
	if err != nil {
		return err
	}
	_, err = l.appendLocked(EventRecovered, body)
	return err
}

// Append writes one record and returns its head once it is on disk.
// data is marshalled by encoding/json and must be an object (a struct or
// a map); nil is {}. Every string in it is bounded by BoundString, and
// data over MaxData is cut to fit, never dropped. A bad event or data is an
// error that leaves the Log usable; a failed write or sync breaks it, and
// every later Append fails too.
func (l *Log) Append(event string, data any) (Head, error) {
	if err := validEvent(event); err != nil {
		return Head{}, err
	}
	if strings.HasPrefix(event, "audit.") {
		return Head{}, fmt.Errorf("audit: event kind %q: audit.* is reserved for the log itself", event)
	}
	body, err := marshalData(data)
	if err != nil {
		return Head{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.appendLocked(event, body)
}

func (l *Log) appendLocked(event string, body []byte) (Head, error) {
	if l.closed {
		return Head{}, fmt.Errorf("audit log %s: %w", l.path, os.ErrClosed)
	}
	if l.broken != nil {
		return Head{}, fmt.Errorf("audit log %s is broken, refusing to record %s: %w", l.path, event, l.broken)
	}
	t := l.now().UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return Head{}, fmt.Errorf("audit: the clock reads %v, which RFC 3339 cannot write", t)
	}
	if l.rot.due(l.size, len(body)) {
		l.rotate(t)
	}
	if l.rot.continuing {
		// A new file after rotation: it begins by continuing the chain.
		if _, err := l.writeLocked(t, EventRotated, l.continuation()); err != nil {
			return Head{}, err
		}
		l.rot.continuing = false
		l.rot.deletePlanned(l)
	}
	return l.writeLocked(t, event, body)
}

// writeLocked writes one record at time t.
func (l *Log) writeLocked(t time.Time, event string, body []byte) (Head, error) {
	seq := l.head.Seq + 1
	line := appendRecord(make([]byte, 0, 160+len(body)), seq, t, l.head.Hash, event, body)
	n, err := l.write(line)
	if err == nil && n != len(line) {
		err = fmt.Errorf("short write, %d of %d bytes", n, len(line))
	}
	if err == nil {
		if err = l.sync(); err != nil {
			err = fmt.Errorf("fsync: %w", err)
		}
	}
	if err != nil {
		l.fail(fmt.Errorf("writing record %d: %w", seq, err))
		return Head{}, fmt.Errorf("audit log %s: %w", l.path, l.broken)
	}
	l.size += int64(len(line))
	l.head = Head{Seq: seq, Hash: hashLine(line[:len(line)-1])}
	return l.head, nil
}

// fail breaks the Log. It cuts back whatever part of the record reached
// the file, so that the file ends at the last acknowledged record; if
// that fails too, the next Open finds a torn tail and recovers. After a
// failed fsync the record may survive anyway (the kernel's state is then
// unknown), but it is whole, so the chain still verifies.
func (l *Log) fail(err error) {
	l.broken = err
	l.log.Error("audit log failed; refusing further records", "path", l.path, "err", err, "head", l.head.String())
	if terr := l.f.Truncate(l.size); terr != nil {
		l.log.Error("audit log: cannot cut back the failed record", "path", l.path, "err", terr)
		return
	}
	l.f.Sync()
}

// writeOnce makes exactly one write(2): os.File.Write would loop on a
// short write and could put a record on disk in pieces.
func (l *Log) writeOnce(b []byte) (n int, err error) {
	cerr := control(l.f, func(fd int) error {
		for {
			n, err = unix.Write(fd, b)
			if err != unix.EINTR {
				return nil
			}
		}
	})
	if cerr != nil {
		return 0, cerr
	}
	if n < 0 {
		n = 0
	}
	return n, err
}

// Head returns the last record's seq and hash.
func (l *Log) Head() Head {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head
}

// Close closes the log, releasing its lock. Later Appends fail.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.log.Info("audit log closed", "path", l.path, "records", l.head.Seq, "head", l.head.String())
	return l.f.Close()
}

func marshalData(data any) ([]byte, error) {
	if data == nil {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("audit: data: %w", err)
	}
	if string(b) == "null" {
		return []byte("{}"), nil
	}
	if b[0] != '{' {
		return nil, fmt.Errorf("audit: data must marshal to a JSON object, not %T", data)
	}
	// encoding/json compacts and escapes, so this cannot happen; a
	// newline inside a record would split it in two.
	if strings.IndexByte(string(b), '\n') >= 0 {
		return nil, errors.New("audit: data contains a newline")
	}
	return boundData(b)
}

// appendRecord writes the line by hand, fields in their fixed order.
// event needs no escaping: validEvent allows no character that would.
func appendRecord(b []byte, seq uint64, t time.Time, prev, event string, data []byte) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, Version, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","prev":"`...)
	b = append(b, prev...)
	b = append(b, `","event":"`...)
	b = append(b, event...)
	b = append(b, `","data":`...)
	b = append(b, data...)
	return append(b, "}\n"...)
}

// control runs fn on f's descriptor without f.Fd, which would switch a
// descriptor to blocking mode as a side effect.
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
