package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/broker/audit"
	"github.com/tracebroker/tracebroker/broker/audit/view"
	"github.com/tracebroker/tracebroker/internal/escape"
	"github.com/tracebroker/tracebroker/internal/hoststate"
)

func newAuditShowCmd() *cobra.Command {
	var (
		state, attestDir, since, until string
		trust                          []string
		f                              view.Filter
		asJSON                         bool
		max                            int
	)
	cmd := &cobra.Command{
		Use:   "show [FILE] [--session ID | --subject SUB] [--since T] [--until T] [--event KIND]",
		Short: "Show the audit log: its records, or what one session ran",
		Long: `Show the daemon's audit log (default STATE/audit.log, with its rotated files),
one line per record, or with --session, one session told whole: who asked,
for what, what the gatekeeper said, how it ended, and what ran, from the
session's program attestations (STATE/attestations), each verified with the
host key (STATE/host.pub), and the script they were generated from.

The hash chain is verified first. A log that does not verify is shown all
the same, under a warning, and the command exits 1: what it shows may have
been edited. Everything shown that came from a request is escaped.

--since and --until take a time (RFC 3339) or a duration before now (1h).
--json prints a JSON array: of records ({seq, time, event, session,
subject, data}), or with --session of one session ({id, subject, request,
admitted, end, refused, stops, records, attestations, attest_error}).`,
		Example: `  tracebroker audit show --since 1h
  tracebroker audit show --subject alice --event trace.refused
  tracebroker audit show --session 3f2a9c0b11e4`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if f.Since, err = parseWhen(since); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if f.Until, err = parseWhen(until); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			if f.Session != "" {
				if err := view.ValidSessionID(f.Session); err != nil {
					return err
				}
			}
			file := filepath.Join(state, "audit.log")
			if len(args) == 1 {
				file = args[0]
			}
			if attestDir == "" {
				attestDir = filepath.Join(state, hoststate.Attestations)
			}
			if len(trust) == 0 {
				trust = []string{attest.HostPublicKeyPath(state)}
			}
			files, err := logFiles([]string{file})
			if err != nil {
				return err
			}
			w, ew := cmd.OutOrStdout(), cmd.ErrOrStderr()
			chainErr := verifyForShow(files)
			status := fmt.Sprintf("audit log %s: chain verified", escape.String(file))
			if chainErr != nil {
				status = fmt.Sprintf("WARNING: audit log %s: NOT VERIFIED, what follows may have been edited: %s", escape.String(file), escape.String(chainErr.Error()))
			}
			res, err := view.Read(files, f, max)
			if err != nil {
				return err
			}
			if asJSON || chainErr != nil {
				fmt.Fprintln(ew, status)
			}
			if !asJSON {
				fmt.Fprintln(w, status)
			}
			if res.Dropped > 0 {
				fmt.Fprintf(ew, "note: %d older matching records not shown (--max %d)\n", res.Dropped, max)
			}
			if err := showRecords(w, ew, f.Session, res, attestDir, trust, asJSON); err != nil {
				return err
			}
			if chainErr != nil {
				return errors.New("the audit log's chain does not verify (tracebroker audit verify)")
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&state, "state", attest.DefaultStateDir, "state `DIR`: audit.log, attestations/, host.pub")
	fl.StringVar(&attestDir, "attest-dir", "", "the daemon's attestations `DIR` (default: STATE/attestations)")
	fl.StringSliceVar(&trust, "trust", nil, "host public keys that sign attestations (`HOSTPUB`[,...]; default: STATE/host.pub)")
	fl.StringVar(&f.Session, "session", "", "tell one session `ID` whole, with its attestations")
	fl.StringVar(&f.Subject, "subject", "", "only the sessions of `SUBJECT` (a token's sub, or uid:N)")
	fl.StringVar(&since, "since", "", "only records from `TIME` on (RFC 3339, or a duration before now: 1h)")
	fl.StringVar(&until, "until", "", "only records up to `TIME`")
	fl.StringSliceVar(&f.Events, "event", nil, "only records of these `KIND`s (trace.request, trace.refused, ...)")
	fl.BoolVar(&asJSON, "json", false, "print a JSON array")
	fl.IntVar(&max, "max", view.DefaultMaxRecords, "show at most the newest `N` matching records")
	return cmd
}

// verifyForShow verifies the log's chain, as audit verify does.
func verifyForShow(files []string) error {
	var err error
	if len(files) == 1 {
		_, err = audit.VerifyFile(files[0])
	} else {
		_, err = audit.VerifyFiles(files)
	}
	return err
}

func showRecords(w, ew io.Writer, session string, res view.Result, attestDir string, trustFiles []string, asJSON bool) error {
	if session == "" {
		if asJSON {
			return writeJSONList(w, res.Records)
		}
		return view.PrintRecords(w, res.Records)
	}
	trust, err := loadTrust(trustFiles, "")
	if err != nil {
		// The records are still worth showing; the attestations are not
		// shown unverified (Tell).
		fmt.Fprintf(ew, "WARNING: host key: %s: attestations cannot be verified\n", escape.String(err.Error()))
		trust = nil
	}
	s := view.Tell(session, res.Records, attestDir, trust)
	if asJSON {
		return writeJSONList(w, []*view.Session{s})
	}
	return view.PrintSession(w, s)
}

// parseWhen reads --since/--until: RFC 3339, or a duration before now.
func parseWhen(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a time (2026-12-05T21:00:00Z) nor a duration (1h)", s)
	}
	return t, nil
}
