package daemon

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/tracebroker/tracebroker/broker/audit"
	"github.com/tracebroker/tracebroker/gatekeeper/lsmgate"
)

// gatePoll is how often the daemon looks for a kernel gate to drain
// when none is open, and how long a read waits before it looks whether
// the gate was released.
const gatePoll = 2 * time.Second

// drainGate writes every refusal of the kernel gate pinned in
// cfg.GatePinDir to the audit log, as gate.refused, until ctx ends. The
// gate may be enforced after the daemon started and released while it
// runs: it is looked for again after each. Only the gate's owner (the
// executable that enforced it) may read its events; another is told
// once in the log and asks again only when the gate is enforced anew.
func (s *Server) drainGate(ctx context.Context) {
	// refused is the gate that refused this daemon its events: each try
	// is a refusal the gate counts and records, so the same gate is not
	// asked again; a gate enforced anew (another pin directory) is.
	var refused os.FileInfo
	for {
		dir, err := os.Stat(s.cfg.GatePinDir)
		if err == nil && (refused == nil || !os.SameFile(dir, refused)) {
			if ev, err := lsmgate.OpenEvents(s.cfg.GatePinDir); err == nil {
				refused = nil
				s.log.Info("kernel gate: draining its refusals into the audit log", "pins", s.cfg.GatePinDir)
				s.drainEvents(ctx, ev)
				ev.Close()
			} else if !errors.Is(err, os.ErrNotExist) {
				s.log.Warn("kernel gate: its refusals cannot be read (they are counted in tracebroker gatekeeper status)", "err", err)
				refused = dir
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(gatePoll):
		}
	}
}

// drainEvents reads ev until ctx ends or the gate's pins are gone (what
// was sent before the release is read first).
func (s *Server) drainEvents(ctx context.Context, ev *lsmgate.Events) {
	for ctx.Err() == nil {
		ev.SetDeadline(time.Now().Add(gatePoll))
		rec, err := ev.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if _, err := os.Stat(s.cfg.GatePinDir); err != nil {
				return
			}
			continue
		}
		if err != nil {
			s.log.Warn("kernel gate: reading its refusals", "err", err)
			return
		}
		s.recordGateRefusal(rec)
	}
}

// recordGateRefusal writes one of the gate's refusals to the audit log,
// bounded per uid as the daemon's own refusals are per peer: any local
// user can make the gate refuse (ptrace of its own tracebroker process,
// for one), and a flood of records would rotate the log's history away.
// Past its bucket a uid's refusals are counted in its peer.limited
// record; root's are always written, as root is never held back.
func (s *Server) recordGateRefusal(rec lsmgate.Record) {
	if rec.UID != 0 {
		peer := unixPeer(rec.UID)
		write, before := s.ledger.refusal(peer)
		if err := s.recordHeld(peer, before, 1); err != nil {
			s.log.Error("kernel gate: audit log", "err", err)
		}
		if !write {
			return
		}
	}
	if err := s.record(audit.EventGateRefused, rec.Data()); err != nil {
		s.log.Error("kernel gate: audit log", "err", err)
	}
}
