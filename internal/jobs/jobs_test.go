package jobs

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/tenant"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestClient(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	tenants := tenant.NewService(pool)
	// The poll comes every 10 s, so a job that waited for it is told from one its
	// notification woke even on a loaded machine.
	client, err := NewClient(pool, &Config{Workers: 2, FetchCooldown: 10 * time.Millisecond, PollInterval: 10 * time.Second},
		Deps{Tenants: tenants, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)

	ten, err := tenants.Create(ctx, "Acme", nil)
	require.NoError(t, err)
	key, _, err := tenants.CreateKey(ctx, ten.ID, tenant.KeyParams{Name: "old", Scopes: []string{"read"}})
	require.NoError(t, err)
	_, err = tenants.RevokeKey(ctx, ten.ID, key.ID)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "UPDATE api_keys SET revoked_at = now() - interval '100 days' WHERE id = $1", key.ID)
	require.NoError(t, err)

	events, cancel := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	defer cancel()
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { require.NoError(t, client.Stop(context.Background())) })

	_, err = client.Insert(ctx, APIKeyPurgeArgs{}, nil)
	require.NoError(t, err)
	select {
	case ev := <-events:
		require.Equal(t, river.EventKindJobCompleted, ev.Kind, "job error: %v", ev.Job.Errors)
		require.Equal(t, "api_key_purge", ev.Job.Kind)
	case <-time.After(10 * time.Second):
		t.Fatal("purge job did not run")
	}
	keys, err := tenants.ListKeys(ctx, ten.ID, "", 10)
	require.NoError(t, err)
	require.Empty(t, keys, "a key revoked 100 days ago is purged")
}

// TestRiverIndexes: the migrated schema has no GIN index on river_job's args or metadata
// (migration 00016), migrating again recreates nothing and fails on nothing, and every
// index River's reindexer is given exists (it would warn about each missing one every run).
func TestRiverIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	indexes := func() []string {
		var names []string
		require.NoError(t, pool.QueryRow(ctx, "SELECT array_agg(indexname::text ORDER BY indexname) FROM pg_indexes WHERE tablename = 'river_job'").Scan(&names))
		return names
	}
	before := indexes()
	require.NotContains(t, before, "river_job_args_index")
	require.NotContains(t, before, "river_job_metadata_index")
	require.Subset(t, before, ReindexedIndexes())
	require.Len(t, ReindexedIndexes(), len(river.ReindexerIndexNamesDefault())-2)

	require.NoError(t, store.Migrate(ctx, pool, slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.Equal(t, before, indexes(), "a second start changes no index")
}

// TestJobInsertedSoonAfterAnotherIsPickedUpPromptly: River limits insert notifications to
// one per queue per client FetchCooldown. With the queues' fetch cooldown as that limit, a
// job inserted a few milliseconds after another, whose fetch had already run when it
// committed, waited for River's poll (a second). Its notification must be sent.
func TestJobInsertedSoonAfterAnotherIsPickedUpPromptly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	tenants := tenant.NewService(pool)
	// The poll comes every 10 s, so a job that waited for it is told from one its
	// notification woke even on a loaded machine.
	client, err := NewClient(pool, &Config{Workers: 2, FetchCooldown: 10 * time.Millisecond, PollInterval: 10 * time.Second},
		Deps{Tenants: tenants, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { require.NoError(t, client.Stop(context.Background())) })
	// Let the client's start-up fetches pass, so only the notifications below wake it.
	time.Sleep(300 * time.Millisecond)

	attempted := func(id int64) bool {
		var at *time.Time
		require.NoError(t, pool.QueryRow(ctx, "SELECT attempted_at FROM river_job WHERE id = $1", id).Scan(&at))
		return at != nil
	}
	for round := range 3 {
		first, err := pool.Begin(ctx)
		require.NoError(t, err)
		a, err := client.InsertTx(ctx, first, APIKeyPurgeArgs{}, nil)
		require.NoError(t, err)
		time.Sleep(3 * time.Millisecond) // within the queue's 10 ms fetch cooldown
		second, err := pool.Begin(ctx)
		require.NoError(t, err)
		b, err := client.InsertTx(ctx, second, APIKeyPurgeArgs{}, nil)
		require.NoError(t, err)
		require.NoError(t, first.Commit(ctx))
		require.Eventually(t, func() bool { return attempted(a.Job.ID) }, 5*time.Second, time.Millisecond, "round %d: the first job is fetched", round)
		time.Sleep(20 * time.Millisecond)
		committed := time.Now()
		require.NoError(t, second.Commit(ctx))
		require.Eventually(t, func() bool { return attempted(b.Job.ID) }, 5*time.Second, time.Millisecond)
		// The poll of the default queue runs every 10 s; its notification, well before.
		require.Less(t, time.Since(committed), 3*time.Second, "round %d: the second job waited for the poll, not its notification", round)
	}
}
