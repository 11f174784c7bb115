package message

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// DefaultRetrySchedule is the wait after each failed attempt: about 76 hours in all before a
// message that keeps meeting temporary failures is given up, the usual MTA horizon.
var DefaultRetrySchedule = []time.Duration{
	time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour,
	4 * time.Hour, 8 * time.Hour, 12 * time.Hour, 24 * time.Hour, 24 * time.Hour,
}

// DefaultAttemptTimeout bounds one attempt: long enough for a large message to a slow
// upstream (RFC 5321 suggests 10 minutes for the final dot, but a submission relay that
// takes minutes is broken), short enough that River's rescuer, set just above it, retries
// a dead process's attempts within minutes.
const DefaultAttemptTimeout = 2 * time.Minute

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
	// Timeout bounds one attempt (connecting, sending, the upstream's reply).
	Timeout time.Duration
}

// DeliverWorker runs one Deliverer attempt per job and only translates its verdict into
// River's answers: delivered → completed in the attempt's own transaction, deferred →
// retry on the schedule, failed → cancel, paused → snooze.
type DeliverWorker struct {
	river.WorkerDefaults[DeliverArgs]
	deliverer *Deliverer
	cfg       DeliverConfig
	NowFunc   func() time.Time
}

// NewDeliverWorker returns the worker.
func NewDeliverWorker(deliverer *Deliverer, cfg DeliverConfig) *DeliverWorker {
	if len(cfg.RetrySchedule) == 0 {
		cfg.RetrySchedule = DefaultRetrySchedule
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultAttemptTimeout
	}
	return &DeliverWorker{deliverer: deliverer, cfg: cfg, NowFunc: time.Now}
}

// Timeout is the attempt timeout; River's rescuer must wait longer than this.
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
	// The job is always completed in the transaction that records its delivery; River's
	// client (in ctx when River runs the job) only says in which schema its table is.
	var schema string
	if client, err := river.ClientFromContextSafely[pgx.Tx](ctx); err == nil {
		schema = client.Schema()
	}
	_, err := w.attempt(ctx, job, schema)
	return err
}

// attempt makes job's delivery attempt and returns River's answer for it; completed is true
// when the attempt's record completed the job (a delivery). Direct first attempts
// (direct.go) run it as well.
func (w *DeliverWorker) attempt(ctx context.Context, job *river.Job[DeliverArgs], schema string) (completed bool, err error) {
	opts := AttemptOpts{Last: job.Attempt >= job.MaxAttempts, RetryAt: w.NowFunc().Add(w.delayAfter(job.Attempt))}
	if job.AttemptedAt != nil {
		opts.Fetched = *job.AttemptedAt
	}
	opts.Complete = &JobCompletion{ID: job.ID, By: riverCompleter{schema: schema}}
	a, err := w.deliverer.Attempt(ctx, job.Args.TenantID, job.Args.MessageID, opts)
	if err != nil {
		return false, err
	}
	switch a.Verdict {
	case VerdictPaused:
		return false, river.JobSnooze(PausedSnooze)
	case VerdictFailed:
		return false, river.JobCancel(a.Err)
	case VerdictDeferred:
		return false, fmt.Errorf("delivery deferred (%s): %w", a.Outcome.Code, errOr(a.Err))
	case VerdictDelivered:
		return true, nil // the job completed with the delivery's record
	}
	return false, nil // nothing left to do
}

// riverCompleter completes delivered jobs as river.JobCompleteTx does (state `completed`,
// finalized now, where the job is still running; a job that no longer exists fails the
// transaction), for a whole group of deliveries in one statement by primary key. It does not
// use River's own statement (its driver's JobSetStateIfRunningMany): that statement serves
// every state change River makes, twelve arrays in a CTE, and cost 1.5–2 ms per call in
// `make bench`, planned anew on each call or, with a generic plan made while river_job was
// small, scanning the whole table. River's schema (river_job's id, state, finalized_at) is
// the public one its migrations define; River's completer, which still runs after the worker
// returns, finds the job completed and leaves it as it is.
type riverCompleter struct {
	schema string // River's schema; empty: the search path's
}

// completeJobsSQL completes the running jobs among $1 and counts how many of $1 exist.
// Statements of a CTE see one snapshot, so the count includes the jobs it completes.
const completeJobsSQL = `WITH done AS (
	UPDATE %[1]sriver_job SET state = 'completed', finalized_at = now()
	WHERE id = ANY($1::bigint[]) AND state = 'running'
	RETURNING id
)
SELECT count(*) FROM %[1]sriver_job WHERE id = ANY($1::bigint[])`

// CompleteTx marks jobIDs completed in tx where they are still running, and fails when any
// of them no longer exists, as river.JobCompleteTx does; the deliveries' record then rolls
// back with it.
func (c riverCompleter) CompleteTx(ctx context.Context, tx pgx.Tx, jobIDs []int64) error {
	var existing int
	if err := tx.QueryRow(ctx, fmt.Sprintf(completeJobsSQL, schemaPrefix(c.schema)), jobIDs).Scan(&existing); err != nil {
		return fmt.Errorf("error completing delivery jobs: %w", err)
	}
	if existing != len(jobIDs) {
		return fmt.Errorf("%d of %d delivery jobs no longer exist", len(jobIDs)-existing, len(jobIDs))
	}
	return nil
}

func errOr(err error) error {
	if err != nil {
		return err
	}
	return errors.New("no reason given")
}
