package relay

import (
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/store"
)

// TestReplyDatabaseUnavailable: a submission the database could not take is answered 451
// 4.3.0 (the client keeps the message and retries); a lost COMMIT says it may be queued.
func TestReplyDatabaseUnavailable(t *testing.T) {
	t.Parallel()
	r, class := replyFor(fmt.Errorf("error inserting message: %w", &pgconn.PgError{Code: "57P01"}), time.Now())
	require.Equal(t, 451, r.Code)
	require.Equal(t, smtp.EnhancedCode{4, 3, 0}, r.EnhancedCode)
	require.Equal(t, "unavailable", class)
	require.Contains(t, r.Message, "not queued")
	r, _ = replyFor(&store.UnavailableError{Ambiguous: true, Err: pgconn.ErrConnClosed}, time.Now())
	require.Equal(t, 451, r.Code)
	require.Contains(t, r.Message, "may have been queued")
}
