package message

import (
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/smtptest"
)

func (b *deliverBundle) reconcile(t *testing.T) {
	t.Helper()
	w := NewReconcileWorker(b.tx, ReconcileConfig{Settle: time.Minute, Window: time.Hour})
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	river.AddWorker(workers, NewDeliverWorker(nil, shortSchedule)) // the kind it enqueues
	tw := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{Workers: workers}, w)
	res, err := tw.Work(b.ctx, t, b.tx, ReconcileArgs{}, nil)
	require.NoError(t, err)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
}

// endJob puts a message's job in a final state ten minutes ago, the message `sending`: what
// River's rescuer leaves when the process making the last attempt died.
func (b *deliverBundle) endJob(t *testing.T, id, state string) int64 {
	t.Helper()
	var jobID int64
	require.NoError(t, b.tx.QueryRow(b.ctx, `UPDATE river_job SET state = $2::river_job_state, finalized_at = now() - interval '10 minutes'
		WHERE id = (SELECT job_id FROM messages WHERE id = $1) RETURNING id`, id, state).Scan(&jobID))
	_, err := b.tx.Exec(b.ctx, "UPDATE messages SET status = 'sending', attempts = 3 WHERE id = $1", id)
	require.NoError(t, err)
	return jobID
}

func TestReconcile(t *testing.T) {
	t.Parallel()

	// Before the reconciler, such a message stayed `sending` for ever.
	t.Run("DiscardedJobFailsMessageWithUnknownAttempt", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, smtptest.Opts{}, shortSchedule)
		id, _ := b.submit(t)
		b.endJob(t, id, "discarded")
		b.reconcile(t)
		require.Equal(t, StatusFailed, b.status(t, id))
		require.Equal(t, []string{"queued", "attempt 3 unknown", "failed"}, b.timeline(t, id))
	})

	t.Run("CompletedJobWithoutOutcomeIsEnqueuedAgain", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, smtptest.Opts{}, shortSchedule)
		id, _ := b.submit(t)
		old := b.endJob(t, id, "completed")
		b.reconcile(t)
		require.Equal(t, StatusDeferred, b.status(t, id))
		var jobID int64
		var state string
		require.NoError(t, b.tx.QueryRow(b.ctx, "SELECT j.id, j.state FROM messages m JOIN river_job j ON j.id = m.job_id WHERE m.id = $1", id).Scan(&jobID, &state))
		require.NotEqual(t, old, jobID)
		require.Equal(t, "available", state)
		require.Equal(t, []string{"queued", "attempt 3 unknown"}, b.timeline(t, id))
	})

	t.Run("RecentlyEndedJobIsLeftAlone", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, smtptest.Opts{}, shortSchedule)
		id, _ := b.submit(t)
		b.endJob(t, id, "discarded")
		_, err := b.tx.Exec(b.ctx, "UPDATE river_job SET finalized_at = now() WHERE id = (SELECT job_id FROM messages WHERE id = $1)", id)
		require.NoError(t, err)
		b.reconcile(t)
		require.Equal(t, StatusSending, b.status(t, id))
	})

	t.Run("StuckTestEmailFails", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, smtptest.Opts{}, shortSchedule)
		out, err := b.svc.SendTest(b.ctx, b.tenantID, b.connID, "it@customer.example")
		require.NoError(t, err)
		_, err = b.tx.Exec(b.ctx, "UPDATE messages SET status = 'sending', updated_at = now() - interval '10 minutes' WHERE id = $1", out.ID)
		require.NoError(t, err)
		b.reconcile(t)
		require.Equal(t, StatusFailed, b.status(t, out.ID))
	})
}
