package event

import (
	"context"
	"time"

	"github.com/riverqueue/river"

	"github.com/sendwerk/sendwerk/internal/store"
)

// DefaultRetention is how long events are kept (and their webhook deliveries with them).
const DefaultRetention = 30 * 24 * time.Hour

const retentionBatch = 5000

// RetentionArgs asks for events older than the retention to be deleted.
type RetentionArgs struct{}

// Kind is the job's stable name.
func (RetentionArgs) Kind() string { return "event_retention" }

// RetentionWorker deletes expired events in batches; their webhook deliveries and attempt
// logs go with them (foreign keys).
type RetentionWorker struct {
	river.WorkerDefaults[RetentionArgs]
	db        store.DB
	retention time.Duration
	// NowFunc is the clock (tests move it).
	NowFunc func() time.Time
}

// NewRetentionWorker returns the worker; retention <= 0 means DefaultRetention.
func NewRetentionWorker(db store.DB, retention time.Duration) *RetentionWorker {
	if retention <= 0 {
		retention = DefaultRetention
	}
	return &RetentionWorker{db: db, retention: retention, NowFunc: time.Now}
}

// Work deletes until nothing expired is left or the job's time runs out.
func (w *RetentionWorker) Work(ctx context.Context, _ *river.Job[RetentionArgs]) error {
	var total int64
	for {
		n, err := DeleteExpired(ctx, w.db, w.NowFunc().Add(-w.retention), retentionBatch)
		if err != nil {
			return err
		}
		total += n
		if n < retentionBatch {
			break
		}
	}
	river.RecordOutput(ctx, map[string]int64{"events_deleted": total})
	return nil
}
