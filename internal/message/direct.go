package message

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/sendwerk/sendwerk/internal/store"
)

// Direct first attempts: a submission committed by the group committer gets its first
// delivery attempt in this process right after the commit, instead of River's fetch
// picking its job up. The job is still inserted in the submission's transaction, but as
// River's fetch would leave it: `running`, attempt 1, attempted now by this process. So the
// message is exactly as durable as before: if the process dies mid-attempt, River's rescuer
// finds the job running past its timeout and retries it, as it does for a job its own fetch
// took. What goes away is the fetch: the NOTIFY, the fetch's UPDATE of the job row (every
// index of river_job gets a new entry, as the state changes and is indexed),
// River's completer statement after the worker returns, and the 1–2 ms (up to a poll
// interval when a notification was limited) between the commit and the fetch.
//
// The attempt is the River worker's (DeliverWorker.attempt), and its answer is turned into
// the job state River's executor would set: a delivery completes the job in the transaction
// that records it, as always; a temporary failure makes it `retryable` at the next retry
// time, so River runs the second attempt; a permanent one `cancelled`; a paused connector
// `scheduled` a snooze later with the attempt given back; an error `retryable` (or
// `discarded` on the last attempt). Only submissions without send_at qualify, and only
// while a slot is free: the slots bound how many direct attempts run at once, and a
// submission that finds none goes to River as before (so a burst queues in River, not in
// goroutines). Stop ends direct attempts as River's Stop ends its jobs.

// Direct runs first delivery attempts right after their submission's commit.
type Direct struct {
	worker *DeliverWorker
	db     store.DB
	// schema is River's schema ("" for the search path's); by is attempted_by.
	schema string
	by     string
	logger *slog.Logger

	mu      sync.Mutex
	free    int
	stopped bool
	running sync.WaitGroup
	// ctx is the attempts' parent; cancelled by Stop when its context ends first.
	ctx    context.Context
	cancel context.CancelFunc
}

// DirectConfig configures Direct.
type DirectConfig struct {
	// Slots bounds the direct attempts running at once.
	Slots int
	// Schema is River's schema; empty for the search path's.
	Schema string
	// AttemptedBy names this process in the jobs' attempted_by (River's client ID).
	AttemptedBy string
}

// NewDirect returns a Direct running worker's attempts; nil when cfg.Slots is not positive
// (a nil *Direct sends every job through River's fetch).
func NewDirect(worker *DeliverWorker, cfg DirectConfig, logger *slog.Logger) *Direct {
	if cfg.Slots <= 0 {
		return nil
	}
	if logger == nil {
		logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Direct{worker: worker, db: worker.deliverer.db, schema: cfg.Schema, by: cfg.AttemptedBy, logger: logger, free: cfg.Slots, ctx: ctx, cancel: cancel}
}

// reserve takes a slot; false when none is free or Direct is stopped. Nil-safe. A slot
// counts as running from here to its release, so Stop also waits for the commits of
// submissions that reserved one.
func (d *Direct) reserve() bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped || d.free == 0 {
		return false
	}
	d.free--
	d.running.Add(1)
	return true
}

// release gives a slot back.
func (d *Direct) release() {
	d.mu.Lock()
	d.free++
	d.mu.Unlock()
	d.running.Done()
}

// directJob is a submission's reserved slot, and its job once inserted.
type directJob struct {
	d           *Direct
	maxAttempts int
	// jobID is set by the insert of the transaction that last tried to commit it.
	jobID int64
}

// reserveDirect reserves direct first attempts for the group's submissions that qualify
// (no send_at) while slots are free.
func (s *Service) reserveDirect(group []*pending) {
	for _, pd := range group {
		if pd.p.req != nil && pd.p.req.SendAt != nil {
			continue
		}
		if !s.cfg.Direct.reserve() {
			return
		}
		pd.p.direct = &directJob{d: s.cfg.Direct, maxAttempts: s.cfg.MaxAttempts}
	}
}

// resetDirect forgets the jobs of a transaction about to be (re)tried.
func resetDirect(pds ...*pending) {
	for _, pd := range pds {
		if pd.p.direct != nil {
			pd.p.direct.jobID = 0
		}
	}
}

// settleDirect starts the direct attempt of a submission whose message was committed with
// its job, and gives the slot back otherwise (refused, replayed, or its commit failed).
func (pd *pending) settleDirect(committed bool) {
	j := pd.p.direct
	if j == nil {
		return
	}
	pd.p.direct = nil
	if !committed || j.jobID == 0 {
		j.d.release()
		return
	}
	go func() {
		defer j.d.release()
		j.d.attempt(pd.tenantID, pd.p.id, j.jobID, j.maxAttempts)
	}()
}

func (d *Direct) attempt(tenantID, messageID string, jobID int64, maxAttempts int) {
	now := d.worker.NowFunc()
	args := DeliverArgs{MessageID: messageID, TenantID: tenantID}
	job := &river.Job[DeliverArgs]{Args: args, JobRow: &rivertype.JobRow{
		ID: jobID, Attempt: 1, MaxAttempts: maxAttempts, AttemptedAt: &now, AttemptedBy: []string{d.by},
		Kind: args.Kind(), Queue: QueueDeliveries, State: rivertype.JobStateRunning,
	}}
	completed, err := d.run(job)
	if completed {
		return
	}
	st := d.settle(job, err, now)
	// Like the outcome's record, the job's new state is written on a context of its own: a
	// cancelled attempt still says what became of it.
	wctx, wcancel := context.WithTimeout(context.Background(), RecordTimeout)
	defer wcancel()
	if werr := d.setStateRetrying(wctx, jobID, st); werr != nil {
		// The job stays running; River's rescuer retries it once its attempt timeout passed.
		d.logger.Error("error ending a direct delivery attempt's job; River's rescuer will retry it",
			"job_id", jobID, "message_id", messageID, "state", st.state, "error", werr)
	}
}

// setStateRetrying sets the job's state, trying again while the database is unavailable (a
// restart) until ctx ends, as River's completer retries: a job left running waits minutes
// for the rescuer.
func (d *Direct) setStateRetrying(ctx context.Context, jobID int64, st jobState) error {
	wait := 100 * time.Millisecond
	for {
		err := d.setState(ctx, jobID, st)
		if _, unavailable := store.AsUnavailable(err); err == nil || !unavailable {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// run runs the worker's attempt; a panic becomes the attempt's error, as River's executor
// makes it (the job is retried, the process keeps running).
func (d *Direct) run(job *river.Job[DeliverArgs]) (completed bool, err error) {
	ctx, cancel := context.WithTimeout(d.ctx, d.worker.Timeout(job))
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			d.logger.Error("direct delivery attempt panicked; its job is retried", "job_id", job.ID, "message_id", job.Args.MessageID, "panic", r)
			completed, err = false, fmt.Errorf("panic: %v", r)
		}
	}()
	return d.worker.attempt(ctx, job, d.schema)
}

// jobState is what River's executor would set after an attempt.
type jobState struct {
	state       rivertype.JobState
	scheduledAt *time.Time
	// attempt is the job's attempt count afterwards (a snooze gives the attempt back).
	attempt int
	err     []byte // an AttemptError to append; nil for none
}

// settle maps the worker's answer to the job's next state, as River's executor does
// (jobexecutor.reportResult / reportError).
func (d *Direct) settle(job *river.Job[DeliverArgs], err error, started time.Time) jobState {
	var snooze *rivertype.JobSnoozeError
	var cancelled *rivertype.JobCancelError
	if err == nil {
		return jobState{state: rivertype.JobStateCompleted, attempt: job.Attempt}
	}
	if errors.As(err, &snooze) {
		at := d.worker.NowFunc().Add(snooze.Duration)
		return jobState{state: rivertype.JobStateScheduled, scheduledAt: &at, attempt: job.Attempt - 1}
	}
	data, _ := json.Marshal(rivertype.AttemptError{At: started, Attempt: job.Attempt, Error: err.Error()})
	switch {
	case errors.As(err, &cancelled):
		return jobState{state: rivertype.JobStateCancelled, attempt: job.Attempt, err: data}
	case d.ctx.Err() != nil:
		// Cut off by a stop, as River's soft stop: available again, the attempt given back. (An
		// interrupted send does not always say so in its error, so a temporary failure that
		// came just as the stop did is taken for one too: it is retried at once elsewhere.)
		now := d.worker.NowFunc()
		return jobState{state: rivertype.JobStateAvailable, scheduledAt: &now, attempt: job.Attempt - 1}
	case job.Attempt >= job.MaxAttempts:
		return jobState{state: rivertype.JobStateDiscarded, attempt: job.Attempt, err: data}
	}
	at := d.worker.NextRetry(job)
	return jobState{state: rivertype.JobStateRetryable, scheduledAt: &at, attempt: job.Attempt, err: data}
}

// insertDirectJobsSQL inserts delivery jobs as River's fetch leaves a job it took: running,
// attempt 1, attempted now by $3. $1 are the jobs' args in order; the message ids come back
// with the job ids (RETURNING's order is not promised).
const insertDirectJobsSQL = `INSERT INTO %[1]sriver_job
	(args, kind, max_attempts, queue, priority, state, attempt, attempted_at, attempted_by, scheduled_at)
SELECT a, 'message_deliver', $2, 'deliveries', 1, 'running', 1, now(), ARRAY[$3::text], now()
FROM unnest($1::jsonb[]) AS a
RETURNING id, args->>'message_id'`

// insertJobs inserts the delivery jobs of ps, which have reserved slots, and sets their job
// ids on them and on rows (the messages' rows, in the order of ps).
func (d *Direct) insertJobs(ctx context.Context, tx pgx.Tx, tenantID string, ps []*prepared, maxAttempts int) error {
	args := make([]string, len(ps))
	byID := make(map[string]*prepared, len(ps))
	for i, p := range ps {
		b, err := json.Marshal(DeliverArgs{MessageID: p.id, TenantID: tenantID})
		if err != nil {
			return err
		}
		args[i] = string(b)
		byID[p.id] = p
	}
	rows, err := tx.Query(ctx, fmt.Sprintf(insertDirectJobsSQL, schemaPrefix(d.schema)), args, maxAttempts, d.by)
	if err != nil {
		return fmt.Errorf("error enqueueing deliveries: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id int64
		var messageID string
		if err := rows.Scan(&id, &messageID); err != nil {
			return fmt.Errorf("error enqueueing deliveries: %w", err)
		}
		p := byID[messageID]
		if p == nil {
			return fmt.Errorf("error enqueueing deliveries: job for unknown message %s", messageID)
		}
		p.direct.jobID = id
		n++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("error enqueueing deliveries: %w", err)
	}
	if n != len(ps) {
		return fmt.Errorf("error enqueueing deliveries: %d jobs inserted for %d messages", n, len(ps))
	}
	return nil
}

// setJobStateSQL sets a running job's state after an attempt, as River's completer does.
const setJobStateSQL = `UPDATE %[1]sriver_job SET
	state = $2::text::%[1]sriver_job_state,
	attempt = $3,
	scheduled_at = coalesce($4::timestamptz, scheduled_at),
	finalized_at = CASE WHEN $2::text IN ('completed', 'cancelled', 'discarded') THEN now() END,
	errors = CASE WHEN $5::jsonb IS NULL THEN errors ELSE array_append(errors, $5::jsonb) END
WHERE id = $1 AND state = 'running'`

func (d *Direct) setState(ctx context.Context, jobID int64, st jobState) error {
	var errData *string
	if st.err != nil {
		s := string(st.err)
		errData = &s
	}
	_, err := d.db.Exec(ctx, fmt.Sprintf(setJobStateSQL, schemaPrefix(d.schema)), jobID, string(st.state), st.attempt, st.scheduledAt, errData)
	return err
}

// Stop takes no more direct attempts and waits for those running until ctx ends; then it
// cancels them and waits up to grace for them to record what they know (a cancelled attempt
// makes its job available again, as River's stop does). Nil-safe.
func (d *Direct) Stop(ctx context.Context, grace time.Duration) error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.running.Wait(); close(done) }()
	select {
	case <-done:
		d.cancel()
		return nil
	case <-ctx.Done():
	}
	d.cancel()
	select {
	case <-done:
		return nil
	case <-time.After(grace):
		return errors.New("direct delivery attempts still running after the stop's grace period; River's rescuer retries their jobs")
	}
}

func schemaPrefix(schema string) string {
	if schema == "" {
		return ""
	}
	return pgx.Identifier{schema}.Sanitize() + "."
}
