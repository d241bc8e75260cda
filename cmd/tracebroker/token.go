package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/broker/token"
	"github.com/tracebroker/tracebroker/internal/escape"
)

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Issue and inspect the scoped tokens responders trace with",
		Long: `An administrator issues short-lived, scoped tokens (JWTs signed with an Ed25519
issuer key, alg EdDSA, typ at+jwt) so that incident responders can trace
through the broker daemon without root. The scope says what a token grants:

  trace            may run traces
  probe:PATTERN    may attach to probes matching PATTERN, e.g.
                   probe:tracepoint:syscalls:*  probe:uprobe:/usr/bin/*:*
  gen:PATTERN      may run the generator plugins matching PATTERN
  read:user        may read any user memory (a probe: scope grants only
                   the probe's context and the memory its user pointers
                   reach: str(args->filename), join(args->argv), str(arg0))
  read:kernel      may read any kernel memory and learn kernel addresses
                   (kaddr(), ksym(), kstack(perf)): all of the host's secrets

In patterns * and ? never match '/', ** matches anything, [a-z] is a class,
and the whole probe spec must match. Create the issuer key pair with
tracebroker attest keygen; the daemon verifies with its .pub.`,
	}
	cmd.AddCommand(newTokenIssueCmd(), newTokenInspectCmd())
	return cmd
}

func newTokenIssueCmd() *cobra.Command {
	var (
		keyPath   string
		o         token.IssueOptions
		notBefore string
	)
	cmd := &cobra.Command{
		Use:   "issue --key ISSUER.key --sub NAME --scope SCOPES --ttl DURATION",
		Short: "Sign a token and print it",
		Long: `Sign a token with the issuer key and print it on stdout. It is valid from
--not-before (default now) for --ttl; from its issue to its expiry it lives at
most ` + token.MaxTTL.String() + ` (daemons refuse longer-lived tokens, and may be set to refuse
shorter ones). --max-duration limits how long any one trace under it may run.
--aud binds it to the daemons started with that --audience: give each host
its own (e.g. tracebroker:db-7) so that a token for one is refused by others.`,
		Example: `  tracebroker token issue --key issuer.key --sub alice --ttl 30m \
    --scope 'trace probe:tracepoint:syscalls:* probe:uprobe:/usr/bin/*:*'
  tracebroker token issue --key issuer.key --sub oncall --ttl 2h --max-duration 10m \
    --scope 'trace gen:opensnoop'
  tracebroker token issue --key issuer.key --sub alice --ttl 1h --aud tracebroker:db-7 \
    --scope 'trace probe:tracepoint:syscalls:*'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keyPath == "" {
				return errors.New("--key is required")
			}
			if o.Subject == "" {
				return errors.New("--sub is required: who the token is for")
			}
			if o.Scope == "" {
				return errors.New("--scope is required, e.g. --scope 'trace probe:tracepoint:syscalls:*'")
			}
			if o.TTL == 0 {
				return errors.New("--ttl is required, e.g. --ttl 30m")
			}
			if notBefore != "" {
				t, err := time.Parse(time.RFC3339, notBefore)
				if err != nil {
					return fmt.Errorf("--not-before %q: want RFC 3339, e.g. 2026-03-01T12:00:00Z", notBefore)
				}
				o.NotBefore = t
			}
			k, err := attest.LoadPrivateKey(keyPath)
			if err != nil {
				return err
			}
			raw, err := token.Issue(k, o)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), raw)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyPath, "key", "", "the issuer key (`PATH` to a PKCS#8 PEM)")
	f.StringVar(&o.Subject, "sub", "", "who the token is for (`NAME`)")
	f.StringVar(&o.Issuer, "iss", token.DefaultIssuer, "the issuer claim")
	f.StringVar(&o.Audience, "aud", token.DefaultAudience, "the audience claim")
	f.StringVar(&o.Scope, "scope", "", "what it grants: space-separated `SCOPES`")
	f.DurationVar(&o.TTL, "ttl", 0, "how long it is valid, counted from --not-before")
	f.DurationVar(&o.MaxDuration, "max-duration", 0, "the longest one trace may run (whole seconds; default no limit)")
	f.StringVar(&o.ID, "jti", "", "the token `ID`, to revoke it by (default random)")
	f.StringVar(&notBefore, "not-before", "", "valid from `TIME` (RFC 3339; default now)")
	return cmd
}

func newTokenInspectCmd() *cobra.Command {
	var (
		pubs    []string
		oidc    []string
		iss     string
		aud     string
		revoked string
	)
	cmd := &cobra.Command{
		Use:   "inspect [--issuer-pub PUB]... TOKEN|-",
		Short: "Decode a token; with --issuer-pub or --oidc-issuer, verify it too",
		Long: `Print a token's header and claims (TOKEN, or - to read it from stdin). Without
--issuer-pub nothing is verified and it says so. With --issuer-pub it is
verified as the daemon would (signature, typ, exp/nbf/iat, --iss, --aud,
scope, and --revoked if given) and the last line is "valid" or
"invalid: REASON"; an invalid token exits 1. --oidc-issuer verifies an
identity provider's token with its configuration, as serve does.`,
		Example: `  tracebroker token inspect "$T"
  tracebroker token inspect --issuer-pub issuer.pub - < token.txt
  tracebroker token inspect --oidc-issuer /var/lib/tracebroker/issuers/corp.oidc.json - < idp-token.txt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := readToken(cmd.InOrStdin(), args[0])
			if err != nil {
				return err
			}
			header, claims, err := token.Inspect(raw)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if err := printTokenParts(out, header, claims, time.Now()); err != nil {
				return err
			}
			c := token.Config{Issuer: iss, Audience: aud}
			if c.OIDC, err = oidcIssuers(oidc, ""); err != nil {
				return err
			}
			if len(pubs) == 0 && len(c.OIDC) == 0 {
				fmt.Fprintln(out, "signature not checked (give --issuer-pub or --oidc-issuer to verify)")
				return invalidScope(out, claims, iss)
			}
			for _, p := range pubs {
				k, err := attest.LoadPublicKey(p)
				if err != nil {
					return err
				}
				c.Keys = append(c.Keys, k)
			}
			if revoked != "" {
				if c.Revoked, err = token.LoadRevocations(revoked); err != nil {
					return err
				}
			}
			v, err := token.NewVerifier(c)
			if err != nil {
				return err
			}
			if _, err := v.Verify(raw); err != nil {
				fmt.Fprintf(out, "invalid: %s\n", escape.String(err.Error()))
				return err
			}
			if err := invalidScope(out, claims, iss); err != nil {
				return err
			}
			fmt.Fprintln(out, "valid")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&pubs, "issuer-pub", nil, "verify with these issuer public keys (`PUB`[,PUB...])")
	f.StringVar(&iss, "iss", token.DefaultIssuer, "the issuer to require")
	f.StringVar(&aud, "aud", token.DefaultAudience, "the audience to require")
	f.StringVar(&revoked, "revoked", "", "refuse the token ids listed in `FILE`")
	registerOIDCFlag(f, &oidc, "")
	return cmd
}

// invalidScope holds a token of tracebroker's own issuer (iss) to what
// `token issue` would sign: a daemon ignores a word it does not know,
// which an issuer's typo makes a token that grants nothing it meant. An
// identity provider's tokens carry words of their own (openid, email):
// those are left to the verifier.
func invalidScope(out io.Writer, claims map[string]any, iss string) error {
	scope, ok := claims["scope"].(string)
	if !ok || claims["iss"] != iss {
		return nil // the verifier says what is wrong with it
	}
	if _, err := token.CheckScopes(scope); err != nil {
		fmt.Fprintf(out, "invalid: %s\n", escape.String(err.Error()))
		return fmt.Errorf("token scope: %w", err)
	}
	return nil
}

// readToken takes the token from the argument or, for "-", stdin;
// surrounding white space (a trailing newline) is not part of it.
func readToken(stdin io.Reader, arg string) (string, error) {
	if arg != "-" {
		return strings.TrimSpace(arg), nil
	}
	// Room for a maximal token and generous white space around it.
	const limit = 2 * token.MaxTokenLen
	b, err := io.ReadAll(io.LimitReader(stdin, limit+1))
	if err != nil {
		return "", fmt.Errorf("reading the token from stdin: %w", err)
	}
	if len(b) > limit {
		return "", fmt.Errorf("stdin is larger than %d bytes; a token is at most %d", limit, token.MaxTokenLen)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errors.New("no token on stdin")
	}
	return s, nil
}

func printTokenParts(w io.Writer, header, claims map[string]any, now time.Time) error {
	for _, part := range []struct {
		name string
		v    map[string]any
	}{{"header", header}, {"claims", claims}} {
		b, err := json.MarshalIndent(part.v, "", "  ")
		if err != nil {
			return err
		}
		// JSON escapes C0 controls; a token's claims are whoever
		// minted it's, so C1 controls and bidi overrides are too.
		if _, err := fmt.Fprintf(w, "%s:\n%s\n", part.name, escape.Text(string(b))); err != nil {
			return err
		}
	}
	for _, c := range []struct{ claim, label string }{
		{"iat", "issued at: "},
		{"nbf", "not before:"},
		{"exp", "expires:   "},
	} {
		t, ok := claimTime(claims[c.claim])
		if !ok {
			continue
		}
		when := ""
		switch d := t.Sub(now).Round(time.Second); {
		case d > 0:
			when = " (in " + d.String() + ")"
		case d < 0:
			when = " (" + (-d).String() + " ago)"
		}
		fmt.Fprintf(w, "%s %s%s\n", c.label, t.UTC().Format(time.RFC3339), when)
	}
	if n, ok := claims["max_duration"].(json.Number); ok {
		if secs, err := n.Int64(); err == nil && secs > 0 && secs <= int64(token.MaxMaxDuration/time.Second) {
			fmt.Fprintf(w, "max duration: %v\n", time.Duration(secs)*time.Second)
		}
	}
	return nil
}

// claimTime reads a NumericDate for display; one out of range is left
// out rather than shown as a wrong date.
func claimTime(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || f < -1e11 || f > 1e11 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}
