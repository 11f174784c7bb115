package metrics

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendwerk/sendwerk/internal/store"
)

// QueueCacheTTL is how long one reading of the queue is served: several scrapers (or
// Prometheus replicas) cost one query per interval.
const QueueCacheTTL = 5 * time.Second

// Queue reports the work waiting in PostgreSQL when scraped: River jobs by queue and state
// (the deliveries queue is mail waiting to go out), the age of the oldest job ready to run,
// and sender domains by status. The same numbers come from every process, as they are the
// database's; aggregate with max(), not sum().
type Queue struct {
	db     store.DB
	logger *slog.Logger

	jobs, oldest, domains *prometheus.Desc
	errors                prometheus.Counter

	mu      sync.Mutex
	readAt  time.Time
	reading []prometheus.Metric
	NowFunc func() time.Time
}

// NewQueue returns the collector; register it on the process's registry.
func NewQueue(db store.DB, logger *slog.Logger) *Queue {
	return &Queue{
		db: db, logger: logger, NowFunc: time.Now,
		jobs: prometheus.NewDesc("sendwerk_queue_jobs",
			"Jobs not yet finished, by queue (deliveries, domain_checks, default) and state (available: ready now; running; retryable: waiting for a retry; scheduled: waiting for send_at or a snooze).",
			[]string{"queue", "state"}, nil),
		oldest: prometheus.NewDesc("sendwerk_queue_oldest_available_seconds",
			"How long the oldest job ready to run has been waiting, by queue (0 when none waits): a growing value means workers do not keep up.",
			[]string{"queue"}, nil),
		domains: prometheus.NewDesc("sendwerk_domains",
			"Sender domains by status (pending, verified, at_risk, revoked).", []string{"status"}, nil),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "sendwerk_queue_read_errors_total",
			Help: "Failed readings of the queue depth from PostgreSQL."}),
	}
}

// Describe is prometheus.Collector.
func (q *Queue) Describe(ch chan<- *prometheus.Desc) {
	ch <- q.jobs
	ch <- q.oldest
	ch <- q.domains
	q.errors.Describe(ch)
}

// Collect is prometheus.Collector: the cached reading, refreshed when older than QueueCacheTTL.
func (q *Queue) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	if q.NowFunc().Sub(q.readAt) >= QueueCacheTTL {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		reading, err := q.read(ctx)
		cancel()
		if err != nil {
			q.errors.Inc()
			q.logger.Warn("error reading queue depth for metrics", "error", err)
		} else {
			q.reading = reading
		}
		q.readAt = q.NowFunc()
	}
	reading := q.reading
	q.mu.Unlock()
	for _, m := range reading {
		ch <- m
	}
	q.errors.Collect(ch)
}

// read counts unfinished jobs (River's fetch index covers state and queue, and finished jobs
// are not counted) and domains (one row per domain, a small table).
func (q *Queue) read(ctx context.Context) ([]prometheus.Metric, error) {
	var out []prometheus.Metric
	rows, err := q.db.Query(ctx, `SELECT queue, state::text, count(*),
		EXTRACT(EPOCH FROM now() - min(scheduled_at))::float8
		FROM river_job WHERE state IN ('available', 'running', 'retryable', 'scheduled')
		GROUP BY queue, state`)
	if err != nil {
		return nil, err
	}
	oldest := map[string]float64{"deliveries": 0}
	seen := map[[2]string]bool{}
	for rows.Next() {
		var queue, state string
		var n int64
		var age float64
		if err := rows.Scan(&queue, &state, &n, &age); err != nil {
			rows.Close()
			return nil, err
		}
		seen[[2]string{queue, state}] = true
		out = append(out, prometheus.MustNewConstMetric(q.jobs, prometheus.GaugeValue, float64(n), queue, state))
		if state == "available" {
			oldest[queue] = max(age, 0)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// The deliveries queue always reports every state, so a dashboard shows 0, not "no data".
	for _, state := range []string{"available", "running", "retryable", "scheduled"} {
		if !seen[[2]string{"deliveries", state}] {
			out = append(out, prometheus.MustNewConstMetric(q.jobs, prometheus.GaugeValue, 0, "deliveries", state))
		}
	}
	for queue, age := range oldest {
		out = append(out, prometheus.MustNewConstMetric(q.oldest, prometheus.GaugeValue, age, queue))
	}
	rows, err = q.db.Query(ctx, `SELECT status, count(*) FROM sending_domains GROUP BY status`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var status string
		var n int64
		if err := rows.Scan(&status, &n); err != nil {
			return nil, err
		}
		out = append(out, prometheus.MustNewConstMetric(q.domains, prometheus.GaugeValue, float64(n), status))
	}
	return out, rows.Err()
}
