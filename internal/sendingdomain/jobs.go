package sendingdomain

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// QueueChecks is the River queue of domain checks; its MaxWorkers caps the checks one
// process has in flight, so a burst of due domains cannot flood the resolvers.
const QueueChecks = "domain_checks"

// maxScheduleBatches bounds one scheduler run; what is left waits for the next run.
const maxScheduleBatches = 20

// uniqueWhileQueued makes a job unique by its args while it waits or runs; once it has
// finished, the same job may be inserted again.
var uniqueWhileQueued = river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}}

// CheckArgs asks for one domain to be checked.
type CheckArgs struct {
	TenantID string `json:"tenant_id" river:"unique"`
	DomainID string `json:"domain_id" river:"unique"`
}

// Kind is the job's stable name.
func (CheckArgs) Kind() string { return "sending_domain_check" }

// InsertOpts puts checks on their own queue, one per domain at a time.
func (CheckArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueChecks, MaxAttempts: 3, UniqueOpts: uniqueWhileQueued}
}

type checkWorker struct {
	river.WorkerDefaults[CheckArgs]
	s *Service
}

func (w *checkWorker) Timeout(*river.Job[CheckArgs]) time.Duration {
	return w.s.cfg.CheckTimeout + 30*time.Second
}

func (w *checkWorker) Work(ctx context.Context, job *river.Job[CheckArgs]) error {
	d, chk, err := w.s.RunCheck(ctx, job.Args.TenantID, job.Args.DomainID)
	if IsNotFound(err) {
		return nil // deleted since the job was enqueued
	}
	if err != nil {
		return err
	}
	return river.RecordOutput(ctx, map[string]string{"check_id": chk.ID, "outcome": chk.Outcome, "status": d.Status})
}

// ScheduleChecksArgs asks for due domains to get check jobs.
type ScheduleChecksArgs struct{}

// Kind is the job's stable name.
func (ScheduleChecksArgs) Kind() string { return "sending_domain_schedule_checks" }

// InsertOpts keeps a slow run from overlapping the next.
func (ScheduleChecksArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 1, UniqueOpts: uniqueWhileQueued}
}

type scheduleWorker struct {
	river.WorkerDefaults[ScheduleChecksArgs]
	s *Service
}

func (w *scheduleWorker) Work(ctx context.Context, _ *river.Job[ScheduleChecksArgs]) error {
	n, err := w.s.ScheduleDue(ctx)
	if err != nil {
		return err
	}
	return river.RecordOutput(ctx, map[string]int{"enqueued": n})
}

// PurgeChecksArgs asks for old check history to be deleted.
type PurgeChecksArgs struct{}

// Kind is the job's stable name.
func (PurgeChecksArgs) Kind() string { return "sending_domain_check_purge" }

type purgeWorker struct {
	river.WorkerDefaults[PurgeChecksArgs]
	s *Service
}

func (w *purgeWorker) Work(ctx context.Context, _ *river.Job[PurgeChecksArgs]) error {
	n, err := w.s.PurgeChecks(ctx)
	if err != nil {
		return err
	}
	return river.RecordOutput(ctx, map[string]int64{"deleted": n})
}

// AddWorkers registers the domain workers.
func (s *Service) AddWorkers(workers *river.Workers) error {
	if err := river.AddWorkerSafely(workers, &checkWorker{s: s}); err != nil {
		return fmt.Errorf("error adding domain check worker: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &scheduleWorker{s: s}); err != nil {
		return fmt.Errorf("error adding domain schedule worker: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &purgeWorker{s: s}); err != nil {
		return fmt.Errorf("error adding domain check purge worker: %w", err)
	}
	return nil
}

// PeriodicJobs are the scheduler (every SchedulePeriod) and the history purge (daily).
// River runs periodic jobs on the elected leader only.
func (s *Service) PeriodicJobs() []*river.PeriodicJob {
	return []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(s.cfg.SchedulePeriod),
			func() (river.JobArgs, *river.InsertOpts) { return ScheduleChecksArgs{}, nil },
			&river.PeriodicJobOpts{ID: "sending_domain_schedule_checks", RunOnStart: true}),
		river.NewPeriodicJob(river.PeriodicInterval(24*time.Hour),
			func() (river.JobArgs, *river.InsertOpts) { return PurgeChecksArgs{}, nil },
			&river.PeriodicJobOpts{ID: "sending_domain_check_purge"}),
	}
}

// ScheduleDue enqueues a check for every due domain, in batches, and returns how many jobs
// it inserted (a domain whose check is still queued is not enqueued twice). Each batch
// claims its domains with FOR UPDATE SKIP LOCKED and moves their next_check_at past
// CheckLease in the transaction that inserts their jobs, so neither a concurrent scheduler
// nor the next run enqueues them again; the jobs are spread over MaxJitter so a thousand
// domains due at once do not query DNS at once.
func (s *Service) ScheduleDue(ctx context.Context) (int, error) {
	total := 0
	for range maxScheduleBatches {
		claimed, inserted, err := s.scheduleBatch(ctx)
		total += inserted
		if err != nil || claimed < s.cfg.ScheduleBatch {
			return total, err
		}
	}
	return total, nil
}

func (s *Service) scheduleBatch(ctx context.Context) (claimed, inserted int, err error) {
	err = store.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		now := s.now()
		rows, err := s.q.WithTx(tx).SendingDomainClaimDue(ctx, dbsqlc.SendingDomainClaimDueParams{
			Now: now, LeaseUntil: now.Add(s.cfg.CheckLease), Max: int32(s.cfg.ScheduleBatch),
		})
		if err != nil || len(rows) == 0 {
			return err
		}
		params := make([]river.InsertManyParams, len(rows))
		for i, r := range rows {
			params[i] = river.InsertManyParams{Args: CheckArgs{TenantID: r.TenantID, DomainID: r.ID}, InsertOpts: &river.InsertOpts{}}
			if s.cfg.MaxJitter > 0 {
				// River's scheduler makes future jobs available within about 5 s of their time.
				params[i].InsertOpts.ScheduledAt = time.Now().Add(rand.N(s.cfg.MaxJitter))
			}
		}
		res, err := s.inserter.InsertManyTx(ctx, tx, params)
		if err != nil {
			return fmt.Errorf("error enqueuing domain checks: %w", err)
		}
		claimed = len(rows)
		for _, r := range res {
			if !r.UniqueSkippedAsDuplicate {
				inserted++
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("error scheduling domain checks: %w", err)
	}
	s.metrics.scheduled.Add(float64(inserted))
	return claimed, inserted, nil
}
