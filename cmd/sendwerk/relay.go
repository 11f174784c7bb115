package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendwerk/sendwerk/internal/config"
	"github.com/sendwerk/sendwerk/internal/httpapi"
	"github.com/sendwerk/sendwerk/internal/relay"
)

// listenAddrs are the addresses serve bound; empty SMTP ones do not listen.
type listenAddrs struct {
	HTTP  string
	SMTP  string
	SMTPS string
	// Bounce is the bounce listener's address, when it runs.
	Bounce string
	// Metrics is the SENDWERK_METRICS_ADDR listener's address, when there is one.
	Metrics string
	// SelfSignedCert is the path of the generated development certificate, when one is used.
	SelfSignedCert string
	// DevInbox and DevDNS are the development mail catcher's and DNS server's; empty when off.
	DevInbox, DevDNS string
}

// startRelay starts the SMTP relay host when a listener is configured; nil when none is.
func startRelay(cfg *config.Config, logger *slog.Logger, reg prometheus.Registerer, auth relay.Authenticator, msgs relay.Submitter) (*relay.Server, string, error) {
	if !cfg.SMTPListens() {
		return nil, "", nil
	}
	hostname := cfg.SMTPHostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	tlsConfig, selfSigned, err := relayTLS(cfg, hostname, logger)
	if err != nil {
		return nil, "", err
	}
	srv, err := relay.New(relay.Config{
		Addr: cfg.SMTPAddr, TLSAddr: cfg.SMTPSAddr, Hostname: hostname, TLS: tlsConfig,
		MaxMessageBytes: cfg.MaxMessageBytes, MaxConnsPerIP: cfg.SMTPMaxConnsPerIP, Timeout: cfg.SMTPTimeout,
		AllowInsecureAuth: cfg.SMTPAllowInsecureAuth, AuthFailureLimit: cfg.SMTPAuthFailureLimit,
	}, auth, msgs, logger, reg)
	if err != nil {
		return nil, "", err
	}
	if err := srv.Start(); err != nil {
		switch {
		case errors.Is(err, syscall.EADDRINUSE):
			return nil, "", fmt.Errorf("SENDWERK_SMTP_ADDR/SENDWERK_SMTPS_ADDR: %w: another process listens there; stop it, choose another address, or set the variable to off", err)
		case errors.Is(err, syscall.EACCES):
			return nil, "", fmt.Errorf("SENDWERK_SMTP_ADDR/SENDWERK_SMTPS_ADDR: %w: ports below 1024 need root or CAP_NET_BIND_SERVICE (see docs/deploy.md)", err)
		}
		return nil, "", err
	}
	logger.Info("smtp relay host listening", "submission", srv.Addr(), "smtps", srv.TLSAddr(), "hostname", srv.Hostname())
	return srv, selfSigned, nil
}

// relayHostInfo is what the API tells mail-server administrators: the relay host's name and
// the ports it listens on (0: off).
func relayHostInfo(cfg *config.Config, srv *relay.Server) httpapi.RelayHost {
	if srv == nil {
		h := cfg.SMTPHostname
		if h == "" {
			h, _ = os.Hostname()
		}
		return httpapi.RelayHost{Host: h}
	}
	return httpapi.RelayHost{Host: srv.Hostname(), StartTLSPort: portOf(srv.Addr()), TLSPort: portOf(srv.TLSAddr())}
}

func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// relayTLS loads the configured certificate, or in development generates a self-signed one
// in the data dir (and says so): mail servers must then skip verification.
func relayTLS(cfg *config.Config, hostname string, logger *slog.Logger) (*tls.Config, string, error) {
	certFile, keyFile, selfSigned := cfg.TLSCertFile, cfg.TLSKeyFile, ""
	if certFile == "" {
		if cfg.Env == config.EnvProduction {
			return nil, "", fmt.Errorf("SENDWERK_TLS_CERT_FILE: must be set in production")
		}
		var created bool
		var err error
		certFile, keyFile, created, err = relay.EnsureSelfSigned(filepath.Join(cfg.DataDir, "tls"), hostname)
		if err != nil {
			return nil, "", err
		}
		selfSigned = certFile
		logger.Warn("smtp relay host uses a self-signed certificate (development only); set SENDWERK_TLS_CERT_FILE and SENDWERK_TLS_KEY_FILE for a real one",
			"cert_file", certFile, "generated", created)
	}
	reloader, err := relay.NewCertReloader(certFile, keyFile, logger)
	if err != nil {
		return nil, "", err
	}
	return reloader.TLSConfig(), selfSigned, nil
}
