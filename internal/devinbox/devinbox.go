// Package devinbox is the development mail catcher: an SMTP server on localhost that
// accepts every message without authentication, keeps the newest ones in memory, checks
// each one's DKIM signature with an independent verifier (go-msgauth) at receipt, and shows
// them at /dev/inbox (HTML) and /dev/inbox.json. In development the platform relay points
// at it, so `make run` delivers mail a developer can look at, the way Mailpit or MailHog
// would, without another program. It runs only in development.
package devinbox

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"mime"
	"net"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
)

// DefaultMaxMessages is how many messages the inbox keeps; older ones are dropped.
const DefaultMaxMessages = 500

// maxMessageBytes bounds one message; the catcher keeps messages in memory.
const maxMessageBytes = 32 << 20

// DKIM verdicts, named as in Authentication-Results (RFC 8601).
const (
	DKIMPass      = "pass"
	DKIMFail      = "fail"
	DKIMNone      = "none"
	DKIMTempError = "temperror"
	DKIMPermError = "permerror" // the message could not be parsed for verification
)

// Config configures Start.
type Config struct {
	// Addr is the SMTP listen address, e.g. "localhost:2525" or "127.0.0.1:0".
	Addr string
	// LookupTXT resolves DKIM keys for the verifier (the development DNS in `serve`).
	LookupTXT func(ctx context.Context, name string) ([]string, error)
	// MaxMessages kept; 0 means DefaultMaxMessages.
	MaxMessages int
	Logger      *slog.Logger
	// NowFunc returns the receipt time; nil means time.Now.
	NowFunc func() time.Time
}

// DKIMResult is the verifier's verdict on a message's first DKIM signature.
type DKIMResult struct {
	Result string `json:"result"`
	// Domain is the signing domain (d=), empty when unsigned.
	Domain string `json:"domain,omitempty"`
	// Detail says why a signature did not verify.
	Detail string `json:"detail,omitempty"`
}

// Message is one received message.
type Message struct {
	ID         string     `json:"id"`
	ReceivedAt time.Time  `json:"received_at"`
	MailFrom   string     `json:"mail_from"`
	RcptTo     []string   `json:"rcpt_to"`
	From       string     `json:"from"`
	To         string     `json:"to"`
	Subject    string     `json:"subject"`
	MessageID  string     `json:"message_id"`
	Size       int        `json:"size"`
	DKIM       DKIMResult `json:"dkim"`
	raw        []byte
}

// Inbox is the running catcher.
type Inbox struct {
	cfg  Config
	smtp *smtp.Server
	addr string

	mu   sync.RWMutex
	msgs []*Message // oldest first
	seq  int
}

// Start listens on cfg.Addr and accepts mail until Close.
func Start(cfg Config) (*Inbox, error) {
	if cfg.MaxMessages <= 0 {
		cfg.MaxMessages = DefaultMaxMessages
	}
	if cfg.NowFunc == nil {
		cfg.NowFunc = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	in := &Inbox{cfg: cfg}
	in.smtp = smtp.NewServer(backend{in})
	in.smtp.Domain = "inbox.sendwerk.test"
	in.smtp.AllowInsecureAuth = true
	in.smtp.EnableSMTPUTF8 = true
	in.smtp.MaxMessageBytes = maxMessageBytes
	in.smtp.ReadTimeout, in.smtp.WriteTimeout = time.Minute, time.Minute
	in.smtp.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("error listening on %s: %w", cfg.Addr, err)
	}
	in.addr = ln.Addr().String()
	go func() { _ = in.smtp.Serve(ln) }()
	return in, nil
}

// Addr is the "ip:port" the catcher accepts SMTP on.
func (in *Inbox) Addr() string { return in.addr }

// Close stops accepting mail.
func (in *Inbox) Close() error { return in.smtp.Close() }

// Messages returns the kept messages, newest first.
func (in *Inbox) Messages() []Message {
	in.mu.RLock()
	defer in.mu.RUnlock()
	out := make([]Message, len(in.msgs))
	for i, m := range in.msgs {
		out[len(in.msgs)-1-i] = *m
	}
	return out
}

// Raw returns a message's source as received.
func (in *Inbox) Raw(id string) ([]byte, bool) {
	in.mu.RLock()
	defer in.mu.RUnlock()
	for _, m := range in.msgs {
		if m.ID == id {
			return m.raw, true
		}
	}
	return nil, false
}

// add parses and verifies a received message and keeps it.
func (in *Inbox) add(from string, to []string, raw []byte) *Message {
	m := &Message{ReceivedAt: in.cfg.NowFunc().UTC(), MailFrom: from, RcptTo: to, Size: len(raw), raw: raw}
	if parsed, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		dec := new(mime.WordDecoder)
		header := func(k string) string {
			v := parsed.Header.Get(k)
			if d, err := dec.DecodeHeader(v); err == nil {
				return d
			}
			return v
		}
		m.From, m.To, m.Subject, m.MessageID = header("From"), header("To"), header("Subject"), parsed.Header.Get("Message-ID")
	}
	m.DKIM = in.verify(raw)
	in.mu.Lock()
	defer in.mu.Unlock()
	in.seq++
	m.ID = fmt.Sprintf("%d", in.seq)
	in.msgs = append(in.msgs, m)
	if len(in.msgs) > in.cfg.MaxMessages {
		in.msgs = in.msgs[len(in.msgs)-in.cfg.MaxMessages:]
	}
	in.cfg.Logger.Info("development inbox received a message", "id", m.ID, "from", from, "to", strings.Join(to, ","), "dkim", m.DKIM.Result)
	return m
}

// verify checks the first DKIM signature, as a receiving mail server would.
func (in *Inbox) verify(raw []byte) DKIMResult {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := &dkim.VerifyOptions{}
	if in.cfg.LookupTXT != nil {
		opts.LookupTXT = func(name string) ([]string, error) { return in.cfg.LookupTXT(ctx, name) }
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), opts)
	switch {
	case err != nil:
		return DKIMResult{Result: DKIMPermError, Detail: err.Error()}
	case len(vs) == 0:
		return DKIMResult{Result: DKIMNone, Detail: "the message has no DKIM-Signature"}
	}
	v := vs[0]
	switch {
	case v.Err == nil:
		return DKIMResult{Result: DKIMPass, Domain: v.Domain}
	case dkim.IsTempFail(v.Err):
		return DKIMResult{Result: DKIMTempError, Domain: v.Domain, Detail: v.Err.Error()}
	}
	// A wrong body hash or signature, a missing or malformed key: the signature fails.
	return DKIMResult{Result: DKIMFail, Domain: v.Domain, Detail: v.Err.Error()}
}

// backend accepts everything: the catcher is a sink, not a relay.
type backend struct{ in *Inbox }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{in: b.in}, nil }

type session struct {
	in   *Inbox
	from string
	to   []string
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error { s.from = from; return nil }

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(bufio.NewReader(r))
	if err != nil {
		return err
	}
	s.in.add(s.from, s.to, raw)
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }
