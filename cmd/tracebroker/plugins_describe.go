//go:build !norpc

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/internal/escape"
)

// describeTimeout bounds describing a plugin for --help: its start and
// one Describe call.
const describeTimeout = 30 * time.Second

func newPluginsDescribeCmd() *cobra.Command {
	var (
		pf     pluginFlags
		trust  []string
		state  string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "describe NAME [--plugin-dir DIR] [--trust PUB] [--json]",
		Short: "Show a generator plugin's parameters: name, type, required, default, help",
		Long: `The plugin is checked against NAME.sig, a manifest signed for role
generator by a trusted key, and only then started to describe itself. What
it says is shown escaped; the parameters are given to run and trace as
--param NAME=VALUE. run --gen NAME --help shows the same.`,
		Example: `  tracebroker plugins describe opensnoop --plugin-dir ./plugins --trust release.pub
  tracebroker plugins describe opensnoop --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := loadTrust(trust, state)
			if err != nil {
				return err
			}
			return describePlugin(cmd, &pf, state, t, args[0], "tracebroker run", asJSON)
		},
	}
	pf.register(cmd.Flags(), false)
	cmd.Flags().StringSliceVar(&trust, "trust", nil, "trusted public keys (`PUB`[,PUB...]; default: the state directory's trust/*.pub)")
	cmd.Flags().StringVar(&state, "state", attest.DefaultStateDir, "state `DIR` (trusted keys, default plugin directory)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the description as JSON")
	return cmd
}

// describePlugin prints plugin name of pf's directory, verified with
// trust, as text with the command line that runs it, or as JSON.
func describePlugin(cmd *cobra.Command, pf *pluginFlags, state string, trust *attest.Trust, name, command string, asJSON bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), describeTimeout)
	defer cancel()
	p, err := pf.host(state, trust).Describe(ctx, name)
	if err != nil {
		return err
	}
	d := p.Describe()
	if asJSON {
		e := json.NewEncoder(cmd.OutOrStdout())
		e.SetIndent("", "  ")
		return e.Encode(d)
	}
	return d.WriteText(cmd.OutOrStdout(), command)
}

// genHelp makes `CMD --gen NAME --help` describe plugin NAME instead of
// showing CMD's help: a generator's parameters are what its user needs.
// trust returns the trust and state directory CMD's flags name; the
// plugin runs only if it verifies with them. cobra has parsed the flags
// when it asks for help, but a help function cannot return an error:
// one that fails exits with status 1, the message on stderr.
func genHelp(cmd *cobra.Command, pf *pluginFlags, trust func() (*attest.Trust, string, error)) {
	def := (&cobra.Command{}).HelpFunc() // cobra's own, for any command
	cmd.SetHelpFunc(func(c *cobra.Command, args []string) {
		if c != cmd || pf.gen == "" {
			if p := c.Parent(); p != nil {
				p.HelpFunc()(c, args)
			} else {
				def(c, args)
			}
			return
		}
		t, state, err := trust()
		if err == nil {
			err = describePlugin(c, pf, state, t, pf.gen, c.CommandPath(), false)
		}
		if err != nil {
			fmt.Fprintf(c.ErrOrStderr(), "%s(%s --help without --gen shows the command's own help)\n", escape.Text(broker.ErrorText(err)), c.CommandPath())
			os.Exit(1)
		}
	})
}

// hostStateTrust is the trust of the host's default state directory.
// trace has no state of its own: the daemon runs the plugins, and
// trace --gen NAME --help describes the copy installed on this host
// (STATE/plugins), verified with the host's trusted keys.
func hostStateTrust() (*attest.Trust, string, error) {
	t, err := attest.StateTrust(attest.DefaultStateDir)
	return t, attest.DefaultStateDir, err
}
