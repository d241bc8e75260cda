package main

import (
	"bufio"
	"os"

	"github.com/spf13/cobra"

	"github.com/tracebroker/tracebroker/bpf/tracefs"
)

func newListCmd() *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "list [PATTERN]",
		Short: "List probes, as bpftrace -l does",
		Example: `  tracebroker list 'tracepoint:syscalls:sys_enter_open*'
  tracebroker list -v tracepoint:sched:sched_switch`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pattern := ""
			if len(args) == 1 {
				pattern = args[0]
			}
			w := bufio.NewWriter(os.Stdout)
			if err := tracefs.List(w, pattern, verbose); err != nil {
				w.Flush()
				return err
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show each tracepoint's args fields")
	return cmd
}
