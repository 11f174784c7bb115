package connector

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/secret"
	"github.com/sendwerk/sendwerk/internal/tenant"
)

// cacheBundle is two processes on one database, each with its own cached Service.
type cacheBundle struct {
	here, there *Service
	tx          pgx.Tx
	tenantID    string
	conn        *Connector
	now         time.Time
}

func setupCache(t *testing.T) (*cacheBundle, context.Context) {
	t.Helper()
	ctx := context.Background()
	tx := dbtest.TestTx(ctx, t)
	ten, err := tenant.NewService(tx).Create(ctx, "Acme", nil)
	require.NoError(t, err)
	box, err := secret.NewBox("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	require.NoError(t, err)
	policy := Policy{AllowNoAuth: true, AllowPlaintext: true, AllowPrivateAddresses: true, BreakerThreshold: 1, CacheTTL: 2 * time.Second}
	b := &cacheBundle{here: NewService(tx, box, policy), there: NewService(tx, box, policy), tx: tx, tenantID: ten.ID, now: time.Now()}
	b.here.NowFunc = func() time.Time { return b.now }
	b.there.NowFunc = func() time.Time { return b.now }
	b.conn, err = b.here.Create(ctx, ten.ID, Input{
		Name: "own", Kind: KindSMTP, Sender: Sender{Email: "noreply@acme.example"}, SMTP: &SMTPInput{Host: "127.0.0.1", Port: 2525, Security: "none"},
	})
	require.NoError(t, err)
	return b, ctx
}

// status reads the connector both ways the hot paths do, and requires them to agree.
func (b *cacheBundle) status(ctx context.Context, t *testing.T, s *Service) string {
	t.Helper()
	c, err := s.Get(ctx, b.tenantID, b.conn.ID)
	require.NoError(t, err)
	d, err := s.Default(ctx, b.tenantID)
	require.NoError(t, err)
	require.Equal(t, c.Status, d.Status)
	return c.Status
}

func TestConnectorCache(t *testing.T) {
	t.Parallel()

	t.Run("PauseHereSeenAtOnceElsewhereWithinTTL", func(t *testing.T) {
		t.Parallel()
		b, ctx := setupCache(t)
		require.Equal(t, StatusActive, b.status(ctx, t, b.here))
		require.Equal(t, StatusActive, b.status(ctx, t, b.there))
		paused := StatusPaused
		_, err := b.here.Update(ctx, b.tenantID, b.conn.ID, Patch{Status: &paused})
		require.NoError(t, err)
		require.Equal(t, StatusPaused, b.status(ctx, t, b.here), "the process that paused it")
		require.Equal(t, StatusActive, b.status(ctx, t, b.there), "another process, within the TTL (the bound the docs state)")
		b.now = b.now.Add(2 * time.Second)
		require.Equal(t, StatusPaused, b.status(ctx, t, b.there), "another process, once the TTL has passed")
	})
	t.Run("BreakerTripSeenAtOnce", func(t *testing.T) {
		t.Parallel()
		b, ctx := setupCache(t)
		c, err := b.here.Get(ctx, b.tenantID, b.conn.ID)
		require.NoError(t, err)
		tripped, err := b.here.ObserveAttempt(ctx, c, &delivery.Error{Outcome: delivery.Outcome{Class: delivery.ClassConfig, Code: delivery.CodeAuthFailed, Text: "535 no"}})
		require.NoError(t, err)
		require.True(t, tripped)
		c, err = b.here.Get(ctx, b.tenantID, b.conn.ID)
		require.NoError(t, err)
		require.Equal(t, StatusPaused, c.Status)
		require.Equal(t, PausedAuthFailed, c.Breaker.PausedReason)
	})
	t.Run("NewDefaultAndDeleteSeenAtOnce", func(t *testing.T) {
		t.Parallel()
		b, ctx := setupCache(t)
		_ = b.status(ctx, t, b.here)
		other, err := b.here.Create(ctx, b.tenantID, Input{
			Name: "second", Kind: KindSMTP, IsDefault: true, Sender: Sender{Email: "noreply@acme.example"}, SMTP: &SMTPInput{Host: "127.0.0.1", Port: 2526, Security: "none"},
		})
		require.NoError(t, err)
		d, err := b.here.Default(ctx, b.tenantID)
		require.NoError(t, err)
		require.Equal(t, other.ID, d.ID, "a new default replaces the cached one")
		require.NoError(t, b.here.Delete(ctx, b.tenantID, other.ID))
		_, err = b.here.Get(ctx, b.tenantID, other.ID)
		require.True(t, IsNotFound(err), "a deleted connector is not served from the cache: %v", err)
		d, err = b.here.Default(ctx, b.tenantID)
		require.NoError(t, err)
		require.Equal(t, b.conn.ID, d.ID)
	})
	t.Run("CallersCannotChangeTheCachedConnector", func(t *testing.T) {
		t.Parallel()
		b, ctx := setupCache(t)
		c, err := b.here.Get(ctx, b.tenantID, b.conn.ID)
		require.NoError(t, err)
		c.Status, c.Name = StatusPaused, "changed"
		c, err = b.here.Get(ctx, b.tenantID, b.conn.ID)
		require.NoError(t, err)
		require.Equal(t, StatusActive, c.Status)
		require.Equal(t, "own", c.Name)
	})
}

func TestRelayActiveCache(t *testing.T) {
	t.Parallel()
	b, ctx := setupRelay(t)
	here := NewRelayCredentialsWith(b.db, 2*time.Second)
	there := NewRelayCredentialsWith(b.db, 2*time.Second)
	here.NowFunc = func() time.Time { return b.now }
	there.NowFunc = func() time.Time { return b.now }
	cred, _, err := here.Create(ctx, b.tenantID, b.connector, "exchange")
	require.NoError(t, err)
	for _, r := range []*RelayCredentials{here, there} {
		ok, err := r.Active(ctx, cred.Username)
		require.NoError(t, err)
		require.True(t, ok)
	}
	_, err = here.Revoke(ctx, b.tenantID, b.connector, cred.ID)
	require.NoError(t, err)
	ok, err := here.Active(ctx, cred.Username)
	require.NoError(t, err)
	require.False(t, ok, "the process that revoked refuses the next message at once")
	ok, err = there.Active(ctx, cred.Username)
	require.NoError(t, err)
	require.True(t, ok, "another process, within the TTL (the bound the docs state)")
	b.now = b.now.Add(2 * time.Second)
	ok, err = there.Active(ctx, cred.Username)
	require.NoError(t, err)
	require.False(t, ok, "another process, once the TTL has passed")
}
