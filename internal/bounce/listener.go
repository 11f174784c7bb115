package bounce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// ListenerConfig configures the bounce listener.
type ListenerConfig struct {
	// Addr is where it listens ("host:port"; port 25 in production, as the bounce domain's MX).
	Addr string
	// Hostname is the name in its banner.
	Hostname string
	// MaxMessageBytes caps one report; larger ones are refused at MAIL (SIZE) or DATA.
	MaxMessageBytes int64
	// Timeout bounds each command and each chunk of a message.
	Timeout time.Duration
}

// DefaultMaxMessageBytes is the largest report the listener takes: a DSN with the returned
// headers is a few kilobytes; one that returns the whole message rarely exceeds this.
const DefaultMaxMessageBytes = 2 << 20

// Listener is the SMTP server at the bounce domain: no AUTH, no relaying, only recipients
// at the bounce domain, size-limited.
type Listener struct {
	cfg    ListenerConfig
	svc    *Service
	domain string
	logger *slog.Logger
	srv    *smtp.Server
	ln     net.Listener
}

// NewListener returns a listener feeding svc; the bounce domain is svc's tokens' domain.
func NewListener(cfg ListenerConfig, svc *Service) (*Listener, error) {
	if svc.tokens == nil {
		return nil, errors.New("bounce listener: no bounce domain configured")
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	l := &Listener{cfg: cfg, svc: svc, domain: svc.tokens.Domain(), logger: svc.logger}
	srv := smtp.NewServer(l)
	srv.Domain = cfg.Hostname
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxRecipients = 10
	srv.ReadTimeout, srv.WriteTimeout = cfg.Timeout, cfg.Timeout
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = errorLog{l.logger}
	l.srv = srv
	return l, nil
}

// Start listens and serves in the background.
func (l *Listener) Start() error {
	ln, err := net.Listen("tcp", l.cfg.Addr)
	if err != nil {
		return fmt.Errorf("error listening for bounces on %s: %w", l.cfg.Addr, err)
	}
	l.ln = ln
	go func() { _ = l.srv.Serve(ln) }()
	return nil
}

// Addr is the address it listens on.
func (l *Listener) Addr() string {
	if l.ln == nil {
		return ""
	}
	return l.ln.Addr().String()
}

// Shutdown stops accepting and waits for sessions to end, until ctx ends.
func (l *Listener) Shutdown(ctx context.Context) error { return l.srv.Shutdown(ctx) }

// Close stops at once.
func (l *Listener) Close() error { return l.srv.Close() }

// NewSession is go-smtp's Backend.
func (l *Listener) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{l: l, remote: c.Conn().RemoteAddr().String()}, nil
}

// session is one SMTP transaction at the bounce listener.
type session struct {
	l      *Listener
	remote string
	from   string
	rcpts  []string
}

var _ smtp.Session = (*session)(nil)

// Mail takes any sender: DSNs come from the null sender <>, complaints from anyone.
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

// Rcpt takes only addresses at the bounce domain.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	at := strings.LastIndexByte(to, '@')
	if at < 0 || !strings.EqualFold(to[at+1:], s.l.domain) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relay access denied: this server only takes mail for " + s.l.domain}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

// Data reads the report and hands it to the intake. Whatever the report holds, the
// answer is 250 once it is stored (parsed or not); only a storage failure answers 451.
func (s *session) Data(r io.Reader) (err error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		if errors.Is(err, smtp.ErrDataTooLarge) {
			return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: fmt.Sprintf("Report too large: at most %d bytes", s.l.cfg.MaxMessageBytes)}
		}
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Report not received whole"}
	}
	defer func() {
		if p := recover(); p != nil {
			s.l.logger.Error("bounce intake panicked", "panic", fmt.Sprint(p), "remote_addr", s.remote)
			err = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure, try again later"}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := s.l.svc.Receive(ctx, Envelope{From: s.from, To: s.tokenRecipient(), RemoteAddr: s.remote}, raw)
	if err != nil {
		s.l.logger.Error("bounce intake failed", "error", err, "remote_addr", s.remote)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure, try again later"}
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: report " + rep.ID + " " + rep.Outcome}
}

// tokenRecipient picks the recipient that carries a token, else the first.
func (s *session) tokenRecipient() string {
	for _, r := range s.rcpts {
		if _, ok := s.l.svc.tokens.MessageID(r); ok {
			return r
		}
	}
	if len(s.rcpts) > 0 {
		return s.rcpts[0]
	}
	return ""
}

// Reset ends a transaction.
func (s *session) Reset() { s.from, s.rcpts = "", nil }

// Logout ends the session.
func (s *session) Logout() error { return nil }

// errorLog sends go-smtp's own messages to the structured log.
type errorLog struct{ logger *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.logger.Warn("bounce listener", "message", fmt.Sprintf(format, v...))
}
func (e errorLog) Println(v ...any) { e.logger.Warn("bounce listener", "message", fmt.Sprint(v...)) }
