package jobs

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dbtest"
)

// countTracer counts the statements that count River's jobs per state.
type countTracer struct{ counts atomic.Int64 }

func (c *countTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "JobCountByAllStates") {
		c.counts.Add(1)
	}
	return ctx
}

func (c *countTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestDashboardCountsOnlyOnceOpened: River UI's job-count caches, which count river_job
// every few seconds, run only once the dashboard served a request.
func TestDashboardCountsOnlyOnceOpened(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg, err := pgxpool.ParseConfig(dbtest.NewDatabase(t))
	require.NoError(t, err)
	tracer := &countTracer{}
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)

	h, err := NewDashboard(ctx, client, nil)
	require.NoError(t, err)
	// River UI's caches first count 9 to 11 s after they start.
	time.Sleep(12 * time.Second)
	require.Zero(t, tracer.counts.Load(), "nobody opened the dashboard: nothing counts the jobs")

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, DashboardPrefix+"/api/states", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Eventually(t, func() bool { return tracer.counts.Load() > 0 }, 10*time.Second, 10*time.Millisecond,
		"opened, the dashboard counts the jobs per state")
	before := tracer.counts.Load()
	require.Eventually(t, func() bool { return tracer.counts.Load() > before }, 15*time.Second, 50*time.Millisecond,
		"and keeps its counts fresh in the background from then on")
}
