package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/tracebroker/tracebroker/broker/audit"
)

// Every session the daemon registers gets exactly one record of its end
// in the audit log: its own trace.end (or trace.refused) when it ends,
// or, if it has not ended by the time shutdown stops waiting for it,
// one that shutdown writes for it, naming the phase it was stuck in. A
// session is ended on time in every phase (a stop, an expiry or a
// shutdown cancels its context, which every phase heeds); the record
// written for it is what makes that a promise the log can show.

// The phases of a session.
const (
	phaseGenerate = "generate" // a plugin generates its program
	phaseCompile  = "compile"  // compiling, checking scopes, the gatekeeper
	phaseLoad     = "load"     // admitted: attesting, loading, attaching
	phaseRun      = "run"      // attached
	phaseEnding   = "ending"   // stopped: END, the maps, detaching
)

// enter records the phase a session is in. Tests may hold a session in
// a phase (testHooks.phase) to shut the daemon down there.
func (s *Server) enter(ctx context.Context, id, phase string) {
	s.sessions.mu.Lock()
	if ss := s.sessions.byID[id]; ss != nil {
		ss.phase = phase
	}
	s.sessions.mu.Unlock()
	if h := s.cfg.hooks; h != nil && h.phase != nil {
		h.phase(ctx, id, phase)
	}
}

// claimEnd says whether the caller is to write the end record of
// session id: true once per registered session, and for a request that
// was never registered (refused before it).
func (t *sessions) claimEnd(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	ss := t.byID[id]
	if ss == nil {
		return true
	}
	if ss.ended {
		return false
	}
	ss.ended = true
	return true
}

// recordUnended writes, at shutdown, the end record of every session
// that has not written its own, and says how many. Their handlers find
// the record written and write none.
func (s *Server) recordUnended() int {
	type unended struct {
		id, phase string
		started   int64
	}
	var list []unended
	s.sessions.mu.Lock()
	for id, ss := range s.sessions.byID {
		if !ss.ended {
			ss.ended = true
			list = append(list, unended{id, ss.phase, ss.info.StartedUnixMs})
		}
	}
	s.sessions.mu.Unlock()
	for _, u := range list {
		stage := "end"
		if u.phase == phaseGenerate || u.phase == phaseCompile {
			stage = "compile"
		}
		rec := map[string]any{
			"session": u.id, "stage": stage, "phase": u.phase, "status": 1, "reason": endReason(errShutdown),
			"elapsed_ms": time.Now().UnixMilli() - u.started, "abandoned": true,
			"error": fmt.Sprintf("still in phase %s when shutdown stopped waiting (%v)", u.phase, s.cfg.ShutdownTimeout),
		}
		if err := s.record(audit.EventTraceEnd, rec); err != nil {
			s.log.Error("audit log", "err", err)
		}
		s.log.Error("session did not end in time", "session", u.id, "phase", u.phase)
	}
	return len(list)
}
