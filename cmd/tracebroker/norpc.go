//go:build norpc

package main

// The lean build: the RPC commands (rpccmds.go) are listed, and run by
// tracebroker-rpc beside this executable, exec'd in this process.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/internal/escape"
)

func newServeCmd() *cobra.Command    { return handoffCmd("serve") }
func newTraceCmd() *cobra.Command    { return handoffCmd("trace") }
func newSessionsCmd() *cobra.Command { return handoffCmd("sessions") }
func newPluginsCmd() *cobra.Command  { return handoffCmd("plugins") }

// handoffCmd lists an RPC command in help; handOffRPC runs it before
// cobra would, so that its flags are tracebroker-rpc's to parse.
func handoffCmd(name string) *cobra.Command {
	cmd := &cobra.Command{
		Use: name, Short: rpcShort[name],
		DisableFlagParsing: true,
		RunE:               func(*cobra.Command, []string) error { return handOff() },
	}
	cmd.SetHelpFunc(func(*cobra.Command, []string) {
		// `tracebroker help serve`: tracebroker-rpc has the flags.
		err := execRPC([]string{name, "--help"})
		fmt.Fprint(os.Stderr, escape.Text(broker.ErrorText(err)))
		os.Exit(1)
	})
	return cmd
}

// handOffRPC execs tracebroker-rpc with this command line when args
// (topLevel's) run an RPC command, or run with --gen: its plugins are
// go-plugin's. It returns only if the exec failed, or with nil for a
// command this build runs. root is main's, which runs args: only
// --gen's flags are parsed here, and by a root of their own, since
// parsing them twice would repeat --param's values.
func handOffRPC(root *cobra.Command, args []string) error {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == root {
		return nil
	}
	top := cmd
	for top.Parent() != root {
		top = top.Parent()
	}
	if _, ok := rpcShort[top.Name()]; ok {
		return handOff()
	}
	if cmd.Flags().Lookup("gen") == nil {
		return nil
	}
	cmd, rest, err := newRootCmdFor(args).Find(args)
	if err != nil {
		return nil
	}
	cmd.InitDefaultHelpFlag()
	if cmd.ParseFlags(rest) != nil || !cmd.Flags().Changed("gen") {
		// A mistake in the flags is run's to report.
		return nil
	}
	return handOff()
}

// handOff runs this process's command line in tracebroker-rpc.
func handOff() error { return execRPC(os.Args[1:]) }

// execRPC replaces this process with tracebroker-rpc args: the pid, the
// terminal's signals and the exit status stay the command's own, and the
// daemon's identity is tracebroker-rpc's, which is measured and signed
// as this executable is (role broker).
func execRPC(args []string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding %s: %w", rpcName, err)
	}
	path := filepath.Join(filepath.Dir(self), rpcName)
	err = syscall.Exec(path, append([]string{path}, args...), os.Environ())
	if errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("this tracebroker runs its RPC commands (serve, trace, sessions, plugins, --gen) with %s, which is not beside it: install the two together (make build writes both), or build a whole tracebroker without -tags norpc", path)
	}
	return fmt.Errorf("running %s: %w", path, err)
}

func rpcExitStatus(error) (int, bool) { return 0, false }
func callInterrupted(error) bool      { return false }

// generate is never reached: handOffRPC took --gen to tracebroker-rpc.
func (p *pluginFlags) generate(context.Context, *broker.Request, string, *attest.Trust) error {
	return errors.New("--gen is run by " + rpcName + ", and this command line was not handed to it")
}

// genHelp: --gen NAME --help goes to tracebroker-rpc with the rest.
func genHelp(*cobra.Command, *pluginFlags, func() (*attest.Trust, string, error)) {}
