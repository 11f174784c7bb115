package store

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// UnavailableError means PostgreSQL could not be reached or went away in the middle of a
// statement: the request may succeed when retried. Ambiguous is set when the connection was
// lost during COMMIT, so the transaction may or may not have been committed; a caller that
// retries with the same idempotency key gets the first outcome, whichever it was.
type UnavailableError struct {
	Ambiguous bool
	Err       error
}

func (e *UnavailableError) Error() string {
	if e.Ambiguous {
		return "database unavailable during commit (outcome unknown): " + e.Err.Error()
	}
	return "database unavailable: " + e.Err.Error()
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// AsUnavailable reports whether err (anywhere in its chain) means the database could not be
// reached or dropped the connection, and returns it as an *UnavailableError. Front doors use
// it to answer 503 / 451 instead of an internal error.
func AsUnavailable(err error) (*UnavailableError, bool) {
	if err == nil {
		return nil, false
	}
	var ue *UnavailableError
	if errors.As(err, &ue) {
		return ue, true
	}
	if isConnectionClass(err) {
		return &UnavailableError{Err: err}, true
	}
	return nil, false
}

// isConnectionClass recognises the errors of a database that is down, restarting or
// unreachable: SQLSTATE class 08 (connection exception), 57P01–57P03 (admin shutdown, crash
// shutdown, cannot connect now), 53300 (too many connections), and the driver's and the
// network's errors for a lost or refused connection.
func isConnectionClass(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		c := pgErr.Code
		return len(c) == 5 && c[:2] == "08" || c == "57P01" || c == "57P02" || c == "57P03" || c == "53300"
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr),
		errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ENOENT) && errors.As(err, &connectErr):
		return true
	case errors.As(err, &netErr) && !errors.Is(err, context.Canceled):
		return true
	}
	return pgconn.SafeToRetry(err)
}
