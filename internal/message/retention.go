package message

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// DefaultBodyRetention is how long message bodies are kept; metadata and events stay.
const DefaultBodyRetention = 30 * 24 * time.Hour

// purgeBatch bounds one purge statement so it never holds many row locks at once.
const purgeBatch = 5000

// RetentionArgs asks for message bodies, idempotency keys, usage counters, bounce reports
// and expired suppressions past their retention to be deleted.
type RetentionArgs struct{}

// Kind is the job's stable name.
func (RetentionArgs) Kind() string { return "message_retention" }

// RetentionWorker purges what has outlived its retention.
type RetentionWorker struct {
	river.WorkerDefaults[RetentionArgs]
	svc           *Service
	bodyRetention time.Duration
}

// NewRetentionWorker returns the worker; retention <= 0 means DefaultBodyRetention.
func NewRetentionWorker(db store.DB, retention time.Duration) *RetentionWorker {
	if retention <= 0 {
		retention = DefaultBodyRetention
	}
	return &RetentionWorker{svc: &Service{db: db, q: dbsqlc.New(db), NowFunc: time.Now}, bodyRetention: retention}
}

// Work purges in batches until nothing is left or the job's time runs out.
func (w *RetentionWorker) Work(ctx context.Context, _ *river.Job[RetentionArgs]) error {
	var bodies int64
	for {
		n, err := w.svc.q.MessagePurgeBodies(ctx, dbsqlc.MessagePurgeBodiesParams{Before: w.svc.NowFunc().Add(-w.bodyRetention), Max: purgeBatch})
		if err != nil {
			return fmt.Errorf("error purging message bodies: %w", err)
		}
		bodies += n
		if n < purgeBatch {
			break
		}
	}
	keys, err := w.svc.PurgeIdempotencyKeys(ctx)
	if err != nil {
		return err
	}
	counters, err := w.svc.PurgeUsage(ctx)
	if err != nil {
		return err
	}
	reports, suppressions, err := w.purgeBounceData(ctx)
	if err != nil {
		return err
	}
	river.RecordOutput(ctx, map[string]int64{"bodies": bodies, "idempotency_keys": keys, "usage_counters": counters,
		"bounce_reports": reports, "expired_suppressions": suppressions})
	return nil
}

// purgeBounceData deletes bounce reports as old as purged bodies (an unparsed one keeps a
// whole message) and suppressions past their expiry (already ignored, now gone).
func (w *RetentionWorker) purgeBounceData(ctx context.Context) (reports, suppressions int64, err error) {
	if reports, err = w.svc.q.BounceReportPurge(ctx, w.svc.NowFunc().Add(-w.bodyRetention)); err != nil {
		return 0, 0, fmt.Errorf("error purging bounce reports: %w", err)
	}
	if suppressions, err = w.svc.q.SuppressionDeleteExpired(ctx); err != nil {
		return 0, 0, fmt.Errorf("error purging expired suppressions: %w", err)
	}
	return reports, suppressions, nil
}
