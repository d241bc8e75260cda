package daemon

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
)

// Why a session was ended from outside, as context causes.
var (
	errShutdown = errors.New("the broker is shutting down")
	errStopped  = errors.New("stopped by an administrator")
	errExpired  = errors.New("the token expired")
	errRevoked  = errors.New("the token was revoked")
)

// session is one running trace.
type session struct {
	info   *pb.Session
	cancel context.CancelCauseFunc
	// phase is where it is (see ending.go); ended, that its end record
	// is written, by itself or by shutdown for it.
	phase string
	ended bool
}

// sessions is the table of running traces and their limits.
type sessions struct {
	max, perSubject int
	// admit, if set, has the last word on a session, under the lock
	// that stopIf takes: what it refuses cannot slip between a check
	// and a sweep (see Server.stillValid).
	admit func(*pb.Session) error

	mu        sync.Mutex
	closed    bool // shutting down: no new sessions
	byID      map[string]*session
	bySubject map[string]int
	wg        sync.WaitGroup
}

func newSessions(max, perSubject int) *sessions {
	return &sessions{max: max, perSubject: perSubject, byID: map[string]*session{}, bySubject: map[string]int{}}
}

// limitError is a session refused for a limit.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }

// add registers a session, or refuses it for a limit; an administrator's
// (admin) counts only against the total. done must be called when it
// ends.
func (t *sessions) add(info *pb.Session, admin bool, cancel context.CancelCauseFunc) (done func(), err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return nil, errShutdown
	case len(t.byID) >= t.max:
		return nil, &limitError{fmt.Sprintf("the broker runs %d sessions, its limit", len(t.byID))}
	case !admin && t.bySubject[info.Subject] >= t.perSubject:
		return nil, &limitError{fmt.Sprintf("%s already runs %d sessions, the limit per subject", info.Subject, t.bySubject[info.Subject])}
	}
	if t.admit != nil {
		if err := t.admit(info); err != nil {
			return nil, err
		}
	}
	t.byID[info.Id] = &session{info: info, cancel: cancel}
	t.bySubject[info.Subject]++
	t.wg.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			delete(t.byID, info.Id)
			if t.bySubject[info.Subject]--; t.bySubject[info.Subject] <= 0 {
				delete(t.bySubject, info.Subject)
			}
			t.mu.Unlock()
			t.wg.Done()
		})
	}, nil
}

// update changes a running session's record.
func (t *sessions) update(id string, f func(*pb.Session)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.byID[id]; s != nil {
		f(s.info)
	}
}

func (t *sessions) list() []*pb.Session {
	t.mu.Lock()
	out := make([]*pb.Session, 0, len(t.byID))
	for _, s := range t.byID {
		out = append(out, clone(s.info))
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].StartedUnixMs != out[j].StartedUnixMs {
			return out[i].StartedUnixMs < out[j].StartedUnixMs
		}
		return out[i].Id < out[j].Id
	})
	return out
}

func clone(s *pb.Session) *pb.Session { return proto.Clone(s).(*pb.Session) }

func (t *sessions) stop(id string, why error) bool {
	t.mu.Lock()
	s := t.byID[id]
	t.mu.Unlock()
	if s != nil {
		s.cancel(why)
	}
	return s != nil
}

// stopIf ends the sessions f picks, and says how many.
func (t *sessions) stopIf(f func(*pb.Session) bool, why error) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, s := range t.byID {
		if f(s.info) {
			s.cancel(why)
			n++
		}
	}
	return n
}

func (t *sessions) stopAll(why error) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for _, s := range t.byID {
		s.cancel(why)
	}
	return len(t.byID)
}

// wait waits for every session to end, up to timeout.
func (t *sessions) wait(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}
