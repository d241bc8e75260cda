//go:build !norpc

package main

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/tracebroker/tracebroker/broker/audit"
	"github.com/tracebroker/tracebroker/broker/daemon"
	"github.com/tracebroker/tracebroker/broker/token"
)

// tokenFlags bind the tokens a daemon accepts to it.
type tokenFlags struct {
	issuer, audience string
	maxLifetime      time.Duration
}

func (t *tokenFlags) register(f *pflag.FlagSet) {
	f.StringVar(&t.issuer, "issuer", token.DefaultIssuer, "accept only tokens whose iss is `NAME`")
	f.StringVar(&t.audience, "audience", token.DefaultAudience, "accept only tokens whose aud names `NAME`; a name of this host's own keeps tokens issued for others off it")
	f.DurationVar(&t.maxLifetime, "token-max-lifetime", token.MaxTTL, "refuse tokens that live longer than `DURATION` from iat to exp (at most 24h)")
}

// registerLimitFlags are the bounds on what the daemon's users can make
// it spend: connections, and the audit log's records and files.
// audit's MaxSize is in MiB until serve converts it.
func registerLimitFlags(f *pflag.FlagSet, cfg *daemon.Config, a *audit.Options) {
	f.IntVar(&cfg.MaxConns, "max-conns", 1024, "most connections at once on the socket, and apart over TCP")
	f.IntVar(&cfg.MaxConnsPerPeer, "max-conns-per-peer", 32, "most connections at once of one uid (on the socket) or address (over TCP: loopback is one, IPv6 by /64); root's are not bounded")
	f.DurationVar(&cfg.PreAuthTimeout, "preauth-timeout", 10*time.Second, "close connections that have not made a request with a valid token in `DURATION`")
	f.IntVar(&cfg.RefusalBurst, "refusal-audit-burst", 20, "audit records of refused unauthenticated requests one uid or address may cause at once; past it they are counted, not recorded")
	f.Float64Var(&cfg.RefusalRate, "refusal-audit-rate", 0.05, "`RATE` per second at which a uid or address earns back such records after the burst (negative: record every refusal)")
	f.Int64Var(&a.MaxSize, "audit-max-mib", 32, "rotate the audit log before it grows past `MIB` MiB (0: never)")
	f.IntVar(&a.Keep, "audit-keep", audit.DefaultKeep, "keep `N` rotated audit log files; older ones are deleted, which the log records")
}

// registerRequestLimitFlags are serve's bounds on each request's fields;
// broker.json sets them by the same names.
func registerRequestLimitFlags(f *pflag.FlagSet, l *daemon.RequestLimits) {
	d := daemon.DefaultRequestLimits
	f.IntVar(&l.MaxSource, "max-script-bytes", d.MaxSource, "largest script a request may carry")
	f.IntVar(&l.MaxName, "max-name-bytes", d.MaxName, "longest script name a request may carry")
	f.IntVar(&l.MaxGenerator, "max-generator-bytes", d.MaxGenerator, "longest generator name a request may carry")
	f.IntVar(&l.MaxParams, "max-params", d.MaxParams, "most generator parameters a request may carry")
	f.IntVar(&l.MaxParamKey, "max-param-key-bytes", d.MaxParamKey, "longest generator parameter name")
	f.IntVar(&l.MaxParamValue, "max-param-value-bytes", d.MaxParamValue, "longest generator parameter value")
}
