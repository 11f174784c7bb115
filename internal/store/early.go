package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// Early is one statement in an implicit transaction of its own whose row arrives before its
// COMMIT does: the statement, a Flush and the Sync that commits go to PostgreSQL in one
// write, PostgreSQL sends the row on the Flush and commits on the Sync, so a caller can
// work with the row while the COMMIT (an fsync) is in flight and wait for it only where
// the work must not go on before the statement is durable. It is the same single
// statement, without BEGIN and COMMIT, as running the query on the pool.
//
// It is a dbsqlc.DBTX for one QueryRow (a sqlc `:one` query): pass it to dbsqlc.New, run
// the query, then call Commit, which returns the COMMIT's answer and gives the connection
// back to the pool. Commit must be called whatever the query returned; a second call does
// nothing.
type Early struct {
	conn     *pgxpool.Conn
	pipeline *pgconn.Pipeline
	// sent is set once the statement went out; a second query is refused.
	sent bool
	// name is the statement's prepared name; failed is set when it failed, so that Commit
	// drops it and the next use prepares it afresh (after a schema change, say), as pgx's
	// statement cache does.
	name   string
	failed bool
}

var _ dbsqlc.DBTX = (*Early)(nil)

// errEarlyOneRow refuses what Early does not do.
var errEarlyOneRow = errors.New("store: Early runs one QueryRow")

// BeginEarly takes a connection from pool for one Early statement.
func BeginEarly(ctx context.Context, pool *pgxpool.Pool) (*Early, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("error acquiring connection: %w", classify(err))
	}
	return &Early{conn: conn}, nil
}

// QueryRow sends the statement with the COMMIT behind it and returns its row as soon as it
// arrives. Statements are prepared once per connection (no round trip when already
// prepared), as pgx's statement cache does.
func (e *Early) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if e.sent {
		return errRow{errEarlyOneRow}
	}
	e.sent = true
	rr, err := e.send(ctx, sql, args)
	if err != nil {
		e.failed = true
		return errRow{err}
	}
	return &earlyRow{e: e, rows: pgx.RowsFromResultReader(e.conn.Conn().TypeMap(), rr)}
}

// send prepares the statement when needed, encodes the arguments as pgx would, and sends
// Bind/Execute, Flush and Sync at once.
func (e *Early) send(ctx context.Context, sql string, args []any) (*pgconn.ResultReader, error) {
	c := e.conn.Conn()
	sum := sha256.Sum256([]byte(sql))
	e.name = "early_" + hex.EncodeToString(sum[:16])
	sd, err := c.Prepare(ctx, e.name, sql)
	if err != nil {
		return nil, err
	}
	if len(args) != len(sd.ParamOIDs) {
		return nil, fmt.Errorf("store: statement takes %d arguments, got %d", len(sd.ParamOIDs), len(args))
	}
	m := c.TypeMap()
	params := make([][]byte, len(args))
	paramFormats := make([]int16, len(args))
	for i, arg := range args {
		oid := sd.ParamOIDs[i]
		paramFormats[i] = m.FormatCodeForOID(oid)
		if params[i], err = m.Encode(oid, paramFormats[i], arg, nil); err != nil {
			return nil, fmt.Errorf("error encoding argument %d: %w", i+1, err)
		}
	}
	resultFormats := make([]int16, len(sd.Fields))
	for i, f := range sd.Fields {
		resultFormats[i] = m.FormatCodeForOID(f.DataTypeOID)
	}
	e.pipeline = c.PgConn().StartPipeline(ctx)
	e.pipeline.SendQueryStatement(sd, params, paramFormats, resultFormats)
	e.pipeline.SendFlushRequest()
	e.pipeline.SendPipelineSync()
	if err := e.pipeline.Flush(); err != nil {
		return nil, err
	}
	res, err := e.pipeline.GetResults()
	if err != nil {
		return nil, err
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		return nil, fmt.Errorf("store: unexpected pipeline result %T", res)
	}
	return rr, nil
}

// Exec is not supported: Early runs one QueryRow.
func (e *Early) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return pgconn.CommandTag{}, errEarlyOneRow
}

// CopyFrom is not supported: Early runs one QueryRow.
func (e *Early) CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error) {
	return 0, errEarlyOneRow
}

// Query is not supported: Early runs one QueryRow.
func (e *Early) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errEarlyOneRow
}

// Commit waits for the COMMIT's answer and gives the connection back. Its error is nil when
// the statement's effects are durable; a lost connection during the COMMIT is an ambiguous
// *UnavailableError, as in WithTx. After a failed statement nothing was committed, and its
// answer means nothing.
func (e *Early) Commit() error {
	if e.conn == nil {
		return nil // committed already
	}
	defer func() {
		e.conn.Release()
		e.conn, e.pipeline = nil, nil
	}()
	if e.pipeline == nil {
		return nil
	}
	_, syncErr := e.pipeline.GetResults()
	closeErr := e.pipeline.Close()
	if e.failed && !e.conn.Conn().IsClosed() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = e.conn.Conn().Deallocate(ctx, e.name)
		cancel()
	}
	err := errors.Join(syncErr, closeErr)
	if err == nil {
		return nil
	}
	if ue, ok := AsUnavailable(err); ok {
		return fmt.Errorf("error committing transaction: %w", &UnavailableError{Ambiguous: true, Err: ue.Err})
	}
	return fmt.Errorf("error committing transaction: %w", err)
}

// earlyRow is the statement's one row.
type earlyRow struct {
	e    *Early
	rows pgx.Rows
}

// Scan reads the row like pgx's Row: pgx.ErrNoRows when there is none.
func (r *earlyRow) Scan(dest ...any) error {
	err := scanOne(r.rows, dest)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		r.e.failed = true
	}
	return classify(err)
}

// errRow is a row that failed before it was sent.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return classify(r.err) }
