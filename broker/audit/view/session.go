package view

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/attest/store"
	"github.com/tracebroker/tracebroker/internal/regfile"
)

// Session is one session told from its records and attestations.
type Session struct {
	ID      string `json:"id"`
	Subject string `json:"subject,omitempty"`
	// Request, Admitted, End and Refused are the data of its records of
	// those kinds (nil: none); Stops an administrator's session.stop.
	Request  json.RawMessage   `json:"request,omitempty"`
	Admitted json.RawMessage   `json:"admitted,omitempty"`
	End      json.RawMessage   `json:"end,omitempty"`
	Refused  json.RawMessage   `json:"refused,omitempty"`
	Stops    []json.RawMessage `json:"stops,omitempty"`
	Records  []Record          `json:"records"`
	// Attestations are its programs' signed attestations; AttestError
	// says why there are none to show (no directory, none kept).
	Attestations []Attestation `json:"attestations"`
	AttestError  string        `json:"attest_error,omitempty"`
}

// Attestation is one program's attestation file, verified or not.
type Attestation struct {
	File string `json:"file"`
	// Verified says it is signed by a trusted host key (Signer) and its
	// code is what its subject digest says; Error says why not. The
	// predicate of one that did not verify is not shown at all.
	Verified  bool                     `json:"verified"`
	Signer    string                   `json:"signer,omitempty"`
	Error     string                   `json:"error,omitempty"`
	Predicate *attest.ProgramPredicate `json:"predicate,omitempty"`
	// Source is the kept source text when it matches the signed digest
	// (SourceNote says so, or why it is not shown).
	Source     string `json:"source,omitempty"`
	SourceNote string `json:"source_note,omitempty"`
}

// Bounds on what a session's attestations take to read.
const (
	maxAttestations = 256      // a program per probe: more than a request may have
	maxSource       = 64 << 10 // shown of a kept source; a longer one is named, not shown
)

// sessionID is the daemon's: 12 hex digits (newID). Anything else is
// refused before it reaches a glob pattern.
func sessionID(id string) bool {
	if len(id) < 1 || len(id) > 32 {
		return false
	}
	for _, c := range []byte(id) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidSessionID says whether id can be a session's.
func ValidSessionID(id string) error {
	if !sessionID(id) {
		return fmt.Errorf("session %q: a session id is hex digits (tracebroker sessions list, or audit show)", id)
	}
	return nil
}

// Tell gathers session id from recs (Read with Filter.Session) and its
// attestations in dir ("" : none), verified with trust.
func Tell(id string, recs []Record, dir string, trust *attest.Trust) *Session {
	s := &Session{ID: id, Records: recs, Attestations: []Attestation{}}
	for _, r := range recs {
		if r.Session != id {
			continue
		}
		if s.Subject == "" {
			s.Subject = r.Subject
		}
		switch r.Event {
		case "trace.request":
			s.Request = r.Data
		case "trace.admitted":
			s.Admitted = r.Data
		case "trace.end":
			s.End = r.Data
		case "trace.refused":
			s.Refused = r.Data
		case "session.stop":
			s.Stops = append(s.Stops, r.Data)
		}
	}
	if dir == "" {
		s.AttestError = "no attestation directory given"
		return s
	}
	if err := ValidSessionID(id); err != nil {
		s.AttestError = err.Error()
		return s
	}
	files, err := filepath.Glob(filepath.Join(dir, "*-"+id+"+*.dsse.json"))
	switch {
	case err != nil:
		s.AttestError = err.Error()
		return s
	case len(files) == 0:
		s.AttestError = "none kept in " + dir + " (never attested: refused before the gatekeeper; or removed to make room: see attest.rotated)"
		return s
	case len(files) > maxAttestations:
		s.AttestError = fmt.Sprintf("%d attestation files, more than the %d a session can have: none shown", len(files), maxAttestations)
		return s
	}
	sort.Strings(files)
	for _, f := range files {
		s.Attestations = append(s.Attestations, readAttestation(f, trust))
	}
	return s
}

func readAttestation(path string, trust *attest.Trust) Attestation {
	a := Attestation{File: path}
	env, err := regfile.ReadFile(path, attest.MaxEnvelopeSize)
	if err != nil {
		a.Error = err.Error()
		return a
	}
	if trust == nil {
		a.Error = "no host key to verify it with"
		return a
	}
	p, signer, err := attest.VerifyProgram(env, trust, nil)
	if err != nil {
		a.Error = err.Error()
		return a
	}
	a.Verified, a.Signer, a.Predicate = true, signer, p
	p.Program.Code = "" // the bytecode is in the file; the view says what it is
	switch {
	case p.Source.Text != "":
		a.Source, a.SourceNote = p.Source.Text, "carried in the attestation, matches its digest"
		p.Source.Text = ""
	case p.Source.TextRef == attest.SourceRef(p.Source.Digest):
		path := filepath.Join(filepath.Dir(path), filepath.FromSlash(store.SourcesDir), "sha256-"+p.Source.Digest)
		b, err := regfile.ReadFile(path, maxSource)
		switch {
		case errors.Is(err, os.ErrNotExist):
			a.SourceNote = "not kept (" + path + ")"
		case err != nil:
			a.SourceNote = err.Error()
		case attest.VerifySource(p, b) != nil:
			a.SourceNote = path + " does not match the signed digest: not shown"
		default:
			a.Source, a.SourceNote = string(b), "kept, matches the signed digest"
		}
	}
	return a
}
