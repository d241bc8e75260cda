//go:build !norpc

package main

import (
	"github.com/spf13/pflag"

	"github.com/tracebroker/tracebroker/broker/daemon"
)

// registerMetricsFlags adds serve's Prometheus flags (broker/daemon/metrics.go).
func registerMetricsFlags(f *pflag.FlagSet, cfg *daemon.Config) {
	f.StringVar(&cfg.MetricsListen, "metrics-listen", "", "serve Prometheus metrics at http://`ADDR`/metrics (host:port, loopback unless --metrics-public; default: off)")
	f.BoolVar(&cfg.MetricsPublic, "metrics-public", false, "let --metrics-listen be a non-loopback address: /metrics is plain, unauthenticated HTTP")
}
