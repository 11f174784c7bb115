package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendwerk/sendwerk/internal/config"
	"github.com/sendwerk/sendwerk/internal/metrics"
)

// startupListeners are bound before anything else starts (database, migrations, River), so a
// taken port is the first and only thing a failed start reports.
type startupListeners struct {
	http    net.Listener
	metrics net.Listener // nil without SENDWERK_METRICS_ADDR
}

func listenFirst(cfg *config.Config) (*startupListeners, error) {
	httpLn, err := listen("SENDWERK_HTTP_ADDR", cfg.HTTPAddr)
	if err != nil {
		return nil, err
	}
	l := &startupListeners{http: httpLn}
	if cfg.MetricsAddr != "" {
		if l.metrics, err = listen("SENDWERK_METRICS_ADDR", cfg.MetricsAddr); err != nil {
			httpLn.Close()
			return nil, err
		}
	}
	return l, nil
}

// close closes the listeners (a server that serves them closes them itself; closing twice
// is harmless).
func (l *startupListeners) close() {
	l.http.Close()
	if l.metrics != nil {
		l.metrics.Close()
	}
}

// listen binds addr, saying in words what a taken or forbidden port means.
func listen(variable, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, listenError(variable, addr, err)
	}
	return ln, nil
}

func listenError(variable, addr string, err error) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%s=%s: the address is already in use: another process (or another sendwerk) listens there; stop it or choose another address", variable, addr)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%s=%s: permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE (see docs/deploy.md)", variable, addr)
	}
	return fmt.Errorf("%s=%s: cannot listen: %w", variable, addr, err)
}

// serveMetrics serves /metrics on the metrics listener until the returned server is shut
// down, and Go's profiler under /debug/pprof/ when withPprof is set.
func serveMetrics(ln net.Listener, reg *prometheus.Registry, withPprof bool) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(reg, ""))
	if withPprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv
}
