package main

import (
	"bufio"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tracebroker/tracebroker/bpf/btftp"
	"github.com/tracebroker/tracebroker/bpf/tracefs"
	"github.com/tracebroker/tracebroker/bpf/uprobe"
)

func newListCmd() *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "list [PATTERN]",
		Short: "List probes, as bpftrace -l does",
		Example: `  tracebroker list 'tracepoint:syscalls:sys_enter_open*'
  tracebroker list -v tracepoint:sched:sched_switch
  tracebroker list 'uprobe:/bin/bash:read*'
  tracebroker list -v 'tp_btf:sched_*'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pattern := ""
			if len(args) == 1 {
				pattern = args[0]
			}
			w := bufio.NewWriter(os.Stdout)
			if provider, rest, ok := strings.Cut(pattern, ":"); ok && (provider == "uprobe" || provider == "u") {
				target, fn, _ := strings.Cut(rest, ":")
				path, err := uprobe.FindBinary(target)
				if err != nil {
					return err
				}
				if err := uprobe.List(w, path, fn); err != nil {
					w.Flush()
					return err
				}
				return w.Flush()
			}
			if provider, rest, ok := strings.Cut(pattern, ":"); ok && provider == "tp_btf" {
				if err := btftp.List(w, rest, verbose); err != nil {
					w.Flush()
					return err
				}
				return w.Flush()
			}
			if err := tracefs.List(w, pattern, verbose); err != nil {
				w.Flush()
				return err
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show each tracepoint's args fields (tp_btf: its arguments)")
	return cmd
}
