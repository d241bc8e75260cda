package daemon

import (
	"github.com/tracebroker/tracebroker/attest/store"
)

// eventAttestRotated is an audit record of the attestation store
// removing a trace's attestations to make room (store.Rotation).
const eventAttestRotated = "attest.rotated"

// Default bounds of the attestation store (Config.AttestMaxBytes): a
// trace of 20 probes and a 1 MiB script takes about 1.2 MiB.
const (
	DefaultAttestMaxBytes           = 1 << 30
	DefaultAttestMaxBytesPerSubject = 64 << 20
)

// openAttestations opens the store every program's attestation goes to,
// within the configured bounds; its rotations go to the audit log.
func (s *Server) openAttestations() error {
	if s.cfg.HostKey == nil {
		return nil
	}
	opt := store.Options{MaxBytes: s.cfg.AttestMaxBytes, MaxBytesPerSubject: s.cfg.AttestMaxBytesPerSubject, Rotated: s.attestRotated}
	if opt.MaxBytes == 0 {
		opt.MaxBytes = DefaultAttestMaxBytes
	}
	if opt.MaxBytesPerSubject == 0 {
		opt.MaxBytesPerSubject = DefaultAttestMaxBytesPerSubject
	}
	st, err := store.Open(s.cfg.AttestDir, opt)
	if err != nil {
		return err
	}
	s.attest = st
	return nil
}

func (s *Server) attestRotated(r store.Rotation) {
	s.log.Info("attestations rotated", "subject", r.Subject, "trace", r.Batch, "files", r.Files, "bytes", r.Bytes, "reason", r.Reason)
	if err := s.record(eventAttestRotated, map[string]any{
		"subject": r.Subject, "subject_tag": r.SubjectTag, "trace": r.Batch, "files": r.Files, "bytes": r.Bytes, "reason": r.Reason,
	}); err != nil {
		s.log.Error("audit log", "err", err)
	}
}
