package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/internal/escape"
	"github.com/tracebroker/tracebroker/internal/hoststate"
	"github.com/tracebroker/tracebroker/internal/regfile"
	"github.com/tracebroker/tracebroker/release"
)

func newInitCmd() *cobra.Command {
	var state, trustPub, releaseDir string
	cmd := &cobra.Command{
		Use:   "init [--trust RELEASE.pub [--release DIR]]",
		Short: "Create the state directory, the host attestation key and the daemon's config; install a release's trust",
		Long: `Create the state directory (default ` + attest.DefaultStateDir + `, mode 0700) with the host
attestation key (host.key, 0600, and host.pub), trust/ for the release keys
this host trusts, manifests/ for manifests kept apart from their files,
issuers/ for the public keys of token issuers, plugins/ for generator
plugins, attestations/ for the daemon's program attestations, and
broker.json, the daemon's default config (tracebroker serve reads it). Run
again, it keeps the existing key and config. An existing directory that is
a symbolic link, another user's or writable by others is refused.

--trust PUB makes this host trust the release key PUB (trust/release-ID.pub).
When PUB is in a release directory (make release writes dist/release), or
with --release DIR, the release is installed too: the manifests of the
broker's two builds (bin/tracebroker, bin/tracebroker-rpc) and of the
collectors into manifests/ and the signed plugins into plugins/,
each verified against PUB alone; if any does not verify, nothing is
installed. Run the release's own bin/tracebroker: the collectors it
verifies are the ones compiled into it.`,
		Example: `  tracebroker init
  dist/release/bin/tracebroker init --trust dist/release/release.pub
  tracebroker init --trust /etc/tracebroker/release.pub --release /tmp/tracebroker-v0.3.0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if releaseDir != "" && trustPub == "" {
				return errors.New("--release needs --trust PUB: the release key to verify it against")
			}
			if _, err := hoststate.Init(state); err != nil {
				return err
			}
			pub, created, err := attest.Init(state)
			if err != nil {
				return err
			}
			what := "created"
			if !created {
				what = "exists"
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "host key %s: %s\npublic key: %s\ntrusted release keys go in %s/trust/*.pub\ntoken issuers' public keys go in %s/issuers/*.pub\n",
				what, pub.ID, attest.HostPublicKeyPath(state), state, state)
			conf := filepath.Join(state, serveConfigName)
			switch err := regfile.WriteAtomic(conf, []byte(defaultServeConfig), 0o600, true); {
			case err == nil:
				fmt.Fprintf(w, "daemon config created: %s\n", conf)
			case errors.Is(err, fs.ErrExist):
				fmt.Fprintf(w, "daemon config exists: %s\n", conf)
			default:
				return err
			}
			if trustPub == "" {
				return nil
			}
			if releaseDir == "" && release.IsRelease(filepath.Dir(trustPub)) {
				releaseDir = filepath.Dir(trustPub)
			}
			in, err := release.Install(state, trustPub, releaseDir)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "trusted release key %s: %s\n", in.Key.ID, in.KeyPath)
			if releaseDir == "" {
				return nil
			}
			for _, b := range in.Brokers {
				fmt.Fprintf(w, "release %s: broker %s %s %s verified\n", releaseDir, escape.String(b.Name), escape.String(b.Version), b.Digest)
			}
			var names []string
			for _, c := range in.Collectors {
				names = append(names, c.Name)
			}
			fmt.Fprintf(w, "collectors verified: %s (manifests in %s)\n", escape.String(strings.Join(names, " ")), attest.StateManifestDir(state))
			fmt.Fprintf(w, "kernel gate verified: %s sha256:%s (tracebroker gatekeeper enforce)\n", escape.String(in.Gate.Name), in.Gate.Digest)
			names = names[:0]
			for _, p := range in.Plugins {
				names = append(names, filepath.Base(p.Path))
			}
			fmt.Fprintf(w, "plugins installed: %s (in %s)\n", escape.String(strings.Join(names, " ")), filepath.Join(state, hoststate.Plugins))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", attest.DefaultStateDir, "state `DIR`")
	f.StringVar(&trustPub, "trust", "", "trust the release key `PUB`, and install the release it is in")
	f.StringVar(&releaseDir, "release", "", "install the release in `DIR` (make release's dist/release), verified against --trust")
	return cmd
}
