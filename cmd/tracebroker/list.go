package main

import (
	"bufio"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/tracebroker/tracebroker/bpf/probelist"
)

func newListCmd() *cobra.Command {
	var verbose, asJSON bool
	var pid int
	cmd := &cobra.Command{
		Use:   "list [PATTERN]",
		Short: "List probes, as bpftrace -l does",
		Example: `  tracebroker list 'tracepoint:syscalls:sys_enter_open*'
  tracebroker list -v tracepoint:sched:sched_switch
  tracebroker list 'uprobe:/bin/bash:read*'
  tracebroker list -v 'tp_btf:sched_*'
  tracebroker list -v 'kfunc:vfs_read'
  tracebroker list 'kprobe:vfs_*'
  tracebroker list 'usdt:/usr/bin/python3:*'
  tracebroker list -p 1234 'usdt:*'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pattern := ""
			if len(args) == 1 {
				pattern = args[0]
			}
			if asJSON {
				return listJSON(cmd.OutOrStdout(), pattern, verbose, pid)
			}
			w := bufio.NewWriter(os.Stdout)
			err := probelist.WriteFor(w, pattern, verbose, pid)
			if ferr := w.Flush(); err == nil {
				err = ferr
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show each tracepoint's args fields (tp_btf, kfunc, uprobe: its arguments)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array, one object per probe")
	cmd.Flags().VarP(pidValue[int]{&pid}, "pid", "p", "list the functions of process `PID`'s program and the USDT probes of its files")
	return cmd
}

// listProbes writes the probes pattern matches, for process pid's files
// when pid > 0, as bpftrace -l (-p PID) does.
func listProbes(w io.Writer, pattern string, verbose bool, pid int) error {
	return probelist.WriteFor(w, pattern, verbose, pid)
}
