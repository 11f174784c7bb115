package delivery

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/wneessen/go-mail"
	gmsmtp "github.com/wneessen/go-mail/smtp"
)

// Why a go-mail smtp.Client and not mail.Client.Send: a mail.Msg always renders its own
// headers and MIME structure and takes the envelope recipients from To/Cc/Bcc, so bytes
// that were rendered and DKIM-signed at submission cannot pass through unchanged, and
// the envelope cannot differ from the headers. go-mail still does the connection set-up
// (dial, implicit TLS or mandatory STARTTLS, AUTH) through DialToSMTPClientWithContext;
// the transaction (MAIL, RCPT, DATA with the raw bytes) runs on the *smtp.Client it returns.

// Envelope is the SMTP envelope, independent of the message headers (Bcc recipients are
// only here). An empty From sends the null reverse-path "<>".
type Envelope struct {
	From string   `json:"from"`
	To   []string `json:"to"`
}

// validate rejects envelopes no upstream could accept, before a connection is used.
func (e Envelope) validate() error {
	if len(e.To) == 0 {
		return errors.New("envelope has no recipients")
	}
	for _, addr := range append([]string{e.From}, e.To...) {
		if strings.ContainsAny(addr, "\r\n<>") {
			return fmt.Errorf("envelope address %q contains a line break or angle bracket", addr)
		}
	}
	return nil
}

// RecipientResult is the upstream's answer to one RCPT TO.
type RecipientResult struct {
	Address  string `json:"address"`
	Accepted bool   `json:"accepted"`
	// Reply is set for rejected recipients (go-mail's client does not return the text
	// of a positive RCPT reply).
	Reply *Reply `json:"reply,omitempty"`
}

// Result describes a delivered message.
type Result struct {
	// Reply is the upstream's final reply to DATA.
	Reply Reply `json:"reply"`
	// QueueID is the upstream's queue id when its reply names one ("queued as …").
	QueueID string `json:"queue_id,omitempty"`
	// Host is the configured "host:port"; RemoteAddr the address actually connected.
	Host       string            `json:"host"`
	RemoteAddr string            `json:"remote_addr"`
	TLS        bool              `json:"tls"`
	Recipients []RecipientResult `json:"recipients"`
	// Reused says the message went over a connection that had carried one before.
	Reused     bool  `json:"reused"`
	DurationMS int64 `json:"duration_ms"`
}

// conn is one open, authenticated connection to the upstream.
type conn struct {
	client   *gmsmtp.Client
	raw      *connControl
	remote   string
	tls      bool
	lastUsed time.Time
	messages int
	// healthy is false once the connection may be out of step with the server.
	healthy bool
}

// errInterrupted reports a connection whose command was cut short by a cancelled context.
var errInterrupted = errors.New("connection interrupted by cancellation")

// connControl holds the connection go-mail talks over (the *tls.Conn itself for implicit
// TLS, which go-mail must see to know the connection is encrypted) and serialises
// deadline changes, so a cancelled context can interrupt a command without a later
// per-command deadline undoing it.
type connControl struct {
	nc       net.Conn
	mu       sync.Mutex
	canceled bool
}

// setDeadline arms the next command's deadline unless the context was cancelled.
func (d *connControl) setDeadline(ctx context.Context, timeout time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if d.canceled {
		return errInterrupted
	}
	deadline := time.Now().Add(timeout)
	if ctxDeadline, ok := ctx.Deadline(); ok && ctxDeadline.Before(deadline) {
		deadline = ctxDeadline
	}
	return d.nc.SetDeadline(deadline)
}

// interrupt makes the command in flight fail now.
func (d *connControl) interrupt() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.canceled = true
	_ = d.nc.SetDeadline(time.Unix(1, 0))
}

// watch interrupts the connection when ctx ends; call the returned func when done.
func (d *connControl) watch(ctx context.Context) func() {
	stop := context.AfterFunc(ctx, d.interrupt)
	return func() {
		if !stop() {
			// The context ended: the connection may be mid-command and must not be reused.
			d.mu.Lock()
			d.canceled = true
			d.mu.Unlock()
		}
	}
}

// dialConn opens and sets up a connection with go-mail. The dial function is ours so
// that the raw connection is known: go-mail leaves it open when EHLO fails, and
// deadlines and cancellation need it.
func dialConn(ctx context.Context, s Settings) (*conn, error) {
	var mu sync.Mutex
	var raw *connControl
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialNetwork(ctx, s, network, addr)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		raw = &connControl{nc: c}
		mu.Unlock()
		return c, nil
	}
	client, err := mail.NewClient(s.Host, mailOptions(s, dial)...)
	if err != nil {
		return nil, fmt.Errorf("error configuring smtp client: %w", err)
	}
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if raw != nil {
			raw.interrupt()
		}
	})
	defer stop()
	sc, err := client.DialToSMTPClientWithContext(ctx)
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		if raw != nil {
			_ = raw.nc.Close()
		}
		return nil, err
	}
	_, isTLS := raw.nc.(*tls.Conn)
	if state, err := sc.GetTLSConnectionState(); err == nil && state.HandshakeComplete {
		isTLS = true
	}
	return &conn{client: sc, raw: raw, remote: raw.nc.RemoteAddr().String(), tls: isTLS, healthy: true}, nil
}

// dialNetwork opens TCP, and TLS on top for implicit TLS: with a custom dial function
// go-mail leaves implicit TLS to the dialer.
func dialNetwork(ctx context.Context, s Settings, network, addr string) (net.Conn, error) {
	nd := s.dialer()
	if s.Security != SecurityTLS {
		return nd.DialContext(ctx, network, addr)
	}
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(c, s.tlsConfig())
	hctx, cancel := context.WithTimeout(ctx, s.CommandTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return tc, nil
}

// mailOptions translates Settings into go-mail client options.
func mailOptions(s Settings, dial mail.DialContextFunc) []mail.Option {
	opts := []mail.Option{
		mail.WithPort(s.Port),
		// go-mail uses this as the dial deadline and as the deadline of the whole set-up
		// (EHLO, STARTTLS, AUTH); the dialer enforces ConnectTimeout on its own.
		mail.WithTimeout(s.ConnectTimeout + s.CommandTimeout),
		mail.WithTLSConfig(s.tlsConfig()),
		mail.WithDialContextFunc(dial),
		mail.WithoutNoop(),
	}
	switch s.Security {
	case SecurityTLS:
		opts = append(opts, mail.WithSSL())
	case SecurityStartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	}
	if s.HELOName != "" {
		opts = append(opts, mail.WithHELO(s.HELOName))
	}
	if s.AuthMechanism != AuthNone {
		opts = append(opts, mail.WithSMTPAuth(goMailAuth(s)), mail.WithUsername(s.Username), mail.WithPassword(s.Password))
	}
	return opts
}

// goMailAuth picks go-mail's auth type. With security none the customer chose plain text
// explicitly, so the NOENC variants allow PLAIN and LOGIN to a non-local host.
func goMailAuth(s Settings) mail.SMTPAuthType {
	noTLS := s.Security == SecurityNone
	switch {
	case s.AuthMechanism == AuthCRAMMD5:
		return mail.SMTPAuthCramMD5
	case s.AuthMechanism == AuthLogin && noTLS:
		return mail.SMTPAuthLoginNoEnc
	case s.AuthMechanism == AuthLogin:
		return mail.SMTPAuthLogin
	case noTLS:
		return mail.SMTPAuthPlainNoEnc
	}
	return mail.SMTPAuthPlain
}

// stageError is a failure inside a transaction, before the pool classifies it.
type stageError struct {
	stage      Stage
	recipients []RecipientResult
	err        error
}

func (e *stageError) Error() string { return fmt.Sprintf("error at %s: %v", e.stage, e.err) }
func (e *stageError) Unwrap() error { return e.err }

// transact sends one message: MAIL, every RCPT, then DATA with the raw bytes, DATA only
// once gate is done (see Pool.SendAfter). When the upstream rejects any recipient the
// message goes to nobody (RSET), like go-mail's own Send: a message has one status, and
// retrying would otherwise duplicate it for the recipients that were accepted. An upstream
// that offers PIPELINING gets the commands in one write (pipeline.go).
func (c *conn) transact(ctx context.Context, timeout time.Duration, env Envelope, raw []byte, gate Gate) (*Result, error) {
	defer c.raw.watch(ctx)()
	// RFC 6531 3.4: SMTPUTF8 only for a message that needs it (a non-ASCII address in the
	// envelope or non-ASCII in the header); go-mail would otherwise ask for it whenever
	// the server offers it, and receivers log and treat ASCII mail as internationalized.
	utf8 := needsSMTPUTF8(env, raw)
	c.client.SkipSMTPUTF8(!utf8)
	if ok, _ := c.client.Extension("PIPELINING"); ok {
		return c.transactPipelined(ctx, timeout, env, raw, gate, utf8)
	}
	if err := c.mail(ctx, timeout, env.From); err != nil {
		return nil, &stageError{stage: StageMail, err: err}
	}
	rcpts, err := c.rcpts(ctx, timeout, env.To)
	if err != nil {
		return nil, &stageError{stage: StageRcpt, recipients: rcpts, err: err}
	}
	return c.dataAfter(ctx, timeout, raw, gate, rcpts)
}

// dataAfter sends DATA once gate is done, after the recipients rcpts were accepted.
func (c *conn) dataAfter(ctx context.Context, timeout time.Duration, raw []byte, gate Gate, rcpts []RecipientResult) (*Result, error) {
	if err := c.await(ctx, timeout, gate); err != nil {
		return nil, &stageError{stage: StageData, recipients: rcpts, err: err}
	}
	reply, err := c.data(ctx, timeout, raw)
	if err != nil {
		return nil, &stageError{stage: StageData, recipients: rcpts, err: err}
	}
	return c.delivered(reply, rcpts), nil
}

// delivered counts a message the upstream accepted and describes it.
func (c *conn) delivered(reply Reply, rcpts []RecipientResult) *Result {
	c.messages++
	return &Result{Reply: reply, QueueID: queueID(reply.Text), RemoteAddr: c.remote, TLS: c.tls, Recipients: rcpts}
}

// await waits, with MAIL and every RCPT accepted, until gate is done. When gate fails, the
// transaction is reset and gate's error returned; when ctx ends first, the connection is
// interrupted (see watch) and ctx's cause returned.
func (c *conn) await(ctx context.Context, timeout time.Duration, gate Gate) error {
	if gate == nil {
		return nil
	}
	select {
	case <-gate.Done():
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	if err := gate.Err(); err != nil {
		c.reset(ctx, timeout)
		return err
	}
	return nil
}

// needsSMTPUTF8 reports a non-ASCII envelope address or header byte.
func needsSMTPUTF8(env Envelope, raw []byte) bool {
	for _, a := range append([]string{env.From}, env.To...) {
		if !isASCII(a) {
			return true
		}
	}
	header := raw
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		header = raw[:i]
	} else if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		header = raw[:i]
	}
	return !isASCII(string(header))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// mail sends MAIL FROM.
func (c *conn) mail(ctx context.Context, timeout time.Duration, from string) error {
	if err := c.raw.setDeadline(ctx, timeout); err != nil {
		return err
	}
	return c.track(c.client.Mail("<" + from + ">"))
}

// rcpts sends every RCPT TO; on any rejection it resets the transaction and returns an
// error listing each recipient's reply.
func (c *conn) rcpts(ctx context.Context, timeout time.Duration, to []string) ([]RecipientResult, error) {
	results := make([]RecipientResult, 0, len(to))
	var rejected []error
	for _, addr := range to {
		if err := c.raw.setDeadline(ctx, timeout); err != nil {
			return results, err
		}
		err := c.track(c.client.Rcpt("<" + addr + ">"))
		reply, isReply := replyOf(err)
		switch {
		case err == nil:
			results = append(results, RecipientResult{Address: addr, Accepted: true})
		case !isReply:
			return results, err
		case reply.Code == 421:
			// The server is closing the connection: no further command will be answered.
			results = append(results, RecipientResult{Address: addr, Reply: &reply})
			return results, &rcptRejected{results: results, errs: append(rejected, err)}
		default:
			results = append(results, RecipientResult{Address: addr, Reply: &reply})
			rejected = append(rejected, err)
		}
	}
	if len(rejected) == 0 {
		return results, nil
	}
	c.reset(ctx, timeout)
	return results, &rcptRejected{results: results, errs: rejected}
}

// data sends DATA, the raw message and the final dot, and returns the final reply.
func (c *conn) data(ctx context.Context, timeout time.Duration, raw []byte) (Reply, error) {
	if err := c.raw.setDeadline(ctx, timeout); err != nil {
		return Reply{}, err
	}
	err := c.client.Text.PrintfLine("DATA")
	if err == nil {
		_, _, err = c.client.Text.ReadResponse(354)
	}
	if err != nil {
		c.dataRefused(ctx, timeout, err)
		return Reply{}, c.track(err)
	}
	return c.body(ctx, timeout, raw)
}

// dataRefused ends the transaction after a 5xx answer to DATA: MAIL and RCPT were
// accepted, so RSET before the next one.
func (c *conn) dataRefused(ctx context.Context, timeout time.Duration, err error) {
	if r, ok := replyOf(err); ok && r.Code >= 500 {
		c.reset(ctx, timeout)
	}
}

// body writes the raw message and the final dot after a 354 and returns the final reply.
// textproto's dot writer stuffs leading dots and turns bare LF into CRLF; CRLF input
// passes unchanged, so a DKIM signature over the bytes stays valid.
func (c *conn) body(ctx context.Context, timeout time.Duration, raw []byte) (Reply, error) {
	if err := writeBody(&c.client.Text.Writer, raw, func() error { return c.raw.setDeadline(ctx, timeout) }); err != nil {
		c.healthy = false
		return Reply{}, err
	}
	_, text, err := c.client.Text.ReadResponse(250)
	if err != nil {
		return Reply{}, c.track(err)
	}
	return parseReply(250, text), nil
}

// writeBody writes raw and the final dot as textproto's dot writer does, and flushes;
// beforeFlush runs before the flush (the write deadline). A message as submission stores it
// (CRLF line ends only, no line starting with a dot, a CRLF at the end) goes out as it is,
// followed by ".\r\n", which is what the dot writer would write, byte for byte, without its
// per-byte loop (about 4 % of the server's CPU in `make bench`); anything else goes through
// the dot writer.
func writeBody(w *textproto.Writer, raw []byte, beforeFlush func() error) error {
	if !plainBody(raw) {
		dw := w.DotWriter()
		if _, err := dw.Write(raw); err != nil {
			return err
		}
		if err := beforeFlush(); err != nil {
			return err
		}
		return dw.Close()
	}
	if _, err := w.W.Write(raw); err != nil {
		return err
	}
	if err := beforeFlush(); err != nil {
		return err
	}
	if _, err := w.W.WriteString(".\r\n"); err != nil {
		return err
	}
	return w.W.Flush()
}

// plainBody reports raw needing no dot-stuffing and no line-end repair: every CR is
// followed by LF and every LF follows a CR, no line starts with a dot, and it ends with CRLF.
func plainBody(raw []byte) bool {
	if len(raw) < 2 || raw[0] == '.' || !bytes.HasSuffix(raw, []byte("\r\n")) || bytes.Contains(raw, []byte("\n.")) {
		return false
	}
	crlf := bytes.Count(raw, []byte("\r\n"))
	return bytes.Count(raw, []byte("\r")) == crlf && bytes.Count(raw, []byte("\n")) == crlf
}

// reset sends RSET after rejected recipients; a failed RSET retires the connection.
func (c *conn) reset(ctx context.Context, timeout time.Duration) {
	if err := c.raw.setDeadline(ctx, timeout); err != nil {
		c.healthy = false
		return
	}
	if err := c.client.Reset(); err != nil {
		c.healthy = false
	}
}

// track marks the connection unhealthy after anything but a clean 5xx reply: network
// errors leave it out of step, and after a 4xx (421 above all) it is not worth keeping.
func (c *conn) track(err error) error {
	if err == nil {
		return nil
	}
	if r, ok := replyOf(err); !ok || r.Code < 500 {
		c.healthy = false
	}
	return err
}

// quit says goodbye politely within a short deadline and closes the connection.
func (c *conn) quit() {
	_ = c.raw.nc.SetDeadline(time.Now().Add(2 * time.Second))
	_ = c.client.Quit()
	_ = c.raw.nc.Close()
}

// close drops the connection without QUIT, for connections in an unknown state.
func (c *conn) close() {
	_ = c.client.Close()
	_ = c.raw.nc.Close()
}

// usable reports whether the connection may carry another message.
func (c *conn) usable() bool {
	c.raw.mu.Lock()
	defer c.raw.mu.Unlock()
	return c.healthy && !c.raw.canceled && c.client.HasConnection()
}

// rcptRejected reports the recipients the upstream refused.
type rcptRejected struct {
	results []RecipientResult
	errs    []error
}

func (e *rcptRejected) Error() string {
	var parts []string
	for _, r := range e.results {
		if !r.Accepted {
			parts = append(parts, fmt.Sprintf("<%s>: %s", r.Address, r.Reply))
		}
	}
	return fmt.Sprintf("upstream rejected %d of %d recipients: %s", len(parts), len(e.results), strings.Join(parts, "; "))
}

func (e *rcptRejected) Unwrap() []error { return e.errs }
