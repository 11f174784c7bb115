package message

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// DefaultRetrySchedule is the wait after each failed attempt: about 76 hours in all before a
// message that keeps meeting temporary failures is given up, the usual MTA horizon.
var DefaultRetrySchedule = []time.Duration{
	time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour,
	4 * time.Hour, 8 * time.Hour, 12 * time.Hour, 24 * time.Hour, 24 * time.Hour,
}

// PausedSnooze is how long a job waits before looking again at a paused connector.
const PausedSnooze = time.Minute

// DeliverArgs asks for one delivery attempt of a message.
type DeliverArgs struct {
	MessageID string `json:"message_id"`
	TenantID  string `json:"tenant_id"`
}

// Kind is the job's stable name.
func (DeliverArgs) Kind() string { return "message_deliver" }

// DeliverConfig tunes the worker.
type DeliverConfig struct {
	// RetrySchedule is the wait after attempt i (1-based) at index i-1; its length + 1 is
	// the number of attempts.
	RetrySchedule []time.Duration
	// Timeout bounds one attempt (connecting, sending, and the bookkeeping around it).
	Timeout time.Duration
}

// DeliverWorker sends one message per job: DKIM-signs it with the sender domain's key and
// hands it to the connector's connection pool, then records what the upstream said.
type DeliverWorker struct {
	river.WorkerDefaults[DeliverArgs]
	db         store.DB
	q          *dbsqlc.Queries
	connectors *connector.Service
	senders    Senders
	pools      *Pools
	cfg        DeliverConfig
	logger     *slog.Logger
	NowFunc    func() time.Time
}

// NewDeliverWorker returns the worker.
func NewDeliverWorker(db store.DB, connectors *connector.Service, senders Senders, pools *Pools, cfg DeliverConfig, logger *slog.Logger) *DeliverWorker {
	if len(cfg.RetrySchedule) == 0 {
		cfg.RetrySchedule = DefaultRetrySchedule
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	return &DeliverWorker{db: db, q: dbsqlc.New(db), connectors: connectors, senders: senders, pools: pools, cfg: cfg, logger: logger, NowFunc: time.Now}
}

// Timeout lets a large message to a slow upstream finish; River's default is a minute.
func (w *DeliverWorker) Timeout(*river.Job[DeliverArgs]) time.Duration { return w.cfg.Timeout }

// NextRetry follows the retry schedule instead of River's exponential default.
func (w *DeliverWorker) NextRetry(job *river.Job[DeliverArgs]) time.Time {
	return w.NowFunc().Add(w.delayAfter(job.Attempt))
}

func (w *DeliverWorker) delayAfter(attempt int) time.Duration {
	i := min(max(attempt-1, 0), len(w.cfg.RetrySchedule)-1)
	return w.cfg.RetrySchedule[i]
}

// Work makes one delivery attempt.
func (w *DeliverWorker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	a := job.Args
	row, err := w.q.MessageGet(ctx, dbsqlc.MessageGetParams{TenantID: a.TenantID, ID: a.MessageID})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // the tenant (and its messages) was deleted
	}
	if err != nil {
		return fmt.Errorf("error loading message: %w", err)
	}
	if isFinal(row.Status) {
		return nil
	}
	conn, err := w.connectors.Get(ctx, a.TenantID, row.ConnectorID)
	if connector.IsNotFound(err) {
		return w.fail(ctx, row, "the connector was deleted before the message could be delivered", nil)
	}
	if err != nil {
		return err
	}
	if conn.Status == connector.StatusPaused {
		return river.JobSnooze(PausedSnooze)
	}
	if row.Mime == nil {
		return w.fail(ctx, row, "the message body was purged before it could be delivered", nil)
	}
	return w.attempt(ctx, job, row, conn)
}

func (w *DeliverWorker) attempt(ctx context.Context, job *river.Job[DeliverArgs], row dbsqlc.Message, conn *connector.Connector) error {
	_, err := w.try(ctx, job, row, conn)
	return err
}

// try makes the attempt and records it; it returns the attempt's classification and what
// River should be told.
func (w *DeliverWorker) try(ctx context.Context, job *river.Job[DeliverArgs], row dbsqlc.Message, conn *connector.Connector) (*attemptResult, error) {
	started, err := w.q.MessageStartAttempt(ctx, dbsqlc.MessageStartAttemptParams{TenantID: row.TenantID, ID: row.ID})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil // cancelled meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("error starting attempt: %w", err)
	}
	raw, err := w.sign(ctx, started)
	if err != nil {
		return nil, err
	}
	settings, err := w.connectors.Settings(conn)
	if err != nil {
		return nil, err
	}
	pool, err := w.pools.Get(conn, settings)
	if err != nil {
		return &attemptResult{outcome: delivery.Outcome{Class: delivery.ClassConfig, Code: delivery.CodeSettingsInvalid, Text: err.Error()}},
			w.fail(ctx, started, "the connector's settings are invalid: "+err.Error(), nil)
	}
	res, sendErr := pool.Send(ctx, delivery.Envelope{From: started.EnvelopeFrom, To: started.Recipients}, raw)
	ar := &attemptResult{outcome: delivery.Classify(sendErr), result: res, sendErr: sendErr}
	return ar, w.record(ctx, job, started, settings, res, sendErr)
}

// attemptResult is what one attempt found out.
type attemptResult struct {
	outcome delivery.Outcome
	result  *delivery.Result
	sendErr error
}

// sign adds a DKIM signature with the sender domain's key when the domain has one. A
// message from an smtp connector's own default sender on an unverified domain goes unsigned:
// the tenant's server is then the one to sign it.
func (w *DeliverWorker) sign(ctx context.Context, m dbsqlc.Message) ([]byte, error) {
	domain := m.FromEmail[strings.LastIndexByte(m.FromEmail, '@')+1:]
	signers, err := w.senders.DKIMSigners(ctx, m.TenantID, domain)
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

// record turns the attempt's outcome into the message's status and events, and tells River
// whether to retry.
func (w *DeliverWorker) record(ctx context.Context, job *river.Job[DeliverArgs], m dbsqlc.Message, settings delivery.Settings, res *delivery.Result, sendErr error) error {
	o := delivery.Classify(sendErr)
	attempt := map[string]any{"attempt": m.Attempts, "host": fmt.Sprintf("%s:%d", settings.Host, settings.Port), "outcome": o.Code}
	var reply *Reply
	if res != nil {
		reply = &Reply{Code: res.Reply.Code, EnhancedCode: res.Reply.EnhancedCode, Text: res.Reply.Text}
		attempt["remote_addr"], attempt["tls"] = res.RemoteAddr, res.TLS
	} else if o.SMTPCode != 0 {
		reply = &Reply{Code: o.SMTPCode, EnhancedCode: o.EnhancedCode, Text: o.Text}
	}
	if reply != nil {
		attempt["reply"] = reply
	} else if o.Text != "" {
		attempt["error"] = o.Text
	}
	var de *delivery.Error
	if errors.As(sendErr, &de) && len(de.Recipients) > 0 {
		attempt["recipients"] = de.Recipients
	}
	switch {
	case o.Class == delivery.ClassDelivered:
		data := map[string]any{"reply": reply, "queue_id": res.QueueID}
		return w.finish(ctx, m, StatusDelivered, reply, "", nil, attempt, "delivered", data)
	case o.Class == delivery.ClassPermanent:
		return w.giveUp(ctx, m, reply, attempt, o, sendErr)
	case job.Attempt >= job.MaxAttempts:
		return w.giveUp(ctx, m, reply, attempt, o, fmt.Errorf("gave up after %d attempts: %w", job.Attempt, sendErr))
	}
	next := w.NowFunc().Add(w.delayAfter(job.Attempt))
	data := map[string]any{"next_attempt_at": next, "reason": o.Code, "reply": reply}
	if err := w.finish(ctx, m, StatusDeferred, reply, o.Code, &next, attempt, "deferred", data); err != nil {
		return err
	}
	return fmt.Errorf("delivery deferred (%s): %w", o.Code, sendErr)
}

func (w *DeliverWorker) giveUp(ctx context.Context, m dbsqlc.Message, reply *Reply, attempt map[string]any, o delivery.Outcome, cause error) error {
	reason := o.Code
	if o.Text != "" {
		reason += ": " + o.Text
	}
	if err := w.finish(ctx, m, StatusFailed, reply, reason, nil, attempt, "failed", map[string]any{"reason": reason, "reply": reply}); err != nil {
		return err
	}
	return river.JobCancel(cause)
}

// fail ends a message that cannot be attempted at all.
func (w *DeliverWorker) fail(ctx context.Context, m dbsqlc.Message, reason string, reply *Reply) error {
	if err := w.finish(ctx, m, StatusFailed, reply, reason, nil, nil, "failed", map[string]any{"reason": reason}); err != nil {
		return err
	}
	return river.JobCancel(errors.New(reason))
}

// finish writes the status and the attempt and outcome events in one transaction.
func (w *DeliverWorker) finish(ctx context.Context, m dbsqlc.Message, status string, reply *Reply, reason string, next *time.Time, attempt map[string]any, event string, data map[string]any) error {
	replyJSON, _ := json.Marshal(reply)
	return store.WithTx(ctx, w.db, func(tx pgx.Tx) error {
		q := w.q.WithTx(tx)
		_, err := q.MessageFinish(ctx, dbsqlc.MessageFinishParams{
			TenantID: m.TenantID, ID: m.ID, Status: status, LastReply: replyJSON, StatusReason: reason, NextAttemptAt: next,
		})
		if err != nil {
			return fmt.Errorf("error recording delivery outcome: %w", err)
		}
		if attempt != nil {
			if err := addEvent(ctx, q, m.TenantID, m.ID, "attempt", attempt); err != nil {
				return err
			}
		}
		return addEvent(ctx, q, m.TenantID, m.ID, event, data)
	})
}

func isFinal(status string) bool {
	return status == StatusDelivered || status == StatusFailed || status == StatusCancelled
}
