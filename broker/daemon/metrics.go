package daemon

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tracebroker/tracebroker/gatekeeper"
)

// Metrics are the daemon's Prometheus metrics, in a registry of their
// own (not the process-wide default, which any imported package may
// write to).
//
// Every label value is one of a fixed set written in this file: no
// subject, token id, generator, probe or reason is a label. Those are
// chosen by whoever holds a token, so as labels they would be unbounded
// series (a token holder could exhaust the daemon's memory and the
// scraper's) and they would publish, to anyone who can scrape, who
// traces what. The audit log has them; metrics count.
type Metrics struct {
	reg *prometheus.Registry

	admissions    *prometheus.CounterVec
	refusals      *prometheus.CounterVec
	tokens        *prometheus.CounterVec
	events, lost  prometheus.Counter
	auditLatency  prometheus.Histogram
	sessionsEnded *prometheus.CounterVec
}

// The label values, all of them. refusalStages are Trace's stages;
// tokenResults what authenticate finds; endReasons how a session that
// ran ended (endReason, plus "exit" for exit(), -d, its own end, and
// "error").
var (
	refusalStages = []string{"request", "token", "limit", "generator", "scope", "gatekeeper"}
	tokenResults  = []string{"valid", "invalid", "malformed", "none", "no_issuer"}
	verdicts      = []string{"allow", "deny"}
	modes         = []string{gatekeeper.ModeJIT, gatekeeper.ModeInterpreter}
	phases        = []string{phaseGenerate, phaseCompile, phaseLoad, phaseRun, phaseEnding}
	endReasons    = []string{"exit", "error", "shutdown", "stopped", "interrupted", "token_expired", "token_revoked", "client", "max_duration"}
)

// NewMetrics makes the metrics of one daemon; the Server adds its
// sessions gauge when it is given them (Config.Metrics).
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.admissions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tracebroker_admissions_total",
		Help: "Programs the gatekeeper judged: verdict allow or deny, and the mode an allowed one runs in (jit, interpreter; \"\" for deny).",
	}, []string{"verdict", "mode"})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tracebroker_refusals_total",
		Help: "Trace requests refused, by the stage that refused them (request, token, limit, generator, scope, gatekeeper).",
	}, []string{"stage"})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tracebroker_token_verifications_total",
		Help: "Bearer tokens checked: valid, invalid (signature, expiry, audience, revocation, scopes), malformed (header), none (a request without one that needed one), no_issuer (this daemon accepts no tokens).",
	}, []string{"result"})
	m.events = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tracebroker_events_total",
		Help: "Events read from the probes of every session (printf, exit and other records; counts kept in maps are not events).",
	})
	m.lost = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tracebroker_events_lost_total",
		Help: "Events the probes dropped because a session's buffer was full.",
	})
	m.auditLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tracebroker_audit_write_seconds",
		Help:    "Time to append one record to the audit log, fsync included.",
		Buckets: prometheus.ExponentialBuckets(50e-6, 4, 9), // 50µs to 3.3s
	})
	m.sessionsEnded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tracebroker_sessions_ended_total",
		Help: "Sessions that ran and ended, by why (exit: its own end, exit() or its duration).",
	}, []string{"reason"})
	// Every series exists from the start at 0, so that rate() and
	// alerts see the first event, and a scrape shows what can be counted.
	for _, v := range verdicts {
		for _, mo := range modes {
			if v == "allow" {
				m.admissions.WithLabelValues(v, mo)
			}
		}
	}
	m.admissions.WithLabelValues("deny", "")
	for _, st := range refusalStages {
		m.refusals.WithLabelValues(st)
	}
	for _, r := range tokenResults {
		m.tokens.WithLabelValues(r)
	}
	for _, r := range endReasons {
		m.sessionsEnded.WithLabelValues(r)
	}
	m.reg.MustRegister(m.admissions, m.refusals, m.tokens, m.events, m.lost, m.auditLatency, m.sessionsEnded,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is what /metrics serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// The methods below are the daemon's call sites; each takes a nil
// *Metrics (no metrics configured) as nothing to do, and maps a value
// outside its label's set to "other", so that no caller, now or later,
// can add a series.

func (m *Metrics) admitted(mode string) {
	if m != nil {
		m.admissions.WithLabelValues("allow", oneOf(mode, modes)).Inc()
	}
}

func (m *Metrics) denied() {
	if m != nil {
		m.admissions.WithLabelValues("deny", "").Inc()
	}
}

func (m *Metrics) refused(stage string) {
	if m != nil {
		m.refusals.WithLabelValues(oneOf(stage, refusalStages)).Inc()
	}
}

func (m *Metrics) token(result string) {
	if m != nil {
		m.tokens.WithLabelValues(oneOf(result, tokenResults)).Inc()
	}
}

func (m *Metrics) ended(reason string, failed bool) {
	if m == nil {
		return
	}
	switch {
	case failed && reason == "":
		reason = "error"
	case reason == "":
		reason = "exit"
	}
	m.sessionsEnded.WithLabelValues(oneOf(reason, endReasons)).Inc()
}

func (m *Metrics) auditWrite(d time.Duration) {
	if m != nil {
		m.auditLatency.Observe(d.Seconds())
	}
}

// counters are the events counters for a broker.Request: nil without
// metrics, so that the run counts nothing.
func (m *Metrics) counters() (events, lost prometheus.Counter) {
	if m == nil {
		return nil, nil
	}
	return m.events, m.lost
}

func oneOf(v string, set []string) string {
	for _, s := range set {
		if v == s {
			return v
		}
	}
	return "other"
}

// sessionGauge is tracebroker_sessions by phase, read from the session
// table when scraped: nothing to keep up to date on the way.
type sessionGauge struct {
	t    *sessions
	desc *prometheus.Desc
}

func newSessionGauge(t *sessions) *sessionGauge {
	return &sessionGauge{t, prometheus.NewDesc("tracebroker_sessions",
		"Sessions registered now, by state: generate, compile, load, run, ending.", []string{"state"}, nil)}
}

func (g *sessionGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *sessionGauge) Collect(ch chan<- prometheus.Metric) {
	n := map[string]int{}
	g.t.mu.Lock()
	for _, s := range g.t.byID {
		p := s.phase
		if p == "" {
			p = phaseCompile // registered, its first phase not entered yet
		}
		n[p]++
	}
	g.t.mu.Unlock()
	for _, p := range phases {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(n[p]), p)
	}
}
