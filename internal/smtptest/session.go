package smtptest

import (
	"errors"
	"io"
	"slices"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// errAuthRequired is what Postfix answers to MAIL before AUTH on a submission port.
func errAuthRequired() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
}

// backend creates one session per EHLO (go-smtp starts a new one after STARTTLS).
type backend struct {
	srv *Server
}

// NewSession runs the HELO hook and arms DropAfterEHLO: go-smtp calls it while handling
// EHLO, before the reply.
func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	if f := b.srv.opts.Script; f != nil && f.HelloFunc != nil {
		if e := f.HelloFunc(c.Hostname()); e != nil {
			return nil, e
		}
	}
	tc := trackedOf(c)
	if b.srv.opts.DropAfterEHLO {
		tc.dropOnRead.Store(true)
	}
	return &session{srv: b.srv, conn: c, tc: tc}, nil
}

// session is one SMTP session; it implements smtp.AuthSession.
type session struct {
	srv      *Server
	conn     *smtp.Conn
	tc       *trackedConn
	authUser string
	from     string
	to       []string
	utf8     bool
	body     smtp.BodyType
	// pipelined: RCPT TO had come with MAIL FROM, before its reply.
	pipelined bool
}

var _ smtp.AuthSession = (*session)(nil)

// AuthMechanisms lists the mechanisms advertised in EHLO.
func (s *session) AuthMechanisms() []string {
	if !s.srv.opts.Auth {
		return nil
	}
	return s.srv.mechanisms()
}

// Auth starts a SASL exchange; a wrong password ends it with 535 5.7.8.
func (s *session) Auth(mech string) (sasl.Server, error) {
	if !slices.Contains(s.AuthMechanisms(), mech) {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	switch mech {
	case MechPlain:
		return sasl.NewPlainServer(func(_, user, pass string) error { return s.login(user, pass) }), nil
	case MechLogin:
		return &loginServer{authenticate: s.login}, nil
	case MechCRAMMD5:
		return newCRAMMD5Server(s.srv.users(), func(user string) { s.authUser = user }), nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// login checks a user name and password.
func (s *session) login(user, pass string) error {
	want, ok := s.srv.users()[user]
	if !ok || want != pass {
		return smtp.ErrAuthFailed
	}
	s.authUser = user
	return nil
}

// Mail answers MAIL FROM.
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	s.srv.pause()
	if s.srv.opts.RequireAuth && s.authUser == "" {
		return errAuthRequired()
	}
	if err := s.scripted(s.script().MailFunc, from); err != nil {
		return err
	}
	s.from = from
	s.pipelined = s.tc.sentSinceReply("RCPT TO:")
	if opts != nil {
		s.utf8, s.body = opts.UTF8, opts.Body
	}
	return nil
}

// Rcpt answers one RCPT TO.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.srv.pause()
	if err := s.scripted(s.script().RcptFunc, to); err != nil {
		return err
	}
	s.to = append(s.to, to)
	return nil
}

// Data reads the message and answers with the scripted error or the queue-id reply.
func (s *session) Data(r io.Reader) error {
	if s.srv.opts.DropMidData {
		return s.dropMidData(r)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.srv.pause()
	m := s.message(data)
	if f := s.script().DataFunc; f != nil {
		if e := f(m); e != nil {
			return s.fail(e)
		}
	}
	return s.srv.record(m)
}

// dropMidData reads the first bytes of the message, then closes the TCP connection.
func (s *session) dropMidData(r io.Reader) error {
	_, _ = io.ReadFull(r, make([]byte, 1))
	_ = s.tc.Conn.Close()
	return errors.New("smtptest: connection dropped during DATA")
}

// message builds the record of the current transaction.
func (s *session) message(data []byte) Message {
	_, isTLS := s.conn.TLSConnectionState()
	return Message{
		From:      s.from,
		To:        slices.Clone(s.to),
		Data:      data,
		TLS:       isTLS,
		AuthUser:  s.authUser,
		HELO:      s.conn.Hostname(),
		Conn:      s.tc.id,
		UTF8:      s.utf8,
		Body:      s.body,
		Pipelined: s.pipelined,
	}
}

// Reset forgets the current transaction (RSET, or after DATA).
func (s *session) Reset() {
	s.from, s.to, s.utf8, s.body, s.pipelined = "", nil, false, "", false
}

// Logout has nothing to free.
func (s *session) Logout() error { return nil }

// script returns the configured script or an empty one.
func (s *session) script() *Script {
	if s.srv.opts.Script != nil {
		return s.srv.opts.Script
	}
	return &Script{}
}

// scripted runs an address hook and turns its result into the command's error.
func (s *session) scripted(f func(string) *smtp.SMTPError, addr string) error {
	if f == nil {
		return nil
	}
	if e := f(addr); e != nil {
		return s.fail(e)
	}
	return nil
}

// fail returns a scripted error; after 421 the connection closes, as RFC 5321 requires.
func (s *session) fail(e *smtp.SMTPError) error {
	if e.Code == 421 {
		s.tc.dropOnRead.Store(true)
	}
	return e
}
