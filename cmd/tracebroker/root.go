package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tracebroker/tracebroker/internal/version"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "tracebroker",
		Short: "A dynamic-tracing broker for bpftrace-style programs",
		Long: `tracebroker compiles bpftrace-style scripts straight to eBPF (no LLVM) and
runs them on the kernel. It is the signed generator of the programs it runs:
a gatekeeper admits each program by who generated it and who asked.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRunCmd(), newListCmd(), newRecordCmd(), newReplayCmd(), newCollectorsCmd())
	root.AddCommand(newInterpCmd(), newGatekeeperCmd(), newPluginsCmd())
	root.AddCommand(newServeCmd(), newTraceCmd(), newSessionsCmd(), newTokenCmd(), newAuditCmd())
	root.AddCommand(newAttestCmd(), newInitCmd(), newVersionCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this build",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), version.String())
		},
	}
}
