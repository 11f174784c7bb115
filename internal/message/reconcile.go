package message

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
	// Window is how far back finished jobs are looked at by a process's first run; it must
	// cover the time between two runs plus Settle. Later runs of the same process look back
	// only to where its previous complete run ended, less Settle.
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

	mu sync.Mutex
	// scanned is where this process's last complete run ended (its Before); zero before
	// the first.
	scanned time.Time
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
// serves the range, and each job finds its message by the primary key its args carry (the
// job id alone has no index on messages: the join scanned the whole table every minute).
const orphansQuery = `
SELECT m.tenant_id, m.id, j.state::text
FROM river_job j JOIN messages m ON m.id = j.args->>'message_id' AND m.job_id = j.id
WHERE j.state IN ('completed', 'cancelled', 'discarded') AND j.finalized_at > $1 AND j.finalized_at < $2
  AND j.kind = 'message_deliver' AND m.status IN ('queued', 'sending', 'deferred')
LIMIT $3`

// reconcileMaxRows bounds what one run repairs; a run that hit it leaves its range to the next.
const reconcileMaxRows = 500

// window is the range of times a run looks at: the whole Window on a process's first run,
// then from where its last complete run ended, less Settle (which covers the clock of this
// process against the database's, and a test e-mail created a little before it was
// claimed). A message cannot become an orphan after its job's end, so a range once scanned
// completely needs no second look; the scans stay as long as the time between two runs
// instead of the Window (at 100 messages/s an hour and a quarter is 450,000 jobs a minute).
func (w *ReconcileWorker) window(now time.Time) (since, before time.Time) {
	since, before = now.Add(-w.cfg.Window), now.Add(-w.cfg.Settle)
	w.mu.Lock()
	defer w.mu.Unlock()
	if s := w.scanned.Add(-w.cfg.Settle); !w.scanned.IsZero() && s.After(since) {
		since = s
	}
	return since, before
}

// scannedTo records a complete run's end.
func (w *ReconcileWorker) scannedTo(before time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if before.After(w.scanned) {
		w.scanned = before
	}
}

// Work repairs what it finds and records how many.
func (w *ReconcileWorker) Work(ctx context.Context, _ *river.Job[ReconcileArgs]) error {
	since, before := w.window(w.NowFunc())
	orphans, err := w.orphans(ctx, since, before)
	if err != nil {
		return err
	}
	for _, o := range orphans {
		if err := w.repair(ctx, o); err != nil {
			return err
		}
	}
	tests, err := w.q.MessageListStuckTests(ctx, dbsqlc.MessageListStuckTestsParams{Since: since, Before: before, MaxRows: reconcileMaxRows})
	if err != nil {
		return fmt.Errorf("error listing stuck test e-mails: %w", err)
	}
	for _, t := range tests {
		if err := w.repair(ctx, orphan{tenantID: t.TenantID, id: t.ID}); err != nil {
			return err
		}
	}
	if len(orphans) < reconcileMaxRows && len(tests) < reconcileMaxRows {
		w.scannedTo(before)
	}
	river.RecordOutput(ctx, map[string]int{"repaired": len(orphans) + len(tests)})
	return nil
}

func (w *ReconcileWorker) orphans(ctx context.Context, since, before time.Time) ([]orphan, error) {
	rows, err := w.db.Query(ctx, orphansQuery, since, before, reconcileMaxRows)
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
		if err := addEvent(ctx, q, m.TenantID, m.ID, "failed", map[string]any{"reason": reason}); err != nil {
			return err
		}
		return appendMessageEvent(ctx, tx, m, "failed", map[string]any{"reason": reason})
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
