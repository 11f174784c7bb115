package tenant

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// owned writes, for tenantID, a message with its three timeline rows and two stream
// events, a connector event, and a webhook with a delivery of one of the events; it
// returns the message's id.
func owned(ctx context.Context, t *testing.T, q dbsqlc.DBTX, tenantID string) string {
	t.Helper()
	msgID, evtID, hookID := ids.New(ids.Message), ids.New(ids.Event), ids.New("whk")
	stmts := []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO messages (id, tenant_id, connector_id, source, status, from_email, envelope_from, recipients, message_id, size_bytes)
		  VALUES ($1, $2, 'con_x', 'api', 'delivered', 'a@example.com', 'a@example.com', '{b@example.net}', '<m@example.com>', 10)`, []any{msgID, tenantID}},
		{`INSERT INTO message_events (message_id, tenant_id, type) SELECT $1, $2, t FROM unnest('{queued,attempt,delivered}'::text[]) t`, []any{msgID, tenantID}},
		{`INSERT INTO events (id, tenant_id, type, message_id) VALUES ($1, $2, 'message.queued', $3), ($4, $2, 'message.delivered', $3)`, []any{evtID, tenantID, msgID, ids.New(ids.Event)}},
		{`INSERT INTO events (id, tenant_id, type, connector_id) VALUES ($1, $2, 'connector.paused', 'con_x')`, []any{ids.New(ids.Event), tenantID}},
		{`INSERT INTO webhooks (id, tenant_id, url, secret, secret_key_id) VALUES ($1, $2, 'https://example.com/hook', '\x00', 'k')`, []any{hookID, tenantID}},
		{`INSERT INTO webhook_deliveries (id, tenant_id, webhook_id, event_id, event_type, status) VALUES ($1, $2, $3, $4, 'message.queued', 'pending')`, []any{ids.New("whd"), tenantID, hookID, evtID}},
	}
	for _, s := range stmts {
		_, err := q.Exec(ctx, s.sql, s.args...)
		require.NoError(t, err)
	}
	return msgID
}

// ownedRows counts the rows of tenantID's messages, timelines, stream and webhook deliveries.
func ownedRows(ctx context.Context, t *testing.T, q dbsqlc.DBTX, tenantID string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"messages", "message_events", "events", "webhook_deliveries"} {
		var n int
		require.NoError(t, q.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE tenant_id = $1", tenantID).Scan(&n))
		out[table] = n
	}
	return out
}

func TestDelete(t *testing.T) {
	t.Parallel()

	t.Run("RemovesStreamAndTimelines", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		tx := dbtest.TestTx(ctx, t)
		svc := NewService(tx)
		gone, err := svc.Create(ctx, "Gone", nil)
		require.NoError(t, err)
		kept, err := svc.Create(ctx, "Kept", nil)
		require.NoError(t, err)
		for range 2 {
			owned(ctx, t, tx, gone.ID)
			owned(ctx, t, tx, kept.ID)
		}
		want := map[string]int{"messages": 2, "message_events": 6, "events": 6, "webhook_deliveries": 2}
		require.Equal(t, want, ownedRows(ctx, t, tx, gone.ID))

		require.NoError(t, svc.Delete(ctx, gone.ID))
		require.Equal(t, map[string]int{"messages": 0, "message_events": 0, "events": 0, "webhook_deliveries": 0}, ownedRows(ctx, t, tx, gone.ID))
		require.Equal(t, want, ownedRows(ctx, t, tx, kept.ID), "another tenant's rows stay")
		require.ErrorIs(t, svc.Delete(ctx, gone.ID), store.ErrNotFound)
	})

	// WaitsForAWriterHoldingAMessage: a transaction that holds one of the tenant's messages
	// (a claim or an outcome) and writes its timeline and stream commits before the
	// deletion's cascade can take the row, and the deletion still removes what it wrote;
	// a writer joined to the message afterwards finds nothing to write for.
	t.Run("WaitsForAWriterHoldingAMessage", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		pool := dbtest.NewPool(t)
		svc := NewService(pool)
		ten, err := svc.Create(ctx, "Acme", nil)
		require.NoError(t, err)
		msgID := owned(ctx, t, pool, ten.ID)

		writer, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = writer.Rollback(ctx) }()
		_, err = writer.Exec(ctx, "UPDATE messages SET status = 'sending' WHERE tenant_id = $1 AND id = $2", ten.ID, msgID)
		require.NoError(t, err)
		_, err = writer.Exec(ctx, "INSERT INTO message_events (message_id, tenant_id, type) VALUES ($1, $2, 'attempt')", msgID, ten.ID)
		require.NoError(t, err)
		_, err = writer.Exec(ctx, "INSERT INTO events (id, tenant_id, type, message_id) VALUES ($1, $2, 'message.deferred', $3)", ids.New(ids.Event), ten.ID, msgID)
		require.NoError(t, err)

		deleted := make(chan error, 1)
		go func() { deleted <- svc.Delete(ctx, ten.ID) }()
		require.Eventually(t, func() bool {
			var waiting bool
			err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%DELETE FROM tenants%')").Scan(&waiting)
			return err == nil && waiting
		}, 5*time.Second, 10*time.Millisecond, "the deletion waits for the writer's message row")
		require.NoError(t, writer.Commit(ctx))
		select {
		case err := <-deleted:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("the deletion did not finish")
		}
		require.Equal(t, map[string]int{"messages": 0, "message_events": 0, "events": 0, "webhook_deliveries": 0}, ownedRows(ctx, t, pool, ten.ID))

		tag, err := pool.Exec(ctx, "INSERT INTO message_events (message_id, tenant_id, type) SELECT id, tenant_id, 'attempt' FROM messages WHERE tenant_id = $1 AND id = $2", ten.ID, msgID)
		require.NoError(t, err)
		require.Zero(t, tag.RowsAffected())
	})
}
