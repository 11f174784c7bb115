package message

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/secret"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/tenant"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// noSenders knows no domains: only an smtp connector's default sender may send.
type noSenders struct{}

func (noSenders) CheckSender(_ context.Context, _, domain string, _ bool) error {
	return &SenderError{Domain: domain, Message: "domain " + domain + " is not a sender domain of this account"}
}

func (noSenders) VerifiedElsewhere(context.Context, string, string) (bool, error) { return false, nil }

func (noSenders) DKIMSigners(context.Context, string, string) ([]delivery.DKIMOptions, error) {
	return nil, store.ErrNotFound
}

type testBundle struct {
	pool     *pgxpool.Pool
	svc      *Service
	tenantID string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	box, err := secret.NewBox("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	require.NoError(t, err)
	conns := connector.NewService(pool, box, connector.Policy{AllowNoAuth: true, AllowPlaintext: true, AllowPrivateAddresses: true})
	ten, err := tenant.NewService(pool).Create(ctx, "Acme", nil)
	require.NoError(t, err)
	_, err = conns.Create(ctx, ten.ID, connector.Input{Name: "own", Kind: connector.KindSMTP,
		SMTP:   &connector.SMTPInput{Host: "127.0.0.1", Port: 25, Security: string(delivery.SecurityNone)},
		Sender: connector.Sender{Email: "noreply@acme.example"}})
	require.NoError(t, err)
	deliverer := NewDeliverer(pool, conns, noSenders{}, NewPools(nil), nil, nil)
	workers := river.NewWorkers()
	river.AddWorker(workers, NewDeliverWorker(deliverer, DeliverConfig{}))
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Workers: workers})
	require.NoError(t, err)
	return &testBundle{pool: pool, svc: NewService(pool, client, conns, noSenders{}, deliverer, Config{}), tenantID: ten.ID}
}

func request() *Request {
	return &Request{From: Address{Email: "noreply@acme.example"}, To: []Address{{Email: "jane@customer.example"}}, Subject: "Hi", Text: "Hello"}
}

func (b *testBundle) count(t *testing.T, table string) int {
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

func TestSubmitIsAtomic(t *testing.T) {
	t.Parallel()

	t.Run("CommitsMessageEventAndJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		acc, _, err := b.svc.Submit(context.Background(), b.tenantID, request(), nil)
		require.NoError(t, err)
		require.Equal(t, StatusQueued, acc.Status)
		require.Equal(t, 1, b.count(t, "messages"))
		require.Equal(t, 1, b.count(t, "message_events"))
		require.Equal(t, 1, b.count(t, "river_job"))
		var jobID *int64
		require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT job_id FROM messages").Scan(&jobID))
		require.NotNil(t, jobID, "the message points at its job")
	})
	t.Run("AFailedJobInsertLeavesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// Make the job insert fail inside the submission's transaction.
		_, err := b.pool.Exec(context.Background(), "ALTER TABLE river_job ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
		require.NoError(t, err)
		_, _, err = b.svc.Submit(context.Background(), b.tenantID, request(), NewIdempotency("k", "send", []byte("{}")))
		require.Error(t, err)
		for _, table := range []string{"messages", "message_events", "river_job", "usage_counters", "idempotency_keys"} {
			require.Zero(t, b.count(t, table), "%s must be empty after a rolled-back submission", table)
		}
	})
	t.Run("RefusedSenderStoresNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		req := request()
		req.From.Email = "ceo@other.example"
		_, _, err := b.svc.Submit(context.Background(), b.tenantID, req, nil)
		require.ErrorContains(t, err, "other.example is not a sender domain")
		require.ErrorContains(t, err, "may also send from its default sender noreply@acme.example")
		require.Zero(t, b.count(t, "messages"))
	})
}

func TestRetrySchedule(t *testing.T) {
	t.Parallel()
	w := NewDeliverWorker(nil, DeliverConfig{RetrySchedule: []time.Duration{time.Minute, time.Hour}})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w.NowFunc = func() time.Time { return now }
	job := func(attempt int) *river.Job[DeliverArgs] {
		return &river.Job[DeliverArgs]{JobRow: &rivertype.JobRow{Attempt: attempt}}
	}
	require.Equal(t, now.Add(time.Minute), w.NextRetry(job(1)))
	require.Equal(t, now.Add(time.Hour), w.NextRetry(job(2)))
	require.Equal(t, now.Add(time.Hour), w.NextRetry(job(7)), "past the schedule, the last wait repeats")

	var total time.Duration
	for _, d := range DefaultRetrySchedule {
		total += d
	}
	require.InDelta(t, 72, total.Hours(), 6, "the default schedule reaches about 72 hours")
}

// TestLimitIsExactUnderConcurrency: counters of limited periods are exact across
// concurrent submissions; unlimited ones are sharded and still sum correctly.
func TestLimitIsExactUnderConcurrency(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	_, err := b.pool.Exec(ctx, "UPDATE connectors SET limit_per_minute = 10")
	require.NoError(t, err)
	now := time.Now() // one instant: a minute boundary mid-test would open a new window
	b.svc.NowFunc = func() time.Time { return now }
	var wg sync.WaitGroup
	var accepted, limited atomic.Int64
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := b.svc.Submit(ctx, b.tenantID, request(), nil)
			var le *LimitError
			switch {
			case err == nil:
				accepted.Add(1)
			case errors.As(err, &le):
				limited.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int64(10), accepted.Load())
	require.Equal(t, int64(20), limited.Load())
	u, err := b.svc.Usage(ctx, b.tenantID)
	require.NoError(t, err)
	require.Equal(t, int64(10), u.Connectors[0].Counters[0].Count, "minute, exact")
	require.Equal(t, int64(10), u.Connectors[0].Counters[3].Count, "month, summed over shards")
	require.Equal(t, int64(10), u.Month.Count)
	require.Equal(t, 10, b.count(t, "messages"))
}
