package connector

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/secret"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/tenant"
	"github.com/sendwerk/sendwerk/internal/validate"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

type relayBundle struct {
	db        store.DB
	creds     *RelayCredentials
	tenantID  string
	connector string
	now       time.Time
}

func setupRelay(t *testing.T) (*relayBundle, context.Context) {
	t.Helper()
	ctx := context.Background()
	tx := dbtest.TestTx(ctx, t)
	ten, err := tenant.NewService(tx).Create(ctx, "Acme", nil)
	require.NoError(t, err)
	box, err := secret.NewBox("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	require.NoError(t, err)
	c, err := NewService(tx, box, Policy{AllowNoAuth: true, AllowPlaintext: true, AllowPrivateAddresses: true}).Create(ctx, ten.ID, Input{
		Name: "own", Kind: KindSMTP, Sender: Sender{Email: "noreply@acme.example"}, SMTP: &SMTPInput{Host: "127.0.0.1", Port: 2525, Security: "none"},
	})
	require.NoError(t, err)
	b := &relayBundle{db: tx, creds: NewRelayCredentials(tx), tenantID: ten.ID, connector: c.ID, now: time.Now()}
	b.creds.NowFunc = func() time.Time { return b.now }
	return b, ctx
}

func TestRelayCredentials(t *testing.T) {
	t.Parallel()

	t.Run("CreateListRevoke", func(t *testing.T) {
		t.Parallel()
		b, ctx := setupRelay(t)
		first, password, err := b.creds.Create(ctx, b.tenantID, b.connector, "exchange")
		require.NoError(t, err)
		require.Regexp(t, `^sw-[a-km-z2-9]{12}$`, first.Username)
		require.Regexp(t, `^[A-HJ-NP-Za-km-z2-9]{32}$`, password)
		require.Equal(t, "active", first.Status())
		second, _, err := b.creds.Create(ctx, b.tenantID, b.connector, "")
		require.NoError(t, err)
		require.NotEqual(t, first.Username, second.Username)

		list, err := b.creds.List(ctx, b.tenantID, b.connector, "", 10)
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Equal(t, "exchange", list[0].Name)
		page, err := b.creds.List(ctx, b.tenantID, b.connector, list[0].ID, 10)
		require.NoError(t, err)
		require.Equal(t, []*RelayCredential{list[1]}, page)

		revoked, err := b.creds.Revoke(ctx, b.tenantID, b.connector, first.ID)
		require.NoError(t, err)
		require.Equal(t, "revoked", revoked.Status())
		again, err := b.creds.Revoke(ctx, b.tenantID, b.connector, first.ID)
		require.NoError(t, err)
		require.Equal(t, revoked.RevokedAt, again.RevokedAt, "revoking twice keeps the first time")
	})
	t.Run("StoredOnlyAsArgon2idHash", func(t *testing.T) {
		t.Parallel()
		b, ctx := setupRelay(t)
		c, password, err := b.creds.Create(ctx, b.tenantID, b.connector, "")
		require.NoError(t, err)
		row, err := b.creds.q.RelayCredentialGetByUsername(ctx, c.Username)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(row.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$"), row.PasswordHash)
		require.NotContains(t, row.PasswordHash, password)
		require.True(t, checkRelayPassword(row.PasswordHash, password))
		require.False(t, checkRelayPassword(row.PasswordHash, password+"x"))
		require.False(t, checkRelayPassword("$argon2id$v=19$m=0,t=1,p=1$AAAA$AAAA", ""), "bad parameters never match")
		require.False(t, checkRelayPassword("plaintext", "plaintext"))
	})
	t.Run("Authenticate", func(t *testing.T) {
		t.Parallel()
		b, ctx := setupRelay(t)
		c, password, err := b.creds.Create(ctx, b.tenantID, b.connector, "")
		require.NoError(t, err)

		got, result, err := b.creds.Authenticate(ctx, c.Username, password)
		require.NoError(t, err)
		require.Equal(t, RelayAuthOK, result)
		require.Equal(t, b.tenantID, got.TenantID)
		require.Equal(t, b.connector, got.ConnectorID)
		after, err := b.creds.List(ctx, b.tenantID, b.connector, "", 10)
		require.NoError(t, err)
		require.NotNil(t, after[0].LastUsedAt)

		for _, tc := range []struct {
			user, password string
			want           RelayAuthResult
		}{
			{c.Username, "wrong", RelayAuthWrongPassword},
			{"sw-nosuchuser", password, RelayAuthUnknownUser},
			{strings.Repeat("x", 200), password, RelayAuthUnknownUser},
		} {
			_, result, err := b.creds.Authenticate(ctx, tc.user, tc.password)
			require.ErrorIs(t, err, ErrRelayAuthFailed)
			require.Equal(t, tc.want, result)
		}
		_, err = b.creds.Revoke(ctx, b.tenantID, b.connector, c.ID)
		require.NoError(t, err)
		_, result, err = b.creds.Authenticate(ctx, c.Username, password)
		require.ErrorIs(t, err, ErrRelayAuthFailed, "a revoked credential fails even with a cached password")
		require.Equal(t, RelayAuthRevoked, result)
		active, err := b.creds.Active(ctx, c.Username)
		require.NoError(t, err)
		require.False(t, active)
	})
	t.Run("SuccessfulLoginsAreCachedBriefly", func(t *testing.T) {
		t.Parallel()
		b, ctx := setupRelay(t)
		c, password, err := b.creds.Create(ctx, b.tenantID, b.connector, "")
		require.NoError(t, err)
		start := time.Now()
		_, _, err = b.creds.Authenticate(ctx, c.Username, password)
		require.NoError(t, err)
		slow := time.Since(start)
		start = time.Now()
		for range 20 {
			_, _, err = b.creds.Authenticate(ctx, c.Username, password)
			require.NoError(t, err)
		}
		cached := time.Since(start) / 20
		t.Logf("argon2id login %s, cached %s", slow.Round(time.Millisecond), cached.Round(time.Microsecond))
		require.Less(t, cached, slow/2, "cached logins skip the slow hash")
		require.Len(t, b.creds.cache, 1)
		_, _, err = b.creds.Authenticate(ctx, c.Username, "wrong")
		require.ErrorIs(t, err, ErrRelayAuthFailed, "failures are never cached as successes")
		b.now = b.now.Add(verifyCacheTTL)
		require.False(t, b.creds.cached(cacheKeyFor(t, b, c.Username, password), b.now), "entries expire")
	})
	t.Run("ConcurrentIdenticalLoginsHashOnce", func(t *testing.T) {
		t.Parallel()
		b, ctx := setupRelay(t)
		c, password, err := b.creds.Create(ctx, b.tenantID, b.connector, "")
		require.NoError(t, err)
		row, err := b.creds.q.RelayCredentialGetByUsername(ctx, c.Username)
		require.NoError(t, err)
		// Every hash slot is taken while the logins start, so they all arrive before the
		// first hash is computed: a mail server opening many sessions at once.
		for range cap(b.creds.slots) {
			b.creds.slots <- struct{}{}
		}
		var wg sync.WaitGroup
		ok := make([]bool, 8)
		for i := range ok {
			wg.Go(func() {
				pw := password
				if i%2 == 1 {
					pw = "wrong"
				}
				var verr error
				ok[i], verr = b.creds.verify(ctx, row.PasswordHash, c.Username, pw)
				assert.NoError(t, verr)
			})
		}
		time.Sleep(200 * time.Millisecond)
		for range cap(b.creds.slots) {
			<-b.creds.slots
		}
		wg.Wait()
		for i := range ok {
			require.Equal(t, i%2 == 0, ok[i], "a wrong password never shares a right one's answer (login %d)", i)
		}
		require.Equal(t, int64(2), b.creds.hashes.Load(), "one hash for the four right logins, one for the four wrong ones")
	})
	t.Run("TenantAndConnectorScoped", func(t *testing.T) {
		t.Parallel()
		b, ctx := setupRelay(t)
		_, _, err := b.creds.Create(ctx, "ten_06h08583y1r596y07grz39yhqm", b.connector, "")
		require.ErrorIs(t, err, store.ErrNotFound, "another tenant cannot attach a credential to this connector")
		_, _, err = b.creds.Create(ctx, b.tenantID, "not-an-id", "")
		require.ErrorIs(t, err, store.ErrNotFound)
		c, _, err := b.creds.Create(ctx, b.tenantID, b.connector, "")
		require.NoError(t, err)
		_, err = b.creds.Revoke(ctx, "ten_06h08583y1r596y07grz39yhqm", b.connector, c.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		list, err := b.creds.List(ctx, "ten_06h08583y1r596y07grz39yhqm", b.connector, "", 10)
		require.NoError(t, err)
		require.Empty(t, list)
		_, _, err = b.creds.Create(ctx, b.tenantID, b.connector, "two\nlines")
		var ve *validate.Error
		require.ErrorAs(t, err, &ve)
		require.Equal(t, "name", ve.Fields[0].Field)
	})
}

func cacheKeyFor(t *testing.T, b *relayBundle, username, password string) [32]byte {
	t.Helper()
	row, err := b.creds.q.RelayCredentialGetByUsername(context.Background(), username)
	require.NoError(t, err)
	return sha256Key(row.PasswordHash, username, password)
}
