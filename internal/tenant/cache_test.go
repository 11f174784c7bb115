package tenant

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dbtest"
)

// cachedPair is two processes on one database: each its own Service with its own caches.
type cachedPair struct {
	here, there *Service
	tx          pgx.Tx
	now         time.Time
}

func setupCached(t *testing.T, ttl time.Duration) (*cachedPair, context.Context) {
	t.Helper()
	ctx := context.Background()
	tx := dbtest.TestTx(ctx, t)
	p := &cachedPair{tx: tx, now: time.Now()}
	p.here, p.there = NewServiceWith(tx, Options{CacheTTL: ttl}), NewServiceWith(tx, Options{CacheTTL: ttl})
	p.here.NowFunc = func() time.Time { return p.now }
	p.there.NowFunc = func() time.Time { return p.now }
	return p, ctx
}

func TestKeyCache(t *testing.T) {
	t.Parallel()
	client := netip.MustParseAddr("192.0.2.1")

	t.Run("RevokedHereRefusedAtOnce", func(t *testing.T) {
		t.Parallel()
		p, ctx := setupCached(t, time.Hour) // a TTL no test outlives: only the invalidation can refuse
		ten, err := p.here.Create(ctx, "Acme", nil)
		require.NoError(t, err)
		key, secret, err := p.here.CreateKey(ctx, ten.ID, KeyParams{Name: "k", Scopes: []string{"read"}})
		require.NoError(t, err)
		_, err = p.here.Authenticate(ctx, secret, client)
		require.NoError(t, err, "the first request reads and caches the key")
		_, err = p.here.RevokeKey(ctx, ten.ID, key.ID)
		require.NoError(t, err)
		_, err = p.here.Authenticate(ctx, secret, client)
		require.ErrorIs(t, err, ErrKeyRevoked, "the next request after a revoke in this process")
	})
	t.Run("RevokedElsewhereRefusedWithinTTL", func(t *testing.T) {
		t.Parallel()
		p, ctx := setupCached(t, 2*time.Second)
		ten, err := p.here.Create(ctx, "Acme", nil)
		require.NoError(t, err)
		key, secret, err := p.here.CreateKey(ctx, ten.ID, KeyParams{Name: "k", Scopes: []string{"read"}})
		require.NoError(t, err)
		_, err = p.here.Authenticate(ctx, secret, client)
		require.NoError(t, err)
		_, err = p.there.RevokeKey(ctx, ten.ID, key.ID)
		require.NoError(t, err)
		_, err = p.there.Authenticate(ctx, secret, client)
		require.ErrorIs(t, err, ErrKeyRevoked, "the revoking process refuses at once")
		p.now = p.now.Add(2 * time.Second)
		_, err = p.here.Authenticate(ctx, secret, client)
		require.ErrorIs(t, err, ErrKeyRevoked, "another process refuses once the TTL has passed")
	})
	t.Run("RemovedCIDRRefusedWithinTTL", func(t *testing.T) {
		t.Parallel()
		p, ctx := setupCached(t, 2*time.Second)
		ten, err := p.here.Create(ctx, "Acme", nil)
		require.NoError(t, err)
		key, secret, err := p.here.CreateKey(ctx, ten.ID, KeyParams{Name: "k", Scopes: []string{"read"}, AllowedCIDRs: []string{"192.0.2.0/24"}})
		require.NoError(t, err)
		_, err = p.here.Authenticate(ctx, secret, client)
		require.NoError(t, err)
		// Keys have no update operation; an operator narrowing one in the database is the
		// change another process makes.
		_, err = p.tx.Exec(ctx, `UPDATE api_keys SET allowed_cidrs = '{198.51.100.0/24}' WHERE id = $1`, key.ID)
		require.NoError(t, err)
		p.now = p.now.Add(2 * time.Second)
		_, err = p.here.Authenticate(ctx, secret, client)
		require.ErrorIs(t, err, ErrAddressNotAllowed)
	})
	t.Run("ExpiryIsExactFromTheCache", func(t *testing.T) {
		t.Parallel()
		p, ctx := setupCached(t, time.Hour)
		ten, err := p.here.Create(ctx, "Acme", nil)
		require.NoError(t, err)
		exp := p.now.Add(time.Minute)
		_, secret, err := p.here.CreateKey(ctx, ten.ID, KeyParams{Name: "k", Scopes: []string{"read"}, ExpiresAt: &exp})
		require.NoError(t, err)
		_, err = p.here.Authenticate(ctx, secret, client)
		require.NoError(t, err)
		p.now = exp
		_, err = p.here.Authenticate(ctx, secret, client)
		require.ErrorIs(t, err, ErrKeyExpired)
	})
	t.Run("TenantDeletedHereRefusedAtOnce", func(t *testing.T) {
		t.Parallel()
		p, ctx := setupCached(t, time.Hour)
		ten, err := p.here.Create(ctx, "Acme", nil)
		require.NoError(t, err)
		_, secret, err := p.here.CreateKey(ctx, ten.ID, KeyParams{Name: "k", Scopes: []string{"read"}})
		require.NoError(t, err)
		_, err = p.here.Authenticate(ctx, secret, client)
		require.NoError(t, err)
		require.NoError(t, p.here.Delete(ctx, ten.ID))
		_, err = p.here.Authenticate(ctx, secret, client)
		require.ErrorIs(t, err, ErrKeyInvalid)
		_, err = p.here.Get(ctx, ten.ID)
		require.True(t, IsNotFound(err), "the deleted tenant is not served from the cache: %v", err)
	})
	t.Run("UseRecordedOncePerMinute", func(t *testing.T) {
		t.Parallel()
		p, ctx := setupCached(t, time.Hour)
		ten, err := p.here.Create(ctx, "Acme", nil)
		require.NoError(t, err)
		key, secret, err := p.here.CreateKey(ctx, ten.ID, KeyParams{Name: "k", Scopes: []string{"read"}})
		require.NoError(t, err)
		_, err = p.here.Authenticate(ctx, secret, client)
		require.NoError(t, err)
		// Pretend the row's last use is old: the cache, not the row, must stop a second write.
		_, err = p.tx.Exec(ctx, `UPDATE api_keys SET last_used_at = now() - interval '1 hour' WHERE id = $1`, key.ID)
		require.NoError(t, err)
		got, err := p.here.Authenticate(ctx, secret, client)
		require.NoError(t, err)
		require.NotNil(t, got.Key.LastUsedAt, "the cached key carries the use this process recorded")
		k, err := p.here.GetKey(ctx, ten.ID, key.ID)
		require.NoError(t, err)
		require.Greater(t, time.Since(*k.LastUsedAt), 59*time.Minute, "a use within the minute of the recorded one is not written again")
	})
}

func TestTenantCacheSeesUpdateHere(t *testing.T) {
	t.Parallel()
	p, ctx := setupCached(t, time.Hour)
	ten, err := p.here.Create(ctx, "Acme", nil)
	require.NoError(t, err)
	_, err = p.here.Get(ctx, ten.ID)
	require.NoError(t, err)
	q := int64(5)
	_, err = p.here.Update(ctx, ten.ID, Patch{MonthlyQuota: &Optional[int64]{Value: &q}})
	require.NoError(t, err)
	got, err := p.here.Get(ctx, ten.ID)
	require.NoError(t, err)
	require.NotNil(t, got.MonthlyQuota)
	require.Equal(t, q, *got.MonthlyQuota)
}
