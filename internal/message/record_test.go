package message

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/secret"
	"github.com/sendwerk/sendwerk/internal/smtptest"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
	"github.com/sendwerk/sendwerk/internal/tenant"
)

// recordBundle is a tenant with an smtp connector to an smtptest server on a real pool, a
// River client running the DeliverWorker (not started until the test says so), and a
// Deliverer whose one recorder tells the size of each group it commits.
type recordBundle struct {
	pool      *pgxpool.Pool
	srv       *smtptest.Server
	deliverer *Deliverer
	svc       *Service
	client    *river.Client[pgx.Tx]
	tenantID  string
	mu        sync.Mutex
	groups    []int
}

func setupRecord(t testing.TB, workers int) *recordBundle {
	t.Helper()
	return setupRecordWith(t, workers, smtptest.Opts{})
}

// setupRecordWith is setupRecord with an smtptest server configured by opts.
func setupRecordWith(t testing.TB, workers int, opts smtptest.Opts) *recordBundle {
	t.Helper()
	return setupRecordOn(t, dbtest.NewPool(t), workers, opts)
}

// setupRecordOn is setupRecordWith on pool.
func setupRecordOn(t testing.TB, pool *pgxpool.Pool, workers int, opts smtptest.Opts) *recordBundle {
	t.Helper()
	ctx := context.Background()
	srv := smtptest.NewServer(t, opts)
	box, err := secret.NewBox("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	require.NoError(t, err)
	conns := connector.NewService(pool, box, connector.Policy{AllowNoAuth: true, AllowPlaintext: true, AllowPrivateAddresses: true})
	ten, err := tenant.NewService(pool).Create(ctx, "Acme", nil)
	require.NoError(t, err)
	_, err = conns.Create(ctx, ten.ID, connector.Input{Name: "own", Kind: connector.KindSMTP,
		SMTP:   &connector.SMTPInput{Host: srv.Host(), Port: srv.Port(), Security: string(delivery.SecurityNone)},
		Sender: connector.Sender{Email: "noreply@acme.example"}})
	require.NoError(t, err)
	pools := NewPools(nil)
	t.Cleanup(pools.Close)
	b := &recordBundle{pool: pool, srv: srv, tenantID: ten.ID}
	b.deliverer = NewDeliverer(pool, conns, noSenders{}, pools, nil, nil)
	b.deliverer.recorder = newRecorder(b.deliverer, 1)
	b.deliverer.recorder.groupFunc = func(n int) {
		b.mu.Lock()
		b.groups = append(b.groups, n)
		b.mu.Unlock()
	}
	ws := river.NewWorkers()
	river.AddWorker(ws, NewDeliverWorker(b.deliverer, DeliverConfig{RetrySchedule: []time.Duration{time.Hour}}))
	b.client, err = river.NewClient(riverpgxv5.New(pool), &river.Config{
		Workers: ws, Queues: map[string]river.QueueConfig{QueueDeliveries: {MaxWorkers: workers}},
		FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond, TestOnly: true,
	})
	require.NoError(t, err)
	b.svc = NewService(pool, b.client, conns, noSenders{}, b.deliverer, Config{MaxAttempts: 2})
	return b
}

func (b *recordBundle) submit(t *testing.T, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		acc, _, err := b.svc.Submit(context.Background(), b.tenantID, request(), nil)
		require.NoError(t, err)
		ids[i] = acc.ID
	}
	return ids
}

func (b *recordBundle) start(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, b.client.Start(ctx))
	t.Cleanup(func() {
		stop, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = b.client.Stop(stop)
	})
}

// startBehindLock locks the events table, starts River, waits until the first group's
// commit waits behind the lock and every other outcome is queued behind it, and releases
// the lock.
func (b *recordBundle) startBehindLock(t *testing.T, n int) {
	t.Helper()
	ctx := context.Background()
	lock, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = lock.Rollback(ctx) })
	_, err = lock.Exec(ctx, "LOCK TABLE events IN EXCLUSIVE MODE")
	require.NoError(t, err)
	b.start(t)
	require.Eventually(t, func() bool {
		b.mu.Lock()
		groups := append([]int(nil), b.groups...)
		b.mu.Unlock()
		r := b.deliverer.recorder
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(groups) == 1 && groups[0]+len(r.queue) == n
	}, 20*time.Second, 5*time.Millisecond, "every outcome waits behind the first group's commit")
	require.NoError(t, lock.Rollback(ctx))
}

func (b *recordBundle) countWhere(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

func (b *recordBundle) groupsSeen() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.groups...)
}

func TestRecordGroupCommit(t *testing.T) {
	t.Parallel()

	t.Run("QueuedOutcomesCommitTogether", func(t *testing.T) {
		t.Parallel()
		const n = 6
		b := setupRecord(t, n)
		ids := b.submit(t, n)
		b.startBehindLock(t, n)
		require.Eventually(t, func() bool {
			return b.countWhere(t, "SELECT count(*) FROM river_job WHERE state = 'completed'") == n
		}, 20*time.Second, 10*time.Millisecond, "every job completes")
		groups := b.groupsSeen()
		require.Len(t, groups, 2, "the outcomes queued behind the first commit share one transaction: %v", groups)
		require.Equal(t, n, groups[0]+groups[1])
		require.Len(t, b.srv.Messages(), n)
		for _, id := range ids {
			require.Equal(t, 1, b.countWhere(t, "SELECT count(*) FROM messages WHERE id = $1 AND status = 'delivered' AND attempts = 1 AND completed_at IS NOT NULL", id))
			var types []string
			require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT array_agg(type ORDER BY id) FROM message_events WHERE message_id = $1", id).Scan(&types))
			require.Equal(t, []string{"queued", "attempt", "delivered"}, types, "the attempt precedes its outcome")
			require.Equal(t, 1, b.countWhere(t, "SELECT count(*) FROM events WHERE message_id = $1 AND type = 'message.delivered'", id))
		}
		// Each delivered job was completed by the transaction that recorded its delivery:
		// the job's row and the message's were last written by the same transaction.
		require.Equal(t, n, b.countWhere(t, `SELECT count(*) FROM river_job j JOIN messages m ON m.job_id = j.id
			WHERE j.state = 'completed' AND j.xmin::text = m.xmin::text`))
	})

	t.Run("FailedGroupLeavesEveryJobRetryable", func(t *testing.T) {
		t.Parallel()
		const n = 4
		b := setupRecord(t, n)
		ids := b.submit(t, n)
		// Every write of a stream event now fails, so no group and no outcome alone commits.
		_, err := b.pool.Exec(context.Background(), "ALTER TABLE events ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
		require.NoError(t, err)
		b.startBehindLock(t, n)
		require.Eventually(t, func() bool {
			return b.countWhere(t, "SELECT count(*) FROM river_job WHERE state = 'retryable'") == n
		}, 20*time.Second, 10*time.Millisecond, "every job is left to retry")
		require.Len(t, b.groupsSeen(), 2)
		require.Len(t, b.srv.Messages(), n, "each message was sent")
		require.Zero(t, b.countWhere(t, "SELECT count(*) FROM river_job WHERE state = 'completed'"))
		for _, id := range ids {
			require.Equal(t, 1, b.countWhere(t, "SELECT count(*) FROM messages WHERE id = $1 AND status = 'sending' AND completed_at IS NULL", id),
				"the claim stays, so the next attempt records this one as unknown")
			require.Zero(t, b.countWhere(t, "SELECT count(*) FROM message_events WHERE message_id = $1 AND type <> 'queued'", id))
		}
		require.Zero(t, b.countWhere(t, "SELECT count(*) FROM events WHERE type = 'message.delivered'"))
	})

	t.Run("LoneOutcomeCommitsAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setupRecord(t, 1)
		ids := b.submit(t, 1)
		start := time.Now()
		a, err := b.deliverer.Attempt(context.Background(), b.tenantID, ids[0], AttemptOpts{RetryAt: time.Now().Add(time.Hour)})
		require.NoError(t, err)
		require.Equal(t, VerdictDelivered, a.Verdict)
		require.Less(t, time.Since(start), 2*time.Second, "nothing waits for company")
		require.Equal(t, []int{1}, b.groupsSeen())
		require.Equal(t, 1, b.countWhere(t, "SELECT count(*) FROM messages WHERE id = $1 AND status = 'delivered'", ids[0]))
	})
}

func TestClaimGroupCommit(t *testing.T) {
	t.Parallel()
	b := setupRecord(t, 1)
	var groups []int
	var mu sync.Mutex
	c := newClaimer(b.deliverer, 1)
	c.groupFunc = func(n int) {
		mu.Lock()
		groups = append(groups, n)
		mu.Unlock()
	}
	ids := b.submit(t, 4)
	ctx := context.Background()
	lock, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = lock.Rollback(ctx) })
	_, err = lock.Exec(ctx, "LOCK TABLE message_events IN EXCLUSIVE MODE")
	require.NoError(t, err)
	// The first claim commits alone behind the lock; the others queue, ids[1] twice (two runs
	// of one job), and may not share a group.
	order := []string{ids[0], ids[1], ids[2], ids[3], ids[1]}
	got := make([]int32, len(order))
	var wg sync.WaitGroup
	run := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, commit, err := c.claim(b.tenantID, order[i])
			if err == nil {
				err = commit.wait()
			}
			if err == nil && m != nil {
				got[i] = m.Attempts
			}
		}()
	}
	run(0)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(groups) == 1 }, 10*time.Second, 5*time.Millisecond)
	for i := 1; i < len(order); i++ {
		run(i)
		require.Eventually(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.queue) == i }, 10*time.Second, 5*time.Millisecond)
	}
	require.NoError(t, lock.Rollback(ctx))
	wg.Wait()
	mu.Lock()
	require.Equal(t, []int{1, 3, 1}, groups, "the queued claims commit as one group; the repeat of a message waits for the next")
	mu.Unlock()
	require.Equal(t, []int32{1, 1, 1, 1, 2}, got)
	for _, id := range ids {
		require.Equal(t, 1, b.countWhere(t, "SELECT count(*) FROM messages WHERE id = $1 AND status = 'sending'", id))
	}
	require.Equal(t, 1, b.countWhere(t, "SELECT count(*) FROM message_events WHERE message_id = $1 AND type = 'attempt' AND data->>'outcome' = 'unknown' AND (data->>'attempt')::int = 1", ids[1]),
		"the second claim of a message finds the first's attempt unterminated")
}

func TestGroupQueueTakesEachKeyOnce(t *testing.T) {
	t.Parallel()
	g := &groupQueue[string]{key: func(s string) string { return s[:1] }}
	g.queue = []string{"a1", "b1", "a2", "c1", "b2"}
	require.Equal(t, []string{"a1", "b1", "c1"}, g.take(), "a message's later item waits for the next group")
	require.Equal(t, []string{"a2", "b2"}, g.queue)
	require.Equal(t, []string{"a2", "b2"}, g.take())
	require.Empty(t, g.queue)
}

// TestGroupStatementsUseIndexPlansOnASmallTable: the group statements run with one generic
// plan per connection, made the first time a connection runs them. Made while messages and
// river_job are small (a fresh database, not yet analysed), the plan scanned each table whole
// for every group; usePrimaryKeyPlans makes it the primary-key lookup it must be at any size.
// The control shows the test can tell: the generic plan alone scans.
func TestGroupStatementsUseIndexPlansOnASmallTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	_, _, err := b.svc.Submit(ctx, b.tenantID, request(), nil) // one row: still a one-page table
	require.NoError(t, err)
	now := time.Now()
	outcomes := dbsqlc.MessageRecordOutcomesParams{
		TenantIds: []string{b.tenantID}, Ids: []string{"msg_none"}, Attempts: []int32{1}, Statuses: []string{StatusDelivered},
		LastReplies: []string{"{}"}, StatusReasons: []string{""}, NextAttemptAts: []time.Time{now},
		TimelineMessageIds: []string{}, TimelineTenantIds: []string{}, TimelineTypes: []string{}, TimelineData: []string{},
		EventIds: []string{}, EventTenantIds: []string{}, EventTypes: []string{}, EventCreatedAts: []time.Time{},
		EventMessageIds: []string{}, EventConnectorIds: []string{}, EventData: []string{},
	}
	claims := dbsqlc.MessageClaimAttemptsParams{TenantIds: []string{b.tenantID}, Ids: []string{"msg_none"}, UnknownText: unknownText}
	// seqScans runs both group statements on conn in a transaction set up as set (or with the
	// generic plan alone) and counts the sequential scans of messages and river_job in it.
	seqScans := func(set func(pgx.Tx) error) int64 {
		pooled, err := b.pool.Acquire(ctx)
		require.NoError(t, err)
		conn := pooled.Hijack() // closed after: no plan carried over to the next call
		defer conn.Close(ctx)
		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		require.NoError(t, set(tx))
		q := dbsqlc.New(tx)
		_, err = q.MessageRecordOutcomes(ctx, outcomes)
		require.NoError(t, err)
		_, err = q.MessageClaimAttempts(ctx, claims)
		require.NoError(t, err)
		require.NoError(t, riverCompleter{}.CompleteTx(ctx, tx, []int64{}))
		var n int64
		require.NoError(t, tx.QueryRow(ctx, "SELECT coalesce(sum(seq_scan), 0) FROM pg_stat_xact_user_tables WHERE relname IN ('messages', 'river_job')").Scan(&n))
		return n
	}
	require.Positive(t, seqScans(func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = force_generic_plan")
		return err
	}), "control: a generic plan made on a small table scans it")
	require.Zero(t, seqScans(func(tx pgx.Tx) error { return usePrimaryKeyPlans(ctx, tx) }))
}
