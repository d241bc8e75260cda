package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tracebroker/tracebroker/internal/regfile"
)

// Head names the last record of a log: its seq and the SHA-256 of its
// line. The head of an empty log is seq 0 and ZeroHash.
type Head struct {
	Seq  uint64
	Hash string
}

// String is the SEQ:HASH form that ParseHead reads and that
// `tracebroker audit verify --expect-head` takes.
func (h Head) String() string { return strconv.FormatUint(h.Seq, 10) + ":" + h.Hash }

// ParseHead reads SEQ:HASH, HASH being 64 lowercase hex digits.
func ParseHead(s string) (Head, error) {
	seq, hash, ok := strings.Cut(s, ":")
	if !ok {
		return Head{}, fmt.Errorf("head %q: want SEQ:HASH", s)
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return Head{}, fmt.Errorf("head %q: seq is not a number", s)
	}
	if !isHash(hash) {
		return Head{}, fmt.Errorf("head %q: hash is not 64 lowercase hex digits", s)
	}
	if n == 0 && hash != ZeroHash {
		return Head{}, fmt.Errorf("head %q: seq 0 (an empty log) has hash %s", s, ZeroHash)
	}
	return Head{Seq: n, Hash: hash}, nil
}

// Result is what Verify found. After an error it covers the records
// before the bad line.
type Result struct {
	// Records is the number of complete records, all verified.
	Records int
	// Head is the last complete record's seq and hash.
	Head Head
	// TornTail says the data ends in a partial line: a record cut off
	// by a crash while it was being written, never complete and so never
	// acknowledged. TornBytes is its length and TornLine its line number.
	TornTail  bool
	TornBytes int
	TornLine  int
}

// VerifyError is a log that is not an unbroken chain: Line (1-based) is
// the first line that does not follow from the ones before it, in File
// when several files were verified (VerifyFiles).
type VerifyError struct {
	File   string
	Line   int
	Reason string
}

func (e *VerifyError) Error() string {
	if e.File != "" {
		return fmt.Sprintf("%s: line %d: %s", e.File, e.Line, e.Reason)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
}

// Verify reads a whole log and checks that each complete line is a
// record of this format whose seq follows the previous record's and whose
// prev is the SHA-256 of the previous line's bytes as stored. Memory is
// bounded by MaxLine whatever the input.
func Verify(r io.Reader) (Result, error) {
	var v verifier
	err := v.run(r)
	return v.res, err
}

// VerifyFile verifies the log at path, which must be a regular file: a
// FIFO planted there is refused rather than blocking the auditor.
func VerifyFile(path string) (Result, error) {
	f, _, err := regfile.Open(path)
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	return Verify(f)
}

// verifier is the chain check, shared by Verify, VerifyFiles and Open,
// which needs where the complete records end to cut a torn tail off.
// VerifyFiles runs it over each file in turn.
type verifier struct {
	res Result
	// end is the byte length of the complete records of the last file.
	end int64

	// allowContinue lets the first record be an audit.rotated record
	// after seq 1: a file that continues rotated ones. firstSeq and
	// firstPrev are the first record's seq and prev.
	allowContinue bool
	firstSeq      uint64
	firstPrev     string
	// fileEvent is the event of the last file's first record.
	fileEvent string
	// deleted are the heads of deleted rotated files that audit.rotated
	// records name.
	deleted map[Head]bool
}

func (v *verifier) run(r io.Reader) error {
	if v.res.Head.Hash == "" {
		v.res.Head = Head{Hash: ZeroHash}
	}
	v.end, v.fileEvent = 0, ""
	v.res.TornTail, v.res.TornBytes, v.res.TornLine = false, 0, 0
	// Small reads, growing a line only as far as MaxLine, so that a
	// hostile file cannot make the verifier allocate without bound.
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	for line := 1; ; line++ {
		frag, err := br.ReadSlice('\n')
		b := frag
		for err == bufio.ErrBufferFull {
			long = append(long[:0], frag...)
			for err == bufio.ErrBufferFull && len(long) <= MaxLine {
				frag, err = br.ReadSlice('\n')
				long = append(long, frag...)
			}
			b = long
		}
		complete := len(b) > 0 && b[len(b)-1] == '\n'
		if complete {
			b = b[:len(b)-1]
		}
		if len(b) > MaxLine {
			return &VerifyError{Line: line, Reason: fmt.Sprintf("longer than %d bytes", MaxLine)}
		}
		if err != nil && err != io.EOF {
			return err
		}
		if !complete {
			if len(b) > 0 {
				v.res.TornTail, v.res.TornBytes, v.res.TornLine = true, len(b), line
			}
			return nil
		}
		if reason := v.add(b, line == 1); reason != "" {
			return &VerifyError{Line: line, Reason: reason}
		}
		v.end += int64(len(b)) + 1
	}
}

// add checks one complete line (without its newline) against the chain
// so far and, if it follows, makes it the head. It returns why not.
func (v *verifier) add(line []byte, fileStart bool) string {
	rec, reason := parseRecord(line)
	if reason != "" {
		return reason
	}
	if fileStart {
		v.fileEvent = rec.event
	}
	if rec.event == EventRotated {
		if !fileStart {
			return "an audit.rotated record that does not begin its file"
		}
		if reason := v.rotated(rec.data); reason != "" {
			return reason
		}
	}
	h := v.res.Head
	switch {
	case h.Seq == 0 && rec.seq > 1 && rec.event == EventRotated && v.allowContinue:
		// Continues rotated files: VerifyFiles checks that their
		// deletion is on the record.
		v.firstSeq, v.firstPrev = rec.seq, rec.prev
	case h.Seq == 0 && rec.seq > 1 && rec.event == EventRotated:
		return fmt.Sprintf("seq %d: the log continues rotated files; verify it with them (tracebroker audit verify PATH PATH.*)", rec.seq)
	case h.Seq == 0 && rec.seq != 1:
		return fmt.Sprintf("seq %d: the log does not start at seq 1 (records deleted from the start)", rec.seq)
	case h.Seq == 0 && rec.prev != ZeroHash:
		return "prev of seq 1 is not 64 zeros (records deleted from the start, or a forged first record)"
	case h.Seq != 0 && rec.seq <= h.Seq:
		return fmt.Sprintf("seq %d after %d (record duplicated, reordered or inserted)", rec.seq, h.Seq)
	case h.Seq != 0 && rec.seq != h.Seq+1:
		return fmt.Sprintf("seq %d after %d (record deleted or reordered)", rec.seq, h.Seq)
	case rec.prev != h.Hash:
		return fmt.Sprintf("prev hash does not match line %d (record edited, inserted or deleted)", v.res.Records)
	}
	if h.Seq == 0 && v.firstSeq == 0 {
		v.firstSeq, v.firstPrev = rec.seq, rec.prev
	}
	v.res.Records++
	v.res.Head = Head{Seq: rec.seq, Hash: hashLine(line)}
	return ""
}

// rotated reads an audit.rotated record's deletion, if it has one.
func (v *verifier) rotated(data json.RawMessage) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return "audit.rotated data is not an object"
	}
	raw, ok := m["deleted_head"]
	if !ok {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "audit.rotated deleted_head is not a string"
	}
	h, err := ParseHead(s)
	if err != nil {
		return "audit.rotated " + err.Error()
	}
	if v.deleted == nil {
		v.deleted = map[Head]bool{}
	}
	v.deleted[h] = true
	return ""
}

type record struct {
	seq   uint64
	prev  string
	event string
	data  json.RawMessage
}

// parseRecord reads the fields the chain needs from a line. Keys are
// matched exactly, not as encoding/json's struct decoding would
// (case-insensitively), so that what is checked is what is written.
func parseRecord(line []byte) (record, string) {
	var rec record
	if !json.Valid(line) || len(bytes.TrimLeft(line, " \t\r")) == 0 || bytes.TrimLeft(line, " \t\r")[0] != '{' {
		return rec, "not a JSON object (a torn or edited record)"
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return rec, "not a JSON object"
	}
	var seen struct{ v, seq, time, prev, event, data bool }
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return rec, "not a JSON object"
		}
		key, _ := t.(string)
		var bad bool
		switch key {
		case "v":
			var n json.Number
			bad = dec.Decode(&n) != nil
			if !bad && n.String() != strconv.Itoa(Version) {
				return rec, fmt.Sprintf("unsupported format version v=%s (this build reads v=%d)", n, Version)
			}
			seen.v = true
		case "seq":
			bad = dec.Decode(&rec.seq) != nil || rec.seq == 0
			seen.seq = true
		case "time":
			var s string
			bad = dec.Decode(&s) != nil
			if !bad {
				_, err := time.Parse(time.RFC3339Nano, s)
				bad = err != nil
			}
			seen.time = true
		case "prev":
			bad = dec.Decode(&rec.prev) != nil || !isHash(rec.prev)
			seen.prev = true
		case "event":
			bad = dec.Decode(&rec.event) != nil || validEvent(rec.event) != nil
			seen.event = true
		case "data":
			bad = dec.Decode(&rec.data) != nil || len(rec.data) == 0 || rec.data[0] != '{'
			seen.data = true
		default:
			return rec, fmt.Sprintf("unknown field %q", key)
		}
		if bad {
			return rec, fmt.Sprintf("field %q is not valid", key)
		}
	}
	for _, f := range []struct {
		name string
		ok   bool
	}{{"v", seen.v}, {"seq", seen.seq}, {"time", seen.time}, {"prev", seen.prev}, {"event", seen.event}, {"data", seen.data}} {
		if !f.ok {
			return rec, fmt.Sprintf("no %q field", f.name)
		}
	}
	return rec, ""
}

func hashLine(line []byte) string {
	s := sha256.Sum256(line)
	return hex.EncodeToString(s[:])
}

// isHash is a SHA-256 in lowercase hex, the only spelling Append
// writes.
func isHash(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size && s == strings.ToLower(s)
}

// validEvent keeps event kinds to dotted lowercase names, so that the
// event needs no JSON escaping and reads the same in every tool.
func validEvent(e string) error {
	if len(e) == 0 || len(e) > maxEvent {
		return fmt.Errorf("audit: event kind %q: want 1 to %d characters", e, maxEvent)
	}
	for i := 0; i < len(e); i++ {
		c := e[i]
		ok := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-')
		if !ok {
			return fmt.Errorf("audit: event kind %q: want [a-z0-9] followed by [a-z0-9._-]", e)
		}
	}
	return nil
}
