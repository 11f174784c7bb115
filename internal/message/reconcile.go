package message

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// ReconcileArgs asks for messages whose delivery ended without them to be repaired.
type ReconcileArgs struct{}

// Kind is the job's stable name.
func (ReconcileArgs) Kind() string { return "message_reconcile" }

// ReconcileConfig tunes the reconciler.
type ReconcileConfig struct {
	// Settle is how long after a job ended (or a test e-mail last moved) the reconciler
	// waits before judging it: longer than an attempt and its recording take.
	Settle time.Duration
	// Window is how far back finished jobs are looked at; it must cover the time between
	// two runs plus Settle.
	Window time.Duration
	// MaxAttempts is given to jobs the reconciler enqueues again.
	MaxAttempts int
}

// ReconcileWorker repairs messages whose state contradicts their job's. River's rescuer
// retries jobs left `running` by a dead process, but when that was the job's last attempt
// it discards the job, and the message would stay `sending` forever; a test e-mail has no
// job at all. The worker finds those, records an unterminated attempt as unknown, and then
// fails the message (its attempts are used up) or, when the job ended as completed
// without the message's outcome, enqueues a new job so the message is not lost.
type ReconcileWorker struct {
	river.WorkerDefaults[ReconcileArgs]
	db      store.DB
	q       *dbsqlc.Queries
	cfg     ReconcileConfig
	NowFunc func() time.Time
}

// NewReconcileWorker returns the worker.
func NewReconcileWorker(db store.DB, cfg ReconcileConfig) *ReconcileWorker {
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultAttemptTimeout + RecordTimeout
	}
	if cfg.Window <= cfg.Settle {
		cfg.Window = cfg.Settle + time.Hour
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = len(DefaultRetrySchedule) + 1
	}
	return &ReconcileWorker{db: db, q: dbsqlc.New(db), cfg: cfg, NowFunc: time.Now}
}

// orphan is a message that is not final although its job is.
type orphan struct {
	tenantID, id, jobState string
}

// orphansQuery reads River's table, which is River's schema and not in sqlc's: the join
// is the one place Sendwerk looks at a job's state. river_job_state_and_finalized_at_index
// serves the range.
const orphansQuery = `
SELECT m.tenant_id, m.id, j.state::text
FROM river_job j JOIN messages m ON m.job_id = j.id
WHERE j.state IN ('completed', 'cancelled', 'discarded') AND j.finalized_at > $1 AND j.finalized_at < $2
  AND j.kind = 'message_deliver' AND m.status IN ('queued', 'sending', 'deferred')
LIMIT 500`

// Work repairs what it finds and records how many.
func (w *ReconcileWorker) Work(ctx context.Context, _ *river.Job[ReconcileArgs]) error {
	now := w.NowFunc()
	orphans, err := w.orphans(ctx, now)
	if err != nil {
		return err
	}
	for _, o := range orphans {
		if err := w.repair(ctx, o); err != nil {
			return err
		}
	}
	tests, err := w.q.MessageListStuckTests(ctx, dbsqlc.MessageListStuckTestsParams{Since: now.Add(-w.cfg.Window), Before: now.Add(-w.cfg.Settle), MaxRows: 500})
	if err != nil {
		return fmt.Errorf("error listing stuck test e-mails: %w", err)
	}
	for _, t := range tests {
		if err := w.repair(ctx, orphan{tenantID: t.TenantID, id: t.ID}); err != nil {
			return err
		}
	}
	river.RecordOutput(ctx, map[string]int{"repaired": len(orphans) + len(tests)})
	return nil
}

func (w *ReconcileWorker) orphans(ctx context.Context, now time.Time) ([]orphan, error) {
	rows, err := w.db.Query(ctx, orphansQuery, now.Add(-w.cfg.Window), now.Add(-w.cfg.Settle))
	if err != nil {
		return nil, fmt.Errorf("error listing orphaned messages: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (orphan, error) {
		var o orphan
		return o, r.Scan(&o.tenantID, &o.id, &o.jobState)
	})
	if err != nil {
		return nil, fmt.Errorf("error listing orphaned messages: %w", err)
	}
	return out, nil
}

// repair settles one message in one transaction; jobState is empty for a test e-mail.
func (w *ReconcileWorker) repair(ctx context.Context, o orphan) error {
	return store.WithTx(ctx, w.db, func(tx pgx.Tx) error {
		q := w.q.WithTx(tx)
		m, err := q.MessageLockForAttempt(ctx, dbsqlc.MessageLockForAttemptParams{TenantID: o.tenantID, ID: o.id})
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("error locking message: %w", err)
		}
		if isFinal(m.Status) {
			return nil
		}
		if m.Status == StatusSending {
			if err := addUnknownAttempt(ctx, q, m); err != nil {
				return err
			}
		}
		if o.jobState == "completed" {
			return w.requeue(ctx, tx, q, m)
		}
		reason := "delivery gave up: the process making the last attempt stopped before recording its outcome"
		if o.jobState == "cancelled" {
			reason = "delivery gave up: its job was cancelled"
		}
		if _, err := q.MessageFinish(ctx, dbsqlc.MessageFinishParams{TenantID: m.TenantID, ID: m.ID, Status: StatusFailed, LastReply: m.LastReply, StatusReason: reason}); err != nil {
			return fmt.Errorf("error failing message: %w", err)
		}
		return addEvent(ctx, q, m.TenantID, m.ID, "failed", map[string]any{"reason": reason})
	})
}

// requeue gives a message whose job completed without it a new job.
func (w *ReconcileWorker) requeue(ctx context.Context, tx pgx.Tx, q *dbsqlc.Queries, m dbsqlc.Message) error {
	client := river.ClientFromContext[pgx.Tx](ctx)
	res, err := client.InsertTx(ctx, tx, DeliverArgs{MessageID: m.ID, TenantID: m.TenantID}, &river.InsertOpts{Queue: QueueDeliveries, MaxAttempts: w.cfg.MaxAttempts})
	if err != nil {
		return fmt.Errorf("error enqueueing delivery again: %w", err)
	}
	if err := q.MessageSetJob(ctx, dbsqlc.MessageSetJobParams{TenantID: m.TenantID, ID: m.ID, JobID: &res.Job.ID}); err != nil {
		return fmt.Errorf("error pointing message at its new job: %w", err)
	}
	return nil
}
