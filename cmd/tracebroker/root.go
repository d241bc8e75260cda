package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tracebroker/tracebroker/internal/version"
)

// subcommands are the root's commands by name, in the order help lists
// them.
var subcommands = []struct {
	name string
	new  func() *cobra.Command
}{
	{"run", newRunCmd}, {"list", newListCmd}, {"record", newRecordCmd}, {"replay", newReplayCmd},
	{"collectors", newCollectorsCmd}, {"interp", newInterpCmd}, {"gatekeeper", newGatekeeperCmd},
	{"plugins", newPluginsCmd}, {"serve", newServeCmd}, {"trace", newTraceCmd}, {"sessions", newSessionsCmd},
	{"token", newTokenCmd}, {"audit", newAuditCmd}, {"attest", newAttestCmd}, {"init", newInitCmd},
	{"version", newVersionCmd}, {"info", newInfoCmd},
}

// newRootCmd is the root with every command.
func newRootCmd() *cobra.Command { return newRootCmdFor(nil) }

// newRootCmdFor is the root that runs args: with only the command args
// name first, when they do, and with every command when they do not
// (help, completion, a mistake). Making them all, with their flags and
// help, is a millisecond and 900 allocations of every command's start.
func newRootCmdFor(args []string) *cobra.Command {
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
	for _, c := range subcommands {
		if len(args) > 0 && c.name == args[0] {
			root.AddCommand(c.new())
			return root
		}
	}
	for _, c := range subcommands {
		root.AddCommand(c.new())
	}
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
