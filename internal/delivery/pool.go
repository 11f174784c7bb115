package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Pool defaults: a few connections per upstream are plenty for transactional volume and
// stay below the per-client connection limits of hosted mail services.
const (
	DefaultMaxConns    = 4
	DefaultIdleTimeout = 30 * time.Second
)

// PoolConfig tunes a Pool; a nil config or zero fields mean the defaults.
type PoolConfig struct {
	// MaxConns bounds open connections and concurrent sends to the upstream.
	MaxConns int
	// IdleTimeout closes connections unused for this long, before the upstream's own
	// idle timeout (often 60 s to 5 min) drops them under us.
	IdleTimeout time.Duration
	// MaxMessagesPerConn retires a connection after that many messages; some providers
	// limit messages per session. Zero means no limit.
	MaxMessagesPerConn int
	// NowFunc replaces time.Now for idle bookkeeping.
	NowFunc func() time.Time
}

// Pool keeps up to MaxConns open, authenticated connections to one upstream and reuses
// them across messages: connection set-up (TCP, TLS, AUTH) costs several round trips,
// sending over an open connection only MAIL, RCPT and DATA.
type Pool struct {
	settings Settings
	cfg      PoolConfig
	// slots holds one token per send in progress, which bounds concurrency and, because
	// a send dials only when no idle connection exists, the number of connections.
	slots chan struct{}
	// worked is set once the upstream accepted a message: from then on TLS and DNS
	// failures are more likely passing trouble than wrong settings.
	worked atomic.Bool
	done   chan struct{}
	reaped sync.WaitGroup

	mu     sync.Mutex
	idle   []*conn
	closed bool
}

// PoolStats is a snapshot of a pool's connections.
type PoolStats struct {
	Idle int `json:"idle"`
	Busy int `json:"busy"`
}

// NewPool validates the settings and starts the idle reaper; Close stops it.
func NewPool(s Settings, cfg *PoolConfig) (*Pool, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("error validating smtp settings: %w", err)
	}
	p := &Pool{settings: s.withDefaults(), cfg: poolDefaults(cfg), done: make(chan struct{})}
	p.slots = make(chan struct{}, p.cfg.MaxConns)
	p.reaped.Add(1)
	go p.reapLoop()
	return p, nil
}

// poolDefaults copies cfg and fills zero fields.
func poolDefaults(cfg *PoolConfig) PoolConfig {
	var c PoolConfig
	if cfg != nil {
		c = *cfg
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.NowFunc == nil {
		c.NowFunc = time.Now
	}
	return c
}

// Send delivers raw (rendered and already DKIM-signed) bytes to the envelope recipients.
// Errors are *Error values classified by Classify, IsPermanent, IsTemporary and IsConfig.
func (p *Pool) Send(ctx context.Context, env Envelope, raw []byte) (*Result, error) {
	return p.SendAfter(ctx, env, raw, nil)
}

// Gate holds a send's DATA back until something the caller waits for is settled (the
// claim of a delivery attempt becoming durable): its methods are those of a
// context.Context that ends once.
type Gate interface {
	// Done is closed once Err's answer is known.
	Done() <-chan struct{}
	// Err, once Done is closed, is nil when the message may be handed over, or why not.
	Err() error
}

// SendAfter is Send with DATA held back until gate is done: the connection, MAIL and RCPT
// go ahead meanwhile, so their round trips overlap with what the caller waits for. When
// gate fails, no DATA is sent: the transaction is reset (RSET) and SendAfter returns an
// *Error at stage data that wraps gate's error. A nil gate holds nothing back.
func (p *Pool) SendAfter(ctx context.Context, env Envelope, raw []byte, gate Gate) (*Result, error) {
	start := p.cfg.NowFunc()
	if err := env.validate(); err != nil {
		return nil, p.newError(StageMail, Outcome{Class: ClassPermanent, Code: CodeInvalidMessage, Text: err.Error()}, err)
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, p.wrap(&stageError{stage: StageConnect, err: context.Cause(ctx)})
	}
	defer func() { <-p.slots }()
	res, err := p.send(ctx, env, raw, gate)
	if err != nil {
		return nil, p.wrap(err)
	}
	p.worked.Store(true)
	res.Host = p.settings.addr()
	res.DurationMS = p.cfg.NowFunc().Sub(start).Milliseconds()
	return res, nil
}

// send runs the transaction, once more on a fresh connection when a pooled one turns out
// to be stale (closed by the upstream while idle): nothing was accepted yet, so the
// retry cannot duplicate the message.
func (p *Pool) send(ctx context.Context, env Envelope, raw []byte, gate Gate) (*Result, error) {
	c, err := p.get(ctx)
	if err != nil {
		return nil, err
	}
	reused := c.messages > 0
	res, err := c.transact(ctx, p.settings.CommandTimeout, env, raw, gate)
	if err != nil && reused && isStale(err) {
		c.close()
		if c, err = p.dial(ctx); err != nil {
			return nil, err
		}
		reused = false
		res, err = c.transact(ctx, p.settings.CommandTimeout, env, raw, gate)
	}
	p.put(c)
	if err != nil {
		return nil, err
	}
	res.Reused = reused
	return res, nil
}

// isStale reports a failure at the first command of a reused connection that means the
// connection, not the message, is the problem.
func isStale(err error) bool {
	var se *stageError
	if !errors.As(err, &se) || se.stage != StageMail {
		return false
	}
	if r, ok := replyOf(err); ok {
		return r.Code == 421
	}
	return isDropped(err)
}

// get returns an idle connection or dials a new one.
func (p *Pool) get(ctx context.Context) (*conn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, p.newError(StageConnect, Outcome{Class: ClassTemporary, Code: CodePoolClosed, Text: "pool closed"}, nil)
	}
	var expired []*conn
	var found *conn
	for found == nil && len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if p.isExpired(c) {
			expired = append(expired, c)
		} else {
			found = c
		}
	}
	p.mu.Unlock()
	for _, c := range expired {
		c.quit()
	}
	if found != nil {
		return found, nil
	}
	return p.dial(ctx)
}

// dial opens a new connection.
func (p *Pool) dial(ctx context.Context) (*conn, error) {
	c, err := dialConn(ctx, p.settings)
	if err != nil {
		return nil, &stageError{stage: StageConnect, err: err}
	}
	return c, nil
}

// put keeps a healthy connection for the next message or retires it.
func (p *Pool) put(c *conn) {
	c.lastUsed = p.cfg.NowFunc()
	usable := c.usable()
	p.mu.Lock()
	keep := !p.closed && usable && (p.cfg.MaxMessagesPerConn == 0 || c.messages < p.cfg.MaxMessagesPerConn)
	if keep {
		p.idle = append(p.idle, c)
	}
	p.mu.Unlock()
	switch {
	case keep:
	case usable:
		c.quit()
	default:
		c.close()
	}
}

// isExpired reports a connection idle for longer than IdleTimeout.
func (p *Pool) isExpired(c *conn) bool {
	return p.cfg.NowFunc().Sub(c.lastUsed) >= p.cfg.IdleTimeout
}

// reapLoop closes idle connections as they expire.
func (p *Pool) reapLoop() {
	defer p.reaped.Done()
	ticker := time.NewTicker(min(max(p.cfg.IdleTimeout/2, 10*time.Millisecond), time.Second))
	defer ticker.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-ticker.C:
			p.reap()
		}
	}
}

// reap removes expired idle connections and says QUIT to them.
func (p *Pool) reap() {
	p.mu.Lock()
	var keep, expired []*conn
	for _, c := range p.idle {
		if p.isExpired(c) {
			expired = append(expired, c)
		} else {
			keep = append(keep, c)
		}
	}
	p.idle = keep
	p.mu.Unlock()
	for _, c := range expired {
		c.quit()
	}
}

// Stats reports idle connections and sends in progress.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PoolStats{Idle: len(p.idle), Busy: len(p.slots)}
}

// Close says QUIT to idle connections and stops the reaper; connections in use close
// when their send finishes, and later sends fail with CodePoolClosed.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	close(p.done)
	p.reaped.Wait()
	for _, c := range idle {
		c.quit()
	}
	return nil
}

// wrap classifies a failure from send into an *Error.
func (p *Pool) wrap(err error) error {
	var de *Error
	if errors.As(err, &de) {
		return de
	}
	stage, rcpts, cause := StageConnect, []RecipientResult(nil), err
	var se *stageError
	if errors.As(err, &se) {
		stage, rcpts, cause = se.stage, se.recipients, se.err
	}
	e := p.newError(stage, p.outcome(stage, cause), cause)
	e.Recipients = p.redactRecipients(rcpts)
	return e
}

// redactRecipients removes the password from recipient replies.
func (p *Pool) redactRecipients(rcpts []RecipientResult) []RecipientResult {
	for i, r := range rcpts {
		if r.Reply != nil {
			reply := *r.Reply
			reply.Text = p.settings.redact(reply.Text)
			rcpts[i].Reply = &reply
		}
	}
	return rcpts
}

// newError builds an *Error with redacted text.
func (p *Pool) newError(stage Stage, o Outcome, err error) *Error {
	o.Text = p.settings.redact(o.Text)
	return &Error{Outcome: o, Stage: stage, Host: p.settings.addr(), err: err}
}

// outcome classifies err, knowing the stage and whether the upstream worked before.
func (p *Pool) outcome(stage Stage, err error) Outcome {
	var rr *rcptRejected
	if errors.As(err, &rr) {
		return rcptOutcome(rr)
	}
	o := classify(err)
	if stage != StageConnect {
		return o
	}
	if o.SMTPCode == 530 {
		// At set-up, 530 answers AUTH: "must issue a STARTTLS command first", as in the probe.
		o.Code = CodeAuthRequiresTLS
	}
	if noAuthOffered(err) && p.settings.Security == SecurityNone {
		// As in the probe: no AUTH on a plain connection means login is offered only
		// after TLS, a setting to change, not a mechanism to pick.
		o.Code = CodeAuthRequiresTLS
		o.Text = "the server offers no login over an unencrypted connection (AUTH is not among its capabilities); choose STARTTLS or TLS: " + o.Text
	}
	worked := p.worked.Load()
	switch {
	case o.Code == CodeDNSNotFound && !worked:
		o.Class = ClassConfig
	case o.Class == ClassConfig && worked && isSetupTrouble(o.Code):
		o.Class = ClassTemporary
	}
	return o
}

// isSetupTrouble lists the Config codes that may be passing trouble on an upstream that
// worked before (a certificate mid-renewal, a load balancer node without TLS); a
// rejected password is not among them.
func isSetupTrouble(code string) bool {
	return strings.HasPrefix(code, "tls.") || strings.HasPrefix(code, "dns.") || code == CodeStartTLSUnsupported
}

// rcptOutcome classifies rejected recipients: a configuration reply (e.g. 530) wins, then
// any permanent rejection (retrying cannot reach that recipient), else temporary.
func rcptOutcome(rr *rcptRejected) Outcome {
	var best Outcome
	rank := map[Class]int{ClassTemporary: 1, ClassPermanent: 2, ClassConfig: 3}
	for _, r := range rr.results {
		if r.Accepted {
			continue
		}
		o := classifyReply(*r.Reply)
		if rank[o.Class] > rank[best.Class] || (o.Code == CodeConnectionClosing && best.Class == ClassTemporary) {
			best = o
		}
	}
	if best.Class != ClassConfig && best.Code != CodeConnectionClosing {
		best.Code = CodeRecipientRejected
	}
	best.Text = rr.Error()
	return best
}
