package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// DispatchBatch is the most events one dispatch round reads.
const DispatchBatch = 1000

// Idle pacing of the dispatcher.
const (
	// maxIdleFactor caps the wait after polls that found nothing at this many intervals:
	// a quiet stream is polled once a second (at the default interval), a busy one at once.
	maxIdleFactor = 5
	// skipIdleEvery is how often the position moves past events while no webhook is
	// enabled, so the first webhook does not wait behind all of them.
	skipIdleEvery = 10 * time.Second
)

// Dispatcher turns new events of the stream into webhook deliveries and their jobs. Its
// position in the stream moves in the same transaction as the jobs it enqueues, so a crash
// anywhere neither loses nor doubles a delivery; a locked position row keeps concurrent
// processes from dispatching the same events. While no webhook is enabled anywhere it
// reads no events: a poll is one small query, and every skipIdleEvery the position moves
// past the events no webhook could have received.
type Dispatcher struct {
	db       store.DB
	q        *dbsqlc.Queries
	jobs     JobInserter
	opts     *river.InsertOpts
	interval time.Duration
	logger   *slog.Logger
	// NowFunc is the clock of the idle skip; tests move it.
	NowFunc  func() time.Time
	lastSkip time.Time
}

// NewDispatcher returns a dispatcher that looks for new events every interval, and up to
// five times less often while polls find none.
func NewDispatcher(db store.DB, jobs JobInserter, cfg Config, interval time.Duration, logger *slog.Logger) *Dispatcher {
	cfg.defaults()
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Dispatcher{db: db, q: dbsqlc.New(db), jobs: jobs, interval: interval, logger: logger, NowFunc: time.Now,
		opts: &river.InsertOpts{Queue: QueueWebhooks, MaxAttempts: len(cfg.RetrySchedule) + 1}}
}

// Run dispatches until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	wait := d.interval
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		n, err := d.DispatchOnce(ctx)
		if err != nil && ctx.Err() == nil {
			d.logger.WarnContext(ctx, "webhook dispatch failed", "error", err)
		}
		if n == DispatchBatch {
			continue // more are waiting
		}
		wait = d.nextWait(wait, n)
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// nextWait is the pause after a poll that read n events: the interval after events, and
// twice the last pause (up to maxIdleFactor intervals) after none.
func (d *Dispatcher) nextWait(last time.Duration, n int) time.Duration {
	if n > 0 {
		return d.interval
	}
	return min(2*last, maxIdleFactor*d.interval)
}

// DispatchOnce dispatches the next batch of events and returns how many it read.
func (d *Dispatcher) DispatchOnce(ctx context.Context) (int, error) {
	enabled, err := d.q.WebhookAnyEnabled(ctx)
	if err != nil {
		return 0, fmt.Errorf("error looking for enabled webhooks: %w", err)
	}
	if !enabled {
		return 0, d.skipIdle(ctx)
	}
	var n int
	err = store.WithTx(ctx, d.db, func(tx pgx.Tx) error {
		q := d.q.WithTx(tx)
		pos, err := q.WebhookDispatchLock(ctx)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // another process is dispatching
		}
		if err != nil {
			return fmt.Errorf("error locking dispatch position: %w", err)
		}
		evs, err := q.EventListSince(ctx, dbsqlc.EventListSinceParams{AfterXid: pos.AfterXid, AfterSequence: pos.AfterSequence, Max: DispatchBatch})
		if err != nil || len(evs) == 0 {
			return err
		}
		n = len(evs)
		if err := d.enqueue(ctx, tx, evs); err != nil {
			return err
		}
		lastEv := evs[len(evs)-1]
		return q.WebhookDispatchAdvance(ctx, dbsqlc.WebhookDispatchAdvanceParams{AfterXid: lastEv.Xid, AfterSequence: lastEv.Sequence})
	})
	return n, err
}

// skipIdle moves the position past the events below the horizon, at most every
// skipIdleEvery; the query itself refuses once a webhook is enabled.
func (d *Dispatcher) skipIdle(ctx context.Context) error {
	now := d.NowFunc()
	if now.Sub(d.lastSkip) < skipIdleEvery {
		return nil
	}
	if _, err := d.q.WebhookDispatchSkipIdle(ctx); err != nil {
		return fmt.Errorf("error moving the idle dispatch position: %w", err)
	}
	d.lastSkip = now
	return nil
}

// enqueue writes a delivery and a job for each event and each enabled webhook of its tenant
// that subscribes to its type and existed when it happened.
func (d *Dispatcher) enqueue(ctx context.Context, tx pgx.Tx, evs []dbsqlc.EventListSinceRow) error {
	q := d.q.WithTx(tx)
	var tenants []string
	for _, e := range evs {
		if !slices.Contains(tenants, e.TenantID) {
			tenants = append(tenants, e.TenantID)
		}
	}
	hooks, err := q.WebhookListEnabledFor(ctx, tenants)
	if err != nil || len(hooks) == 0 {
		return err
	}
	var rows []dbsqlc.WebhookDeliveryInsertManyParams
	var params []river.InsertManyParams
	for _, e := range evs {
		for _, h := range hooks {
			if h.TenantID != e.TenantID || h.CreatedAt.After(e.CreatedAt) || (len(h.EventTypes) > 0 && !slices.Contains(h.EventTypes, e.Type)) {
				continue
			}
			id := ids.New(ids.WebhookDelivery)
			rows = append(rows, dbsqlc.WebhookDeliveryInsertManyParams{ID: id, TenantID: e.TenantID, WebhookID: h.ID, EventID: e.ID, EventType: e.Type, Status: StatusPending})
			params = append(params, river.InsertManyParams{Args: DeliverArgs{DeliveryID: id, TenantID: e.TenantID}, InsertOpts: d.opts})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	if _, err := q.WebhookDeliveryInsertMany(ctx, rows); err != nil {
		return fmt.Errorf("error inserting webhook deliveries: %w", err)
	}
	if _, err := d.jobs.InsertManyFastTx(ctx, tx, params); err != nil {
		return fmt.Errorf("error enqueueing webhook deliveries: %w", err)
	}
	return nil
}
