package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tracebroker/tracebroker/broker/audit"
)

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Check the daemon's hash-chained audit log",
		Long: `The broker daemon records every request and decision in an append-only file,
one JSON line per record, each carrying the SHA-256 of the line before it
(broker/audit/FORMAT.md). Verifying it finds any edit, insertion, deletion or
reordering of records and names the first line that does not follow.`,
	}
	cmd.AddCommand(newAuditVerifyCmd())
	return cmd
}

func newAuditVerifyCmd() *cobra.Command {
	var expect string
	cmd := &cobra.Command{
		Use:   "verify [--expect-head SEQ:HASH] FILE",
		Short: "Verify an audit log's hash chain",
		Long: `Verify that every record of FILE follows from the one before it, and print
the number of records and the head (SEQ:HASH of the last record).

Records cut off the end cannot be seen in the chain itself. The daemon logs
the head elsewhere (its log, journald) as it writes; give the latest such
anchor as --expect-head and the head of FILE must be exactly it.`,
		Example: `  tracebroker audit verify /var/lib/tracebroker/audit.log
  tracebroker audit verify --expect-head 1532:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 audit.log`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			var want audit.Head
			if expect != "" {
				h, err := audit.ParseHead(expect)
				if err != nil {
					return fmt.Errorf("--expect-head: %w", err)
				}
				want = h
			}
			res, err := audit.VerifyFile(path)
			if err != nil {
				if ve := (*audit.VerifyError)(nil); errors.As(err, &ve) {
					return fmt.Errorf("%s: %w", path, err)
				}
				return err
			}
			if expect != "" && res.Head != want {
				return fmt.Errorf("%s: head is %s, expected %s (%s)", path, res.Head, want, headMismatch(res.Head, want))
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s: ok, %d records, head %s\n", path, res.Records, res.Head)
			if res.TornTail {
				fmt.Fprintf(w, "note: last line (line %d, %d bytes) is a record cut off by a crash; it was never complete\n",
					res.TornLine, res.TornBytes)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&expect, "expect-head", "", "fail unless the last record is `SEQ:HASH` (an anchor the daemon logged)")
	return cmd
}

// headMismatch says what a head other than the anchor most likely means.
func headMismatch(got, want audit.Head) string {
	switch {
	case got.Seq < want.Seq:
		return "records were cut off the end"
	case got.Seq == want.Seq:
		return "the last record was changed, or this is another log"
	default:
		return "records were written after the anchor, or this is another log"
	}
}
