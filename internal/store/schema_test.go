package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dbtest"
)

// TestSchemaWriteCosts pins the schema choices that keep PostgreSQL's work per message
// down (issue 13); each was measured, and none may come back unnoticed.
func TestSchemaWriteCosts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("MessageBodiesCompressWithLZ4", func(t *testing.T) {
		t.Parallel()
		tx := dbtest.TestTx(ctx, t)
		if !hasLZ4(ctx, t, tx) {
			t.Skip("this PostgreSQL has no lz4; the migration keeps pglz")
		}
		_, err := tx.Exec(ctx, `INSERT INTO tenants (id, name) VALUES ('ten_lz4', 'lz4')`)
		require.NoError(t, err)
		body := strings.Repeat("Subject: hello\r\nContent-Type: text/plain\r\n\r\nA line of a message body.\r\n", 60)
		_, err = tx.Exec(ctx, `INSERT INTO messages (id, tenant_id, connector_id, source, status, from_email, envelope_from,
			recipients, message_id, mime, size_bytes) VALUES ('msg_lz4', 'ten_lz4', 'con_x', 'api', 'queued', 'a@b.example',
			'a@b.example', '{c@d.example}', '<x@b.example>', $1, $2)`, []byte(body), len(body))
		require.NoError(t, err)
		var method *string
		require.NoError(t, tx.QueryRow(ctx, `SELECT pg_column_compression(mime) FROM messages WHERE id = 'msg_lz4'`).Scan(&method))
		require.NotNil(t, method, "a %d-byte body makes the row large enough to be compressed", len(body))
		require.Equal(t, "lz4", *method)
	})

	t.Run("TimelinesHaveOnlyTheirTenantMessageIndex", func(t *testing.T) {
		t.Parallel()
		tx := dbtest.TestTx(ctx, t)
		var names []string
		require.NoError(t, tx.QueryRow(ctx, `SELECT array_agg(indexname::text ORDER BY indexname) FROM pg_indexes
			WHERE schemaname = current_schema() AND tablename = 'message_events'`).Scan(&names))
		require.Equal(t, []string{"message_events_tenant_message_idx"}, names,
			"each timeline row pays for every index; the identity primary key was read by no query")
	})

	t.Run("AnalyzeIsCheapOnTheLogTables", func(t *testing.T) {
		t.Parallel()
		tx := dbtest.TestTx(ctx, t)
		rows, err := tx.Query(ctx, `SELECT c.relname || '.' || a.attname, a.attstattarget
			FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
			WHERE c.relnamespace = current_schema()::regnamespace AND c.relname IN ('messages', 'message_events', 'events', 'river_job')
			AND a.attnum > 0 AND NOT a.attisdropped AND a.attstattarget >= 0`)
		require.NoError(t, err)
		targets, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
			var col string
			var target int
			err := r.Scan(&col, &target)
			return fmt.Sprintf("%s=%d", col, target), err
		})
		require.NoError(t, err)
		require.ElementsMatch(t, []string{
			"events.data=0", "message_events.data=0", "messages.last_reply=0", "messages.metadata=0", "messages.mime=0",
			"river_job.args=0", "river_job.metadata=0", "river_job.errors=0",
			"events.id=10", "events.tenant_id=10", "events.type=10", "events.created_at=10", "events.sequence=10", "events.xid=10",
			"events.message_id=10", "events.domain_id=10", "events.connector_id=10", "events.webhook_id=10",
			"message_events.id=10", "message_events.message_id=10", "message_events.tenant_id=10", "message_events.type=10", "message_events.at=10",
		}, targets, "autovacuum's ANALYZE of the tables every message writes spent most of its CPU on payload statistics no query uses, "+
			"and on the log tables' 30,000-row samples; a new column of events or message_events needs its target too")
	})
}

// hasLZ4 reports whether the server was built with lz4, probing in a savepoint.
func hasLZ4(ctx context.Context, t *testing.T, tx pgx.Tx) bool {
	t.Helper()
	sp, err := tx.Begin(ctx)
	require.NoError(t, err)
	_, err = sp.Exec(ctx, `CREATE TEMP TABLE lz4_probe (b bytea COMPRESSION lz4)`)
	require.NoError(t, sp.Rollback(ctx))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "0A000" { // feature_not_supported
		return false
	}
	require.NoError(t, err)
	return true
}
