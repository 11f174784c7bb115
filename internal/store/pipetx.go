package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PipeTx is a transaction whose statements go to PostgreSQL in as few round trips as their
// results allow: BEGIN waits for the first statement, an Exec (whose rows nobody reads) is
// queued, and each Query, QueryRow, CopyFrom or the COMMIT sends everything queued before
// it in one write, as one pgx batch. A submission (job insert, message, its events, usage
// counters) thus takes three round trips instead of one per statement.
//
// The price: a queued Exec's failure surfaces at the next statement that is sent (or at
// the COMMIT), and Exec's command tag is empty, so only statements whose tag nobody reads
// (sqlc :exec) may be run with Exec. Nothing is committed before Commit: its batch ends
// with the COMMIT, and PostgreSQL skips the COMMIT when a statement before it failed.
type PipeTx struct {
	conn *pgxpool.Conn
	// begun is set once BEGIN went out; queued holds Execs not yet sent.
	begun  bool
	queued []*pgx.QueuedQuery
	// err is the first failure: the transaction is aborted and refuses further statements.
	err error
}

var _ pgx.Tx = (*PipeTx)(nil)

// errPipeClosed is any use after Commit or Rollback.
var errPipeClosed = pgx.ErrTxClosed

// BeginPipe takes a connection from pool for a PipeTx; BEGIN goes out with its first
// statement.
func BeginPipe(ctx context.Context, pool *pgxpool.Pool) (*PipeTx, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("error acquiring connection: %w", classify(err))
	}
	return &PipeTx{conn: conn}, nil
}

// WithPipeTx is WithTx on a PipeTx when db is a pool; on anything else (a test's
// transaction) it is WithTx.
func WithPipeTx(ctx context.Context, db Beginner, fn func(tx pgx.Tx) error) error {
	pool, ok := db.(*pgxpool.Pool)
	if !ok {
		return WithTx(ctx, db, fn)
	}
	return WithTx(ctx, pipeBeginner{pool}, fn)
}

type pipeBeginner struct{ pool *pgxpool.Pool }

func (b pipeBeginner) Begin(ctx context.Context) (pgx.Tx, error) { return BeginPipe(ctx, b.pool) }

// Exec queues the statement; it goes out with the next one whose result is read.
func (t *PipeTx) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.usable(); err != nil {
		return pgconn.CommandTag{}, err
	}
	t.queued = append(t.queued, &pgx.QueuedQuery{SQL: sql, Arguments: args})
	return pgconn.CommandTag{}, nil
}

// Query sends what is queued and the statement, and returns its rows.
func (t *PipeTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	br, err := t.send(ctx, &pgx.QueuedQuery{SQL: sql, Arguments: args})
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		t.fail(err)
		return nil, err
	}
	return &pipeRows{Rows: rows, t: t, br: br}, nil
}

// QueryRow is Query for one row.
func (t *PipeTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := t.Query(ctx, sql, args...)
	return pipeRow{rows: rows, err: err}
}

// SendBatch sends what is queued ahead of b.
func (t *PipeTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	br, err := t.send(ctx, b.QueuedQueries...)
	if err != nil {
		return errBatch{err}
	}
	return &pipeBatch{BatchResults: br, t: t}
}

// pipeBatch fails the transaction on the first error of a batch's statements, as Query
// does (PostgreSQL has aborted it either way).
type pipeBatch struct {
	pgx.BatchResults
	t *PipeTx
}

func (b *pipeBatch) Exec() (pgconn.CommandTag, error) {
	tag, err := b.BatchResults.Exec()
	b.failed(err)
	return tag, err
}

func (b *pipeBatch) Query() (pgx.Rows, error) {
	rows, err := b.BatchResults.Query()
	b.failed(err)
	return rows, err
}

func (b *pipeBatch) Close() error {
	err := b.BatchResults.Close()
	b.failed(err)
	return err
}

func (b *pipeBatch) failed(err error) {
	if err != nil {
		b.t.fail(err)
	}
}

// CopyFrom sends what is queued, then copies.
func (t *PipeTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.flush(ctx); err != nil {
		return 0, err
	}
	n, err := t.conn.Conn().CopyFrom(ctx, table, columns, src)
	if err != nil {
		t.fail(err)
	}
	return n, err
}

// Prepare sends what is queued, then prepares.
func (t *PipeTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	d, err := t.conn.Conn().Prepare(ctx, name, sql)
	if err != nil {
		t.fail(err)
	}
	return d, err
}

// Begin is refused: a PipeTx has no savepoints.
func (t *PipeTx) Begin(context.Context) (pgx.Tx, error) {
	return nil, errors.New("store: PipeTx has no savepoints")
}

// LargeObjects is not supported.
func (t *PipeTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

// Conn is the transaction's connection.
func (t *PipeTx) Conn() *pgx.Conn {
	if t.conn == nil {
		return nil
	}
	return t.conn.Conn()
}

// Commit sends what is queued with the COMMIT behind it and gives the connection back,
// also when it fails (after a ROLLBACK), as pgx's own transactions do. A transaction that
// never sent a statement commits without a round trip.
func (t *PipeTx) Commit(ctx context.Context) error {
	if err := t.usable(); err != nil {
		if t.conn != nil {
			_ = t.Rollback(ctx)
		}
		return err
	}
	if !t.begun && len(t.queued) == 0 {
		t.release()
		return nil
	}
	if err := t.commit(ctx); err != nil {
		_ = t.Rollback(ctx)
		return err
	}
	t.release()
	return nil
}

func (t *PipeTx) commit(ctx context.Context) error {
	br, err := t.send(ctx, &pgx.QueuedQuery{SQL: "commit"})
	if err != nil {
		return err
	}
	tag, err := br.Exec()
	if err = errors.Join(err, br.Close()); err != nil {
		t.fail(err)
		return err
	}
	if tag.String() != "COMMIT" {
		t.fail(pgx.ErrTxCommitRollback)
		return t.err
	}
	return nil
}

// Rollback ends the transaction (a ROLLBACK only when BEGIN went out) and gives the
// connection back; after Commit it returns pgx.ErrTxClosed.
func (t *PipeTx) Rollback(ctx context.Context) error {
	if t.conn == nil {
		return errPipeClosed
	}
	defer t.release()
	if !t.begun || t.conn.Conn().IsClosed() {
		return nil
	}
	_, err := t.conn.Conn().Exec(ctx, "rollback")
	return err
}

func (t *PipeTx) usable() error {
	if t.conn == nil {
		return errPipeClosed
	}
	return t.err
}

// fail records the transaction's first failure.
func (t *PipeTx) fail(err error) {
	if t.err == nil {
		t.err = err
	}
}

// release gives the connection back; the pool drops it when it is still in a transaction.
func (t *PipeTx) release() {
	if t.conn != nil {
		t.conn.Release()
		t.conn = nil
	}
}

// send writes BEGIN (the first time), the queued statements and last in one batch, reads
// the answers of all but last, and returns the results positioned at last.
func (t *PipeTx) send(ctx context.Context, last ...*pgx.QueuedQuery) (pgx.BatchResults, error) {
	if err := t.usable(); err != nil {
		return nil, err
	}
	b := &pgx.Batch{}
	if !t.begun {
		b.QueuedQueries = append(b.QueuedQueries, &pgx.QueuedQuery{SQL: "begin"})
	}
	b.QueuedQueries = append(b.QueuedQueries, t.queued...)
	ahead := len(b.QueuedQueries)
	b.QueuedQueries = append(b.QueuedQueries, last...)
	t.queued, t.begun = nil, true
	br := t.conn.Conn().SendBatch(ctx, b)
	for range ahead {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			t.fail(err)
			return nil, err
		}
	}
	return br, nil
}

// flush sends what is queued.
func (t *PipeTx) flush(ctx context.Context) error {
	if t.begun && len(t.queued) == 0 {
		return t.usable()
	}
	br, err := t.send(ctx)
	if err != nil {
		return err
	}
	if err := br.Close(); err != nil {
		t.fail(err)
		return err
	}
	return nil
}

// pipeRows closes the batch with the rows, and fails the transaction on an error.
type pipeRows struct {
	pgx.Rows
	t      *PipeTx
	br     pgx.BatchResults
	closed bool
	err    error
}

func (r *pipeRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	r.err = errors.Join(r.Rows.Err(), r.br.Close())
	if r.err != nil {
		r.t.fail(r.err)
	}
}

func (r *pipeRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *pipeRows) Err() error {
	if r.closed {
		return r.err
	}
	return r.Rows.Err()
}

// pipeRow is QueryRow's row: pgx.ErrNoRows when there is none.
type pipeRow struct {
	rows pgx.Rows
	err  error
}

func (r pipeRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return scanOne(r.rows, dest)
}

// scanOne scans the first row of rows into dest (pgx.ErrNoRows when there is none) and
// closes them, as pgx's QueryRow does.
func scanOne(rows pgx.Rows, dest []any) error {
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// errBatch is SendBatch's answer when what was queued before the batch failed.
type errBatch struct{ err error }

func (b errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, b.err }
func (b errBatch) Query() (pgx.Rows, error)         { return nil, b.err }
func (b errBatch) QueryRow() pgx.Row                { return pipeRow{err: b.err} }
func (b errBatch) Close() error                     { return b.err }
func (b errBatch) Tx() pgx.Tx                       { return nil }
