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
	"github.com/sendwerk/sendwerk/internal/tenant"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestClient(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	tenants := tenant.NewService(pool)
	client, err := NewClient(pool, &Config{Workers: 2, FetchCooldown: 10 * time.Millisecond},
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
