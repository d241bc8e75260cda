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
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(newRunCmd(), newListCmd(), newRecordCmd(), newReplayCmd(), newCollectorsCmd())
	root.AddCommand(newInterpCmd(), newGatekeeperCmd(), newPluginsCmd())
	root.AddCommand(newServeCmd(), newTraceCmd(), newSessionsCmd(), newTokenCmd(), newAuditCmd())
	root.AddCommand(newAttestCmd(), newInitCmd(), newVersionCmd(), newInfoCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	var short bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of this build",
		Long: `Print the version of this build, its VCS revision and date, and the Go that
built it: tracebroker v0.3.0 (abc1234, 2026-12-05, go1.26.8). A build from
a checkout is named by its revision (devel-abc1234, +dirty with changes).
--short prints only the version, as manifests and attestations record it.`,
		Args: cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			if short {
				fmt.Fprintln(cmd.OutOrStdout(), version.String())
				return
			}
			fmt.Fprintln(cmd.OutOrStdout(), version.Current().Long())
		},
	}
	cmd.Flags().BoolVar(&short, "short", false, "print only the version")
	return cmd
}
