package daemon

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/token"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// withMetrics serves the daemon's metrics on a port of loopback's own
// choosing.
func withMetrics(_ *testDaemon, c *Config) { c.MetricsListen = "127.0.0.1:0" }

// scrape gets /metrics over HTTP, as Prometheus does, and parses it.
func scrape(t *testing.T, d *testDaemon) map[string]*dto.MetricFamily {
	t.Helper()
	addr := d.srv.MetricsAddr()
	if addr == nil {
		t.Fatal("no metrics address")
	}
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value is the value of the series of family name with exactly the
// labels given ("k=v" pairs); a series not there fails the test.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no metric %s", name)
	}
	for _, m := range f.GetMetric() {
		var got []string
		for _, l := range m.GetLabel() {
			got = append(got, l.GetName()+"="+l.GetValue())
		}
		if strings.Join(got, ",") != strings.Join(labels, ",") {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no series %s{%s}", name, strings.Join(labels, ","))
	return 0
}

// TestMetrics: after one trace of a token holder that printed one line
// per getcwd of a workload this test runs, and one request refused for
// its scope, /metrics counts exactly those.
func TestMetrics(t *testing.T) {
	needKernel(t)
	d := startDaemon(t, daemonOpts{configure: withMetrics})
	before := scrape(t, d)
	for _, name := range []string{"tracebroker_events_total", "tracebroker_events_lost_total"} {
		if v := value(t, before, name); v != 0 {
			t.Errorf("%s = %v before any trace", name, v)
		}
	}
	const n = 23
	tok := d.token(t, token.IssueOptions{Scope: "trace probe:tracepoint:syscalls:sys_enter_getcwd"})
	r := d.start(t, tok, &pb.TraceRequest{Name: "stdin", Quiet: true,
		Source: fmt.Appendf(nil, `tracepoint:syscalls:sys_enter_getcwd /pid == %d/ { printf("cwd\n"); }`, os.Getpid())})
	d.attached(t, 1, r)
	if v := value(t, scrape(t, d), "tracebroker_sessions", "state=run"); v != 1 {
		t.Errorf("sessions{state=run} = %v while the trace runs, want 1", v)
	}
	kerneltest.Syscalls(n, 0)
	close(r.interrupt)
	r.wait(t)
	if r.err != nil {
		t.Fatalf("trace: %v\n%s", r.err, r.stderr.String())
	}
	if got := strings.Count(r.stdout.String(), "cwd\n"); got != n {
		t.Fatalf("%d lines printed, want %d", got, n)
	}
	// A probe its scope does not allow: refused by stage scope.
	refused := d.start(t, tok, &pb.TraceRequest{Name: "stdin", Source: []byte(`tracepoint:syscalls:sys_enter_getcpu { @ = count(); }`)})
	refused.wait(t)
	if refused.err == nil {
		t.Fatal("a probe outside the token's scope ran")
	}

	got := scrape(t, d)
	mode := r.res.Mode
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"tracebroker_events_total", nil, n},
		{"tracebroker_events_lost_total", nil, 0},
		{"tracebroker_admissions_total", []string{"mode=" + mode, "verdict=allow"}, 1},
		{"tracebroker_admissions_total", []string{"mode=", "verdict=deny"}, 0},
		{"tracebroker_refusals_total", []string{"stage=scope"}, 1},
		{"tracebroker_refusals_total", []string{"stage=gatekeeper"}, 0},
		{"tracebroker_refusals_total", []string{"stage=token"}, 0},
		{"tracebroker_token_verifications_total", []string{"result=valid"}, 2},
		{"tracebroker_token_verifications_total", []string{"result=invalid"}, 0},
		{"tracebroker_sessions_ended_total", []string{"reason=interrupted"}, 1},
		{"tracebroker_sessions", []string{"state=run"}, 0},
		// Each audit record's write is timed: daemon.start; the trace's
		// request, admission and end; the refused one's request and
		// refusal.
		{"tracebroker_audit_write_seconds", nil, 6},
	} {
		if v := value(t, got, c.name, c.labels...); v != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, strings.Join(c.labels, ","), v, c.want)
		}
	}
	if got["go_goroutines"] == nil || got["process_cpu_seconds_total"] == nil {
		t.Error("no go or process collector metrics")
	}
}

type dtoFamily = dto.MetricFamily

// BenchmarkScrape is one /metrics page rendered (the go and process
// collectors' included), as a scraper costs the daemon.
func BenchmarkScrape(b *testing.B) {
	m := NewMetrics()
	m.reg.MustRegister(newSessionGauge(newSessions(128, 8)))
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	req := httptest.NewRequest("GET", "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
