// Package view reads an audit log (broker/audit) for people: its records
// filtered by session, subject, time and event, and a session told
// whole, from its request to its end, with what ran as its signed
// attestations say (attest/store).
//
// Everything it reads is untrusted: the log is a file anyone who can
// write it may have edited (the chain says whether they did: callers
// verify it first, with audit.VerifyFiles, and say so), and its strings
// came from requests. So it bounds what it reads and keeps, and leaves
// escaping for the terminal to the printer (Print).
package view

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/tracebroker/tracebroker/broker/audit"
	"github.com/tracebroker/tracebroker/internal/regfile"
)

// Bounds on what is read.
const (
	// maxLine is audit's own limit on a line; a longer one is skipped.
	maxLine = audit.MaxLine
	// DefaultMaxRecords bounds the records kept (the newest are).
	DefaultMaxRecords = 10000
	// maxSessions bounds the sessions under way whose subject is
	// remembered.
	maxSessions = 100000
)

// Filter picks records. Zero fields pick everything.
type Filter struct {
	Session string // its records only
	// Subject picks the sessions of a token subject, or of uid:N or
	// tcp:ADDR for a caller without a token (the daemon's names).
	Subject      string
	Since, Until time.Time
	Events       []string // event kinds, exactly
}

// Record is one audit record.
type Record struct {
	Seq   uint64          `json:"seq"`
	Time  time.Time       `json:"time"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
	// Session and Subject are read from Data (Subject from the
	// session's request), for filtering and showing.
	Session string `json:"session,omitempty"`
	Subject string `json:"subject,omitempty"`
}

// Result is what Read found.
type Result struct {
	Records []Record
	// Dropped counts matching records left out, the oldest, past the
	// bound; Unreadable the lines that are not records (a torn tail,
	// or an edit the chain check reports).
	Dropped, Unreadable int
}

// Read reads the records of files, in order, that f picks, keeping the
// newest max (0: DefaultMaxRecords).
func Read(files []string, f Filter, max int) (Result, error) {
	if max <= 0 {
		max = DefaultMaxRecords
	}
	var res Result
	// The subjects of the sessions under way, for their later records:
	// forgotten at each session's end, and bounded for the sessions that
	// never end (a crash).
	subjects := map[string]string{}
	var kept []Record // a ring of the newest max
	next := 0
	var session []byte
	if f.Session != "" {
		session, _ = json.Marshal(f.Session)
		session = append([]byte(`"session":`), session...)
	}
	for _, name := range files {
		if err := readFile(name, func(line []byte) {
			// A session's records name it as the daemon writes them: the
			// others are not worth decoding (a log edited to spell it
			// otherwise does not verify, which audit show says).
			if session != nil && line != nil && !bytes.Contains(line, session) {
				return
			}
			r, ok := parse(line)
			if !ok {
				res.Unreadable++
				return
			}
			if r.Session != "" {
				if s, ok := subjects[r.Session]; ok {
					r.Subject = s
				} else if r.Subject != "" && len(subjects) < maxSessions {
					subjects[r.Session] = r.Subject
				}
				if r.Event == "trace.end" || r.Event == "trace.refused" {
					delete(subjects, r.Session)
				}
			}
			if !f.picks(&r) {
				return
			}
			if len(kept) < max {
				kept = append(kept, r)
				return
			}
			kept[next] = r
			next = (next + 1) % max
			res.Dropped++
		}); err != nil {
			return res, err
		}
	}
	res.Records = slices.Concat(kept[next:], kept[:next])
	return res, nil
}

func (f *Filter) picks(r *Record) bool {
	switch {
	case f.Session != "" && r.Session != f.Session:
		return false
	case f.Subject != "" && r.Subject != f.Subject:
		return false
	case !f.Since.IsZero() && r.Time.Before(f.Since):
		return false
	case !f.Until.IsZero() && r.Time.After(f.Until):
		return false
	case len(f.Events) > 0 && !slices.Contains(f.Events, r.Event):
		return false
	}
	return true
}

// readFile calls fn with each line of name, skipping (as unreadable) a
// line longer than audit writes.
func readFile(name string, fn func([]byte)) error {
	// Not os.Open: a FIFO planted at the path would block.
	file, _, err := regfile.Open(name)
	if err != nil {
		return err
	}
	defer file.Close()
	br := bufio.NewReaderSize(file, 64<<10)
	var long bool
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		switch {
		case err == bufio.ErrBufferFull:
			if !long && len(buf)+len(chunk) <= maxLine {
				buf = append(buf, chunk...)
			} else {
				long, buf = true, buf[:0]
			}
			continue
		case err != nil && err != io.EOF:
			return fmt.Errorf("%s: %w", name, err)
		}
		if len(chunk) > 0 || len(buf) > 0 {
			// chunk is good until the next read, and fn keeps nothing
			// of the line (json copies what it decodes).
			line := chunk
			if len(buf) > 0 {
				line = append(buf, chunk...)
			}
			line = bytes.TrimSuffix(line, []byte("\n"))
			if long || len(line) > maxLine {
				fn(nil) // unreadable
			} else if len(line) > 0 {
				fn(line)
			}
		}
		long, buf = false, buf[:0]
		if err == io.EOF {
			return nil
		}
	}
}

// parse reads a record and the session and subject its data names.
func parse(line []byte) (Record, bool) {
	var r Record
	if line == nil || json.Unmarshal(line, &r) != nil || r.Seq == 0 || r.Event == "" || len(r.Data) == 0 || r.Data[0] != '{' {
		return r, false
	}
	var d struct {
		Session string `json:"session"`
		Token   *struct {
			Sub string `json:"sub"`
		} `json:"token"`
		Caller *struct {
			Unix bool   `json:"unix"`
			UID  uint32 `json:"uid"`
			Addr string `json:"addr"`
		} `json:"caller"`
	}
	if json.Unmarshal(r.Data, &d) != nil {
		return r, false
	}
	r.Session, r.Subject = d.Session, ""
	switch {
	case d.Token != nil && d.Token.Sub != "":
		r.Subject = d.Token.Sub
	case d.Caller != nil && d.Caller.Unix:
		r.Subject = fmt.Sprintf("uid:%d", d.Caller.UID)
	case d.Caller != nil:
		r.Subject = "tcp:" + d.Caller.Addr
	}
	return r, true
}
