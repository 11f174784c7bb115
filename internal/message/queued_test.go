package message

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// writeTracer records which statements wrote the timeline and the stream, and which tables
// were written by COPY.
type writeTracer struct {
	mu     sync.Mutex
	writes []string // per statement: the tables among message_events and events it inserts into
	copies []string
	// lookups counts the statements that read the suppression list.
	lookups int
}

func (w *writeTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	w.statement(d.SQL)
	return ctx
}

func (w *writeTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Statements of a pipelined transaction (store.PipeTx) go out in batches.
func (w *writeTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (w *writeTracer) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	w.statement(d.SQL)
}

func (w *writeTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (w *writeTracer) statement(sql string) {
	if strings.Contains(sql, "FROM suppressions") {
		w.mu.Lock()
		w.lookups++
		w.mu.Unlock()
	}
	var tables []string
	for _, t := range []string{"message_events", "events"} {
		if strings.Contains(sql, "INSERT INTO "+t+" ") {
			tables = append(tables, t)
		}
	}
	if len(tables) > 0 {
		w.mu.Lock()
		w.writes = append(w.writes, strings.Join(tables, "+"))
		w.mu.Unlock()
	}
}

func (w *writeTracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceCopyFromStartData) context.Context {
	w.mu.Lock()
	w.copies = append(w.copies, d.TableName.Sanitize())
	w.mu.Unlock()
	return ctx
}

func (w *writeTracer) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

// tracedPool is a second pool on pool's database whose statements a writeTracer records.
func tracedPool(t *testing.T, pool *pgxpool.Pool) (*pgxpool.Pool, *writeTracer) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(pool.Config().ConnString())
	require.NoError(t, err)
	tr := &writeTracer{}
	cfg.ConnConfig.Tracer = tr
	traced, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(traced.Close)
	return traced, tr
}

// TestSubmitWritesQueuedStepsInOneStatement: a submission's `queued` timeline step and its
// message.queued stream event are written by one statement, for a batch as for a single
// message (two COPYs were four round trips and two statements parsed per group), and both
// still say what they said.
func TestSubmitWritesQueuedStepsInOneStatement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	setupTraced := func(t *testing.T) (*testBundle, *Service, *writeTracer) {
		b := setup(t)
		pool, tr := tracedPool(t, b.pool)
		return b, NewService(pool, b.svc.jobs, b.svc.connectors, noSenders{}, b.svc.deliverer, Config{}), tr
	}
	queued := func(t *testing.T, b *testBundle, ids []string) {
		t.Helper()
		var got []string
		rows, err := b.pool.Query(ctx, `SELECT message_id FROM events WHERE tenant_id = $1 AND type = 'message.queued' ORDER BY sequence`, b.tenantID)
		require.NoError(t, err)
		got, err = pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Equal(t, ids, got, "one message.queued per message, in submission order")
		for _, id := range ids {
			var n, recipients int
			require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*), max((data->>'recipients')::int) FROM message_events
				WHERE tenant_id = $1 AND message_id = $2 AND type = 'queued'`, b.tenantID, id).Scan(&n, &recipients))
			require.Equal(t, 1, n, "message %s has its queued step", id)
			require.Equal(t, 1, recipients, "the step keeps its data")
		}
	}

	t.Run("Batch", func(t *testing.T) {
		t.Parallel()
		b, svc, tr := setupTraced(t)
		items, _, err := svc.SubmitBatch(ctx, b.tenantID, []*Request{request(), request(), request()}, nil)
		require.NoError(t, err)
		var ids []string
		for _, it := range items {
			require.NotNil(t, it.Accepted)
			ids = append(ids, it.Accepted.ID)
		}
		require.Equal(t, []string{`"messages"`}, tr.copies, "only the messages are copied")
		require.Equal(t, []string{"message_events+events"}, tr.writes)
		queued(t, b, ids)
	})
	t.Run("Single", func(t *testing.T) {
		t.Parallel()
		b, svc, tr := setupTraced(t)
		acc, _, err := svc.Submit(ctx, b.tenantID, request(), nil)
		require.NoError(t, err)
		require.Equal(t, []string{"message_events+events"}, tr.writes)
		queued(t, b, []string{acc.ID})
	})
}
