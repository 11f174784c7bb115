// Package smtptest runs a real emersion/go-smtp server on 127.0.0.1:0 for tests, with
// STARTTLS, implicit TLS, AUTH (PLAIN, LOGIN, CRAM-MD5) and scripted failures, so that
// delivery code is exercised against the protocol instead of mocked calls.
//
// The files are not _test.go files so that tests of other packages can import them.
//
// The final DATA reply: go-smtp always answers a successful DATA with "250 2.0.0 OK: queued"
// and offers no field to change that text, but it writes any *smtp.SMTPError returned by
// Session.Data verbatim, whatever its code. The session returns a 250 SMTPError to answer
// "250 2.0.0 Ok: queued as <id>", the way Postfix reports its queue id.
package smtptest

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// DefaultUsername and DefaultPassword are the account of a server started with Auth and no
// Users, so that most tests need not invent credentials.
const (
	DefaultUsername = "sender@example.test"
	DefaultPassword = "correct horse battery staple"
)

// Domain is the name the server gives in its banner and EHLO reply.
const Domain = "smtptest.localhost"

// Mechanism names the server can offer; CRAM-MD5 is here because go-sasl has no constant.
const (
	MechPlain   = "PLAIN"
	MechLogin   = "LOGIN"
	MechCRAMMD5 = "CRAM-MD5"
)

// Opts configures a Server. The zero value is a plain server without TLS or AUTH that
// accepts every message.
type Opts struct {
	// StartTLS sets the server's TLSConfig, which makes go-smtp advertise STARTTLS.
	StartTLS bool
	// ImplicitTLS wraps the listener in TLS (port-465 style): the handshake comes first.
	ImplicitTLS bool
	// CA issues the server certificate; nil means a self-signed certificate.
	CA *CA
	// Cert overrides the generated certificate (e.g. an expired one from CA.Issue).
	Cert *tls.Certificate

	// Auth offers AUTH with AuthMechanisms (default PLAIN, LOGIN, CRAM-MD5).
	Auth bool
	// Users maps user names to passwords; nil means DefaultUsername/DefaultPassword.
	Users map[string]string
	// AuthMechanisms lists the offered mechanisms in order; nil means all three.
	AuthMechanisms []string
	// RequireTLSForAuth hides AUTH before TLS and answers AUTH with 523 5.7.10, like
	// go-smtp's default; without it AUTH works in plain text, which tests on loopback want.
	RequireTLSForAuth bool
	// RequireAuth answers MAIL with 530 5.7.0 until the client authenticated.
	RequireAuth bool

	// Script returns scripted failures for MAIL, RCPT or a whole message.
	Script *Script
	// DropMidData closes the TCP connection after the first bytes of DATA.
	DropMidData bool
	// DropAfterEHLO answers the first EHLO, then closes the connection when the client
	// sends its next command.
	DropAfterEHLO bool
	// Delay is slept before answering MAIL, RCPT and the end of DATA (a slow server).
	Delay time.Duration
	// BannerDelay delays the first bytes the server writes: the banner, or the TLS
	// handshake with ImplicitTLS.
	BannerDelay time.Duration
	// MaxMessageBytes limits the message size (advertised in SIZE); 0 means no limit.
	MaxMessageBytes int64
	// DisableSMTPUTF8 stops advertising SMTPUTF8 (advertised by default).
	DisableSMTPUTF8 bool
	// DisablePipelining stops advertising PIPELINING, which go-smtp always advertises (and
	// has no switch for): the line is taken out of the EHLO reply on its way out, on
	// connections without TLS.
	DisablePipelining bool
	// DataReplyFunc returns the text of the 250 reply to DATA; nil means
	// "Ok: queued as <QueueID>".
	DataReplyFunc func(m Message) string
}

// Script holds hooks that decide the reply to one command; a nil hook or a nil result
// means the command succeeds. A 421 result also closes the connection, as RFC 5321
// section 3.8 says a server does when it answers 421.
type Script struct {
	// HelloFunc answers EHLO/HELO with the client's name; a rejection leaves the client
	// un-greeted.
	HelloFunc func(name string) *smtp.SMTPError
	// MailFunc answers MAIL FROM.
	MailFunc func(from string) *smtp.SMTPError
	// RcptFunc answers one RCPT TO, so one recipient can be rejected alone.
	RcptFunc func(to string) *smtp.SMTPError
	// DataFunc answers the end of DATA for a whole message; a rejected message is not recorded.
	DataFunc func(m Message) *smtp.SMTPError
}

// Message is one message the server accepted.
type Message struct {
	From     string
	To       []string
	Data     []byte
	TLS      bool
	AuthUser string
	// HELO is the name the client gave in EHLO/HELO.
	HELO string
	// Conn is the 1-based number of the TCP connection that carried the message.
	Conn int
	// QueueID is the id the server announced in its DATA reply.
	QueueID string
	// UTF8 reports the SMTPUTF8 parameter of MAIL FROM; Body its BODY parameter.
	UTF8 bool
	Body smtp.BodyType
	// Pipelined reports that the client sent RCPT TO before the server answered its MAIL
	// FROM (RFC 2920 PIPELINING): both came in one read. Known on connections without
	// TLS only.
	Pipelined bool
}

// Server is a running go-smtp server on loopback, closed at test cleanup.
type Server struct {
	opts   Opts
	smtp   *smtp.Server
	ln     net.Listener
	addr   *net.TCPAddr
	pool   *x509.CertPool
	closed chan struct{}

	connections atomic.Int64

	mu       sync.Mutex
	cert     *tls.Certificate
	messages []Message
	changed  chan struct{} // closed and replaced whenever a message is recorded
	queueSeq int
}

// NewServer starts a server on 127.0.0.1:0 and closes it at t.Cleanup.
func NewServer(t testing.TB, opts Opts) *Server {
	t.Helper()
	s := &Server{opts: opts, closed: make(chan struct{}), changed: make(chan struct{})}
	tlsConfig := s.setupTLS(t)

	s.smtp = smtp.NewServer(&backend{srv: s})
	s.smtp.Domain = Domain
	s.smtp.ErrorLog = log.New(io.Discard, "", 0)
	s.smtp.AllowInsecureAuth = !opts.RequireTLSForAuth
	s.smtp.EnableSMTPUTF8 = !opts.DisableSMTPUTF8
	s.smtp.MaxMessageBytes = opts.MaxMessageBytes
	if opts.StartTLS {
		s.smtp.TLSConfig = tlsConfig
	}

	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: error listening: %v", err)
	}
	s.addr = raw.Addr().(*net.TCPAddr)
	s.ln = &trackingListener{Listener: raw, srv: s}
	served := s.ln
	if opts.ImplicitTLS {
		served = tls.NewListener(s.ln, tlsConfig)
	}
	go func() { _ = s.smtp.Serve(served) }()
	t.Cleanup(s.Close)
	return s
}

// setupTLS prepares the certificate whenever TLS is wanted and returns the server config.
func (s *Server) setupTLS(t testing.TB) *tls.Config {
	if !s.opts.StartTLS && !s.opts.ImplicitTLS {
		return nil
	}
	var cert tls.Certificate
	switch {
	case s.opts.Cert != nil:
		cert = *s.opts.Cert
	case s.opts.CA != nil:
		cert = s.opts.CA.Issue(t, CertOpts{})
	default:
		cert = SelfSigned(t, CertOpts{})
	}
	s.cert = &cert
	s.pool = x509.NewCertPool()
	if s.opts.CA != nil {
		s.pool = s.opts.CA.Pool()
	} else {
		s.pool.AddCert(cert.Leaf)
	}
	return &tls.Config{GetCertificate: s.getCertificate, MinVersion: tls.VersionTLS12}
}

// getCertificate serves the current certificate, which SetCertificate may replace.
func (s *Server) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cert, nil
}

// SetCertificate replaces the certificate for new handshakes, e.g. to simulate a broken
// renewal on an upstream that worked before. CertPool keeps trusting the old one.
func (s *Server) SetCertificate(cert tls.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cert = &cert
}

// Close stops the server and every open connection; it runs at cleanup and may be called
// earlier to simulate an upstream going away.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return
	default:
		close(s.closed)
	}
	_ = s.smtp.Close()
	// go-smtp closes only the listeners Serve registered; close ours in case Serve has
	// not started yet.
	_ = s.ln.Close()
}

// Addr is the server's "127.0.0.1:port".
func (s *Server) Addr() string { return s.addr.String() }

// Host is the server's IP address as a string.
func (s *Server) Host() string { return s.addr.IP.String() }

// Port is the server's TCP port.
func (s *Server) Port() int { return s.addr.Port }

// Certificate is the server's current leaf certificate, or nil without TLS.
func (s *Server) Certificate() *x509.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cert == nil {
		return nil
	}
	return s.cert.Leaf
}

// CertPool trusts the server's certificate: the CA's pool, or the self-signed leaf itself.
func (s *Server) CertPool() *x509.CertPool { return s.pool }

// Connections is the number of TCP connections the server accepted so far.
func (s *Server) Connections() int { return int(s.connections.Load()) }

// Messages returns a copy of the messages accepted so far, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.messages)
}

// WaitMessages waits until at least n messages were accepted and returns them; it fails
// the test after timeout.
func (s *Server) WaitMessages(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		msgs, changed := slices.Clone(s.messages), s.changed
		s.mu.Unlock()
		if len(msgs) >= n {
			return msgs
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("smtptest: %d messages accepted, want %d within %s", len(msgs), n, timeout)
			return nil
		}
	}
}

// record stores an accepted message and returns the 250 reply go-smtp will write.
func (s *Server) record(m Message) *smtp.SMTPError {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queueSeq++
	m.QueueID = "Q" + strconv.Itoa(100000+s.queueSeq)
	text := "Ok: queued as " + m.QueueID
	if s.opts.DataReplyFunc != nil {
		text = s.opts.DataReplyFunc(m)
	}
	s.messages = append(s.messages, m)
	close(s.changed)
	s.changed = make(chan struct{})
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: text}
}

// pause sleeps Opts.Delay, returning early when the server closes.
func (s *Server) pause() {
	if s.opts.Delay <= 0 {
		return
	}
	timer := time.NewTimer(s.opts.Delay)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-s.closed:
	}
}

// users returns the configured accounts.
func (s *Server) users() map[string]string {
	if s.opts.Users != nil {
		return s.opts.Users
	}
	return map[string]string{DefaultUsername: DefaultPassword}
}

// mechanisms returns the offered AUTH mechanisms.
func (s *Server) mechanisms() []string {
	if s.opts.AuthMechanisms != nil {
		return s.opts.AuthMechanisms
	}
	return []string{MechPlain, MechLogin, MechCRAMMD5}
}
