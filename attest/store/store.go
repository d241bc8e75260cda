// Package store keeps program attestations on disk, bounded: each
// trace's attestations (one signed envelope per program) and, once by
// its digest, the source they were generated from, with limits per
// subject (who asked) and in all. Past a limit the oldest traces go
// first, from the subject that holds the most, so that one subject's
// flood of requests costs it its own history, not another's share; every
// removal is reported (Options.Rotated) for the audit log.
//
// A directory holds:
//
//	BATCH+SUBJECT+SOURCE+NN-PROBE.dsse.json  one program's attestation
//	sources/sha256-HEX                        a source text, once
//
// where BATCH names the trace (time, process, session), SUBJECT is a
// hash of who asked, SOURCE the source's SHA-256 (or "none"), so that
// the store's accounting is rebuilt from the names alone when it opens.
// Files are 0640, directories 0750: the sources are other users'
// scripts. Other attestations in the directory (*.dsse.json of an
// earlier layout) count against the total limit, oldest first, as a
// subject of their own; no other file is counted or removed. A source
// no attestation refers to (a crash between the two) is removed when
// the store is first scanned. One process manages a store's limits.
package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/internal/regfile"
)

// Options bound a store. Zero limits are unbounded.
type Options struct {
	// MaxBytes bounds the whole store; MaxBytesPerSubject what one
	// subject's traces take.
	MaxBytes, MaxBytesPerSubject int64
	// Rotated hears every removal (nil: none is reported).
	Rotated func(Rotation)
}

// Rotation is one trace's attestations removed to make room.
type Rotation struct {
	// Subject is whom the trace was charged to, when this Store stored
	// it (else ""); SubjectTag its hash, which the file names carry.
	Subject    string
	SubjectTag string
	Batch      string // the removed trace's name
	Files      int    // files removed (its attestations and an unshared source)
	Bytes      int64
	// Reason is "subject limit" (the subject's own new trace needed the
	// room) or "store limit" (the whole store was full).
	Reason string
}

// SourcesDir is where sources are kept, in the store's directory
// (attest.SourceRef).
const SourcesDir = "sources"

// Store is a directory of attestations with its accounting.
type Store struct {
	dir string
	opt Options

	mu      sync.Mutex
	scanned bool
	batches []*batch // oldest first
	usage   map[string]int64
	total   int64
	sources map[string]*source // by digest
	names   map[string]string  // subjects by tag, as Add saw them
}

type batch struct {
	name    string
	subject string
	files   []string // attestation files, relative to dir
	source  string   // digest, "" for none
	bytes   int64    // the attestations alone
}

type source struct {
	refs  int
	bytes int64
}

// Open returns the store of dir, creating it. Its accounting is read
// from dir when a limit first needs it.
func Open(dir string, opt Options) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, SourcesDir), 0o750); err != nil {
		return nil, err
	}
	return &Store{dir: dir, opt: opt, usage: map[string]int64{}, sources: map[string]*source{}, names: map[string]string{}}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// SubjectTag is the name part of a subject: a hash, so that any subject
// makes a file name and none is spelled out in one.
func SubjectTag(subject string) string {
	sum := sha256.Sum256([]byte(subject))
	return hex.EncodeToString(sum[:8])
}

// Envelope is one program's attestation, named by its probe.
type Envelope struct {
	Probe string
	Data  []byte
}

// ErrTooLarge is a trace whose attestations exceed a limit by
// themselves.
var ErrTooLarge = errors.New("larger than the attestation store allows")

// Add stores one trace's attestations for subject: src (nil: no text)
// once under sources/, then every envelope, each written whole and
// never over another. batch names the trace (time, process, session),
// unique per store. It returns the envelopes' paths. If it fails,
// nothing of the trace is left.
func (s *Store) Add(subject, batchName string, src []byte, envs []Envelope) (paths []string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := &batch{name: fileSafe(batchName), subject: SubjectTag(subject)}
	s.names[b.subject] = subject
	var digest string
	if src != nil {
		sum := sha256.Sum256(src)
		digest = hex.EncodeToString(sum[:])
		b.source = digest
	}
	srcName := b.source
	if srcName == "" {
		srcName = "none"
	}
	for _, e := range envs {
		b.bytes += int64(len(e.Data))
	}
	need := b.bytes
	if digest != "" && s.sources[digest] == nil {
		need += int64(len(src))
	}
	if err := s.makeRoom(b.subject, need); err != nil {
		return nil, err
	}

	var written []string
	defer func() {
		if err != nil {
			for _, p := range written {
				os.Remove(p)
			}
			paths = nil
		}
	}()
	if digest != "" && s.sources[digest] == nil {
		p := filepath.Join(s.dir, attest.SourceRef(digest))
		err := regfile.WriteAtomic(p, src, 0o640, true)
		switch {
		case errors.Is(err, fs.ErrExist):
			// Kept by an earlier process: its accounting counts it.
		case err != nil:
			return nil, err
		default:
			written = append(written, p)
		}
	}
	for i, e := range envs {
		name := fmt.Sprintf("%s+%s+%s+%02d-%s.dsse.json", b.name, b.subject, srcName, i, probePart(e.Probe))
		p := filepath.Join(s.dir, name)
		if err := regfile.WriteAtomic(p, e.Data, 0o640, true); err != nil {
			return nil, err
		}
		written = append(written, p)
		b.files = append(b.files, name)
		paths = append(paths, p)
	}
	s.account(b, int64(len(src)))
	return paths, nil
}

// account adds a stored batch to the books; srcBytes is its source's
// size.
func (s *Store) account(b *batch, srcBytes int64) {
	s.batches = append(s.batches, b)
	s.usage[b.subject] += b.bytes
	s.total += b.bytes
	if b.source == "" {
		return
	}
	src := s.sources[b.source]
	if src == nil {
		src = &source{bytes: srcBytes}
		s.sources[b.source] = src
		s.total += srcBytes
	}
	src.refs++
	// Every trace of a source is charged its size: its own copy, as far
	// as its subject's share goes.
	s.usage[b.subject] += src.bytes
}

// makeRoom removes the oldest traces until need more bytes fit: first
// subject's own, to its limit; then, while the store is over its
// limit, those of whoever holds the most, counting subject's need.
func (s *Store) makeRoom(subject string, need int64) error {
	if s.opt.MaxBytes <= 0 && s.opt.MaxBytesPerSubject <= 0 {
		return nil
	}
	if err := s.scan(); err != nil {
		return err
	}
	if lim := s.opt.MaxBytesPerSubject; lim > 0 {
		if need > lim {
			return fmt.Errorf("the attestations of this trace take %d bytes: %w (%d per subject)", need, ErrTooLarge, lim)
		}
		for s.usage[subject]+need > lim {
			if !s.evictOldest(subject, "subject limit") {
				break
			}
		}
	}
	if lim := s.opt.MaxBytes; lim > 0 {
		if need > lim {
			return fmt.Errorf("the attestations of this trace take %d bytes: %w (%d in all)", need, ErrTooLarge, lim)
		}
		for s.total+need > lim {
			if !s.evictOldest(s.largest(subject, need), "store limit") {
				return fmt.Errorf("the attestation store is full: %d of %d bytes, and %d more needed", s.total, lim, need)
			}
		}
	}
	return nil
}

// largest is the subject holding the most, subject's need counted as
// held and subject first among equals; subject itself only when it
// holds something to remove.
func (s *Store) largest(subject string, need int64) string {
	best, bestBytes := subject, s.usage[subject]+need
	for sub, n := range s.usage {
		if sub != subject && (n > bestBytes || n == bestBytes && best != subject && s.older(sub, best)) {
			best, bestBytes = sub, n
		}
	}
	if best == subject && !s.holds(subject) {
		best, bestBytes = "", -1
		for sub, n := range s.usage {
			if sub != subject && s.holds(sub) && (n > bestBytes || n == bestBytes && s.older(sub, best)) {
				best, bestBytes = sub, n
			}
		}
	}
	return best
}

func (s *Store) holds(subject string) bool {
	for _, b := range s.batches {
		if b.subject == subject {
			return true
		}
	}
	return false
}

// older says whether a's oldest trace is older than b's.
func (s *Store) older(a, b string) bool {
	for _, x := range s.batches {
		switch x.subject {
		case a:
			return true
		case b:
			return false
		}
	}
	return false
}

// evictOldest removes subject's oldest trace; false if it has none.
func (s *Store) evictOldest(subject, reason string) bool {
	for i, b := range s.batches {
		if b.subject != subject {
			continue
		}
		s.batches = append(s.batches[:i], s.batches[i+1:]...)
		r := Rotation{Subject: s.names[subject], SubjectTag: subject, Batch: b.name, Bytes: b.bytes, Reason: reason}
		for _, f := range b.files {
			if os.Remove(filepath.Join(s.dir, f)) == nil {
				r.Files++
			}
		}
		s.usage[subject] -= b.bytes
		s.total -= b.bytes
		if src := s.sources[b.source]; src != nil {
			s.usage[subject] -= src.bytes
			if src.refs--; src.refs == 0 {
				delete(s.sources, b.source)
				s.total -= src.bytes
				r.Bytes += src.bytes
				if os.Remove(filepath.Join(s.dir, attest.SourceRef(b.source))) == nil {
					r.Files++
				}
			}
		}
		if s.usage[subject] <= 0 {
			delete(s.usage, subject)
		}
		if s.opt.Rotated != nil {
			s.opt.Rotated(r)
		}
		return true
	}
	return false
}

// otherSubject is the subject of files the store did not name.
const otherSubject = "other"

// nameRE is an attestation's name as Add writes it.
var nameRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([A-Za-z0-9._-]+)\+([0-9a-f]{16})\+([0-9a-f]{64}|none)\+[0-9]+-.*\.dsse\.json$`)
})

// scan reads the store's accounting from its directory, once.
func (s *Store) scan() error {
	if s.scanned {
		return nil
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	type file struct {
		name string
		info fs.FileInfo
	}
	var files []file
	for _, e := range entries {
		// Only attestations: whatever else shares the directory (a
		// misconfigured one could be the state directory, keys and
		// all) is neither counted nor removed.
		if !strings.HasSuffix(e.Name(), ".dsse.json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			files = append(files, file{e.Name(), fi})
		}
	}
	sort.SliceStable(files, func(i, j int) bool { return files[i].info.ModTime().Before(files[j].info.ModTime()) })
	byName := map[string]*batch{}
	srcSize := map[string]int64{}
	for _, f := range files {
		m := nameRE().FindStringSubmatch(f.name)
		if m == nil {
			// Not the store's: it counts, and goes first, as a
			// subject of its own.
			b := &batch{name: f.name, subject: otherSubject, files: []string{f.name}, bytes: f.info.Size()}
			s.account(b, 0)
			continue
		}
		key := m[1] + "+" + m[2]
		b := byName[key]
		if b == nil {
			b = &batch{name: m[1], subject: m[2]}
			if m[3] != "none" {
				b.source = m[3]
			}
			byName[key] = b
			s.batches = append(s.batches, b)
		}
		b.files = append(b.files, f.name)
		b.bytes += f.info.Size()
	}
	// Attestations of one trace were just appended by their first
	// file; their sizes are known only now.
	batches := s.batches
	s.batches, s.usage, s.total = nil, map[string]int64{}, 0
	for _, b := range batches {
		var size int64
		if b.source != "" {
			if _, ok := srcSize[b.source]; !ok {
				if fi, err := os.Stat(filepath.Join(s.dir, attest.SourceRef(b.source))); err == nil {
					srcSize[b.source] = fi.Size()
				} else {
					b.source = "" // gone: nothing to charge or remove
				}
			}
			size = srcSize[b.source]
		}
		s.account(b, size)
	}
	// A source no attestation refers to is what a crash between writing
	// a trace's source and its attestations leaves: nothing needs it.
	srcs, err := os.ReadDir(filepath.Join(s.dir, SourcesDir))
	if err != nil {
		return err
	}
	for _, e := range srcs {
		digest, ok := strings.CutPrefix(e.Name(), "sha256-")
		if ok && s.sources[digest] == nil {
			os.Remove(filepath.Join(s.dir, SourcesDir, e.Name()))
		}
	}
	s.scanned = true
	return nil
}

// Usage is what subject's traces take and what the whole store takes,
// in bytes, by the store's accounting.
func (s *Store) Usage(subject string) (subjectBytes, total int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.scan(); err != nil {
		return 0, 0, err
	}
	return s.usage[SubjectTag(subject)], s.total, nil
}

// fileSafe makes a name part of s: only [A-Za-z0-9._-].
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}

// maxProbePart bounds the probe's part of a file name: a uprobe's path
// may be as long as a path, and a name is at most 255 bytes.
const maxProbePart = 96

func probePart(probe string) string {
	p := fileSafe(probe)
	if len(p) > maxProbePart {
		sum := sha256.Sum256([]byte(probe))
		p = p[:maxProbePart-17] + "_" + hex.EncodeToString(sum[:8])
	}
	return p
}
