package message

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
	"github.com/sendwerk/sendwerk/internal/suppression"
)

// OutcomeUnknown is the outcome of an attempt that started but whose result was never
// recorded: the process died, lost its database, or was cancelled between handing the
// message to the upstream and committing what the upstream said. The message may have
// arrived; a later delivered attempt then means it may have arrived twice.
const OutcomeUnknown = "unknown"

// unknownText explains an unknown attempt in its timeline event.
const unknownText = "the outcome of this attempt was never recorded (the process stopped, or lost its database or its upstream connection, while sending); the upstream may have accepted the message, so a later delivery may be a duplicate"

// RecordTimeout bounds the recording of an outcome, retries while the database is
// unavailable included. It runs on a context detached from the attempt's, so a cancelled
// attempt (timeout, hard stop) still records what it knows instead of leaving the message
// `sending`. River's rescue time must exceed the attempt timeout plus this.
const RecordTimeout = 15 * time.Second

// Verdict is what became of one attempt; callers (the River worker, test e-mails) act on it.
type Verdict string

const (
	// VerdictDelivered: the upstream accepted the message; recorded.
	VerdictDelivered Verdict = "delivered"
	// VerdictDeferred: a temporary failure (or an unknown outcome) was recorded; try again
	// at AttemptOpts.RetryAt.
	VerdictDeferred Verdict = "deferred"
	// VerdictFailed: the message failed for good; recorded.
	VerdictFailed Verdict = "failed"
	// VerdictPaused: the connector is paused; nothing was attempted or recorded.
	VerdictPaused Verdict = "paused"
	// VerdictGone: the message is deleted, cancelled or already final; nothing to do.
	VerdictGone Verdict = "gone"
)

// AttemptOpts is what the caller knows about the attempt's place in a retry schedule.
type AttemptOpts struct {
	// Last means no attempt follows: a temporary failure fails the message.
	Last bool
	// RetryAt is when the next attempt runs after a temporary failure (shown as
	// next_attempt_at).
	RetryAt time.Time
	// Complete, when set, is the job a delivery completes in the transaction that records
	// it (the River worker's own job), so the record of the delivery and the job's
	// completion commit together or not at all.
	Complete *JobCompletion
	// Fetched is when the attempt's job was fetched (River's attempted_at); zero when
	// unknown. Only the debug log of an attempt's stages uses it.
	Fetched time.Time
}

// Attempt is the typed result of one delivery attempt.
type Attempt struct {
	Verdict Verdict
	// Number is the attempt's number on the message (1 for the first).
	Number int
	// Outcome is the classified result of sending; zero when nothing was sent.
	Outcome delivery.Outcome
	// Result is the upstream's answer when it accepted the message.
	Result *delivery.Result
	// Err is why the message was not delivered (a send error, or the reason it could not
	// be attempted); nil when delivered, paused or gone.
	Err error
}

// Deliverer makes delivery attempts of stored messages: claim → DKIM-sign → send over the
// connector's pool → classify → record (claims and outcomes group-committed with those of
// concurrent attempts, see claim.go and record.go), one unit that knows nothing of River.
type Deliverer struct {
	db         store.DB
	q          *dbsqlc.Queries
	connectors *connector.Service
	senders    Senders
	pools      *Pools
	opts       DelivererOptions
	logger     *slog.Logger
	NowFunc    func() time.Time
	// Observer, when set, learns every attempt's outcome (metrics; see observe.go).
	Observer delivery.Observer
	recorder *recorder
	claimer  *claimer
}

// DelivererOptions are what an attempt tells others and how it addresses bounces.
type DelivererOptions struct {
	// Suppressions, when set, learns of recipients the upstream refused as non-existent.
	Suppressions *suppression.Service
	// ReturnPaths, when set, gives platform-connector mail a VERP return path at the
	// operator's bounce domain, so bounces come back to Sendwerk tied to their message.
	ReturnPaths ReturnPaths
}

// ReturnPaths makes the envelope sender for a message; internal/bounce implements it.
type ReturnPaths interface {
	ReturnPath(messageID string) string
}

// NewDeliverer returns a Deliverer; opts may be nil.
func NewDeliverer(db store.DB, connectors *connector.Service, senders Senders, pools *Pools, logger *slog.Logger, opts *DelivererOptions) *Deliverer {
	if logger == nil {
		logger = slog.Default()
	}
	d := &Deliverer{db: db, q: dbsqlc.New(db), connectors: connectors, senders: senders, pools: pools, logger: logger, NowFunc: time.Now}
	d.recorder = newRecorder(d, DefaultRecorders)
	d.claimer = newClaimer(d, DefaultRecorders)
	if opts != nil {
		d.opts = *opts
	}
	return d
}

// Attempt makes one delivery attempt of a message. An error means the attempt's start or
// outcome could not be recorded (the database is unavailable): the message then stays
// `sending`, and the next attempt records this one as unknown.
func (d *Deliverer) Attempt(ctx context.Context, tenantID, messageID string, opts AttemptOpts) (*Attempt, error) {
	began := time.Now()
	claimed, commit, err := d.claimer.claim(tenantID, messageID)
	if err != nil {
		return nil, err
	}
	if claimed == nil {
		return d.unclaimable(ctx, tenantID, messageID)
	}
	started := *claimed
	// The claim's COMMIT may still be in flight: what follows up to DATA does not need it
	// durable, but nothing is sent or recorded before it is (see claim.go).
	//
	// The claim checked that the connector is not paused; one paused since is paused for
	// the next attempt. The connector is read even when the attempt was cancelled meanwhile,
	// so a claimed attempt goes on to record an outcome instead of leaving the message
	// `sending` for lack of a read.
	getCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RecordTimeout)
	conn, err := d.connectors.Get(getCtx, tenantID, started.ConnectorID)
	cancel()
	if err != nil && !connector.IsNotFound(err) {
		return nil, err
	}
	if conn == nil || started.Mime == nil {
		if err := commit.wait(); err != nil {
			return nil, err
		}
	}
	switch {
	case conn == nil:
		return d.fail(ctx, started, "the connector was deleted before the message could be delivered")
	case started.Mime == nil:
		return d.fail(ctx, started, "the message body was purged before it could be delivered")
	}
	return d.send(ctx, started, conn, commit, opts, began)
}

// unclaimable tells why a message could not be claimed: gone (deleted with its tenant, or
// final), or else paused. A message neither final nor claimable has a paused connector, or
// one resumed a moment ago; either way the caller looks again later.
func (d *Deliverer) unclaimable(ctx context.Context, tenantID, messageID string) (*Attempt, error) {
	row, err := d.q.MessageGet(ctx, dbsqlc.MessageGetParams{TenantID: tenantID, ID: messageID})
	if errors.Is(err, pgx.ErrNoRows) {
		return &Attempt{Verdict: VerdictGone}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("error loading message: %w", err)
	}
	if isFinal(row.Status) {
		return &Attempt{Verdict: VerdictGone}, nil
	}
	return &Attempt{Verdict: VerdictPaused}, nil
}

// addUnknownAttempt records the unterminated attempt number m.Attempts as unknown.
func addUnknownAttempt(ctx context.Context, q *dbsqlc.Queries, m dbsqlc.Message) error {
	return addEvent(ctx, q, m.TenantID, m.ID, "attempt", map[string]any{
		"attempt": m.Attempts, "outcome": OutcomeUnknown, "error": unknownText,
	})
}

// send signs and sends the claimed message and records the outcome. The upstream gets
// DATA only once the claim's COMMIT succeeded; a claim that did not commit ends the
// attempt with the claim's error, whatever the upstream said to MAIL and RCPT.
func (d *Deliverer) send(ctx context.Context, m dbsqlc.Message, conn *connector.Connector, commit *claimCommit, opts AttemptOpts, began time.Time) (*Attempt, error) {
	signStart := time.Now()
	raw, err := d.sign(ctx, m)
	if err != nil {
		return nil, err
	}
	settings, err := d.connectors.Settings(conn)
	if err != nil {
		return nil, err
	}
	pool, err := d.pools.Get(conn, settings)
	if err != nil {
		if err := commit.wait(); err != nil {
			return nil, err
		}
		return d.fail(ctx, m, "the connector's settings are invalid: "+err.Error())
	}
	sendStart := time.Now()
	res, sendErr := pool.SendAfter(ctx, delivery.Envelope{From: d.returnPath(conn, m), To: m.Recipients}, raw, commit)
	if err := commit.wait(); err != nil {
		return nil, err
	}
	d.afterSend(ctx, m, conn, sendErr)
	a := &Attempt{Number: int(m.Attempts), Outcome: delivery.Classify(sendErr), Result: res, Err: sendErr}
	if a.Outcome.Class == delivery.ClassDelivered && res == nil {
		// Defensive: "delivered" without the upstream's answer is not a delivery we can show.
		a.Outcome = delivery.Outcome{Class: delivery.ClassTemporary, Code: delivery.CodeUnknown, Text: "the upstream's reply is missing"}
		a.Err = errors.New(a.Outcome.Text)
	}
	if why, ok := mayHaveArrived(ctx, sendErr, a.Outcome); ok {
		a.Outcome = delivery.Outcome{Class: delivery.ClassTemporary, Code: OutcomeUnknown, Text: why}
	}
	d.logOutcome(m, settings, a)
	d.logStages(ctx, m, opts, began, signStart, sendStart)
	d.observe(a, time.Since(sendStart), m)
	return d.record(ctx, m, settings, a, opts)
}

// mayHaveArrived reports a failed send after which the upstream may nevertheless have the
// message: the attempt was cancelled or ran out of time, or the connection failed during
// DATA without a reply (the upstream may have taken the final dot and queued the message,
// RFC 1047). Such an attempt is recorded with outcome unknown, so that a later delivery
// shows as a possible duplicate.
func mayHaveArrived(ctx context.Context, sendErr error, o delivery.Outcome) (string, bool) {
	if sendErr == nil {
		return "", false
	}
	deadline, hasDeadline := ctx.Deadline()
	if ctx.Err() != nil || hasDeadline && !time.Now().Before(deadline) {
		return "the attempt was cancelled or timed out before the upstream answered (" + o.Code + "); the upstream may have the message", true
	}
	var de *delivery.Error
	if errors.As(sendErr, &de) && de.Stage == delivery.StageData && o.SMTPCode == 0 {
		return "the connection failed during DATA without a reply (" + o.Code + "); the upstream may have the message", true
	}
	return "", false
}

// sign adds a DKIM signature with each of the sender domain's active keys when it has any. A
// message from an smtp connector's own default sender on an unverified domain goes unsigned:
// the tenant's server is then the one to sign it.
func (d *Deliverer) sign(ctx context.Context, m dbsqlc.Message) ([]byte, error) {
	domain := m.FromEmail[strings.LastIndexByte(m.FromEmail, '@')+1:]
	signers, err := d.senders.DKIMSigners(ctx, m.TenantID, domain)
	if errors.Is(err, store.ErrNotFound) {
		return m.Mime, nil
	}
	if err != nil {
		return nil, fmt.Errorf("error loading dkim key: %w", err)
	}
	signed, err := delivery.SignDKIM(m.Mime, signers...)
	if err != nil {
		return nil, fmt.Errorf("error signing message: %w", err)
	}
	return signed, nil
}

// record turns the attempt's outcome into the message's status and events in one
// transaction, and sets the attempt's verdict.
func (d *Deliverer) record(ctx context.Context, m dbsqlc.Message, settings delivery.Settings, a *Attempt, opts AttemptOpts) (*Attempt, error) {
	o := a.Outcome
	ev := attemptEvent(m, settings, a)
	reply, _ := ev["reply"].(*Reply)
	var err error
	switch {
	case o.Class == delivery.ClassDelivered:
		a.Verdict = VerdictDelivered
		data := map[string]any{"reply": reply, "queue_id": a.Result.QueueID}
		err = d.finish(ctx, &outcome{m: m, row: outcomeRow{status: StatusDelivered, reply: reply}, attempt: ev, step: "delivered", data: data, complete: opts.Complete})
	case o.Class == delivery.ClassPermanent || opts.Last:
		a.Verdict = VerdictFailed
		reason := o.Code
		if o.Text != "" {
			reason += ": " + o.Text
		}
		if o.Class != delivery.ClassPermanent && a.Number > 1 {
			a.Err = fmt.Errorf("gave up after %d attempts: %w", a.Number, a.Err)
		}
		err = d.finish(ctx, &outcome{m: m, row: outcomeRow{status: StatusFailed, reply: reply, reason: reason}, attempt: ev, step: "failed", data: map[string]any{"reason": reason, "reply": reply}})
	default:
		a.Verdict = VerdictDeferred
		next := opts.RetryAt
		data := map[string]any{"next_attempt_at": next, "reason": o.Code, "reply": reply}
		err = d.finish(ctx, &outcome{m: m, row: outcomeRow{status: StatusDeferred, reply: reply, reason: o.Code, next: &next}, attempt: ev, step: "deferred", data: data})
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

// attemptEvent is the timeline entry of one attempt.
func attemptEvent(m dbsqlc.Message, settings delivery.Settings, a *Attempt) map[string]any {
	o := a.Outcome
	ev := map[string]any{"attempt": m.Attempts, "host": fmt.Sprintf("%s:%d", settings.Host, settings.Port), "outcome": o.Code}
	var reply *Reply
	if a.Result != nil {
		reply = &Reply{Code: a.Result.Reply.Code, EnhancedCode: a.Result.Reply.EnhancedCode, Text: a.Result.Reply.Text}
		ev["remote_addr"], ev["tls"] = a.Result.RemoteAddr, a.Result.TLS
	} else if o.SMTPCode != 0 {
		reply = &Reply{Code: o.SMTPCode, EnhancedCode: o.EnhancedCode, Text: o.Text}
	}
	if reply != nil {
		ev["reply"] = reply
	} else if o.Text != "" {
		ev["error"] = o.Text
	}
	var de *delivery.Error
	if errors.As(a.Err, &de) && len(de.Recipients) > 0 {
		ev["recipients"] = de.Recipients
	}
	return ev
}

// logOutcome writes the one log line of a delivery outcome.
func (d *Deliverer) logOutcome(m dbsqlc.Message, settings delivery.Settings, a *Attempt) {
	d.logger.Info("delivery attempt", "message_id", m.ID, "tenant_id", m.TenantID, "attempt", m.Attempts,
		"host", settings.Host, "class", string(a.Outcome.Class), "outcome", a.Outcome.Code)
}

// logStages writes, at debug level, where an attempt's time went up to the upstream's
// answer: from the job's fetch to the attempt, the claim and connector read, the DKIM
// signature, and the SMTP transaction (DATA waits there for the claim's COMMIT).
func (d *Deliverer) logStages(ctx context.Context, m dbsqlc.Message, opts AttemptOpts, began, signStart, sendStart time.Time) {
	if !d.logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	var fetchMS float64
	if !opts.Fetched.IsZero() {
		fetchMS = ms(began.Sub(opts.Fetched))
	}
	d.logger.DebugContext(ctx, "delivery attempt stages", "message_id", m.ID, "fetched_to_attempt_ms", fetchMS,
		"claim_ms", ms(signStart.Sub(began)), "sign_ms", ms(sendStart.Sub(signStart)), "send_ms", ms(time.Since(sendStart)))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// fail ends a claimed message that cannot be attempted at all.
func (d *Deliverer) fail(ctx context.Context, m dbsqlc.Message, reason string) (*Attempt, error) {
	err := d.finish(ctx, &outcome{m: m, row: outcomeRow{status: StatusFailed, reason: reason}, step: "failed", data: map[string]any{"reason": reason}})
	if err != nil {
		return nil, err
	}
	return &Attempt{Verdict: VerdictFailed, Number: int(m.Attempts), Err: errors.New(reason),
		Outcome: delivery.Outcome{Class: delivery.ClassConfig, Code: delivery.CodeSettingsInvalid, Text: reason}}, nil
}

// outcomeRow is the message row's side of an outcome.
type outcomeRow struct {
	status string
	reply  *Reply
	reason string
	next   *time.Time
}

// finish records the outcome o (its status, its attempt and outcome events, and the job's
// completion) through the recorder, which commits it with the outcomes of concurrent
// attempts. It runs on a context detached from the attempt's (see RecordTimeout), and
// retries while the database is unavailable. Writing is idempotent: an outcome whose claim
// is no longer the message's current one (after a lost COMMIT answer, or a rescue) writes
// nothing.
func (d *Deliverer) finish(ctx context.Context, o *outcome) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RecordTimeout)
	defer cancel()
	wait := 100 * time.Millisecond
	for {
		err := d.recorder.record(ctx, o)
		if _, unavailable := store.AsUnavailable(err); !unavailable || ctx.Err() != nil {
			return err
		}
		// The database is restarting or unreachable: the upstream's answer is known, and
		// recording it a few seconds late beats sending the message again.
		d.logger.Warn("database unavailable while recording a delivery outcome; retrying", "message_id", o.m.ID, "error", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func isFinal(status string) bool {
	return status == StatusDelivered || status == StatusFailed || status == StatusCancelled
}
