package main

import (
	"encoding/json"
	"errors"

	"github.com/spf13/cobra"

	"github.com/tracebroker/tracebroker/broker/recording"
)

// replayInfo is replay --info: what a recording holds, without running
// anything over it. A recording cut short is described, not an error.
func replayInfo(cmd *cobra.Command, args []string, asJSON bool) error {
	if len(args) != 1 {
		return errors.New("replay --info takes the recording alone: no script")
	}
	in, err := recording.Inspect(args[0])
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(in)
	}
	out, done := terminalSafe(cmd.OutOrStdout())
	defer done()
	return in.WriteText(out)
}
