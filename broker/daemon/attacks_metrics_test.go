package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/token"
)

// TestAttacksMetrics: what the metrics listener lets whoever reaches it
// do, and what a token holder can make of the metrics.
func TestAttacksMetrics(t *testing.T) {
	t.Run("item5/metrics_listen_not_loopback", func(t *testing.T) {
		for _, c := range []struct {
			addr   string
			public bool
			ok     bool
		}{
			{"127.0.0.1:9464", false, true},
			{"[::1]:9464", false, true},
			{"127.0.0.2:9464", false, true},
			{":9464", false, false},
			{"0.0.0.0:9464", false, false},
			{"[::]:9464", false, false},
			{"192.0.2.1:9464", false, false},
			// A name may resolve anywhere, later if not now.
			{"localhost:9464", false, false},
			{"0.0.0.0:9464", true, true},
			{"127.0.0.1", false, false},
		} {
			err := CheckMetricsListen(c.addr, c.public)
			if (err == nil) != c.ok {
				t.Errorf("CheckMetricsListen(%q, public=%v) = %v, want ok=%v", c.addr, c.public, err, c.ok)
			}
		}
		if _, err := New(Config{Socket: "/nonexistent/x.sock", MetricsListen: "0.0.0.0:0", Keeper: nil}); err == nil {
			t.Error("New took a public metrics address")
		}
	})

	needKernel(t)
	d := startDaemon(t, daemonOpts{configure: withMetrics})
	base := "http://" + d.srv.MetricsAddr().String()

	t.Run("item5/metrics_only_get_metrics", func(t *testing.T) {
		for _, c := range []struct {
			method, path string
			want         int
		}{
			{"GET", "/metrics", 200},
			{"POST", "/metrics", 405},
			{"GET", "/", 404},
			{"GET", "/debug/pprof/", 404},
		} {
			req, _ := http.NewRequest(c.method, base+c.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.want)
			}
		}
	})

	t.Run("item5/metrics_conns_bounded", func(t *testing.T) {
		// Whoever reaches the port holds at most metricsMaxConns
		// connections: past them a scrape waits for one to close (or for
		// the header timeout to close it), and nothing more is taken.
		http.DefaultClient.CloseIdleConnections() // the earlier rows' keep-alive
		var held []net.Conn
		for range metricsMaxConns {
			c, err := net.Dial("tcp", d.srv.MetricsAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, c)
		}
		// The held connections came first, so the kernel hands them to
		// Accept first: this one waits behind them.
		client := &http.Client{Timeout: 300 * time.Millisecond}
		if resp, err := client.Get(base + "/metrics"); err == nil {
			resp.Body.Close()
			t.Error("a scrape past the connection bound was served")
		}
		for _, c := range held {
			c.Close()
		}
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatalf("after the held connections closed: %v", err)
		}
		resp.Body.Close()
	})

	t.Run("item5/metrics_header_bound", func(t *testing.T) {
		req, _ := http.NewRequest("GET", base+"/metrics", nil)
		req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("a 64 KiB header: %s, want 431", resp.Status)
		}
	})

	t.Run("item5/label_cardinality", func(t *testing.T) {
		before := seriesOf(scrape(t, d))
		// Whatever a token holder chooses - subjects, token ids,
		// generators, parameters, probe names, scripts, broken tokens -
		// adds no series, and shows in no label.
		const marker = "mallory-secret"
		for i := range 20 {
			sub := fmt.Sprintf("%s-%d", marker, i)
			tok := d.token(t, token.IssueOptions{Subject: sub, ID: sub, Scope: "trace gen:" + sub + " probe:tracepoint:syscalls:sys_enter_getcwd"})
			for _, req := range []*pb.TraceRequest{
				{Name: sub, Source: []byte(`tracepoint:syscalls:sys_enter_getcpu /comm == "` + sub + `"/ { @[comm] = count(); }`)},
				{Name: sub, Generator: sub, Params: map[string]string{sub: sub}},
				{Name: sub, Source: []byte(sub + " {")},
			} {
				runRefused(t, d, tok, req)
			}
			runRefused(t, d, tok+sub, &pb.TraceRequest{Name: sub, Source: []byte("BEGIN { exit(); }")})
			runRefused(t, d, strings.Repeat(sub, 1000), &pb.TraceRequest{Name: sub, Source: []byte("BEGIN { exit(); }")})
		}
		got := scrape(t, d)
		after := seriesOf(got)
		if len(after) != len(before) {
			t.Errorf("%d tracebroker_ series after the requests, %d before", len(after), len(before))
		}
		for s := range after {
			if !before[s] {
				t.Errorf("new series %s", s)
			}
			if strings.Contains(s, marker) {
				t.Errorf("a token holder's string in a label: %s", s)
			}
		}
		if v := value(t, got, "tracebroker_token_verifications_total", "result=invalid"); v < 20 {
			t.Errorf("%v invalid tokens counted, want at least 20", v)
		}
	})
}

// runRefused runs a trace that must not run.
func runRefused(t *testing.T, d *testDaemon, tok string, req *pb.TraceRequest) {
	t.Helper()
	c := d.client(t, tok)
	defer c.Close()
	var out strings.Builder
	if _, err := c.Trace(context.Background(), nil, req, &out, &out); err == nil {
		t.Fatalf("%s ran: %s", req.GetName(), out.String())
	}
}

// seriesOf is the tracebroker_ series scraped, each as name{labels}.
func seriesOf(fams map[string]*dtoFamily) map[string]bool {
	out := map[string]bool{}
	for name, f := range fams {
		if !strings.HasPrefix(name, "tracebroker_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			out[name+"{"+strings.Join(ls, ",")+"}"] = true
		}
	}
	return out
}
