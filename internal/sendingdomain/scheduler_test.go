package sendingdomain

import (
	"context"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/dnscheck"
	"github.com/sendwerk/sendwerk/internal/secret"
)

func countJobs(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(),
		"SELECT count(*) FROM river_job WHERE kind = 'sending_domain_check'").Scan(&n))
	return n
}

func TestScheduleDue(t *testing.T) {
	t.Parallel()
	pool := dbtest.NewPool(t)
	b := setupDB(t, pool, &Config{SPFInclude: platformSPF, KeyBits: 1024, MaxJitter: 30 * time.Second, ScheduleBatch: 2})
	ctx := b.ctx
	var ds []*Domain
	for _, name := range []string{"a.example", "b.example", "c.example", "d.example", "e.example"} {
		ds = append(ds, b.create(t, name))
	}
	_, err := pool.Exec(ctx, "DELETE FROM river_job")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "UPDATE sending_domains SET next_check_at = next_check_at + interval '1 day' WHERE id = ANY($1)", []string{ds[3].ID, ds[4].ID})
	require.NoError(t, err)

	t.Run("EnqueuesDueDomainsWithJitter", func(t *testing.T) {
		b.clock.Advance(10 * time.Minute)
		before := time.Now()
		n, err := b.svc.ScheduleDue(ctx)
		require.NoError(t, err)
		require.Equal(t, 3, n, "three due domains, claimed in batches of two")

		rows, err := pool.Query(ctx, "SELECT args->>'domain_id', queue, scheduled_at FROM river_job WHERE kind = 'sending_domain_check' ORDER BY 1")
		require.NoError(t, err)
		var got []string
		for rows.Next() {
			var id, queue string
			var at time.Time
			require.NoError(t, rows.Scan(&id, &queue, &at))
			got = append(got, id)
			require.Equal(t, QueueChecks, queue)
			require.False(t, at.Before(before.Add(-time.Second)))
			require.False(t, at.After(time.Now().Add(30*time.Second)))
		}
		require.NoError(t, rows.Err())
		require.Equal(t, []string{ds[0].ID, ds[1].ID, ds[2].ID}, got)

		d, err := b.svc.Get(ctx, b.tenantID, ds[0].ID)
		require.NoError(t, err)
		require.Equal(t, b.clock.Now().Add(DefaultCheckLease), d.NextCheckAt, "claimed until its check sets the real time")
	})
	t.Run("DoesNotEnqueueTwice", func(t *testing.T) {
		n, err := b.svc.ScheduleDue(ctx)
		require.NoError(t, err)
		require.Zero(t, n)

		// Even when due again (the lease ran out), a check still waiting is not duplicated.
		b.clock.Advance(DefaultCheckLease + time.Minute)
		n, err = b.svc.ScheduleDue(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
		require.Equal(t, 3, countJobs(t, pool))
	})
	t.Run("ConcurrentSchedulersSplitTheWork", func(t *testing.T) {
		_, err := pool.Exec(ctx, "DELETE FROM river_job")
		require.NoError(t, err)
		_, err = pool.Exec(ctx, "UPDATE sending_domains SET next_check_at = $1", b.clock.Now().Add(-time.Minute))
		require.NoError(t, err)
		other := b.otherProcess(t, pool)
		var wg sync.WaitGroup
		counts := make([]int, 2)
		for i, svc := range []*Service{b.svc, other} {
			wg.Go(func() {
				n, err := svc.ScheduleDue(ctx)
				require.NoError(t, err)
				counts[i] = n
			})
		}
		wg.Wait()
		require.Equal(t, 5, counts[0]+counts[1])
		require.Equal(t, 5, countJobs(t, pool))
	})
}

// otherProcess is a second service on the same database, as another `sendwerk serve`.
func (b *testBundle) otherProcess(t *testing.T, pool *pgxpool.Pool) *Service {
	t.Helper()
	box, err := secret.NewBox(testSecretKey)
	require.NoError(t, err)
	cfg := b.svc.cfg
	resolver := dnscheck.NewResolver(&dnscheck.ResolverConfig{Servers: []string{b.dns.Addr()}, Timeout: 250 * time.Millisecond, Attempts: 1})
	svc, err := NewService(pool, box, resolver, &cfg)
	require.NoError(t, err)
	svc.NowFunc = b.svc.NowFunc
	return svc
}

func startRiver(t *testing.T, pool *pgxpool.Pool, svc *Service, inFlight int) {
	t.Helper()
	workers := river.NewWorkers()
	require.NoError(t, svc.AddWorkers(workers))
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}, QueueChecks: {MaxWorkers: inFlight}},
		Workers:           workers,
		PeriodicJobs:      svc.PeriodicJobs(),
		FetchCooldown:     10 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(ctx))
	})
}

// slowDomains creates n due domains whose DNS never answers, so each check lasts at
// least the resolver timeout.
func slowDomains(t *testing.T, b *testBundle, pool *pgxpool.Pool, n int) []*Domain {
	t.Helper()
	var ds []*Domain
	for i := range n {
		d := b.create(t, string(rune('a'+i))+".slow.example")
		b.outage(d, func(name string) { b.dns.Drop(name) })
		ds = append(ds, d)
	}
	_, err := pool.Exec(b.ctx, "DELETE FROM river_job")
	require.NoError(t, err)
	_, err = pool.Exec(b.ctx, "UPDATE sending_domains SET next_check_at = now() - interval '1 second'")
	require.NoError(t, err)
	return ds
}

type checkSpan struct {
	domainID   string
	start, end time.Time
}

func checkSpans(t *testing.T, pool *pgxpool.Pool) []checkSpan {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT domain_id, started_at, duration_ms FROM sending_domain_checks")
	require.NoError(t, err)
	spans, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (checkSpan, error) {
		var s checkSpan
		var ms int64
		err := r.Scan(&s.domainID, &s.start, &ms)
		s.end = s.start.Add(time.Duration(ms) * time.Millisecond)
		return s, err
	})
	require.NoError(t, err)
	return spans
}

// maxOverlap is the most checks that ran at the same moment.
func maxOverlap(spans []checkSpan) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, s := range spans {
		edges = append(edges, edge{s.start, 1}, edge{s.end, -1})
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].delta < edges[j].delta
		}
		return edges[i].at.Before(edges[j].at)
	})
	cur, best := 0, 0
	for _, e := range edges {
		cur += e.delta
		best = max(best, cur)
	}
	return best
}

func waitChecks(t *testing.T, pool *pgxpool.Pool, n int) []checkSpan {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		spans := checkSpans(t, pool)
		if len(spans) >= n {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d checks ran in 30s", len(spans), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSchedulerCapsChecksInFlight: the domain_checks queue's MaxWorkers bounds the checks
// that query DNS at once, however many are due.
func TestSchedulerCapsChecksInFlight(t *testing.T) {
	t.Parallel()
	pool := dbtest.NewPool(t)
	b := setupDB(t, pool, &Config{SPFInclude: platformSPF, KeyBits: 1024, SchedulePeriod: time.Second, MaxJitter: -1})
	b.svc.NowFunc = time.Now
	slowDomains(t, b, pool, 6)
	startRiver(t, pool, b.svc, 2)

	spans := waitChecks(t, pool, 6)
	require.Equal(t, 2, maxOverlap(spans), "six due checks, two at a time")
	for _, s := range spans {
		require.GreaterOrEqual(t, s.end.Sub(s.start), 200*time.Millisecond, "each check waited for DNS")
	}
}

// TestSchedulerTwoProcesses: two River clients (two `sendwerk serve`) on one database check
// every due domain exactly once.
func TestSchedulerTwoProcesses(t *testing.T) {
	t.Parallel()
	pool := dbtest.NewPool(t)
	b := setupDB(t, pool, &Config{SPFInclude: platformSPF, KeyBits: 1024, SchedulePeriod: time.Second, MaxJitter: -1})
	b.svc.NowFunc = time.Now
	ds := slowDomains(t, b, pool, 6)
	other := b.otherProcess(t, pool)
	startRiver(t, pool, b.svc, 3)
	startRiver(t, pool, other, 3)

	waitChecks(t, pool, len(ds))
	time.Sleep(2500 * time.Millisecond) // more than two scheduler periods
	perDomain := map[string]int{}
	for _, s := range checkSpans(t, pool) {
		perDomain[s.domainID]++
	}
	require.Len(t, perDomain, len(ds))
	for _, d := range ds {
		require.Equal(t, 1, perDomain[d.ID], "domain %s checked once", d.Name)
		got, err := b.svc.Get(b.ctx, b.tenantID, d.ID)
		require.NoError(t, err)
		require.WithinDuration(t, time.Now().Add(DefaultIntervalPending), got.NextCheckAt, time.Minute, "the check set the real next time")
	}
}
