package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/mailaddr"
	"github.com/sendwerk/sendwerk/internal/message"
)

// session is one SMTP session between EHLO and QUIT (or STARTTLS, which starts a new one on
// the same connection). After AUTH it belongs to the credential's tenant and connector.
type session struct {
	srv  *Server
	conn *smtp.Conn
	tc   *trackedConn
	tls  bool

	cred *connector.RelayCredential
	// log carries the fields of every line the session logs: the session, the client's
	// address, the listener and TLS, and after AUTH the credential, connector and tenant
	// (bound once, not formatted again for each line).
	log *slog.Logger

	from  string
	utf8  bool
	rcpts []string
}

var (
	_ smtp.Session     = (*session)(nil)
	_ smtp.AuthSession = (*session)(nil)
)

// Replies the session gives in more than one place.
var (
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message: "Authentication required: log in with the connector's relay credentials (AUTH PLAIN or LOGIN)"}
	errEncryptionRequired = &smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11},
		Message: "Encryption required for authentication: use STARTTLS on this port, or implicit TLS on the SMTPS port"}
	errShuttingDown = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2},
		Message: "Service shutting down, try again shortly"}
	errTempFailure = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Temporary server error, try again later"}
)

// authAllowed: AUTH needs TLS, except from loopback when the operator allows plaintext.
func (s *session) authAllowed() bool {
	return s.tls || (s.srv.cfg.AllowInsecureAuth && s.tc.ip.IsLoopback())
}

// AuthMechanisms is what EHLO advertises: nothing before TLS.
func (s *session) AuthMechanisms() []string {
	if !s.authAllowed() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth starts a SASL exchange.
func (s *session) Auth(mech string) (sasl.Server, error) {
	if !s.authAllowed() {
		return nil, errEncryptionRequired
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authorization identity must be empty or the user name"}
			}
			return s.login(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{authenticate: s.login}, nil
	}
	return nil, &smtp.SMTPError{Code: 504, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "Unsupported authentication mechanism; use PLAIN or LOGIN"}
}

// login verifies a credential, with the failed-login throttle in front.
func (s *session) login(username, password string) error {
	now := time.Now()
	ipKey := s.tc.ip.String()
	if reply := s.throttled(ipKey, username, now); reply != nil {
		return reply
	}
	ctx, cancel := s.context()
	defer cancel()
	cred, result, err := s.srv.auth.Authenticate(ctx, username, password)
	if errors.Is(err, connector.ErrRelayAuthFailed) {
		s.srv.ipFails.fail(ipKey, now)
		s.srv.userFails.fail(username, now)
		s.srv.metrics.auth.WithLabelValues(string(result)).Inc()
		s.log.Warn("smtp login failed", "username", clip(username, 100), "reason", string(result))
		s.pause()
		return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
	}
	if err != nil {
		s.srv.metrics.auth.WithLabelValues("error").Inc()
		s.log.Error("smtp login error", "username", clip(username, 100), "error", err)
		return &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Temporary authentication failure, try again later"}
	}
	s.cred = cred
	s.log = s.log.With("username", cred.Username, "connector", cred.ConnectorID, "tenant", cred.TenantID)
	s.tc.setLogin(cred.Username, cred.ConnectorID, cred.TenantID)
	s.srv.metrics.auth.WithLabelValues(string(connector.RelayAuthOK)).Inc()
	s.log.Info("smtp login")
	return nil
}

// throttled refuses logins from an address, or for a user name, with too many recent
// failures; the refusal is delayed like a failure so guessing stays slow.
func (s *session) throttled(ipKey, username string, now time.Time) error {
	var until time.Time
	var what string
	if blocked, t := s.srv.ipFails.blocked(ipKey, now); blocked {
		until, what = t, "from your address"
	} else if blocked, t := s.srv.userFails.blocked(username, now); blocked {
		until, what = t, "for this user name"
	} else {
		return nil
	}
	s.srv.metrics.auth.WithLabelValues("throttled").Inc()
	s.log.Warn("smtp login throttled", "username", clip(username, 100), "until", until.UTC())
	s.pause()
	return &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: fmt.Sprintf("Too many failed logins %s; try again after %s", what, until.UTC().Format(time.RFC3339))}
}

func (s *session) pause() {
	if d := s.srv.cfg.AuthFailureDelay; d > 0 {
		time.Sleep(d)
	}
}

// Mail starts a transaction: only after AUTH, only while the credential is active, and only
// with an envelope sender the connector's rules allow (checked now so the client hears it
// before sending the message).
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if s.cred == nil {
		return errAuthRequired
	}
	if s.srv.draining.Load() {
		return errShuttingDown
	}
	if from == "" {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message: "A null sender (<>) cannot be relayed: the envelope sender must pass the connector's sender rules"}
	}
	if !opts.UTF8 && !isASCII(from) {
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "Non-ASCII sender address requires the SMTPUTF8 parameter"}
	}
	ctx, cancel := s.context()
	defer cancel()
	active, err := s.srv.auth.Active(ctx, s.cred.Username)
	if err != nil {
		s.log.Error("smtp credential check failed", "error", err)
		return errTempFailure
	}
	if !active {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "The relay credential was revoked; log in with a current one"}
	}
	if err := s.srv.msgs.CheckEnvelopeSender(ctx, s.cred.TenantID, s.cred.ConnectorID, from); err != nil {
		reply := s.reply(err, "sender")
		s.log.Info("smtp sender refused", "from", clip(from, 320), "code", reply.Code, "reply", reply.Message)
		return reply
	}
	s.from, s.utf8 = from, opts.UTF8
	s.tc.busy.Store(true)
	return nil
}

// Rcpt adds a recipient; go-smtp refuses beyond MaxRecipients with 452 4.5.3, and a
// suppressed address is refused here.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if _, err := mailaddr.Parse(to); err != nil {
		return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address: " + err.Error()}
	}
	if !s.utf8 && !isASCII(to) {
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "Non-ASCII recipient address requires the SMTPUTF8 parameter"}
	}
	if reply := s.checkRecipient(to); reply != nil {
		return reply
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

// Data reads the message, adds the Received line and submits it; the 250 reply goes out
// only after the message and its delivery job are committed.
func (s *session) Data(r io.Reader) error {
	start := time.Now()
	data, err := s.readData(r)
	if err != nil {
		return s.dataFailed(err)
	}
	id := ids.New(ids.Message)
	var line [receivedRoom]byte // the usual line fits: rendered on the stack, copied into the room
	full := withReceived(data, appendReceived(line[:0], s.receivedInfo(id)))
	ctx, cancel := s.context()
	defer cancel()
	acc, _, err := s.srv.msgs.SubmitRaw(ctx, s.cred.TenantID, message.RawSubmission{
		ConnectorID: s.cred.ConnectorID, EnvelopeFrom: s.from, Recipients: s.rcpts, Data: full, Source: message.SourceSMTP, ID: id,
		RecipientsChecked: true, // each one at its RCPT, moments ago: one lookup per recipient, not two
	})
	if err != nil {
		reply := s.reply(err, "message")
		s.tc.count(false)
		s.log.Info("smtp message refused", "from", clip(s.from, 320), "recipients", len(s.rcpts),
			"size", len(full), "code", reply.Code, "reply", reply.Message)
		return reply
	}
	s.tc.count(true)
	s.srv.metrics.messages.WithLabelValues("accepted").Inc()
	s.log.Info("smtp message accepted", "message", acc.ID, "message_id", acc.MessageID,
		"recipients", len(s.rcpts), "size", len(full), "took", time.Since(start).Round(time.Millisecond))
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: queued as " + acc.ID}
}

// readData reads the whole message within one timeout from the 354 reply: the timeout
// bounds the DATA phase as a whole (and, with BDAT, every chunk command inside it), so a
// client trickling a byte now and then cannot hold a session. The message starts at
// receivedRoom in the returned slice (see withReceived).
func (s *session) readData(r io.Reader) ([]byte, error) {
	end := time.Now().Add(s.srv.cfg.Timeout)
	s.tc.limitReads(end)
	defer s.tc.limitReads(time.Time{})
	_ = s.conn.Conn().SetReadDeadline(end)
	return readWithRoom(r)
}

// receivedRoom is kept free in front of a message as it is read, so the Received line can
// go on top without copying the message; a longer line (a long EHLO name) makes a copy.
const receivedRoom = 512

// readWithRoom is io.ReadAll with receivedRoom bytes in front and a first buffer that
// holds a typical transactional message whole.
func readWithRoom(r io.Reader) ([]byte, error) {
	b := make([]byte, receivedRoom, receivedRoom+4096)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // let append pick the next size
		}
	}
}

// withReceived returns the message read by readWithRoom with bare line feeds made CRLF and
// the Received line on top, in the room kept for it when the line fits.
func withReceived(data, line []byte) []byte {
	body := normalizeLineEndings(data[receivedRoom:])
	if len(body) != len(data)-receivedRoom || len(line) > receivedRoom {
		// A new slice: line may be a buffer its caller reuses.
		return append(append(make([]byte, 0, len(line)+len(body)), line...), body...)
	}
	full := data[receivedRoom-len(line):]
	copy(full, line)
	return full
}

// dataFailed answers a message that did not arrive whole: too large (the rest is discarded
// by go-smtp as it arrives), a timeout, or a client that went away.
func (s *session) dataFailed(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge):
		s.srv.metrics.messages.WithLabelValues("too_large").Inc()
		s.log.Info("smtp message refused", "code", 552, "reply", "too large")
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
			Message: fmt.Sprintf("Message too large: at most %d bytes are accepted", s.srv.smtp.MaxMessageBytes)}
	case errors.As(err, &ne) && ne.Timeout():
		s.srv.metrics.messages.WithLabelValues("aborted").Inc()
		s.log.Info("smtp message aborted", "reason", "timeout")
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Timeout while reading the message, closing connection"}
	case errors.Is(err, smtp.ErrTooLongLine):
		s.srv.metrics.messages.WithLabelValues("aborted").Inc()
		s.log.Info("smtp message aborted", "reason", "line too long")
		return &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 4, 0}, Message: "Line too long"}
	}
	s.srv.metrics.messages.WithLabelValues("aborted").Inc()
	s.log.Info("smtp message aborted", "reason", err.Error())
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Message not received whole"}
}

// Reset ends a transaction (RSET, a new EHLO, or after DATA).
func (s *session) Reset() {
	s.from, s.utf8, s.rcpts = "", false, nil
	s.tc.busy.Store(false)
}

// Logout ends the session.
func (s *session) Logout() error {
	s.Reset()
	return nil
}

// context bounds one piece of database work. It does not end with the server's shutdown:
// a message being committed finishes.
func (s *session) context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.srv.cfg.SubmitTimeout)
}

// receivedInfo gathers what the Received line says about this session.
func (s *session) receivedInfo(id string) receivedLine {
	info := receivedLine{helo: s.conn.Hostname(), ip: s.tc.ip, by: s.srv.cfg.Hostname, id: id, at: time.Now()}
	if state, ok := s.conn.TLSConnectionState(); ok {
		info.tlsVersion, info.tlsCipher = state.Version, state.CipherSuite
	}
	info.auth = s.cred != nil
	if len(s.rcpts) == 1 {
		info.rcpt = s.rcpts[0]
	}
	return info
}

// loginServer is the server side of AUTH LOGIN (go-sasl has only the client): user name
// and password, each in its own base64 line, or the user name as the initial response.
type loginServer struct {
	step         int
	username     string
	authenticate func(username, password string) error
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if len(response) == 0 {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.username, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.authenticate(l.username, string(response))
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
