// Command tracebroker compiles bpftrace-style scripts to eBPF and runs them.
package main

import (
	"fmt"
	"os"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/internal/escape"
)

func main() {
	// This binary is also its own background detacher, which does not
	// return.
	bpf.RunReleaseHelper()
	if out, ok := asBpftraceAnswer(os.Args[1:]); ok {
		fmt.Print(out)
		return
	}
	// As bpftraceArgs, with a root that has only the command to run.
	args := topLevel(os.Args[1:])
	root := newRootCmdFor(args)
	if err := handOffRPC(root, args); err != nil {
		fmt.Fprint(os.Stderr, escape.Text(broker.ErrorText(err)))
		os.Exit(1)
	}
	err := checkSwallowed(root, args)
	if err == nil {
		root.SetArgs(args)
		err = root.Execute()
	}
	if err != nil {
		if status, ok := statusOf(err); ok {
			os.Exit(status)
		}
		// An error may quote what others wrote (a daemon's or a
		// plugin's message, a name): shown escaped, lines kept.
		fmt.Fprint(os.Stderr, escape.Text(broker.ErrorText(err)))
		os.Exit(1)
	}
}
