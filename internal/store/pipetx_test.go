package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/store"
)

func pipeSetup(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := dbtest.NewPool(t)
	_, err := pool.Exec(context.Background(), `CREATE TABLE items (id int PRIMARY KEY)`)
	require.NoError(t, err)
	return pool
}

func items(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM items").Scan(&n))
	return n
}

func TestPipeTx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("QueuedStatementsRunInOrderAndCommit", func(t *testing.T) {
		t.Parallel()
		pool := pipeSetup(t)
		var seen int
		err := store.WithPipeTx(ctx, pool, func(tx pgx.Tx) error {
			for i := 1; i <= 3; i++ {
				if _, err := tx.Exec(ctx, "INSERT INTO items VALUES ($1)", i); err != nil {
					return err
				}
			}
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&seen); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO items VALUES (4)")
			return err
		})
		require.NoError(t, err)
		require.Equal(t, 3, seen, "a query sees the statements queued before it")
		require.Equal(t, 4, items(t, pool))
	})

	t.Run("AQueuedFailureFailsTheCommitAndLeavesNothing", func(t *testing.T) {
		t.Parallel()
		pool := pipeSetup(t)
		err := store.WithPipeTx(ctx, pool, func(tx pgx.Tx) error {
			_, _ = tx.Exec(ctx, "INSERT INTO items VALUES (1)")
			_, err := tx.Exec(ctx, "INSERT INTO items VALUES (1)") // queued: no error yet
			return err
		})
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), "the duplicate surfaces at the COMMIT: %v", err)
		require.Equal(t, "23505", pgErr.Code)
		_, unavailable := store.AsUnavailable(err)
		require.False(t, unavailable, "a statement's failure is not an ambiguous commit")
		require.Zero(t, items(t, pool), "the COMMIT behind the failed statement did not run")
	})

	t.Run("AFailedQueryRollsBack", func(t *testing.T) {
		t.Parallel()
		pool := pipeSetup(t)
		err := store.WithPipeTx(ctx, pool, func(tx pgx.Tx) error {
			_, _ = tx.Exec(ctx, "INSERT INTO items VALUES (1)")
			var n int
			return tx.QueryRow(ctx, "SELECT 1/0").Scan(&n)
		})
		require.Error(t, err)
		require.Zero(t, items(t, pool))
		// The connection went back usable: the pool is not left inside a transaction.
		for range 3 {
			require.NoError(t, store.WithPipeTx(ctx, pool, func(tx pgx.Tx) error {
				var status string
				return tx.QueryRow(ctx, "SELECT 'ok'").Scan(&status)
			}))
		}
	})

	t.Run("AFailedCommitGivesTheConnectionBack", func(t *testing.T) {
		t.Parallel()
		pool := pipeSetup(t)
		tx, err := store.BeginPipe(ctx, pool)
		require.NoError(t, err)
		_, _ = tx.Exec(ctx, "INSERT INTO items VALUES (1)")
		_, _ = tx.Exec(ctx, "INSERT INTO items VALUES (1)")
		require.Error(t, tx.Commit(ctx)) // no Rollback after it, as pgx's Commit allows
		require.Zero(t, pool.Stat().AcquiredConns(), "the connection is back in the pool")
		require.ErrorIs(t, tx.Rollback(ctx), pgx.ErrTxClosed)
		require.Zero(t, items(t, pool))
	})

	t.Run("AFailedBatchFailsTheTransaction", func(t *testing.T) {
		t.Parallel()
		pool := pipeSetup(t)
		tx, err := store.BeginPipe(ctx, pool)
		require.NoError(t, err)
		b := &pgx.Batch{}
		b.Queue("INSERT INTO items VALUES (1)")
		b.Queue("SELECT 1/0")
		require.Error(t, tx.SendBatch(ctx, b).Close())
		_, err = tx.Exec(ctx, "INSERT INTO items VALUES (2)")
		require.Error(t, err, "the transaction refuses statements after its batch failed")
		require.Error(t, tx.Commit(ctx))
		require.Zero(t, pool.Stat().AcquiredConns())
		require.Zero(t, items(t, pool))
	})

	t.Run("RollbackUndoesSentStatements", func(t *testing.T) {
		t.Parallel()
		pool := pipeSetup(t)
		tx, err := store.BeginPipe(ctx, pool)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "INSERT INTO items VALUES (1)")
		require.NoError(t, err)
		var n int
		require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n))
		require.Equal(t, 1, n)
		require.NoError(t, tx.Rollback(ctx))
		require.Zero(t, items(t, pool))
		require.ErrorIs(t, tx.Commit(ctx), pgx.ErrTxClosed)
	})
}
