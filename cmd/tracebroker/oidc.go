package main

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"

	"github.com/spf13/pflag"

	"github.com/tracebroker/tracebroker/broker/token"
	"github.com/tracebroker/tracebroker/internal/hoststate"
)

// registerOIDCFlag is serve's (and token inspect's) --oidc-issuer.
func registerOIDCFlag(f *pflag.FlagSet, paths *[]string, def string) {
	f.StringSliceVar(paths, "oidc-issuer", nil, "identity providers whose access tokens are accepted: `FILE`[,FILE...] of {issuer, jwks_file, algorithms, audience, typ}"+def)
}

// oidcIssuers loads the identity providers' configurations: the files
// given, or, with state, every STATE/issuers/NAME.oidc.json. A file that
// is wrong stops the daemon from starting: a typo must not quietly
// accept, or refuse, a provider's tokens.
func oidcIssuers(paths []string, state string) ([]token.OIDCConfig, error) {
	if len(paths) == 0 && state != "" {
		paths, _ = filepath.Glob(filepath.Join(state, hoststate.Issuers, "*"+token.OIDCSuffix))
		sort.Strings(paths)
	}
	var out []token.OIDCConfig
	for _, p := range paths {
		c, err := token.LoadOIDCConfig(p)
		if err != nil {
			return nil, fmt.Errorf("identity provider: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// logIssuers says at start what each identity provider's JWKS holds, or
// why its tokens are refused until the file is fixed.
func logIssuers(log *slog.Logger, v *token.Verifier) {
	st := v.ReloadIssuers()
	names := make([]string, 0, len(st))
	for n := range st {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		log.Info("identity provider", "name", n, "jwks", st[n])
	}
}
