package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/store"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// TestCommitLostIsAmbiguous: when the connection dies between the statements and the
// COMMIT's answer, WithTx says the outcome is unknown — the caller must not claim either.
func TestCommitLostIsAmbiguous(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	err := store.WithTx(ctx, pool, func(tx pgx.Tx) error {
		var pid int
		if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			return err
		}
		other, err := pgx.Connect(ctx, pool.Config().ConnString())
		if err != nil {
			return err
		}
		defer other.Close(ctx)
		_, err = other.Exec(ctx, "SELECT pg_terminate_backend($1)", pid)
		return err
	})
	ue, ok := store.AsUnavailable(err)
	require.True(t, ok, "%v", err)
	require.True(t, ue.Ambiguous, "%v", err)
}

// TestStatementConnectionLost: a connection lost before COMMIT is unavailable, and not ambiguous.
func TestStatementConnectionLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	err := store.WithTx(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT pg_terminate_backend(pg_backend_pid())")
		return err
	})
	ue, ok := store.AsUnavailable(err)
	require.True(t, ok, "%v", err)
	require.False(t, ue.Ambiguous)
}

func TestAsUnavailable(t *testing.T) {
	t.Parallel()
	for name, err := range map[string]error{
		"AdminShutdown":  &pgconn.PgError{Code: "57P01"},
		"ConnectionLost": fmt.Errorf("error listing: %w", &pgconn.PgError{Code: "08006"}),
		"UnexpectedEOF":  fmt.Errorf("error reading: %w", io.ErrUnexpectedEOF),
		"ConnClosed":     fmt.Errorf("error: %w", pgconn.ErrConnClosed),
	} {
		_, ok := store.AsUnavailable(err)
		require.True(t, ok, name)
	}
	for name, err := range map[string]error{
		"Unique":   &pgconn.PgError{Code: "23505"},
		"NotFound": store.ErrNotFound,
		"Plain":    errors.New("boom"),
		"Nil":      nil,
	} {
		_, ok := store.AsUnavailable(err)
		require.False(t, ok, name)
	}
}
