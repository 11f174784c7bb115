package tenant

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/validate"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

type testBundle struct {
	svc *Service
	now time.Time
}

func setup(t *testing.T) (*testBundle, context.Context) {
	t.Helper()
	ctx := context.Background()
	tx := dbtest.TestTx(ctx, t)
	b := &testBundle{svc: NewService(tx), now: time.Now()}
	b.svc.NowFunc = func() time.Time { return b.now }
	return b, ctx
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()

	t.Run("AuthenticatesAndScopes", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		ten, err := b.svc.Create(ctx, "Acme", nil)
		require.NoError(t, err)
		key, secret, err := b.svc.CreateKey(ctx, ten.ID, KeyParams{Name: "k", Scopes: []string{"read", "read", "messages:send"}})
		require.NoError(t, err)
		require.Equal(t, []Scope{ScopeRead, ScopeSend}, key.Scopes, "duplicates collapse")
		require.Equal(t, secret[:11], key.Prefix)

		p, err := b.svc.Authenticate(ctx, secret, netip.MustParseAddr("192.0.2.1"))
		require.NoError(t, err)
		require.Equal(t, ten.ID, p.TenantID())
		require.NoError(t, p.Require(ScopeRead, ScopeSend))
		require.ErrorIs(t, p.Require(ScopeManage), ErrScopeMissing)
	})
	t.Run("RefusesUnknownRevokedExpired", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		ten, err := b.svc.Create(ctx, "Acme", nil)
		require.NoError(t, err)
		_, err = b.svc.Authenticate(ctx, "sw_unknown", netip.Addr{})
		require.ErrorIs(t, err, ErrKeyInvalid)
		_, err = b.svc.Authenticate(ctx, "not even a key", netip.Addr{})
		require.ErrorIs(t, err, ErrKeyInvalid)

		expires := b.now.Add(time.Minute)
		key, secret, err := b.svc.CreateKey(ctx, ten.ID, KeyParams{Name: "k", Scopes: []string{"read"}, ExpiresAt: &expires})
		require.NoError(t, err)
		b.now = b.now.Add(2 * time.Minute)
		_, err = b.svc.Authenticate(ctx, secret, netip.Addr{})
		require.ErrorIs(t, err, ErrKeyExpired)
		require.Equal(t, "expired", key.Status(b.now))

		b.now = time.Now()
		_, secret2, err := b.svc.CreateKey(ctx, ten.ID, KeyParams{Name: "k2", Scopes: []string{"read"}})
		require.NoError(t, err)
		key2, err := b.svc.ListKeys(ctx, ten.ID, "", 10)
		require.NoError(t, err)
		_, err = b.svc.RevokeKey(ctx, ten.ID, key2[1].ID)
		require.NoError(t, err)
		_, err = b.svc.Authenticate(ctx, secret2, netip.Addr{})
		require.ErrorIs(t, err, ErrKeyRevoked)
	})
	t.Run("CIDRs", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		ten, err := b.svc.Create(ctx, "Acme", nil)
		require.NoError(t, err)
		_, secret, err := b.svc.CreateKey(ctx, ten.ID, KeyParams{Name: "k", Scopes: []string{"read"}, AllowedCIDRs: []string{"203.0.113.0/24", "2001:db8::1"}})
		require.NoError(t, err)
		for addr, ok := range map[string]bool{"203.0.113.9": true, "::ffff:203.0.113.9": true, "2001:db8::1": true, "2001:db8::2": false, "198.51.100.1": false} {
			_, err := b.svc.Authenticate(ctx, secret, netip.MustParseAddr(addr))
			if ok {
				require.NoError(t, err, addr)
			} else {
				require.ErrorIs(t, err, ErrAddressNotAllowed, addr)
			}
		}
	})
	t.Run("ValidationNamesFields", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		ten, err := b.svc.Create(ctx, "Acme", nil)
		require.NoError(t, err)
		past := b.now.Add(-time.Hour)
		_, _, err = b.svc.CreateKey(ctx, ten.ID, KeyParams{Name: "k", Scopes: []string{"read", "root"}, AllowedCIDRs: []string{"nope"}, ExpiresAt: &past})
		var v *validate.Error
		require.ErrorAs(t, err, &v)
		fields := map[string]bool{}
		for _, f := range v.Fields {
			fields[f.Field] = true
		}
		require.Equal(t, map[string]bool{"scopes[1]": true, "allowed_cidrs[0]": true, "expires_at": true}, fields)
	})
	t.Run("TenantScoped", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		a, err := b.svc.Create(ctx, "A", nil)
		require.NoError(t, err)
		other, err := b.svc.Create(ctx, "B", nil)
		require.NoError(t, err)
		key, _, err := b.svc.CreateKey(ctx, a.ID, KeyParams{Name: "k", Scopes: []string{"read"}})
		require.NoError(t, err)
		_, err = b.svc.GetKey(ctx, other.ID, key.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = b.svc.RevokeKey(ctx, other.ID, key.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, _, err = b.svc.CreateKey(ctx, "ten_01jd3v8m5q0c7s2k9x4r6t1w3y", KeyParams{Name: "k", Scopes: []string{"read"}})
		require.ErrorIs(t, err, store.ErrNotFound)
	})
	t.Run("PurgesStaleKeys", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		ten, err := b.svc.Create(ctx, "Acme", nil)
		require.NoError(t, err)
		old, _, err := b.svc.CreateKey(ctx, ten.ID, KeyParams{Name: "old", Scopes: []string{"read"}})
		require.NoError(t, err)
		_, _, err = b.svc.CreateKey(ctx, ten.ID, KeyParams{Name: "live", Scopes: []string{"read"}})
		require.NoError(t, err)
		_, err = b.svc.RevokeKey(ctx, ten.ID, old.ID)
		require.NoError(t, err)
		n, err := b.svc.DeleteStaleKeys(ctx, time.Now().Add(time.Hour))
		require.NoError(t, err)
		require.Equal(t, int64(1), n)
		keys, err := b.svc.ListKeys(ctx, ten.ID, "", 10)
		require.NoError(t, err)
		require.Len(t, keys, 1)
		require.Equal(t, "live", keys[0].Name)
	})
}
