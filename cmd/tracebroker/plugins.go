//go:build !norpc

package main

import (
	"context"
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/internal/escape"
	"github.com/tracebroker/tracebroker/internal/hoststate"
	"github.com/tracebroker/tracebroker/plugins"
)

func defaultPluginDir(state string) string { return filepath.Join(state, hoststate.Plugins) }

func (p *pluginFlags) host(state string, trust *attest.Trust) *plugins.Host {
	dir := p.dir
	if dir == "" {
		dir = defaultPluginDir(state)
	}
	return &plugins.Host{Dir: dir, Trust: trust}
}

// generate runs the plugin and fills req with what it generated.
func (p *pluginFlags) generate(ctx context.Context, req *broker.Request, state string, trust *attest.Trust) error {
	params, err := p.params()
	if err != nil {
		return err
	}
	if p.dir == "" {
		if err := hoststate.NeedDir(state, defaultPluginDir(state), "plugin directory"); err != nil {
			return err
		}
	}
	return p.host(state, trust).GenerateRequest(ctx, p.gen, params, req)
}

func newPluginsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: rpcShort["plugins"],
	}
	cmd.AddCommand(newPluginsListCmd(), newPluginsDescribeCmd())
	return cmd
}

func newPluginsListCmd() *cobra.Command {
	var (
		pf     pluginFlags
		trust  []string
		state  string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list [--plugin-dir DIR] [--trust PUB]",
		Short: "List the generator plugins, their signers, and whether they verify",
		Long: `Every executable in the plugin directory is checked against NAME.sig, a
manifest signed for role generator by a trusted key; the ones that verify
are started to describe themselves. The others are listed with the reason
and never run.`,
		Example: `  tracebroker plugins list --plugin-dir ./plugins --trust release.pub`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := loadTrust(trust, state)
			if err != nil {
				return err
			}
			if pf.dir == "" {
				if err := hoststate.NeedDir(state, defaultPluginDir(state), "plugin directory"); err != nil {
					return err
				}
			}
			list, err := pf.host(state, t).List()
			if err != nil {
				return err
			}
			if asJSON {
				return writePluginsJSON(cmd.OutOrStdout(), list)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tVERSION\tSIGNER\tSTATUS")
			for _, p := range list {
				version, signer, status := "-", "-", "verified"
				if p.Identity.Signer != "" {
					signer = p.Identity.Signer[:16]
				}
				if p.Info != nil {
					version = p.Info.Version
				}
				switch {
				case !p.Identity.Verified:
					status = "refused: " + p.Identity.Reason
				case p.Err != nil:
					status = "verified, but failed: " + p.Err.Error()
				case p.Info != nil && p.Info.Description != "":
					status = "verified: " + p.Info.Description
				}
				// A plugin describes itself: shown escaped.
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", escape.String(p.Name), escape.String(version), escape.String(signer), escape.String(status))
			}
			return w.Flush()
		},
	}
	pf.register(cmd.Flags(), false)
	cmd.Flags().StringSliceVar(&trust, "trust", nil, "trusted public keys (`PUB`[,PUB...]; default: the state directory's trust/*.pub)")
	cmd.Flags().StringVar(&state, "state", attest.DefaultStateDir, "state `DIR` (trusted keys, default plugin directory)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array, one object per plugin")
	return cmd
}
