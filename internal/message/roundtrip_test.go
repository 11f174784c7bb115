package message

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/secret"
	"github.com/sendwerk/sendwerk/internal/smtptest"
	"github.com/sendwerk/sendwerk/internal/tenant"
)

// flights counts round trips to PostgreSQL: each write that follows a read (or opens the
// connection) is the start of one.
type flights struct {
	mu sync.Mutex
	n  int
}

type countingConn struct {
	net.Conn
	f *flights
	// read is set once the connection read since its last write.
	read bool
	mu   sync.Mutex
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.read {
		c.read = false
		c.f.mu.Lock()
		c.f.n++
		c.f.mu.Unlock()
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	c.read = true
	c.mu.Unlock()
	return c.Conn.Read(p)
}

func (f *flights) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// countingPool is a pool of one connection (so a warm-up prepares the statements a test
// then counts) whose round trips f counts.
func countingPool(t *testing.T) (*pgxpool.Pool, *flights) {
	t.Helper()
	f := &flights{}
	cfg, err := pgxpool.ParseConfig(dbtest.NewDatabase(t))
	require.NoError(t, err)
	cfg.MaxConns = 1
	dial := cfg.ConnConfig.DialFunc
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, f: f}, nil
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool, f
}

func TestLoneSubmissionRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, f := countingPool(t)

	box, err := secret.NewBox("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	require.NoError(t, err)
	conns := connector.NewService(pool, box, connector.Policy{AllowNoAuth: true, AllowPlaintext: true, AllowPrivateAddresses: true})
	tenants := tenant.NewServiceWith(pool, tenant.Options{CacheTTL: time.Minute})
	ten, err := tenants.Create(ctx, "Acme", nil)
	require.NoError(t, err)
	_, err = conns.Create(ctx, ten.ID, connector.Input{Name: "own", Kind: connector.KindSMTP,
		SMTP:   &connector.SMTPInput{Host: "127.0.0.1", Port: 25, Security: string(delivery.SecurityNone)},
		Sender: connector.Sender{Email: "noreply@acme.example"}})
	require.NoError(t, err)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)
	var before int
	svc := NewService(pool, client, conns, noSenders{}, nil, Config{Tenants: tenants, GroupSizeFunc: func(int) { before = f.count() }})

	for range 2 { // the first prepares the statements on the connection
		_, _, err = svc.Submit(ctx, ten.ID, request(), nil)
		require.NoError(t, err)
	}
	// BEGIN with the job insert; the NOTIFY, the message, its queued step and stream event
	// (one statement), the usage counters and the COMMIT.
	require.Equal(t, 2, f.count()-before, "round trips of a lone submission's commit")
	var n int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM messages m JOIN river_job j ON j.id = m.job_id").Scan(&n))
	require.Equal(t, 2, n, "both messages and their jobs are committed")
}

func TestRecordRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, f := countingPool(t)
	b := setupRecordOn(t, pool, 1, smtptest.Opts{})
	var before int
	b.deliverer.recorder.groupFunc = func(int) { before = f.count() }
	for _, id := range b.submit(t, 2) { // the first prepares the statements on the connection
		a, err := b.deliverer.Attempt(ctx, b.tenantID, id, AttemptOpts{RetryAt: time.Now().Add(time.Hour)})
		require.NoError(t, err)
		require.Equal(t, VerdictDelivered, a.Verdict)
	}
	// BEGIN, the plan settings and the outcome's statement; the COMMIT.
	require.Equal(t, 2, f.count()-before, "round trips of a lone outcome's record")
	require.Equal(t, 2, b.countWhere(t, "SELECT count(*) FROM messages WHERE status = 'delivered'"))
}
