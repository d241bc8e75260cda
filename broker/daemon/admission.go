package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tracebroker/tracebroker/broker/audit"
	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
)

// testHooks run at the points of a request where tests make races
// happen in a chosen order; nil in production.
type testHooks struct {
	// verified runs after the token is verified, before the session is
	// registered.
	verified func()
	// admitted runs once a session's token has passed its last check,
	// before the session is registered, under the lock that the
	// revocation sweep takes.
	admitted func()
	// listReloaded runs in Reload between the revocation list's reload
	// and the sweep of the sessions it revokes.
	listReloaded func()
	// phase runs as a session enters each phase (ending.go), with the
	// session's context.
	phase func(ctx context.Context, id, phase string)
}

func (s *Server) hook(f func(*testHooks) func()) {
	if s.cfg.hooks != nil {
		if h := f(s.cfg.hooks); h != nil {
			h()
		}
	}
}

// earlyClaim is the decision, taken once per refused request, whether
// its refusal is recorded (within the peer's share) or only counted,
// with what was held back for the peer before it.
type earlyClaim struct {
	record bool
	before held
}

// claimEarly takes that decision for a request of c's, counting it
// against c's share. Local root is never held back.
func (s *Server) claimEarly(c Caller) earlyClaim {
	if c.admin() {
		return earlyClaim{record: true}
	}
	record, before := s.ledger.refusal(c.peer())
	return earlyClaim{record, before}
}

// refuseEarly answers a request refused before anything was recorded of
// it (out of range, no valid token): one trace.refused record with the
// request's fields, within the peer's share of records; past that share
// the refusal is answered all the same, but only counted, for a
// peer.limited record. An unauthenticated request so costs at most one
// bounded record, and a flood of them a count. claim, when not nil, is
// the decision already taken for it (claimEarly).
func (s *Server) refuseEarly(c Caller, rec map[string]any, stage string, err error, claim *earlyClaim) error {
	st := status.Convert(err)
	s.metrics.refused(stage) // counted, recorded or not
	if claim == nil {
		cl := s.claimEarly(c)
		claim = &cl
	}
	if !claim.record {
		return err
	}
	if aerr := s.recordHeld(c.peer(), claim.before, 1); aerr != nil {
		return s.auditFailed(aerr)
	}
	// Parameters are many strings of the sender's choosing: their
	// digest identifies them at a fixed cost.
	if p, _ := rec["params"].(map[string]string); len(p) > 0 {
		b, _ := json.Marshal(p) // keys sorted: one digest per set
		sum := sha256.Sum256(b)
		delete(rec, "params")
		rec["params_count"], rec["params_digest"] = len(p), "sha256:"+hex.EncodeToString(sum[:])
	}
	rec["stage"], rec["code"], rec["reason"] = stage, st.Code().String(), st.Message()
	if aerr := s.record(audit.EventTraceRefused, rec); aerr != nil {
		return s.auditFailed(aerr)
	}
	s.log.Info("trace refused", "session", rec["session"], "caller", c.String(), "stage", stage, "code", st.Code().String(), "reason", audit.BoundString(st.Message()))
	return err
}

// firstMessage receives a Trace call's request, within PreAuthTimeout:
// a call that sends nothing holds nothing for long.
func (s *Server) firstMessage(stream pb.Broker_TraceServer) (*pb.TraceInput, error) {
	type result struct {
		in  *pb.TraceInput
		err error
	}
	ch := make(chan result, 1)
	go func() {
		in, err := stream.Recv()
		ch <- result{in, err}
	}()
	t := time.NewTimer(s.cfg.PreAuthTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.in, r.err
	case <-t.C:
		// Returning ends the call, which ends the Recv.
		return nil, status.Errorf(codes.DeadlineExceeded, "no request within %v", s.cfg.PreAuthTimeout)
	}
}

// stillValid is the last check of a session's token, as it is
// registered, under the lock the revocation sweep (Reload) takes: a
// token revoked after it was verified and before its session was
// registered is refused here, or its session is in the table when the
// sweep looks. Either way it does not run.
func (s *Server) stillValid(info *pb.Session) error {
	if info.TokenId == "" {
		return nil
	}
	revoked, err := s.cfg.Revoked.Revoked(info.TokenId)
	switch {
	case err != nil:
		return &revokedError{status.Errorf(codes.Unauthenticated, "invalid token: token %s: cannot check revocation: %v", info.TokenId, err)}
	case revoked:
		return &revokedError{status.Errorf(codes.Unauthenticated, "invalid token: token %s is revoked", info.TokenId)}
	}
	s.hook(func(h *testHooks) func() { return h.admitted })
	return nil
}

// revokedError is a session refused by stillValid.
type revokedError struct{ error }

func (e *revokedError) GRPCStatus() *status.Status { return status.Convert(e.error) }

// addRefusal is the refusal of a session the table did not take: its
// stage and its status.
func addRefusal(err error) (stage string, st error) {
	var rev *revokedError
	switch {
	case errors.As(err, &rev):
		return "token", rev.error
	case errors.Is(err, errShutdown):
		return "limit", status.Error(codes.Unavailable, err.Error())
	}
	return "limit", status.Error(codes.ResourceExhausted, err.Error())
}
