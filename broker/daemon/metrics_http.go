package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
)

// Bounds of the metrics listener: it is plain HTTP with no
// authentication, so whoever reaches it gets only fixed-size pages, a
// few at a time, and cannot hold a connection open for long.
const (
	metricsMaxConns    = 8
	metricsMaxInFlight = 2
	metricsHeaderTime  = 5 * time.Second
	metricsIdleTime    = 30 * time.Second
	metricsWriteTime   = 10 * time.Second
	metricsHeaderBytes = 8 << 10
)

// CheckMetricsListen refuses an address that would publish the metrics
// beyond this host, unless public: /metrics is unauthenticated HTTP,
// and although no label holds a subject or a token, the counts show
// when and how much the host is traced. A host name is refused as well,
// whatever it resolves to now.
func CheckMetricsListen(addr string, public bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("metrics address %q: %w", addr, err)
	}
	if public {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("metrics address %q is not a loopback address: /metrics is plain, unauthenticated HTTP; give 127.0.0.1:PORT or [::1]:PORT (and a reverse proxy with TLS in front), or --metrics-public to serve it there anyway", addr)
}

// metricsServer is /metrics on its own listener, apart from the gRPC
// ones: a scraper never shares their bounds, nor they its.
type metricsServer struct {
	srv *http.Server
	lis net.Listener
}

func listenMetrics(addr string, m *Metrics) (*metricsServer, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		MaxRequestsInFlight: metricsMaxInFlight,
		Timeout:             metricsWriteTime / 2,
	}))
	return &metricsServer{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: metricsHeaderTime,
			ReadTimeout:       metricsHeaderTime,
			WriteTimeout:      metricsWriteTime,
			IdleTimeout:       metricsIdleTime,
			MaxHeaderBytes:    metricsHeaderBytes,
		},
		lis: netutil.LimitListener(l, metricsMaxConns),
	}, nil
}

func (ms *metricsServer) serve() error {
	if err := ms.srv.Serve(ms.lis); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

func (ms *metricsServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if ms.srv.Shutdown(ctx) != nil {
		ms.srv.Close()
	}
}

// setUpMetrics checks the metrics' configuration and makes the
// metrics, for New.
func (s *Server) setUpMetrics() error {
	if s.cfg.MetricsListen != "" {
		if err := CheckMetricsListen(s.cfg.MetricsListen, s.cfg.MetricsPublic); err != nil {
			return err
		}
		if s.cfg.Metrics == nil {
			s.cfg.Metrics = NewMetrics()
		}
	}
	if s.metrics = s.cfg.Metrics; s.metrics != nil {
		if err := s.metrics.reg.Register(newSessionGauge(s.sessions)); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	return nil
}

// listenMetrics sets up the metrics listener, if configured, for Serve.
func (s *Server) listenMetrics() error {
	if s.cfg.MetricsListen == "" {
		return nil
	}
	ms, err := listenMetrics(s.cfg.MetricsListen, s.metrics)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.mserver = ms
	s.mu.Unlock()
	s.log.Info("metrics", "url", "http://"+ms.lis.Addr().String()+"/metrics")
	return nil
}

func (s *Server) serveMetrics(errc chan<- error) {
	if ms := s.metricsServer(); ms != nil {
		go func() {
			if err := ms.serve(); err != nil {
				errc <- err
			}
		}()
	}
}

// closeMetrics stops /metrics last, once the daemon has shut down: a
// scrape during shutdown sees its sessions end.
func (s *Server) closeMetrics() {
	if ms := s.metricsServer(); ms != nil {
		ms.close()
	}
}

func (s *Server) metricsServer() *metricsServer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mserver
}

// MetricsAddr is the address /metrics is served on, once Serve has set
// it up; nil before, or without MetricsListen.
func (s *Server) MetricsAddr() net.Addr {
	if ms := s.metricsServer(); ms != nil {
		return ms.lis.Addr()
	}
	return nil
}
