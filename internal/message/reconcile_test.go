package message

import (
	"strings"
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

// TestReconcileLooksBackOnlyToItsLastRun: a process's later runs scan from where its last
// complete run ended (less Settle), not the whole Window again, and find each orphan by the
// messages' primary key instead of scanning the table.
func TestReconcileLooksBackOnlyToItsLastRun(t *testing.T) {
	t.Parallel()
	b := setupDeliver(t, smtptest.Opts{}, shortSchedule)
	w := NewReconcileWorker(b.tx, ReconcileConfig{Settle: time.Minute, Window: time.Hour})
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	river.AddWorker(workers, NewDeliverWorker(nil, shortSchedule))
	tw := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{Workers: workers}, w)
	run := func() {
		t.Helper()
		res, err := tw.Work(b.ctx, t, b.tx, ReconcileArgs{}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	}

	first, _ := b.submit(t)
	b.endJob(t, first, "discarded")
	run()
	require.Equal(t, StatusFailed, b.status(t, first), "the first run looks back over the whole window")

	// An orphan whose job ended 50 minutes ago, inside the window but long before the
	// previous run's range: it cannot have become an orphan since, so it is not looked at.
	old, _ := b.submit(t)
	b.endJob(t, old, "discarded")
	_, err := b.tx.Exec(b.ctx, `UPDATE river_job SET finalized_at = now() - interval '50 minutes' WHERE id = (SELECT job_id FROM messages WHERE id = $1)`, old)
	require.NoError(t, err)
	// One whose job ended 90 seconds ago, after the previous run's range less Settle.
	recent, _ := b.submit(t)
	b.endJob(t, recent, "discarded")
	_, err = b.tx.Exec(b.ctx, `UPDATE river_job SET finalized_at = now() - interval '90 seconds' WHERE id = (SELECT job_id FROM messages WHERE id = $1)`, recent)
	require.NoError(t, err)
	run()
	require.Equal(t, StatusFailed, b.status(t, recent))
	require.Equal(t, StatusSending, b.status(t, old), "a later run does not scan the window again")
	b.reconcile(t) // another process's first run
	require.Equal(t, StatusFailed, b.status(t, old))

	// The orphans' query finds messages by primary key, never by scanning messages.
	_, err = b.tx.Exec(b.ctx, `INSERT INTO messages (id, tenant_id, connector_id, source, status, from_email, envelope_from,
		recipients, message_id, size_bytes, job_id)
		SELECT 'msg_bulk' || g, $1, $2, 'api', 'delivered', 'a@b.example', 'a@b.example', '{c@d.example}', '<' || g || '@b.example>', 10, g + 1000000
		FROM generate_series(1, 5000) g`, b.tenantID, b.connID)
	require.NoError(t, err)
	_, err = b.tx.Exec(b.ctx, "ANALYZE messages")
	require.NoError(t, err)
	rows, err := b.tx.Query(b.ctx, "EXPLAIN "+orphansQuery, time.Now().Add(-3*time.Minute), time.Now().Add(-time.Minute), reconcileMaxRows)
	require.NoError(t, err)
	var lines []string
	for rows.Next() {
		var l string
		require.NoError(t, rows.Scan(&l))
		lines = append(lines, l)
	}
	require.NoError(t, rows.Err())
	joined := strings.Join(lines, "\n")
	require.Contains(t, joined, "messages_pkey", joined)
	require.NotContains(t, joined, "Seq Scan on messages", joined)
}
