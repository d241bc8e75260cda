//go:build !norpc

package main

// What the commands that speak RPC (serve, trace, sessions, plugins and
// --gen: gRPC and go-plugin) add to the commands that do not. Built
// with -tags norpc, this binary has none of it and hands those commands
// to tracebroker-rpc (norpc.go); without the tag it is whole.

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/tracebroker/tracebroker/broker/daemon"
)

// rpcExitStatus is the status a daemon's trace ended with.
func rpcExitStatus(err error) (int, bool) {
	var exit *daemon.ExitError
	if errors.As(err, &exit) {
		return exit.Status, true
	}
	return 0, false
}

// callInterrupted reports whether err is a daemon call cut short by the
// user's interrupt.
func callInterrupted(err error) bool {
	var ce *daemon.CallError
	return errors.As(err, &ce) && ce.Interrupted
}

// handOffRPC has nothing to hand off: this build runs every command.
func handOffRPC(*cobra.Command, []string) error { return nil }
