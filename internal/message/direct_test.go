package message

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// setupDirect is setupRecordWith with direct first attempts on slots slots; River's client
// is not started, so whatever is delivered before b.start was not fetched by River.
func setupDirect(t *testing.T, slots int, opts smtptest.Opts) (*recordBundle, *Direct) {
	t.Helper()
	b := setupRecordWith(t, 4, opts)
	worker := NewDeliverWorker(b.deliverer, DeliverConfig{RetrySchedule: []time.Duration{time.Hour}})
	d := NewDirect(worker, DirectConfig{Slots: slots, AttemptedBy: "direct-test"}, nil)
	b.svc.cfg.Direct = d
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Stop(ctx, time.Second)
	})
	return b, d
}

type jobSeen struct {
	state       string
	attempt     int
	attemptedBy []string
	errors      int
	finalized   bool
	scheduledIn time.Duration
}

func (b *recordBundle) jobOf(t *testing.T, messageID string) jobSeen {
	t.Helper()
	var j jobSeen
	var scheduled time.Time
	var now time.Time
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT j.state::text, j.attempt, coalesce(j.attempted_by, '{}'),
		coalesce(array_length(j.errors, 1), 0), j.finalized_at IS NOT NULL, j.scheduled_at, now()
		FROM messages m JOIN river_job j ON j.id = m.job_id WHERE m.id = $1`, messageID).
		Scan(&j.state, &j.attempt, &j.attemptedBy, &j.errors, &j.finalized, &scheduled, &now))
	j.scheduledIn = scheduled.Sub(now)
	return j
}

func (b *recordBundle) messageStatus(t *testing.T, id string) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT status FROM messages WHERE id = $1", id).Scan(&s))
	return s
}

// waitJob waits until the message's job is in state.
func (b *recordBundle) waitJob(t *testing.T, id, state string) jobSeen {
	t.Helper()
	var j jobSeen
	require.Eventually(t, func() bool { j = b.jobOf(t, id); return j.state == state }, 10*time.Second, 5*time.Millisecond,
		"job of %s reaches %s", id, state)
	return j
}

func TestDirectFirstAttemptDelivers(t *testing.T) {
	t.Parallel()
	b, _ := setupDirect(t, 8, smtptest.Opts{})
	// Concurrent submissions, so groups of several commit with direct jobs.
	ids := make([]string, 6)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			acc, _, err := b.svc.Submit(context.Background(), b.tenantID, request(), nil)
			require.NoError(t, err)
			ids[i] = acc.ID
		})
	}
	wg.Wait()
	b.srv.WaitMessages(t, len(ids), 10*time.Second)
	for _, id := range ids {
		j := b.waitJob(t, id, "completed")
		require.Equal(t, 1, j.attempt)
		require.Equal(t, []string{"direct-test"}, j.attemptedBy, "run by this process, not fetched by River")
		require.True(t, j.finalized)
		require.Equal(t, StatusDelivered, b.messageStatus(t, id))
	}
	require.Zero(t, b.countWhere(t, "SELECT count(*) FROM river_job WHERE state <> 'completed'"))
}

func TestDirectTemporaryFailureGoesToRiver(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	refuse := true
	b, _ := setupDirect(t, 8, smtptest.Opts{Script: &smtptest.Script{RcptFunc: func(string) *smtp.SMTPError {
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		}
		return nil
	}}})
	id := b.submit(t, 1)[0]
	j := b.waitJob(t, id, "retryable")
	require.Equal(t, 1, j.attempt)
	require.Equal(t, 1, j.errors)
	require.False(t, j.finalized)
	require.InDelta(t, time.Hour.Seconds(), j.scheduledIn.Seconds(), 60, "the next attempt on the retry schedule")
	require.Equal(t, StatusDeferred, b.messageStatus(t, id))

	// River runs the second attempt once it is due.
	mu.Lock()
	refuse = false
	mu.Unlock()
	_, err := b.pool.Exec(context.Background(), "UPDATE river_job SET scheduled_at = now() - interval '1 second' WHERE state = 'retryable'")
	require.NoError(t, err)
	b.start(t)
	b.srv.WaitMessages(t, 1, 15*time.Second)
	j = b.waitJob(t, id, "completed")
	require.Equal(t, 2, j.attempt, "River's attempt follows the direct one")
	require.Equal(t, StatusDelivered, b.messageStatus(t, id))
}

func TestDirectPermanentFailureCancelsTheJob(t *testing.T) {
	t.Parallel()
	b, _ := setupDirect(t, 8, smtptest.Opts{Script: &smtptest.Script{RcptFunc: func(string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}}})
	id := b.submit(t, 1)[0]
	j := b.waitJob(t, id, "cancelled")
	require.True(t, j.finalized)
	require.Equal(t, 1, j.errors)
	require.Equal(t, StatusFailed, b.messageStatus(t, id))
}

func TestDirectWithoutFreeSlotGoesThroughRiver(t *testing.T) {
	t.Parallel()
	b, _ := setupDirect(t, 1, smtptest.Opts{Delay: 300 * time.Millisecond})
	first := b.submit(t, 1)[0]
	require.Equal(t, "running", b.jobOf(t, first).state, "the slot's attempt is under way")
	rest := b.submit(t, 2)
	for _, id := range rest {
		require.Equal(t, "available", b.jobOf(t, id).state, "no free slot: left to River's fetch")
	}
	later := request()
	at := time.Now().Add(time.Hour)
	later.SendAt = &at
	b.waitJob(t, first, "completed")
	acc, _, err := b.svc.Submit(context.Background(), b.tenantID, later, nil)
	require.NoError(t, err)
	require.Equal(t, "scheduled", b.jobOf(t, acc.ID).state, "send_at is never direct")

	b.start(t)
	b.srv.WaitMessages(t, 3, 15*time.Second)
	for _, id := range rest {
		j := b.waitJob(t, id, "completed")
		require.NotEqual(t, []string{"direct-test"}, j.attemptedBy, "fetched by River")
	}
}

func TestDirectStop(t *testing.T) {
	t.Parallel()
	b, d := setupDirect(t, 4, smtptest.Opts{Delay: 3 * time.Second})
	id := b.submit(t, 1)[0]
	require.Eventually(t, func() bool { return b.messageStatus(t, id) == StatusSending }, 5*time.Second, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	require.NoError(t, d.Stop(ctx, 5*time.Second))
	require.Less(t, time.Since(start), 3*time.Second, "the stop cancelled the attempt instead of waiting for the upstream")
	j := b.jobOf(t, id)
	require.Equal(t, "available", j.state, "cut off by the stop: available again, as River's stop leaves a job")
	require.Equal(t, 0, j.attempt, "the attempt is given back")

	// After the stop, submissions go through River's fetch.
	next := b.submit(t, 1)[0]
	require.Equal(t, "available", b.jobOf(t, next).state)
}

// TestDirectPanicRetriesTheJob: an attempt that panics leaves the process running and its
// job retryable with the panic as its error, as River's executor does.
func TestDirectPanicRetriesTheJob(t *testing.T) {
	t.Parallel()
	b, d := setupDirect(t, 4, smtptest.Opts{})
	d.worker = NewDeliverWorker(nil, DeliverConfig{RetrySchedule: []time.Duration{time.Hour}}) // no Deliverer: the attempt panics
	id := b.submit(t, 1)[0]
	j := b.waitJob(t, id, "retryable")
	require.Equal(t, 1, j.errors)
	var msg string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT j.errors[1]->>'error' FROM messages m JOIN river_job j ON j.id = m.job_id WHERE m.id = $1`, id).Scan(&msg))
	require.Contains(t, msg, "panic")
	require.Equal(t, StatusQueued, b.messageStatus(t, id), "nothing was claimed")
}

func TestDirectSettleFollowsRiver(t *testing.T) {
	t.Parallel()
	d := NewDirect(NewDeliverWorker(&Deliverer{}, DeliverConfig{RetrySchedule: []time.Duration{time.Minute, time.Hour}}), DirectConfig{Slots: 1}, nil)
	job := func(attempt, max int) *river.Job[DeliverArgs] {
		return &river.Job[DeliverArgs]{JobRow: &rivertype.JobRow{ID: 1, Attempt: attempt, MaxAttempts: max}}
	}
	now := time.Now()
	st := d.settle(job(1, 3), nil, now)
	require.Equal(t, rivertype.JobStateCompleted, st.state)

	st = d.settle(job(1, 3), river.JobSnooze(time.Minute), now)
	require.Equal(t, rivertype.JobStateScheduled, st.state)
	require.Equal(t, 0, st.attempt)
	require.WithinDuration(t, now.Add(time.Minute), *st.scheduledAt, 5*time.Second)

	st = d.settle(job(1, 3), river.JobCancel(errors.New("550 no such user")), now)
	require.Equal(t, rivertype.JobStateCancelled, st.state)
	require.Contains(t, string(st.err), "550 no such user")

	st = d.settle(job(1, 3), errors.New("451 later"), now)
	require.Equal(t, rivertype.JobStateRetryable, st.state)
	require.Equal(t, 1, st.attempt)
	require.WithinDuration(t, now.Add(time.Minute), *st.scheduledAt, 5*time.Second)

	st = d.settle(job(3, 3), errors.New("451 later"), now)
	require.Equal(t, rivertype.JobStateDiscarded, st.state)

	// After a stop, an attempt that ended with an error is given back, but a permanent failure
	// keeps its verdict: its message is final, a re-run would only complete the job.
	require.NoError(t, d.Stop(context.Background(), time.Second))
	st = d.settle(job(1, 3), fmt.Errorf("delivery deferred: %w", context.Canceled), now)
	require.Equal(t, rivertype.JobStateAvailable, st.state)
	require.Equal(t, 0, st.attempt)
	st = d.settle(job(1, 3), river.JobCancel(errors.New("550 no such user")), now)
	require.Equal(t, rivertype.JobStateCancelled, st.state)
}

// TestDirectJobStateOutlivesALostConnection: the job's new state is written again when the
// database connection was lost (a restart), instead of leaving the job to River's rescuer.
func TestDirectJobStateOutlivesALostConnection(t *testing.T) {
	t.Parallel()
	b, d := setupDirect(t, 4, smtptest.Opts{})
	require.NoError(t, d.Stop(context.Background(), time.Second)) // submissions go to River; the job below is set by hand
	id := b.submit(t, 1)[0]
	_, err := b.pool.Exec(context.Background(), `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now()
		WHERE id = (SELECT job_id FROM messages WHERE id = $1)`, id)
	require.NoError(t, err)
	var jobID int64
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT job_id FROM messages WHERE id = $1", id).Scan(&jobID))

	// A pool of one connection, whose backend the server then ends.
	cfg := b.pool.Config().Copy()
	cfg.MinConns, cfg.MaxConns = 1, 1
	one, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(one.Close)
	var pid int
	require.NoError(t, one.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&pid))
	_, err = b.pool.Exec(context.Background(), "SELECT pg_terminate_backend($1)", pid)
	require.NoError(t, err)
	d.db = one

	at := time.Now().Add(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, d.setStateRetrying(ctx, jobID, jobState{state: rivertype.JobStateRetryable, scheduledAt: &at, attempt: 1, err: []byte(`{"error":"451 later"}`)}))
	require.Equal(t, "retryable", b.jobOf(t, id).state)
}
