package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// statementCounter reads how many statements PostgreSQL has executed in the benchmark's
// database (pg_stat_statements, top-level statements), so a run can report statements per
// message: the hot path's shape, which CPU figures alone do not show.
type statementCounter struct {
	conn *pgx.Conn
}

func newStatementCounter(ctx context.Context, url string) (*statementCounter, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("error loading pg_stat_statements (Debian: postgresql-contrib): %w", err)
	}
	return &statementCounter{conn: conn}, nil
}

// calls is the number of statements run so far in this database, less the counter's own.
func (s *statementCounter) calls(ctx context.Context) (int64, error) {
	var n int64
	err := s.conn.QueryRow(ctx, `SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE '%pg_stat_statements%'`).Scan(&n)
	return n, err
}

// perMessage runs f and returns the statements it caused per message (n messages); 0 when
// the counts cannot be read.
func (s *statementCounter) perMessage(ctx context.Context, n int, f func() error) (float64, error) {
	before, errBefore := s.calls(ctx)
	if err := f(); err != nil {
		return 0, err
	}
	after, errAfter := s.calls(ctx)
	if errBefore != nil || errAfter != nil || n == 0 {
		progress("  could not read pg_stat_statements: %v %v", errBefore, errAfter)
		return 0, nil
	}
	return float64(after-before) / float64(n), nil
}

func (s *statementCounter) close() { _ = s.conn.Close(context.Background()) }
