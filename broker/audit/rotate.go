package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/internal/regfile"
)

const (
	// MinMaxSize is the least Options.MaxSize: two records of the most
	// data, so that a file always holds more than its first record.
	MinMaxSize = 2 * (MaxData + 1024)
	// DefaultKeep is how many rotated files stay when Options.Keep is 0.
	DefaultKeep = 8

	// maxHeader bounds a line's bytes other than its data.
	maxHeader = 256
	// rotateRetry spaces out rotations that failed, which go on in the
	// file that is too large rather than refuse records.
	rotateRetry = time.Minute
)

// segment is a rotated file of the log.
type segment struct {
	path  string
	first uint64 // the seq of its first record, from its name
}

// rotation is a Log's rotation state, guarded by Log.mu.
type rotation struct {
	maxSize int64
	keep    int
	// first is the seq of the current file's first record (or of the
	// next record, while the file is empty).
	first   uint64
	rotated []segment // oldest first
	// planned are the files the last audit.rotated record says it
	// deletes; they are deleted once that record is on disk.
	planned  []segment
	failedAt time.Time
	// continuing says the current file is new and empty: its first
	// record is to be audit.rotated, continuing the rotated file named
	// continued.
	continuing bool
	continued  string
	// rotations counts the rotations done since Open.
	rotations int
}

// due says whether a record of body bytes must go to a new file.
func (r *rotation) due(size int64, body int) bool {
	return r.maxSize > 0 && size > 0 && size+int64(body)+maxHeader > r.maxSize &&
		(r.failedAt.IsZero() || time.Since(r.failedAt) > rotateRetry)
}

func segmentName(path string, first uint64) string {
	return fmt.Sprintf("%s.%020d", path, first)
}

// rotate moves the current file aside as PATH.SEQ and starts an empty
// one in its place; the next record written makes the chain continue
// there. The new file is made and locked under a temporary name and
// renamed over PATH, so PATH is at all times a whole log; a crash
// leaves at worst an extra name for the old file, which Open removes.
// A failure leaves the current file in use, logged, and is tried again
// later: the records go on, in a file larger than it should be.
func (l *Log) rotate(now time.Time) {
	name := segmentName(l.path, l.rot.first)
	tmp := l.path + ".rotating"
	fail := func(step string, err error) {
		l.rot.failedAt = now
		l.log.Error("audit log: cannot rotate; records go on in the current file", "path", l.path, "step", step, "err", err)
	}
	os.Remove(tmp)
	nf, err := os.OpenFile(tmp, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL|syscall.O_NOCTTY, 0o600)
	if err != nil {
		fail("create", err)
		return
	}
	undo := func(step string, err error) {
		nf.Close()
		os.Remove(tmp)
		fail(step, err)
	}
	if err := control(nf, func(fd int) error { return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) }); err != nil {
		undo("flock", err)
		return
	}
	if err := os.Link(l.path, name); err != nil {
		undo("link", err)
		return
	}
	if err := os.Rename(tmp, l.path); err != nil {
		os.Remove(name)
		undo("rename", err)
		return
	}
	if err := syncDir(filepath.Dir(l.path)); err != nil {
		l.log.Error("audit log: rotated, but the directory did not sync", "path", l.path, "err", err)
	}
	l.f.Close() // releases the old file's lock: it is a rotated file now
	l.f, l.size, l.sync = nf, 0, nf.Sync
	l.rot.rotated = append(l.rot.rotated, segment{name, l.rot.first})
	l.rot.first = l.head.Seq + 1
	l.rot.continuing, l.rot.continued = true, name
	l.rot.rotations++
	l.rot.failedAt = time.Time{}
	l.log.Info("audit log rotated", "path", l.path, "rotated_to", name, "head", l.head.String())
}

// rotatedData is the data of an audit.rotated record.
type rotatedData struct {
	// Previous is the rotated file this one continues (its base name).
	Previous string `json:"previous"`
	// Deleted are the rotated files deleted after this record, oldest
	// first; DeletedThrough and DeletedHead are the last record they
	// held, so a verifier knows where the kept files must start.
	Deleted        []string `json:"deleted,omitempty"`
	DeletedThrough uint64   `json:"deleted_through,omitempty"`
	DeletedHead    string   `json:"deleted_head,omitempty"`
}

// continuation is the data of the audit.rotated record that begins the
// current file, and plans the deletion of the rotated files past Keep.
func (l *Log) continuation() []byte {
	d := rotatedData{Previous: filepath.Base(l.rot.continued)}
	if n := len(l.rot.rotated) - l.rot.keep; l.rot.maxSize > 0 && n > 0 {
		del := l.rot.rotated[:n]
		// The last record of the newest deleted file is the one before
		// the next file's first: its head is read from it.
		last, err := readLastHead(del[n-1].path)
		if err != nil {
			l.log.Error("audit log: not deleting old rotated files: the newest cannot be read", "path", del[n-1].path, "err", err)
		} else {
			for _, s := range del {
				d.Deleted = append(d.Deleted, filepath.Base(s.path))
			}
			d.DeletedThrough, d.DeletedHead = last.Seq, last.String()
			l.rot.planned = del
		}
	}
	b, _ := json.Marshal(d)
	return b
}

// deletePlanned deletes the files the audit.rotated record just written
// says it deletes.
func (r *rotation) deletePlanned(l *Log) {
	if len(r.planned) == 0 {
		return
	}
	for _, s := range r.planned {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.log.Error("audit log: cannot delete an old rotated file", "path", s.path, "err", err)
		} else {
			l.log.Info("audit log: deleted an old rotated file", "path", s.path)
		}
	}
	syncDir(filepath.Dir(l.path))
	r.rotated = r.rotated[len(r.planned):]
	r.planned = nil
}

// openRotated finds the rotated files beside the log being opened (cur
// is its stat, v its verification) and checks that the log continues
// them: an empty file continues the newest (its first record will say
// so), and a file that begins with audit.rotated must follow the newest
// exactly. Remains of a rotation a crash interrupted are removed.
func (l *Log) openRotated(cur os.FileInfo, v *verifier) error {
	os.Remove(l.path + ".rotating")
	segs, err := listSegments(l.path)
	if err != nil {
		return err
	}
	// A crash between the link and the rename left a second name for
	// the current file: the rotation did not happen.
	if n := len(segs); n > 0 {
		if fi, err := os.Lstat(segs[n-1].path); err == nil && os.SameFile(fi, cur) {
			if err := os.Remove(segs[n-1].path); err != nil {
				return err
			}
			segs = segs[:n-1]
		}
	}
	l.rot.rotated = segs
	l.rot.first = v.firstSeq
	if len(segs) == 0 {
		if v.firstSeq > 1 {
			l.log.Warn("audit log continues rotated files that are no longer beside it", "path", l.path, "first_seq", v.firstSeq)
		}
		if v.firstSeq == 0 {
			l.rot.first = 1
		}
		return nil
	}
	newest := segs[len(segs)-1]
	last, err := readLastHead(newest.path)
	if err != nil {
		return fmt.Errorf("rotated file %s: %w", newest.path, err)
	}
	switch {
	case v.res.Records == 0:
		l.log.Warn("audit log is empty beside rotated files: it continues the newest", "path", l.path, "continues", newest.path)
		l.head, l.rot.first = last, last.Seq+1
		l.rot.continuing, l.rot.continued = true, newest.path
	case v.firstSeq == 1:
		return fmt.Errorf("it starts at seq 1, but rotated files of another log are beside it (%s): move them aside", newest.path)
	case v.firstSeq != last.Seq+1 || v.firstPrev != last.Hash:
		return fmt.Errorf("its first record (seq %d) does not follow the last of %s (%s)", v.firstSeq, newest.path, last)
	}
	return nil
}

// listSegments lists PATH.SEQ files, oldest first.
func listSegments(path string) ([]segment, error) {
	names, err := filepath.Glob(globEscape(path) + ".[0-9]*")
	if err != nil {
		return nil, err
	}
	var segs []segment
	for _, n := range names {
		suffix := n[len(path)+1:]
		if len(suffix) != 20 || strings.Trim(suffix, "0123456789") != "" {
			continue
		}
		first, err := strconv.ParseUint(suffix, 10, 64)
		if err != nil || first == 0 {
			continue
		}
		segs = append(segs, segment{n, first})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].first < segs[j].first })
	return segs, nil
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// readLastHead reads the head of a complete log file from its end.
func readLastHead(path string) (Head, error) {
	f, fi, err := regfile.Open(path)
	if err != nil {
		return Head{}, err
	}
	defer f.Close()
	n := min(fi.Size(), MaxLine+2)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, fi.Size()-n); err != nil && err != io.EOF {
		return Head{}, err
	}
	if n == 0 || buf[n-1] != '\n' {
		return Head{}, errors.New("it does not end in a complete record")
	}
	line := buf[:n-1]
	i := bytes.LastIndexByte(line, '\n')
	if i < 0 && n < fi.Size() {
		return Head{}, fmt.Errorf("its last line is longer than %d bytes", MaxLine)
	}
	line = line[i+1:]
	rec, reason := parseRecord(line)
	if reason != "" {
		return Head{}, fmt.Errorf("its last line: %s", reason)
	}
	return Head{Seq: rec.seq, Hash: hashLine(line)}, nil
}

// readFirstSeq reads the seq of a log file's first record; 0 for an
// empty file.
func readFirstSeq(path string) (uint64, error) {
	f, _, err := regfile.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, MaxLine+1)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	line, _, ok := bytes.Cut(buf[:n], []byte("\n"))
	if !ok {
		return 0, &VerifyError{File: path, Line: 1, Reason: "no complete record"}
	}
	rec, reason := parseRecord(line)
	if reason != "" {
		return 0, &VerifyError{File: path, Line: 1, Reason: reason}
	}
	return rec.seq, nil
}

// VerifyFiles verifies the files of one log across rotation: the
// current file and the rotated PATH.SEQ files, in any order (they are
// put in the order of their first records). Each file must continue
// the one before it, beginning with an audit.rotated record; the first
// must begin at seq 1, or continue files whose deletion an
// audit.rotated record among them records. A partial last record is
// allowed in the newest file only. A *VerifyError names the file and
// line.
func VerifyFiles(paths []string) (Result, error) {
	type file struct {
		path  string
		first uint64
		fi    os.FileInfo
	}
	var files []file
	for _, p := range paths {
		first, err := readFirstSeq(p)
		if err != nil {
			return Result{}, err
		}
		if first == 0 {
			continue // an empty file adds nothing
		}
		fi, err := os.Stat(p)
		if err != nil {
			return Result{}, err
		}
		files = append(files, file{p, first, fi})
	}
	sort.SliceStable(files, func(i, j int) bool { return files[i].first < files[j].first })
	for i := 1; i < len(files); i++ {
		if files[i].first == files[i-1].first {
			if os.SameFile(files[i].fi, files[i-1].fi) {
				return Result{}, fmt.Errorf("%s and %s are the same file", files[i-1].path, files[i].path)
			}
			return Result{}, &VerifyError{File: files[i].path, Line: 1, Reason: fmt.Sprintf("begins at seq %d, as %s does", files[i].first, files[i-1].path)}
		}
	}
	v := verifier{allowContinue: true}
	for i, f := range files {
		r, _, err := regfile.Open(f.path)
		if err != nil {
			return v.res, err
		}
		err = v.run(r)
		r.Close()
		if ve := (*VerifyError)(nil); errors.As(err, &ve) {
			ve.File = f.path
		}
		if err != nil {
			return v.res, err
		}
		if i > 0 && v.fileEvent != EventRotated {
			return v.res, &VerifyError{File: f.path, Line: 1, Reason: "a later file of a rotated log does not begin with an audit.rotated record"}
		}
		if v.res.TornTail && i < len(files)-1 {
			return v.res, &VerifyError{File: f.path, Line: v.res.TornLine, Reason: "a partial record, in a file that later files follow"}
		}
	}
	if v.firstSeq > 1 && !v.deleted[Head{Seq: v.firstSeq - 1, Hash: v.firstPrev}] {
		return v.res, &VerifyError{File: files[0].path, Line: 1, Reason: fmt.Sprintf(
			"the log begins at seq %d, continuing rotated files, and no audit.rotated record among these files deletes the records before it: give every file of the log (PATH PATH.*)", v.firstSeq)}
	}
	return v.res, nil
}

// Files lists the files of the log at path: the rotated PATH.SEQ files
// beside it, oldest first, then path itself.
func Files(path string) ([]string, error) {
	segs, err := listSegments(path)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(segs)+1)
	for _, s := range segs {
		out = append(out, s.path)
	}
	return append(out, path), nil
}
