// Package store owns the PostgreSQL pool, transactions, migrations and the mapping of driver
// errors to domain sentinels. The sqlc output lives in store/dbsqlc and never leaves the
// domain packages.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// ErrNotFound is what every lookup returns when the row does not exist for the caller —
// including rows that exist but belong to another tenant.
var ErrNotFound = errors.New("not found")

// ErrConflict is a unique-constraint violation.
var ErrConflict = errors.New("conflict")

// PoolConfig sizes the pool.
type PoolConfig struct {
	MaxConns int32
}

// NewPool opens a pgx pool and checks the database answers.
func NewPool(ctx context.Context, url string, cfg *PoolConfig) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors can echo the URL, password included: keep only the gist.
		return nil, errors.New("error parsing database URL: check its syntax (postgres://user:password@host:port/db)")
	}
	if cfg != nil && cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("error opening database pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("error connecting to database: %w", err)
	}
	return pool, nil
}

// Beginner is what WithTx needs: a pool, or a transaction (tests nest inside one).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// WithTx runs fn in a transaction, committing when fn returns nil and rolling back otherwise.
func WithTx(ctx context.Context, db Beginner, fn func(tx pgx.Tx) error) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("error beginning transaction: %w", classify(err))
	}
	defer func() {
		if rbErr := tx.Rollback(ctx); rbErr != nil && !errors.Is(rbErr, pgx.ErrTxClosed) {
			slog.WarnContext(ctx, "error rolling back transaction", "error", rbErr)
		}
	}()
	if err := fn(tx); err != nil {
		return classify(err)
	}
	if err := tx.Commit(ctx); err != nil {
		if ue, ok := AsUnavailable(err); ok {
			// COMMIT was sent; whether PostgreSQL applied it before the connection went is
			// unknown.
			return fmt.Errorf("error committing transaction: %w", &UnavailableError{Ambiguous: true, Err: ue.Err})
		}
		return fmt.Errorf("error committing transaction: %w", err)
	}
	return nil
}

// classify wraps a connection-class error in an *UnavailableError and leaves others alone.
func classify(err error) error {
	var ue *UnavailableError
	if errors.As(err, &ue) {
		return err
	}
	if u, ok := AsUnavailable(err); ok {
		return u
	}
	return err
}

// MapError turns driver errors into the package's sentinels and leaves others alone.
func MapError(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("%w: %s", ErrConflict, pgErr.ConstraintName)
	}
	return err
}

// DB is a pool or a transaction: what services need to query and to open (nested)
// transactions. Tests pass a transaction that is rolled back at the end.
type DB interface {
	dbsqlc.DBTX
	Begin(ctx context.Context) (pgx.Tx, error)
}
