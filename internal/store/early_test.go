package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/store"
)

// earlySetup is a fresh database with a counter row, and a deferred trigger that runs
// atCommit at the COMMIT of any change to it.
func earlySetup(t *testing.T, atCommit string) *pgxpool.Pool {
	t.Helper()
	pool := dbtest.NewPool(t)
	_, err := pool.Exec(context.Background(), `CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL, at timestamptz, tags text[]);
		INSERT INTO counters VALUES (1, 0, NULL, '{}');
		CREATE FUNCTION at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN `+atCommit+`; RETURN NULL; END $$;
		CREATE CONSTRAINT TRIGGER at_commit AFTER UPDATE ON counters DEFERRABLE INITIALLY DEFERRED
			FOR EACH ROW EXECUTE FUNCTION at_commit()`)
	require.NoError(t, err)
	return pool
}

const bumpSQL = "UPDATE counters SET n = n + $2, at = now(), tags = tags || $3::text[] WHERE id = $1 RETURNING n, at, tags"

func counter(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT n FROM counters WHERE id = 1").Scan(&n))
	return n
}

func TestEarly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RowArrivesBeforeTheCommit", func(t *testing.T) {
		t.Parallel()
		pool := earlySetup(t, "PERFORM pg_sleep(0.5)")
		for i := 1; i <= 2; i++ { // the second runs the statement prepared by the first
			e, err := store.BeginEarly(ctx, pool)
			require.NoError(t, err)
			t.Cleanup(func() { _ = e.Commit() })
			start := time.Now()
			var n int
			var at time.Time
			var tags []string
			require.NoError(t, e.QueryRow(ctx, bumpSQL, 1, 1, []string{"x"}).Scan(&n, &at, &tags))
			require.Less(t, time.Since(start), 400*time.Millisecond, "the row came before the COMMIT's half second")
			require.Equal(t, i, n)
			require.False(t, at.IsZero())
			require.Len(t, tags, i)
			require.Equal(t, i-1, counter(t, pool), "not yet committed")
			require.NoError(t, e.Commit())
			require.GreaterOrEqual(t, time.Since(start), 500*time.Millisecond)
			require.Equal(t, i, counter(t, pool), "committed")
		}
	})

	t.Run("FailedCommit", func(t *testing.T) {
		t.Parallel()
		// One connection, so what follows the failed COMMIT runs on the same connection.
		cfg := earlySetup(t, "RAISE EXCEPTION 'refused at commit'").Config()
		cfg.MaxConns = 1
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		e, err := store.BeginEarly(ctx, pool)
		require.NoError(t, err)
		t.Cleanup(func() { _ = e.Commit() }) // a failed test still gives the connection back
		var n int
		var at time.Time
		var tags []string
		require.NoError(t, e.QueryRow(ctx, bumpSQL, 1, 1, []string{"x"}).Scan(&n, &at, &tags))
		require.Equal(t, 1, n, "the statement ran")
		require.ErrorContains(t, e.Commit(), "refused at commit")
		require.Equal(t, 0, counter(t, pool), "nothing committed, and the connection went back usable")
		e, err = store.BeginEarly(ctx, pool)
		require.NoError(t, err)
		require.NoError(t, e.QueryRow(ctx, bumpSQL, 1, 1, []string{"y"}).Scan(&n, &at, &tags))
		require.Equal(t, 1, n, "the next statement on it runs")
		require.ErrorContains(t, e.Commit(), "refused at commit")
	})

	t.Run("NoRowAndFailedStatement", func(t *testing.T) {
		t.Parallel()
		pool := earlySetup(t, "NULL")
		e, err := store.BeginEarly(ctx, pool)
		require.NoError(t, err)
		t.Cleanup(func() { _ = e.Commit() }) // a failed test still gives the connection back
		var n int
		var at time.Time
		var tags []string
		require.ErrorIs(t, e.QueryRow(ctx, bumpSQL, 2, 1, []string{}).Scan(&n, &at, &tags), pgx.ErrNoRows)
		require.NoError(t, e.Commit())

		e, err = store.BeginEarly(ctx, pool)
		require.NoError(t, err)
		t.Cleanup(func() { _ = e.Commit() })
		require.ErrorContains(t, e.QueryRow(ctx, "UPDATE counters SET n = n / $1 WHERE id = 1 RETURNING n", 0).Scan(&n), "division by zero")
		_ = e.Commit()
		require.Equal(t, 0, counter(t, pool))

		// A statement prepared before a schema change fails once; it is then prepared anew.
		cfg := pool.Config()
		cfg.MaxConns = 1
		one, err := pgxpool.NewWithConfig(ctx, cfg)
		require.NoError(t, err)
		t.Cleanup(one.Close)
		for i := range 3 {
			e, err = store.BeginEarly(ctx, one)
			require.NoError(t, err)
			t.Cleanup(func() { _ = e.Commit() })
			if i == 1 {
				_, err = pool.Exec(ctx, "ALTER TABLE counters ALTER COLUMN n TYPE bigint")
				require.NoError(t, err)
			}
			err = e.QueryRow(ctx, bumpSQL, 1, 1, []string{}).Scan(&n, &at, &tags)
			require.NoError(t, e.Commit())
			if i == 2 {
				require.NoError(t, err, "prepared afresh after the failure")
			}
		}
	})

	t.Run("LostConnectionAtCommitIsAmbiguous", func(t *testing.T) {
		t.Parallel()
		pool := earlySetup(t, "PERFORM pg_sleep(5)")
		e, err := store.BeginEarly(ctx, pool)
		require.NoError(t, err)
		t.Cleanup(func() { _ = e.Commit() }) // a failed test still gives the connection back
		var pid int
		require.NoError(t, e.QueryRow(ctx, "UPDATE counters SET n = n + 1 WHERE id = 1 RETURNING pg_backend_pid()").Scan(&pid))
		_, err = pool.Exec(ctx, "SELECT pg_terminate_backend($1)", pid)
		require.NoError(t, err)
		ue, ok := store.AsUnavailable(e.Commit())
		require.True(t, ok)
		require.True(t, ue.Ambiguous)
		require.Equal(t, 0, counter(t, pool))
	})
}
