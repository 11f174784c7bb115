package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/delivery"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := dbtest.TestTx(ctx, t)
	insert := func(queue, state string, age time.Duration) {
		t.Helper()
		_, err := tx.Exec(ctx, `INSERT INTO river_job (args, kind, max_attempts, queue, state, scheduled_at, finalized_at)
			VALUES ('{}', 'message_deliver', 3, $1, $2::river_job_state, now() - $3::interval,
				CASE WHEN $2 IN ('completed', 'cancelled', 'discarded') THEN now() END)`, queue, state, age.String())
		require.NoError(t, err)
	}
	insert("deliveries", "available", 30*time.Second)
	insert("deliveries", "available", 2*time.Second)
	insert("deliveries", "retryable", 0)
	insert("domain_checks", "running", 0)
	insert("deliveries", "completed", time.Hour) // finished: not counted

	now := time.Now()
	q := NewQueue(tx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	q.NowFunc = func() time.Time { return now }
	reg := prometheus.NewRegistry()
	reg.MustRegister(q)
	for _, want := range []struct {
		queue, state string
		n            float64
	}{{"deliveries", "available", 2}, {"deliveries", "retryable", 1}, {"deliveries", "running", 0}, {"deliveries", "scheduled", 0}, {"domain_checks", "running", 1}} {
		require.Equal(t, want.n, value(t, reg, "sendwerk_queue_jobs", want.queue, want.state), "%s %s", want.queue, want.state)
	}
	require.Equal(t, 5, count(t, reg, "sendwerk_queue_jobs"), "finished jobs and empty states of other queues are not reported")
	oldest := value(t, reg, "sendwerk_queue_oldest_available_seconds", "deliveries")
	require.InDelta(t, 30, oldest, 5, "the oldest due job's age")

	t.Run("CachedForTheTTL", func(t *testing.T) {
		insert("deliveries", "available", 0)
		require.Equal(t, 2.0, value(t, reg, "sendwerk_queue_jobs", "deliveries", "available"))
		now = now.Add(QueueCacheTTL)
		require.Equal(t, 3.0, value(t, reg, "sendwerk_queue_jobs", "deliveries", "available"))
	})
}

// value gathers reg and returns the value of the gauge or counter name with the given label
// values, in label-name order.
func value(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i, lp := range m.GetLabel() {
				if i >= len(labels) || lp.GetValue() != labels[i] {
					continue metric
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

// count is how many series of name reg serves.
func count(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

func TestDeliveries(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	d, err := NewDeliveries(reg)
	require.NoError(t, err)
	now := time.Now()
	d.NowFunc = func() time.Time { return now }
	d.ObserveAttempt(delivery.Outcome{Class: delivery.ClassDelivered, Code: delivery.CodeDelivered, SMTPCode: 250}, 20*time.Millisecond, now.Add(-3*time.Second))
	d.ObserveAttempt(delivery.Outcome{Class: delivery.ClassTemporary, Code: delivery.CodeTCPRefused}, time.Millisecond, now.Add(-time.Minute))
	d.ObserveAttempt(delivery.Outcome{Class: delivery.ClassPermanent, Code: delivery.CodeRecipientRejected, SMTPCode: 550}, 5*time.Millisecond, now)
	require.Equal(t, 1.0, value(t, reg, "sendwerk_delivery_attempts_total", "delivered", "delivered", "250"))
	require.Equal(t, 1.0, value(t, reg, "sendwerk_delivery_attempts_total", "permanent", "smtp.recipient_rejected", "550"))
	require.Equal(t, 1.0, value(t, reg, "sendwerk_delivery_attempts_total", "temporary", "tcp.refused", ""))
	require.Equal(t, 3, count(t, reg, "sendwerk_delivery_attempts_total"))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "sendwerk_delivery_latency_seconds" {
			require.InDelta(t, 3.0, mf.GetMetric()[0].GetHistogram().GetSampleSum(), 0.001)
			require.Equal(t, uint64(1), mf.GetMetric()[0].GetHistogram().GetSampleCount())
		}
	}
}

func TestHandlerToken(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "sendwerk_probe_total", Help: "x"}))
	get := func(h http.Handler, auth string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/metrics", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	require.Equal(t, 200, get(Handler(reg, ""), "").Code)
	guarded := Handler(reg, "metrics-token-0123")
	require.Equal(t, 401, get(guarded, "").Code)
	require.Equal(t, 401, get(guarded, "Bearer metrics-token-012").Code)
	require.Equal(t, 401, get(guarded, "metrics-token-0123").Code)
	w := get(guarded, "Bearer metrics-token-0123")
	require.Equal(t, 200, w.Code)
	require.Contains(t, w.Body.String(), "sendwerk_probe_total 0")
}
