package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/bpf/object"
	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/internal/escape"
	"github.com/tracebroker/tracebroker/internal/hoststate"
	"github.com/tracebroker/tracebroker/plugins"
)

// pluginFlags are where plugins live and whom to trust for them.
type pluginFlags struct {
	dir   string
	gen   string
	param []string
}

func defaultPluginDir(state string) string { return filepath.Join(state, hoststate.Plugins) }

func (p *pluginFlags) register(f *pflag.FlagSet, withGen bool) {
	f.StringVar(&p.dir, "plugin-dir", "", "generator plugins' `DIR` (default: STATE/plugins)")
	if withGen {
		f.StringVar(&p.gen, "gen", "", "run the program that generator plugin `NAME` generates")
		f.StringArrayVar(&p.param, "param", nil, "a generator parameter, `KEY=VALUE` (repeatable)")
	}
}

func (p *pluginFlags) host(state string, trust *attest.Trust) *plugins.Host {
	dir := p.dir
	if dir == "" {
		dir = defaultPluginDir(state)
	}
	return &plugins.Host{Dir: dir, Trust: trust}
}

// params parses --param KEY=VALUE.
func (p *pluginFlags) params() (map[string]string, error) { return keyValues("--param", p.param) }

// keyValues reads a repeatable KEY=VALUE flag; a key given twice is an
// error, not a silent override.
func keyValues(flag string, list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want KEY=VALUE", flag, kv)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%s %s given twice", flag, k)
		}
		out[k] = v
	}
	return out, nil
}

// object is FILE when it is an eBPF object rather than a script (ELF,
// and neither -e nor --gen given), or "". An object takes no positional
// parameters: words after it are an error.
func (p *pluginFlags) object(program string, args []string) (string, error) {
	if program != "" || p.gen != "" || len(args) == 0 || !object.IsFile(args[0]) {
		return "", nil
	}
	if len(args) > 1 {
		return "", fmt.Errorf("%s is an eBPF object: it takes no positional parameters", args[0])
	}
	return args[0], nil
}

// script is the program that -e PROGRAM, FILE or --gen NAME give: its
// name in messages and its text, none for --gen.
func (p *pluginFlags) script(program string, args []string) (name string, src []byte, params []string, err error) {
	switch {
	case p.gen != "" && (program != "" || len(args) > 0):
		return "", nil, nil, fmt.Errorf("give a program (-e PROGRAM or FILE) or --gen NAME, not both")
	case p.gen != "":
		return "", nil, nil, nil
	case len(p.param) > 0:
		return "", nil, nil, fmt.Errorf("--param goes with --gen NAME")
	case program != "":
		// bpftrace's words after the program are its positional
		// parameters, $1, $2, ...
		return "stdin", []byte(program), args, nil
	case len(args) >= 1:
		src, err := readScript(args[0])
		name = args[0]
		if name == "-" {
			name = "stdin"
		}
		return name, src, args[1:], err
	}
	return "", nil, nil, fmt.Errorf("no program given: use -e PROGRAM, FILE or --gen NAME")
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
		Short: "Generator plugins: signed programs that generate traces",
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
