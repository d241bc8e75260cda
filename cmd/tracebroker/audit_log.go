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
	cmd.AddCommand(newAuditVerifyCmd(), newAuditShowCmd())
	return cmd
}

func newAuditVerifyCmd() *cobra.Command {
	var expect string
	cmd := &cobra.Command{
		Use:   "verify [--expect-head SEQ:HASH] FILE...",
		Short: "Verify an audit log's hash chain, across its rotated files",
		Long: `Verify that every record of the log follows from the one before it, and print
the number of records and the head (SEQ:HASH of the last record).

A log that rotated is several files: FILE and the rotated FILE.SEQ beside it
(SEQ the first record each holds), which are verified with it, as one chain.
Files given by name are put in the order of their records. The kept files must
begin at seq 1, or where an audit.rotated record among them says the older
files were deleted. An error names the file and line that do not follow.

Records cut off the end cannot be seen in the chain itself. The daemon logs
the head elsewhere (its log, journald) as it writes; give the latest such
anchor as --expect-head and the head of the log must be exactly it.`,
		Example: `  tracebroker audit verify /var/lib/tracebroker/audit.log
  tracebroker audit verify --expect-head 1532:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 audit.log`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var want audit.Head
			if expect != "" {
				h, err := audit.ParseHead(expect)
				if err != nil {
					return fmt.Errorf("--expect-head: %w", err)
				}
				want = h
			}
			files, err := logFiles(args)
			if err != nil {
				return err
			}
			name := args[len(args)-1]
			var res audit.Result
			if len(files) == 1 {
				res, err = audit.VerifyFile(files[0])
			} else {
				res, err = audit.VerifyFiles(files)
			}
			if err != nil {
				if ve := (*audit.VerifyError)(nil); errors.As(err, &ve) && ve.File == "" {
					return fmt.Errorf("%s: %w", name, err)
				}
				return err
			}
			if expect != "" && res.Head != want {
				return fmt.Errorf("%s: head is %s, expected %s (%s)", name, res.Head, want, headMismatch(res.Head, want))
			}
			w := cmd.OutOrStdout()
			if len(files) == 1 {
				fmt.Fprintf(w, "%s: ok, %d records, head %s\n", name, res.Records, res.Head)
			} else {
				fmt.Fprintf(w, "%s: ok, %d records in %d files (seq %d to %d), head %s\n", name, res.Records, len(files),
					res.Head.Seq-uint64(res.Records)+1, res.Head.Seq, res.Head)
			}
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

// logFiles is the files named and the rotated files beside each, once
// each.
func logFiles(args []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, a := range args {
		fs, err := audit.Files(a)
		if err != nil {
			return nil, err
		}
		for _, f := range fs {
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	return out, nil
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
