package reseal

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/dnscheck"
	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/secret"
	"github.com/sendwerk/sendwerk/internal/sendingdomain"
	"github.com/sendwerk/sendwerk/internal/tenant"
	"github.com/sendwerk/sendwerk/internal/webhook"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

const (
	keyOld     = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	keyNew     = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
	keyUnknown = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="
)

type testBundle struct {
	ctx        context.Context
	pool       *pgxpool.Pool
	connectors []string
	domains    []string
	dkimKeys   map[string][]byte // domain id -> the DER sealed under the old key
	webhook    string            // a webhook with a current and a previous signing secret
}

func mustBox(t *testing.T, keys ...string) *secret.Box {
	t.Helper()
	box, err := secret.NewBox(keys[0], keys[1:]...)
	require.NoError(t, err)
	return box
}

// setup stores five connectors with passwords, one without, two domains with DKIM keys and
// a webhook with two signing secrets, all sealed under keyOld, in a database of the test's own (re-sealing commits batches).
func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbtest.NewDatabase(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	b := &testBundle{ctx: ctx, pool: pool, dkimKeys: map[string][]byte{}}
	old := mustBox(t, keyOld)
	ten, err := tenant.NewService(pool).Create(ctx, "Acme", nil)
	require.NoError(t, err)
	conns := connector.NewService(pool, old, connector.Policy{AllowNoAuth: true, AllowPlaintext: true, AllowPrivateAddresses: true})
	for i := range 5 {
		c, err := conns.Create(ctx, ten.ID, connector.Input{Name: fmt.Sprintf("c%d", i), Kind: connector.KindSMTP,
			SMTP:   &connector.SMTPInput{Host: "smtp.example.com", Port: 587, Security: string(delivery.SecurityStartTLS), Username: ptr("u"), Password: ptr(fmt.Sprintf("password-%d", i))},
			Sender: connector.Sender{Email: "noreply@example.com"}})
		require.NoError(t, err)
		b.connectors = append(b.connectors, c.ID)
	}
	_, err = conns.Create(ctx, ten.ID, connector.Input{Name: "open", Kind: connector.KindSMTP,
		SMTP:   &connector.SMTPInput{Host: "127.0.0.1", Port: 25, Security: string(delivery.SecurityNone), AuthMechanism: ptr(string(delivery.AuthNone))},
		Sender: connector.Sender{Email: "noreply@example.com"}})
	require.NoError(t, err)

	resolver := dnscheck.NewResolver(&dnscheck.ResolverConfig{Servers: []string{"127.0.0.1:1"}, Timeout: 100 * time.Millisecond})
	domains, err := sendingdomain.NewService(pool, old, resolver, &sendingdomain.Config{KeyBits: 1024})
	require.NoError(t, err)
	for _, name := range []string{"a.example", "b.example"} {
		d, err := domains.Create(ctx, ten.ID, name)
		require.NoError(t, err)
		b.domains = append(b.domains, d.ID)
		b.dkimKeys[d.ID] = b.openDKIM(t, old, d.ID)
	}
	// A webhook in its rotation overlap: both secrets sealed, under the row's context.
	b.webhook = ids.New(ids.Webhook)
	curKey, cur := old.Seal([]byte("whsec_current"), webhook.SecretContext(b.webhook))
	prevKey, prev := old.Seal([]byte("whsec_previous"), webhook.SecretContext(b.webhook))
	_, err = pool.Exec(ctx, `INSERT INTO webhooks (id, tenant_id, url, secret, secret_key_id, previous_secret, previous_secret_key_id, previous_secret_expires_at)
		VALUES ($1, $2, 'https://hooks.example.com/sendwerk', $3, $4, $5, $6, now() + interval '1 day')`, b.webhook, ten.ID, cur, curKey, prev, prevKey)
	require.NoError(t, err)
	return b
}

func ptr[T any](v T) *T { return &v }

func (b *testBundle) openDKIM(t *testing.T, box *secret.Box, domainID string) []byte {
	t.Helper()
	var id, keyID string
	var ct []byte
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT id, private_key_id, private_key FROM sending_domain_dkim_keys WHERE domain_id = $1", domainID).Scan(&id, &keyID, &ct))
	der, err := box.Open(keyID, ct, sendingdomain.DKIMKeyContext(id))
	require.NoError(t, err)
	return der
}

// keyIDs counts the rows of each key id in a column.
func (b *testBundle) keyIDs(t *testing.T, c Column) map[string]int {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, fmt.Sprintf("SELECT %s, count(*) FROM %s WHERE %s IS NOT NULL GROUP BY 1", c.KeyID, c.Table, c.KeyID))
	require.NoError(t, err)
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		require.NoError(t, rows.Scan(&id, &n))
		out[id] = n
	}
	require.NoError(t, rows.Err())
	return out
}

func counts(reports []Report) map[string][3]int {
	out := map[string][3]int{}
	for _, r := range reports {
		out[r.Column.Name] = [3]int{r.Current, r.Resealed, r.Failed}
	}
	return out
}

func TestRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rotated := mustBox(t, keyNew, keyOld)
	oldID, newID := mustBox(t, keyOld).CurrentKeyID(), rotated.CurrentKeyID()

	t.Run("DryRunWritesNothing", func(t *testing.T) {
		reports, err := Run(b.ctx, b.pool, rotated, &Options{DryRun: true, BatchSize: 2})
		require.NoError(t, err)
		require.Equal(t, map[string][3]int{"connector SMTP passwords": {0, 5, 0}, "DKIM private keys": {0, 2, 0}, "webhook signing secrets": {0, 1, 0}, "previous webhook signing secrets (rotation overlap)": {0, 1, 0}}, counts(reports))
		require.Equal(t, map[string]int{oldID: 5}, b.keyIDs(t, Columns[0]))
		require.Equal(t, map[string]int{oldID: 2}, b.keyIDs(t, Columns[1]))
	})
	t.Run("ResumesAfterAnInterruption", func(t *testing.T) {
		ctx, cancel := context.WithCancel(b.ctx)
		_, err := Run(ctx, b.pool, rotated, &Options{BatchSize: 2, OnBatchFunc: func(Report) { cancel() }})
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, map[string]int{oldID: 3, newID: 2}, b.keyIDs(t, Columns[0]), "the first batch committed, no more")

		reports, err := Run(b.ctx, b.pool, rotated, &Options{BatchSize: 2})
		require.NoError(t, err)
		require.Equal(t, map[string][3]int{"connector SMTP passwords": {2, 3, 0}, "DKIM private keys": {0, 2, 0}, "webhook signing secrets": {0, 1, 0}, "previous webhook signing secrets (rotation overlap)": {0, 1, 0}}, counts(reports))
		require.Equal(t, map[string]int{newID: 5}, b.keyIDs(t, Columns[0]))
		require.Equal(t, map[string]int{newID: 2}, b.keyIDs(t, Columns[1]))
	})
	t.Run("Idempotent", func(t *testing.T) {
		reports, err := Run(b.ctx, b.pool, rotated, nil)
		require.NoError(t, err)
		require.Equal(t, map[string][3]int{"connector SMTP passwords": {5, 0, 0}, "DKIM private keys": {2, 0, 0}, "webhook signing secrets": {1, 0, 0}, "previous webhook signing secrets (rotation overlap)": {1, 0, 0}}, counts(reports))
	})
	t.Run("OpensWithTheNewKeyAlone", func(t *testing.T) {
		onlyNew := mustBox(t, keyNew)
		conns := connector.NewService(b.pool, onlyNew, connector.Policy{})
		var tenantID string
		require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT tenant_id FROM connectors WHERE id = $1", b.connectors[3]).Scan(&tenantID))
		c, err := conns.Get(b.ctx, tenantID, b.connectors[3])
		require.NoError(t, err)
		settings, err := conns.Settings(c)
		require.NoError(t, err)
		require.Equal(t, "password-3", settings.Password)
		for _, id := range b.domains {
			require.Equal(t, b.dkimKeys[id], b.openDKIM(t, onlyNew, id))
		}
		var cur, prev []byte
		var curKey, prevKey string
		require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT secret_key_id, secret, previous_secret_key_id, previous_secret FROM webhooks WHERE id = $1", b.webhook).
			Scan(&curKey, &cur, &prevKey, &prev))
		for want, sealed := range map[string]struct {
			key string
			ct  []byte
		}{"whsec_current": {curKey, cur}, "whsec_previous": {prevKey, prev}} {
			plain, err := onlyNew.Open(sealed.key, sealed.ct, webhook.SecretContext(b.webhook))
			require.NoError(t, err)
			require.Equal(t, want, string(plain))
		}
	})
}

func TestRunReportsSecretsNoKeyOpens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// One connector's password sealed under a key the process does not have.
	stranger := mustBox(t, keyUnknown)
	keyID, ct := stranger.Seal([]byte("x"), connector.PasswordContext(b.connectors[1]))
	_, err := b.pool.Exec(b.ctx, "UPDATE connectors SET smtp_password_key_id = $2, smtp_password_ciphertext = $3 WHERE id = $1", b.connectors[1], keyID, ct)
	require.NoError(t, err)

	rotated := mustBox(t, keyNew, keyOld)
	reports, err := Run(b.ctx, b.pool, rotated, &Options{BatchSize: 2})
	require.NoError(t, err)
	require.Equal(t, [3]int{0, 4, 1}, counts(reports)["connector SMTP passwords"], "the others are re-sealed")
	require.Equal(t, []string{b.connectors[1]}, reports[0].FailedIDs)
	require.Equal(t, map[string]int{rotated.CurrentKeyID(): 4, keyID: 1}, b.keyIDs(t, Columns[0]))
}

// TestColumnsCoverSchema fails when a migration adds a sealed secret (a *_key_id column
// naming the key that sealed a value) that Columns does not re-seal.
func TestColumnsCoverSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := dbtest.TestTx(ctx, t)
	rows, err := tx.Query(ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND column_name LIKE '%\_key\_id' AND column_name NOT LIKE '%api\_key\_id'`)
	require.NoError(t, err)
	var found []string
	for rows.Next() {
		var table, column string
		require.NoError(t, rows.Scan(&table, &column))
		found = append(found, table+"."+column)
	}
	require.NoError(t, rows.Err())
	var listed []string
	for _, c := range Columns {
		listed = append(listed, c.Table+"."+c.KeyID)
	}
	require.ElementsMatch(t, listed, found)
}
