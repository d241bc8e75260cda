package main

import (
	"github.com/spf13/cobra"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/internal/version"
)

// newInfoCmd is bpftrace's --info: what this kernel offers tracing,
// probed, in bpftrace's layout.
func newInfoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Print what the kernel supports, as bpftrace --info does (each line probed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return bpf.WriteInfo(cmd.OutOrStdout(), bpf.InfoBuild{Version: version.String()})
		},
	}
}
