//go:build !norpc

package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/broker/audit"
	"github.com/tracebroker/tracebroker/broker/daemon"
	"github.com/tracebroker/tracebroker/broker/token"
	"github.com/tracebroker/tracebroker/gatekeeper"
	"github.com/tracebroker/tracebroker/gatekeeper/lsmgate"
	"github.com/tracebroker/tracebroker/internal/hoststate"
	"github.com/tracebroker/tracebroker/internal/regfile"
)

func newServeCmd() *cobra.Command {
	var (
		state, config, socket, group     string
		issuers, oidc                    []string
		revoked, listen, tlsCert, tlsKey string
		auditPath, attestDir             string
		logFormat, logLevel              string
		tf                               tokenFlags
		auditOpts                        audit.Options
		cfg                              daemon.Config
		gf                               gateFlags
		pf                               pluginFlags
	)
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: rpcShort["serve"],
		Long: `serve runs the broker daemon. Clients (tracebroker trace, sessions) reach it
over a unix socket (mode 0660; --socket-group decides who may connect) and,
with --listen, over TLS. A caller on the socket whose uid is 0 and who sends
no token is an administrator; everyone else needs a token (tracebroker token
issue) from a key given with --issuer-pub, whose scopes must allow every
probe of the trace. Every request and decision goes to the audit log.

Tokens are bound to this daemon by --issuer and --audience: by default every
daemon that trusts an issuer key takes all of its tokens; give each host an
audience of its own (--audience tracebroker:db-7, and token issue --aud) so
that a token for one host is refused by the others.

Access tokens of the organisation's identity provider are accepted too, for
each STATE/issuers/NAME.oidc.json (or --oidc-issuer FILE): {"issuer": URL,
"jwks_file": FILE, "algorithms": ["RS256", ...]}. The daemon never fetches
keys: the operator keeps the JWKS file current, and the daemon re-reads it
when it changes; while it cannot be read, that issuer's tokens are refused.

Flags not given are read from STATE/broker.json (tracebroker init writes
one), by flag name: {"socket": "/run/tracebroker/broker.sock", ...}.
SIGHUP re-reads the revocation list, the JWKS files and the policy;
SIGTERM ends every session, printing its maps to its client, and detaches
everything.`,
		Example: `  tracebroker init
  tracebroker serve --issuer-pub /etc/tracebroker/issuer.pub --socket-group tracers
  tracebroker serve --default strict --policy site.o --revoked /etc/tracebroker/revoked
  tracebroker serve --listen :7443 --tls-cert cert.pem --tls-key key.pem --issuer-pub issuer.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := hoststate.NeedDir(state, state, "state directory"); err != nil {
				return err
			}
			if err := applyConfigFile(cmd.Flags(), config, state); err != nil {
				return err
			}
			logger, err := newLogger(logFormat, logLevel)
			if err != nil {
				return err
			}
			cfg.Logger = logger
			cfg.Socket, cfg.SocketGroup, cfg.Listen = socket, group, listen
			if socket != "" {
				if err := daemon.PrepareSocketDir(socket, group); err != nil {
					return err
				}
			}
			if listen != "" {
				if tlsCert == "" || tlsKey == "" {
					return errors.New("--listen needs --tls-cert and --tls-key: tokens never travel in clear text")
				}
				cert, err := tls.LoadX509KeyPair(tlsCert, tlsKey)
				if err != nil {
					return fmt.Errorf("TLS: %w", err)
				}
				cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
			}
			trust, k, err := gf.ready(state)
			if err != nil {
				return err
			}
			cfg.Keeper = k
			cfg.Collectors = collectorTrust(trust, state, false)
			cfg.Trust = trust
			if cfg.Broker, err = attest.Measure(0, attest.MeasureOptions{Trust: trust, ManifestDir: attest.StateManifestDir(state), Role: attest.RoleBroker}); err != nil {
				return fmt.Errorf("measuring this broker: %w", err)
			}
			if cfg.HostKey, err = attest.LoadHostKey(state); err != nil {
				return err
			}
			cfg.AttestDir = attestDir
			if cfg.AttestDir == "" {
				cfg.AttestDir = filepath.Join(state, hoststate.Attestations)
			}
			var rev *token.Revocations
			if revoked != "" {
				if rev, err = token.LoadRevocations(revoked); err != nil {
					return fmt.Errorf("revocation list: %w", err)
				}
			}
			if cfg.Tokens, err = issuerVerifier(issuers, oidc, state, rev, tf); err != nil {
				return err
			}
			logIssuers(logger, cfg.Tokens)
			cfg.Revoked = rev
			if gf.policy != "" {
				cfg.LoadPolicy = func() (*gatekeeper.Policy, error) {
					return gatekeeper.LoadPolicyFile(gf.policy, gatekeeper.PolicyOptions{Trust: trust, Unsigned: gf.unsigned})
				}
			}
			if cfg.Plugins = pf.host(state, trust); pf.dir == "" {
				if _, err := os.Stat(cfg.Plugins.Dir); err != nil {
					cfg.Plugins = nil
				}
			}
			if auditPath == "" {
				auditPath = filepath.Join(state, "audit.log")
			}
			auditOpts.Logger = logger
			auditOpts.MaxSize <<= 20 // from MiB
			if cfg.Audit, err = audit.Open(auditPath, auditOpts); err != nil {
				return fmt.Errorf("audit log: %w", err)
			}
			defer cfg.Audit.Close()
			srv, err := daemon.New(cfg)
			if err != nil {
				return err
			}
			logger.Info("broker", "digest", cfg.Broker.Digest, "verified", cfg.Broker.Verified, "signer", cfg.Broker.Signer, "default", gf.def, "policy", gf.policy, "audit", auditPath)

			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					srv.Reload()
				}
			}()
			return srv.Serve(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", attest.DefaultStateDir, "state `DIR` (tracebroker init): host key, trusted keys, issuers, audit log")
	f.StringVar(&config, "config", "", "read flag defaults from `FILE` (default: STATE/"+serveConfigName+" if it exists)")
	f.StringVar(&socket, "socket", DefaultSocket, "listen on the unix socket `PATH` (its directory is made if missing)")
	f.StringVar(&group, "socket-group", "", "the socket's `GROUP`: its members may connect")
	f.StringSliceVar(&issuers, "issuer-pub", nil, "token issuers' public keys (`PUB`[,PUB...]; default: STATE/issuers/*.pub)")
	registerOIDCFlag(f, &oidc, " (default: STATE/issuers/*"+token.OIDCSuffix+"; JWKS re-read when it changes)")
	f.StringVar(&revoked, "revoked", "", "revoked token ids, one per line (`FILE`, re-read on SIGHUP)")
	f.StringVar(&listen, "listen", "", "also serve TLS on TCP `ADDR` (host:port)")
	f.StringVar(&tlsCert, "tls-cert", "", "TLS certificate `PEM` for --listen")
	f.StringVar(&tlsKey, "tls-key", "", "TLS key `PEM` for --listen")
	f.StringVar(&auditPath, "audit-log", "", "the audit log `FILE` (default: STATE/audit.log)")
	f.StringVar(&cfg.GatePinDir, "gate-pin-dir", lsmgate.DefaultPinDir, "where the kernel gate is pinned (`DIR`): its refusals are drained into the audit log, and attestations say whether it enforces (\"\" to ignore it)")
	f.StringVar(&attestDir, "attest-dir", "", "attestations of every program go to `DIR` (default: STATE/attestations)")
	f.Int64Var(&cfg.AttestMaxBytes, "attest-max-bytes", daemon.DefaultAttestMaxBytes, "bound the attestation directory to `BYTES`, oldest traces removed first (negative: unbounded)")
	f.Int64Var(&cfg.AttestMaxBytesPerSubject, "attest-max-bytes-per-subject", daemon.DefaultAttestMaxBytesPerSubject, "bound one token subject's (or uid's) attestations to `BYTES`")
	f.IntVar(&cfg.MaxSessions, "max-sessions", 128, "most sessions at once")
	f.IntVar(&cfg.MaxPerSubject, "max-sessions-per-subject", 8, "most sessions at once of one token subject or uid")
	f.IntVar(&cfg.MaxMapKeys, "max-map-keys", 4096, "maximum number of keys per map")
	tf.register(f)
	registerLimitFlags(f, &cfg, &auditOpts)
	registerRequestLimitFlags(f, &cfg.Limits)
	registerMetricsFlags(f, &cfg)
	f.IntVar(&cfg.OutputQueue, "output-queue", 1<<20, "`BYTES` of a session's output that may wait for its client; beyond them output is dropped, counted and reported")
	f.StringVar(&logFormat, "log-format", "text", "log format on stderr: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	gf.register(f)
	pf.register(f, false)
	return cmd
}

// issuerVerifier verifies tokens from the given issuer keys, or
// STATE/issuers/*.pub, and from the identity providers configured
// (oidc.go). None is not an error: only local root can trace then,
// which the log says.
func issuerVerifier(paths, oidcPaths []string, state string, rev *token.Revocations, tf tokenFlags) (*token.Verifier, error) {
	if len(paths) == 0 {
		paths, _ = filepath.Glob(filepath.Join(state, hoststate.Issuers, "*.pub"))
		sort.Strings(paths)
	}
	oidc, err := oidcIssuers(oidcPaths, state)
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 && len(oidc) == 0 {
		return nil, nil
	}
	var keys []*attest.PublicKey
	for _, p := range paths {
		k, err := attest.LoadPublicKey(p)
		if err != nil {
			return nil, fmt.Errorf("issuer key: %w", err)
		}
		keys = append(keys, k)
	}
	return token.NewVerifier(token.Config{Keys: keys, OIDC: oidc, Revoked: rev, Issuer: tf.issuer, Audience: tf.audience, MaxLifetime: tf.maxLifetime})
}

// applyConfigFile sets every flag the command line did not from the
// config file: a JSON object of flag names to values (strings, numbers,
// booleans, or lists for list flags).
func applyConfigFile(flags *pflag.FlagSet, path, state string) error {
	explicit := path != ""
	if !explicit {
		path = filepath.Join(state, serveConfigName)
	}
	data, err := regfile.ReadFile(path, 1<<20)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("config: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fl := flags.Lookup(name)
		if fl == nil || name == "config" || name == "state" {
			return fmt.Errorf("config %s: %q is not a serve flag", path, name)
		}
		if fl.Changed {
			continue
		}
		var vals []string
		var list []any
		var one any
		if err := json.Unmarshal(m[name], &list); err == nil {
			for _, v := range list {
				vals = append(vals, fmt.Sprint(v))
			}
		} else if err := json.Unmarshal(m[name], &one); err == nil && one != nil {
			vals = []string{fmt.Sprint(one)}
		} else {
			return fmt.Errorf("config %s: %s: want a string, number, boolean or list", path, name)
		}
		if len(vals) > 0 {
			if err := flags.Set(name, strings.Join(vals, ",")); err != nil {
				return fmt.Errorf("config %s: %s: %w", path, name, err)
			}
		}
	}
	return nil
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, o)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
