package main

import (
	"github.com/spf13/cobra"
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
	root.AddCommand(newRunCmd(), newListCmd())
	root.AddCommand(newInterpCmd())
	return root
}
