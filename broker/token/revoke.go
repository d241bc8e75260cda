package token

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/tracebroker/tracebroker/internal/regfile"
)

// MaxRevocationsFileSize bounds the revocation list: about 100,000 jtis.
const MaxRevocationsFileSize = 4 << 20

// Revocations is a revocation list read from a file: one jti a line;
// blank lines and '#' comments (whole-line or trailing) are ignored. It
// is safe for concurrent use. A nil *Revocations revokes nothing.
type Revocations struct {
	path string

	mu     sync.RWMutex
	ids    map[string]struct{}
	broken error // the last Reload's failure; nil when the list is good
}

// LoadRevocations reads the list at path; an unreadable or malformed
// list is an error, never an empty list.
func LoadRevocations(path string) (*Revocations, error) {
	ids, err := readRevocations(path)
	if err != nil {
		return nil, err
	}
	return &Revocations{path: path, ids: ids}, nil
}

// Reload re-reads the file (on SIGHUP). If that fails the list is broken:
// Revoked fails for every token until a later Reload succeeds, because
// the file that failed to load may be the one revoking a stolen token.
func (r *Revocations) Reload() error {
	if r == nil {
		return nil
	}
	ids, err := readRevocations(r.path)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.broken = err
		return err
	}
	r.ids, r.broken = ids, nil
	return nil
}

// Revoked reports whether jti is on the list, or an error while the list
// is broken.
func (r *Revocations) Revoked(jti string) (bool, error) {
	if r == nil {
		return false, nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.broken != nil {
		return false, fmt.Errorf("revocation list is broken (%v); refusing all tokens until it reloads", r.broken)
	}
	_, ok := r.ids[jti]
	return ok, nil
}

// Len is the number of revoked ids in the last list that loaded.
func (r *Revocations) Len() int {
	if r == nil {
		return 0
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.ids)
}

// readRevocations refuses a line that is not a jti Issue could have
// written (see checkID) rather than skipping it: a mangled line is most
// likely a revocation that would otherwise silently not apply.
func readRevocations(path string) (map[string]struct{}, error) {
	b, err := regfile.ReadFile(path, MaxRevocationsFileSize)
	if err != nil {
		return nil, fmt.Errorf("revocation list: %w", err)
	}
	ids := make(map[string]struct{})
	for n, line := range bytes.Split(b, []byte("\n")) {
		if i := bytes.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		id := string(line)
		if err := checkID(id); err != nil {
			hint := ""
			if len(id) > MaxIDLen && bytes.Count(line, []byte(".")) == 2 {
				hint = " (a whole token? list its jti: tracebroker token inspect)"
			}
			return nil, fmt.Errorf("revocation list %s:%d: %v%s", path, n+1, err, hint)
		}
		ids[id] = struct{}{}
	}
	return ids, nil
}
