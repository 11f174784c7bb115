// Package relay is the SMTP submission server that lets mail servers use a connector as
// their relay host: a listener with STARTTLS (port 587 style) and one with implicit TLS
// (465), AUTH PLAIN/LOGIN with relay credentials, and every message handed to the same
// pipeline as REST submissions (message.Service.SubmitRaw) before the client hears 250.
//
// Protection against clients that misbehave: a per-IP connection limit, a timeout on every
// whole command line and on the whole DATA phase (not on each read), a write timeout, a
// maximum line length, a size
// limit enforced while reading (the rest of an oversized message is discarded, never
// buffered), and throttling of failed logins per IP address and per user name.
package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/message"
)

// Authenticator verifies relay logins; connector.RelayCredentials implements it.
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string) (*connector.RelayCredential, connector.RelayAuthResult, error)
	// Active reports whether a credential may still send (not revoked, not deleted).
	Active(ctx context.Context, username string) (bool, error)
}

// Submitter is the message pipeline; message.Service implements it.
type Submitter interface {
	CheckEnvelopeSender(ctx context.Context, tenantID, connectorID, from string) error
	// CheckRecipient returns a *message.SuppressedError for a suppressed recipient.
	CheckRecipient(ctx context.Context, tenantID, to string) error
	SubmitRaw(ctx context.Context, tenantID string, sub message.RawSubmission) (*message.Accepted, *message.Quota, error)
}

// Config tunes the server. Zero values get the defaults noted.
type Config struct {
	// Addr is the submission listener (STARTTLS), TLSAddr the implicit-TLS one; an empty
	// address does not listen.
	Addr, TLSAddr string
	// Hostname is the name in the banner, the EHLO reply and Received lines; default: the
	// machine's host name.
	Hostname string
	// TLS serves both listeners' certificates (required).
	TLS *tls.Config
	// MaxMessageBytes is the largest message accepted as it arrives (advertised in SIZE);
	// default 10 MiB.
	MaxMessageBytes int64
	// MaxRecipients per message; the next RCPT gets 452 4.5.3. Default message.MaxRecipients.
	MaxRecipients int
	// MaxConnsPerIP bounds simultaneous connections from one address; default 20.
	MaxConnsPerIP int
	// Timeout bounds each command line (from the wait for it to its line end), the whole
	// DATA phase (from 354 to the final dot) and each write; default 5m.
	Timeout time.Duration
	// AllowInsecureAuth allows AUTH without TLS, and only from loopback addresses.
	AllowInsecureAuth bool
	// AuthFailureLimit is how many failed logins one IP address may make within
	// AuthFailureWindow before its logins are refused (a user name: twice as many);
	// default 5 in 5 minutes.
	AuthFailureLimit  int
	AuthFailureWindow time.Duration
	// AuthFailureDelay is slept before answering a failed login; default 1s, negative: none.
	AuthFailureDelay time.Duration
	// SubmitTimeout bounds the database work for one message; default 30s.
	SubmitTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
	}
	if c.Hostname == "" {
		c.Hostname = "localhost"
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 10 << 20
	}
	if c.MaxRecipients <= 0 {
		c.MaxRecipients = message.MaxRecipients
	}
	if c.MaxConnsPerIP <= 0 {
		c.MaxConnsPerIP = 20
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.AuthFailureLimit <= 0 {
		c.AuthFailureLimit = 5
	}
	if c.AuthFailureWindow <= 0 {
		c.AuthFailureWindow = 5 * time.Minute
	}
	if c.AuthFailureDelay < 0 {
		c.AuthFailureDelay = 0
	} else if c.AuthFailureDelay == 0 {
		c.AuthFailureDelay = time.Second
	}
	if c.SubmitTimeout <= 0 {
		c.SubmitTimeout = 30 * time.Second
	}
	return c
}

// receivedReserve is kept free below the configured maximum for the Received line the relay
// adds, so a message that fits the advertised SIZE also fits the pipeline's limit.
const receivedReserve = 1024

// Server is the relay host.
type Server struct {
	cfg     Config
	auth    Authenticator
	msgs    Submitter
	logger  *slog.Logger
	metrics *metrics
	smtp    *smtp.Server

	perIP     *connLimiter
	ipFails   *throttle
	userFails *throttle
	refusing  chan struct{} // bounds goroutines answering refused connections

	draining atomic.Bool
	mu       sync.Mutex
	conns    map[*trackedConn]struct{}
	lns      []net.Listener
	addr     string
	tlsAddr  string
	serving  sync.WaitGroup
}

// New returns a server; Start listens. reg may be nil.
func New(cfg Config, auth Authenticator, msgs Submitter, logger *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	cfg = cfg.withDefaults()
	if cfg.TLS == nil {
		return nil, errors.New("relay: a TLS configuration is required")
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, auth: auth, msgs: msgs, logger: logger, metrics: m,
		perIP:     newConnLimiter(cfg.MaxConnsPerIP),
		ipFails:   newThrottle(cfg.AuthFailureLimit, cfg.AuthFailureWindow),
		userFails: newThrottle(2*cfg.AuthFailureLimit, cfg.AuthFailureWindow),
		refusing:  make(chan struct{}, 64),
		conns:     map[*trackedConn]struct{}{},
	}
	srv := smtp.NewServer(backend{s})
	srv.Domain = cfg.Hostname
	srv.TLSConfig = cfg.TLS
	srv.MaxMessageBytes = max(cfg.MaxMessageBytes-receivedReserve, 1024)
	srv.MaxRecipients = cfg.MaxRecipients
	srv.MaxLineLength = 2000 // RFC 5321's 1000 doubled, as go-smtp suggests; longer lines end the session
	srv.ReadTimeout = cfg.Timeout
	srv.WriteTimeout = cfg.Timeout
	srv.AllowInsecureAuth = cfg.AllowInsecureAuth // the session narrows it to loopback
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = errorLog{logger}
	s.smtp = srv
	return s, nil
}

// Start listens on the configured addresses and serves in the background.
func (s *Server) Start() error {
	if s.cfg.Addr != "" {
		ln, err := net.Listen("tcp", s.cfg.Addr)
		if err != nil {
			return fmt.Errorf("error listening for SMTP submission on %s: %w", s.cfg.Addr, err)
		}
		s.addr = ln.Addr().String()
		s.serve(&listener{Listener: ln, srv: s, name: "submission"})
	}
	if s.cfg.TLSAddr != "" {
		ln, err := net.Listen("tcp", s.cfg.TLSAddr)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("error listening for SMTP over TLS on %s: %w", s.cfg.TLSAddr, err)
		}
		s.tlsAddr = ln.Addr().String()
		s.serve(tls.NewListener(&listener{Listener: ln, srv: s, name: "smtps", tls: true}, s.cfg.TLS))
	}
	return nil
}

func (s *Server) serve(ln net.Listener) {
	s.mu.Lock()
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		if err := s.smtp.Serve(ln); err != nil && !s.draining.Load() {
			s.logger.Error("smtp listener stopped", "addr", ln.Addr().String(), "error", err)
		}
	}()
}

// Addr is the bound submission (STARTTLS) address, or "" when it does not listen.
func (s *Server) Addr() string { return s.addr }

// TLSAddr is the bound implicit-TLS address, or "" when it does not listen.
func (s *Server) TLSAddr() string { return s.tlsAddr }

// Hostname is the name the server gives in its banner.
func (s *Server) Hostname() string { return s.cfg.Hostname }

// Shutdown stops accepting connections, closes idle sessions with 421 and lets sessions in
// the middle of a message finish it (their client hears the final reply) until ctx ends;
// then it closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.closeListeners()
	s.mu.Lock()
	for c := range s.conns {
		c.wakeIfIdle()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		_ = s.smtp.Shutdown(context.Background())
		s.serving.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		select { // sessions end as their connections fail; one inside a commit may take longer
		case <-done:
		case <-time.After(time.Second):
		}
		return fmt.Errorf("error shutting down the smtp server: %w", ctx.Err())
	}
}

// Close stops at once: listeners and every connection are closed. It is safe after
// Shutdown (serve defers it for the paths that return early).
func (s *Server) Close() {
	s.draining.Store(true)
	s.closeListeners()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Conn.Close() // the raw connection: trackedConn.Close takes s.mu itself
	}
	s.mu.Unlock()
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ln := range s.lns {
		_ = ln.Close()
	}
}

func (s *Server) track(c *trackedConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns[c] = struct{}{}
}

func (s *Server) untrack(c *trackedConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

type backend struct{ s *Server }

// NewSession runs at each EHLO/HELO that starts a session (again after STARTTLS).
func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	tc := tracked(c.Conn())
	if tc == nil {
		return nil, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Internal error"}
	}
	_, isTLS := c.TLSConnectionState()
	log := b.s.logger.With("session", tc.id, "remote_ip", tc.ip.String(), "listener", tc.listener, "tls", isTLS)
	return &session{srv: b.s, conn: c, tc: tc, tls: isTLS, log: log}, nil
}

// errorLog routes go-smtp's own log lines into slog: connection errors at debug level
// (clients hang up all the time), recovered panics at error level.
type errorLog struct{ logger *slog.Logger }

func (l errorLog) Printf(format string, v ...any) { l.log(fmt.Sprintf(format, v...)) }
func (l errorLog) Println(v ...any)               { l.log(fmt.Sprintln(v...)) }

func (l errorLog) log(msg string) {
	level := slog.LevelDebug
	if len(msg) >= 5 && msg[:5] == "panic" {
		level = slog.LevelError
	}
	l.logger.Log(context.Background(), level, "smtp server", "detail", msg)
}
