// Package jobs wires River: the client, its queues, the workers registry and periodic jobs.
// Workers themselves live with their concept (message delivery in message, domain checks in
// sendingdomain); this package only registers them.
package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/sendwerk/sendwerk/internal/event"
	"github.com/sendwerk/sendwerk/internal/message"
	"github.com/sendwerk/sendwerk/internal/sendingdomain"
	"github.com/sendwerk/sendwerk/internal/tenant"
	"github.com/sendwerk/sendwerk/internal/webhook"
)

// QueueDefault carries housekeeping jobs.
const QueueDefault = river.QueueDefault

// Config tunes the River client.
type Config struct {
	// Workers is the number of concurrent jobs this process runs on the default queue.
	Workers int
	// CompletedJobRetention keeps finished jobs visible in the dashboard this long; the job
	// table stays small because the message log, not River, is the record of delivery.
	CompletedJobRetention time.Duration
	// FetchCooldown is the shortest pause between two fetches of one queue; zero keeps
	// River's default. Notifications of new jobs are not limited by it (see
	// insertNotifyInterval), so a fetch after a pause shorter than this is delayed, never lost.
	FetchCooldown time.Duration
	// PollInterval is how often the default queue is polled for jobs whose notification
	// did not wake it; zero keeps River's default (a second).
	PollInterval time.Duration
	// RescueAfter is how long a job may stay `running` before River's rescuer (on the
	// leader) takes it for a dead process's and retries it. It must exceed every worker's
	// timeout (the delivery attempt timeout above all); River's default is an hour, which
	// left a crashed process's deliveries stuck that long. Zero means DefaultRescueAfter.
	RescueAfter time.Duration
	// ReconcileInterval is how often the leader runs the message reconciler (when
	// Deps.Reconcile is set); zero means a minute.
	ReconcileInterval time.Duration
}

// insertNotifyInterval is River's client-wide FetchCooldown, which River also uses to limit
// its insert notifications: a job inserted within that long after another job of its queue
// sends none. With a 10 ms limit, a message submitted 5 ms after another was picked up only
// by the next submission's notification or River's one-second poll (the latency phase of
// `make bench` showed both: p50 14 ms, outliers of half a second). Queues get their own fetch
// cooldown (Config.FetchCooldown), so this limits notifications only.
const insertNotifyInterval = time.Millisecond

// deliveriesPollInterval bounds how long a delivery job can wait when its notification was
// limited anyway (two submissions within insertNotifyInterval, the second committed after
// the fetch the first woke): an idle process polls the deliveries queue ten times a second.
const deliveriesPollInterval = 100 * time.Millisecond

// DefaultRescueAfter is just above message.DefaultAttemptTimeout and the recording after it.
const DefaultRescueAfter = 3 * time.Minute

// Deps are the services workers need.
type Deps struct {
	Tenants *tenant.Service
	Logger  *slog.Logger
	// Deliver and Retention are the message workers; DeliveryWorkers sizes their queue.
	Deliver         *message.DeliverWorker
	Retention       *message.RetentionWorker
	DeliveryWorkers int
	// Reconcile repairs messages whose job ended without them (periodic, leader only).
	Reconcile *message.ReconcileWorker
	// Domains runs sender-domain checks and their scheduler; DomainChecksInFlight caps the
	// checks this process runs at once (the domain_checks queue).
	Domains              *sendingdomain.Service
	DomainChecksInFlight int
	// Webhooks makes webhook attempts (the webhooks queue, WebhookWorkers at once);
	// EventRetention deletes expired events hourly.
	Webhooks       *webhook.DeliverWorker
	WebhookWorkers int
	EventRetention *event.RetentionWorker
}

// NewClient builds a River client with every Sendwerk worker and periodic job registered.
// The client inserts jobs in callers' transactions; Start makes it work them.
func NewClient(pool *pgxpool.Pool, cfg *Config, deps Deps) (*river.Client[pgx.Tx], error) {
	if cfg == nil {
		cfg = &Config{}
	}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &apiKeyPurgeWorker{tenants: deps.Tenants}); err != nil {
		return nil, fmt.Errorf("error adding api key purge worker: %w", err)
	}
	fetchCooldown := or(cfg.FetchCooldown, river.FetchCooldownDefault)
	queues := map[string]river.QueueConfig{QueueDefault: {MaxWorkers: max(cfg.Workers, 1), FetchPollInterval: cfg.PollInterval}}
	periodic := periodicJobs()
	if deps.Deliver != nil {
		if err := river.AddWorkerSafely(workers, deps.Deliver); err != nil {
			return nil, fmt.Errorf("error adding deliver worker: %w", err)
		}
		queues[message.QueueDeliveries] = river.QueueConfig{MaxWorkers: max(deps.DeliveryWorkers, 1), FetchPollInterval: deliveriesPollInterval}
	}
	if deps.Retention != nil {
		if err := river.AddWorkerSafely(workers, deps.Retention); err != nil {
			return nil, fmt.Errorf("error adding retention worker: %w", err)
		}
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
			func() (river.JobArgs, *river.InsertOpts) { return message.RetentionArgs{}, nil },
			&river.PeriodicJobOpts{ID: "message_retention", RunOnStart: true}))
	}
	if deps.Reconcile != nil {
		if err := river.AddWorkerSafely(workers, deps.Reconcile); err != nil {
			return nil, fmt.Errorf("error adding reconcile worker: %w", err)
		}
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(or(cfg.ReconcileInterval, time.Minute)),
			func() (river.JobArgs, *river.InsertOpts) { return message.ReconcileArgs{}, nil },
			&river.PeriodicJobOpts{ID: "message_reconcile", RunOnStart: true}))
	}
	if deps.Domains != nil {
		if err := deps.Domains.AddWorkers(workers); err != nil {
			return nil, err
		}
		queues[sendingdomain.QueueChecks] = river.QueueConfig{MaxWorkers: max(deps.DomainChecksInFlight, 1)}
		periodic = append(periodic, deps.Domains.PeriodicJobs()...)
	}
	if err := addEventWorkers(workers, queues, &periodic, deps); err != nil {
		return nil, err
	}
	for name, q := range queues {
		q.FetchCooldown = fetchCooldown
		if q.FetchPollInterval != 0 {
			q.FetchPollInterval = max(q.FetchPollInterval, fetchCooldown)
		}
		queues[name] = q
	}
	rescue := or(cfg.RescueAfter, DefaultRescueAfter)
	rc := &river.Config{
		Logger:                      deps.Logger,
		Queues:                      queues,
		Workers:                     workers,
		PeriodicJobs:                periodic,
		CompletedJobRetentionPeriod: or(cfg.CompletedJobRetention, time.Hour),
		CancelledJobRetentionPeriod: 7 * 24 * time.Hour,
		DiscardedJobRetentionPeriod: 7 * 24 * time.Hour,
		FetchCooldown:               insertNotifyInterval,
		RescueStuckJobsAfter:        rescue,
		// River refuses a rescue time below the default job timeout; workers without a
		// timeout of their own (housekeeping) get the smaller of a minute and the rescue time.
		JobTimeout:          min(time.Minute, rescue),
		ReindexerIndexNames: ReindexedIndexes(),
	}
	client, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		return nil, fmt.Errorf("error creating river client: %w", err)
	}
	return client, nil
}

// addEventWorkers registers webhook delivery and event retention.
func addEventWorkers(workers *river.Workers, queues map[string]river.QueueConfig, periodic *[]*river.PeriodicJob, deps Deps) error {
	if deps.Webhooks != nil {
		if err := river.AddWorkerSafely(workers, deps.Webhooks); err != nil {
			return fmt.Errorf("error adding webhook worker: %w", err)
		}
		queues[webhook.QueueWebhooks] = river.QueueConfig{MaxWorkers: max(deps.WebhookWorkers, 1)}
	}
	if deps.EventRetention != nil {
		if err := river.AddWorkerSafely(workers, deps.EventRetention); err != nil {
			return fmt.Errorf("error adding event retention worker: %w", err)
		}
		*periodic = append(*periodic, river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
			func() (river.JobArgs, *river.InsertOpts) { return event.RetentionArgs{}, nil },
			&river.PeriodicJobOpts{ID: "event_retention", RunOnStart: true}))
	}
	return nil
}

// periodicJobs run on the elected leader only, so many processes on one database do not
// duplicate them.
func periodicJobs() []*river.PeriodicJob {
	return []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(24*time.Hour),
			func() (river.JobArgs, *river.InsertOpts) { return APIKeyPurgeArgs{}, nil },
			&river.PeriodicJobOpts{ID: "api_key_purge"}),
	}
}

// ReindexedIndexes is River's default set of periodically rebuilt indexes without the two
// that migration 00016 drops (GIN indexes on job args and metadata, written on every job
// insert and state change and never used by Sendwerk's lookups); River would warn on every
// run about a configured index that does not exist.
func ReindexedIndexes() []string {
	return slices.DeleteFunc(river.ReindexerIndexNamesDefault(), func(name string) bool {
		return name == "river_job_args_index" || name == "river_job_metadata_index"
	})
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// APIKeyRetention is how long revoked and expired keys stay listed before they are purged.
const APIKeyRetention = 90 * 24 * time.Hour

// APIKeyPurgeArgs asks for revoked and expired API keys older than APIKeyRetention to be deleted.
type APIKeyPurgeArgs struct{}

// Kind is the job's stable name.
func (APIKeyPurgeArgs) Kind() string { return "api_key_purge" }

type apiKeyPurgeWorker struct {
	river.WorkerDefaults[APIKeyPurgeArgs]
	tenants *tenant.Service
}

func (w *apiKeyPurgeWorker) Work(ctx context.Context, job *river.Job[APIKeyPurgeArgs]) error {
	n, err := w.tenants.DeleteStaleKeys(ctx, time.Now().Add(-APIKeyRetention))
	if err != nil {
		return err
	}
	river.RecordOutput(ctx, map[string]int64{"deleted": n})
	return nil
}
