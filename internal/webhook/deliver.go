package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/sendwerk/sendwerk/internal/event"
	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/secret"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// QueueWebhooks is the River queue of webhook attempts, apart from e-mail deliveries.
const QueueWebhooks = "webhooks"

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// DeliverArgs asks for one attempt of one delivery.
type DeliverArgs struct {
	DeliveryID string `json:"delivery_id"`
	TenantID   string `json:"tenant_id"`
}

// Kind is the job's stable name.
func (DeliverArgs) Kind() string { return "webhook_deliver" }

// DeliverWorker makes webhook attempts.
type DeliverWorker struct {
	river.WorkerDefaults[DeliverArgs]
	svc    *core
	logger *slog.Logger
}

// NewDeliverWorker returns the worker.
func NewDeliverWorker(db store.DB, box *secret.Box, cfg Config, logger *slog.Logger) *DeliverWorker {
	if logger == nil {
		logger = slog.Default()
	}
	return &DeliverWorker{svc: newCore(db, box, cfg), logger: logger}
}

// SetNowFunc sets the worker's clock (tests).
func (w *DeliverWorker) SetNowFunc(f func() time.Time) { w.svc.NowFunc = f }

// MaxAttempts is the schedule's length + 1.
func (s *core) MaxAttempts() int { return len(s.cfg.RetrySchedule) + 1 }

func (s *core) insertOpts() *river.InsertOpts {
	return &river.InsertOpts{Queue: QueueWebhooks, MaxAttempts: s.MaxAttempts()}
}

// Timeout covers the request and the bookkeeping around it; config.Validate keeps it below
// River's rescue time.
func (w *DeliverWorker) Timeout(*river.Job[DeliverArgs]) time.Duration {
	return w.svc.cfg.Timeout + 5*time.Second
}

// NextRetry follows the published schedule.
func (w *DeliverWorker) NextRetry(job *river.Job[DeliverArgs]) time.Time {
	return w.svc.NowFunc().Add(w.svc.delayAfter(job.Attempt))
}

func (s *core) delayAfter(attempt int) time.Duration {
	i := min(max(attempt-1, 0), len(s.cfg.RetrySchedule)-1)
	return s.cfg.RetrySchedule[i]
}

// Work makes one attempt; an error makes River retry on the schedule.
func (w *DeliverWorker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	s := w.svc
	row, err := s.q.WebhookDeliveryLoad(ctx, dbsqlc.WebhookDeliveryLoadParams{TenantID: job.Args.TenantID, ID: job.Args.DeliveryID})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // the webhook, the event (retention) or the tenant was deleted
	}
	if err != nil {
		return fmt.Errorf("error loading webhook delivery: %w", err)
	}
	if !row.Webhook.Enabled {
		if err := s.q.WebhookDeliveryDrop(ctx, row.WebhookDelivery.ID); err != nil {
			return fmt.Errorf("error dropping webhook delivery: %w", err)
		}
		return river.JobCancel(errors.New("the webhook is disabled"))
	}
	ev, err := event.FromRow(dbsqlc.EventGetRow{
		ID: row.WebhookDelivery.EventID, TenantID: row.WebhookDelivery.TenantID, Type: row.EvType, CreatedAt: row.EvCreatedAt, Sequence: row.EvSequence,
		MessageID: row.EvMessageID, DomainID: row.EvDomainID, ConnectorID: row.EvConnectorID, WebhookID: row.EvWebhookID, Data: row.EvData,
	})
	if err != nil {
		return err
	}
	a, err := s.send(ctx, row.Webhook, ev)
	if err != nil {
		return err
	}
	last := job.Attempt >= job.MaxAttempts
	disabled, err := s.record(ctx, row.Webhook, row.WebhookDelivery, job.Attempt, a, last)
	if err != nil {
		return err
	}
	w.logger.InfoContext(ctx, "webhook attempt", "webhook_id", row.Webhook.ID, "delivery_id", row.WebhookDelivery.ID,
		"event_type", ev.Type(), "attempt", job.Attempt, "status", a.StatusCode, "latency_ms", a.Latency.Milliseconds(), "error", a.Error)
	switch {
	case a.OK():
		return nil
	case disabled:
		return river.JobCancel(fmt.Errorf("webhook attempt failed and the webhook was disabled: %s", a.Error))
	}
	return fmt.Errorf("webhook attempt failed: %s", a.Error)
}

// send signs and posts an event to a webhook.
func (s *core) send(ctx context.Context, w dbsqlc.Webhook, ev *event.Event) (*Answer, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("error encoding event: %w", err)
	}
	now := s.NowFunc()
	secrets, err := s.secrets(w, now)
	if err != nil {
		return nil, err
	}
	return s.sender.post(ctx, w.Url, secrets, ev.ID, body, now), nil
}

// record logs an attempt and moves the delivery and the endpoint's failure streak in one
// transaction; an endpoint failing longer than DisableAfter is disabled, with an event, and
// the delivery ends as failed (it reports whether that happened).
func (s *core) record(ctx context.Context, w dbsqlc.Webhook, d dbsqlc.WebhookDelivery, attempt int, a *Answer, last bool) (bool, error) {
	headers, _ := json.Marshal(a.Headers)
	var disabled bool
	err := store.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if err := q.WebhookAttemptInsert(ctx, dbsqlc.WebhookAttemptInsertParams{
			DeliveryID: d.ID, Attempt: int32(attempt), AttemptedAt: a.AttemptedAt, StatusCode: int32(a.StatusCode),
			LatencyMs: int32(a.Latency.Milliseconds()), ResponseHeaders: headers, ResponseBody: a.Body, Error: a.Error,
		}); err != nil {
			return fmt.Errorf("error logging webhook attempt: %w", err)
		}
		fin := dbsqlc.WebhookDeliveryFinishParams{ID: d.ID, Status: StatusSucceeded, LastStatusCode: ptr32(a.StatusCode)}
		if !a.OK() {
			fin.Status = StatusFailed
			if !last {
				fin.Status, fin.NextAttemptAt = StatusPending, new(a.AttemptedAt.Add(s.delayAfter(attempt)))
			}
		}
		if err := q.WebhookDeliveryFinish(ctx, fin); err != nil {
			return fmt.Errorf("error recording webhook delivery: %w", err)
		}
		if a.OK() {
			return q.WebhookRecordSuccess(ctx, w.ID)
		}
		var err error
		if disabled, err = s.recordFailure(ctx, tx, w, a.AttemptedAt); err != nil || !disabled {
			return err
		}
		return q.WebhookDeliveryDrop(ctx, d.ID)
	})
	return disabled, err
}

// recordFailure extends the endpoint's failure streak and disables it (with an event) once
// the streak is longer than DisableAfter; it reports whether it disabled it.
func (s *core) recordFailure(ctx context.Context, tx pgx.Tx, w dbsqlc.Webhook, at time.Time) (bool, error) {
	q := s.q.WithTx(tx)
	r, err := q.WebhookRecordFailure(ctx, dbsqlc.WebhookRecordFailureParams{ID: w.ID, At: &at})
	if err != nil {
		return false, fmt.Errorf("error recording webhook failure: %w", err)
	}
	if r.FailingSince == nil || !r.Enabled || at.Sub(*r.FailingSince) < s.cfg.DisableAfter {
		return false, nil
	}
	reason := fmt.Sprintf("every attempt since %s failed (longer than %s); enable it again once the endpoint works",
		r.FailingSince.UTC().Format(time.RFC3339), s.cfg.DisableAfter)
	n, err := q.WebhookDisable(ctx, dbsqlc.WebhookDisableParams{ID: w.ID, Reason: reason, At: &at})
	if err != nil || n == 0 {
		return false, err
	}
	return true, event.Append(ctx, tx, &event.Event{TenantID: w.TenantID, WebhookID: w.ID, Data: event.WebhookDisabledData{
		URL: r.Url, Reason: reason, FailingSince: r.FailingSince.UTC(),
	}})
}

func ptr32(n int) *int32 {
	if n == 0 {
		return nil
	}
	v := int32(n)
	return &v
}

// Test sends a webhook.test event now, signed like any other, and returns the answer. It
// is not kept in the feed or the delivery log.
func (s *Service) Test(ctx context.Context, tenantID, id string) (*Answer, error) {
	if !ids.Valid(ids.Webhook, id) {
		return nil, store.ErrNotFound
	}
	w, err := s.q.WebhookGet(ctx, dbsqlc.WebhookGetParams{TenantID: tenantID, ID: id})
	if err != nil {
		return nil, fmt.Errorf("error getting webhook: %w", store.MapError(err))
	}
	ev := &event.Event{ID: ids.New(ids.Event), TenantID: tenantID, WebhookID: id, CreatedAt: s.NowFunc().UTC(),
		Data: event.WebhookTestData{Message: "This is a test event from Sendwerk."}}
	return s.send(ctx, w, ev)
}
