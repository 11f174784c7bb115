package message

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/event"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// Group commit of delivery outcomes: concurrent attempts hand what they learned (the
// message's new status, its timeline rows, its stream event, and for a delivered River job
// the job's completion) to a recorder that writes everything waiting in one transaction:
// one MessageRecordOutcomes statement for the messages, timelines and stream, and one
// completion statement per River client for the jobs of the delivered messages. The
// record of a delivery and its job's completion commit together or not at all. As on the
// submit side (groupcommit.go), nothing waits for a window: a recorder takes what is queued
// when it is free, so a lone outcome commits at once, and under load the queue fills while
// the previous commit runs.

// DefaultRecorders is how many outcome transactions (and, apart, how many claim
// transactions) may run at once.
const DefaultRecorders = 2

// maxRecordGroup bounds one outcome transaction.
const maxRecordGroup = 200

// JobCompleter completes delivery jobs inside the transaction that records their
// deliveries; the River worker implements it with River's own statement (deliver.go).
// It fails when any of the jobs no longer exists, so the transaction rolls back.
type JobCompleter interface {
	CompleteTx(ctx context.Context, tx pgx.Tx, jobIDs []int64) error
}

// JobCompletion is the job a delivered outcome completes.
type JobCompletion struct {
	ID int64
	By JobCompleter
}

// outcome is one attempt's record waiting for its group's commit.
type outcome struct {
	m   dbsqlc.Message
	row outcomeRow
	// attempt is the attempt's timeline entry; nil when nothing was sent.
	attempt map[string]any
	step    string
	data    map[string]any
	// complete is the River job to complete with a delivery; nil otherwise.
	complete *JobCompletion
	done     chan error
}

// groupQueue queues items and hands what is waiting to commit, running up to max commits
// at a time. Two items with the same key (a message id) never share a group: the later one
// waits for the next.
type groupQueue[T any] struct {
	max     int
	commit  func(group []T)
	key     func(T) string
	mu      sync.Mutex
	queue   []T
	running int
	// groupFunc, when set (tests), is told the size of each group before it commits.
	groupFunc func(n int)
}

func (g *groupQueue[T]) add(item T) {
	g.mu.Lock()
	g.queue = append(g.queue, item)
	if g.running < g.max {
		g.running++
		go g.loop()
	}
	g.mu.Unlock()
}

// loop commits what is queued until the queue is empty.
func (g *groupQueue[T]) loop() {
	for {
		g.mu.Lock()
		if len(g.queue) == 0 {
			g.running--
			g.mu.Unlock()
			return
		}
		group := g.take()
		g.mu.Unlock()
		if g.groupFunc != nil {
			g.groupFunc(len(group))
		}
		g.commit(group)
	}
}

// take removes the next group from the queue, in arrival order, each key at most once;
// g.mu is held.
func (g *groupQueue[T]) take() []T {
	var group, rest []T
	seen := map[string]bool{}
	for _, item := range g.queue {
		k := g.key(item)
		if seen[k] || len(group) == maxRecordGroup {
			rest = append(rest, item)
			continue
		}
		seen[k] = true
		group = append(group, item)
	}
	g.queue = rest
	return group
}

// recorder group-commits outcomes.
type recorder struct {
	groupQueue[*outcome]
	d *Deliverer
}

func newRecorder(d *Deliverer, n int) *recorder {
	r := &recorder{d: d}
	// A message at most once per group: its timeline and stream rows are matched to the
	// outcome by message id, so a stale attempt's outcome (after a rescue) must not share a
	// statement with the current one's.
	r.max, r.commit, r.key = n, r.commitGroup, func(o *outcome) string { return o.m.ID }
	return r
}

// record queues o and waits until its group committed or failed. When ctx ends first, the
// outcome may still commit; the next attempt or the reconciler then finds it recorded.
func (r *recorder) record(ctx context.Context, o *outcome) error {
	o.done = make(chan error, 1)
	r.add(o)
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commit writes group in one transaction. When that fails for a reason other than an
// unavailable database, each outcome is tried again alone, so one outcome that cannot be
// written (its job deleted) does not fail the others. Every outcome is answered
// with its own transaction's error: nothing is reported recorded that did not commit.
func (r *recorder) commitGroup(group []*outcome) {
	ctx, cancel := context.WithTimeout(context.Background(), RecordTimeout)
	defer cancel()
	err := r.d.recordGroup(ctx, group)
	if _, unavailable := store.AsUnavailable(err); err == nil || unavailable || len(group) == 1 {
		for _, o := range group {
			o.done <- err
		}
		return
	}
	r.d.logger.Warn("group commit of delivery outcomes failed; recording each alone", "outcomes", len(group), "error", err)
	for _, o := range group {
		o.done <- r.d.recordGroup(ctx, []*outcome{o})
	}
}

// recordGroup is one transaction: the outcomes whose claims are still current are written,
// and the jobs of those delivered are completed. Outcomes are written in message id order,
// so two groups lock rows in the same order.
func (d *Deliverer) recordGroup(ctx context.Context, group []*outcome) error {
	group = slices.Clone(group)
	slices.SortFunc(group, func(a, b *outcome) int { return strings.Compare(a.m.ID, b.m.ID) })
	p, err := recordParams(group)
	if err != nil {
		return err
	}
	// Pipelined: BEGIN and the plan settings go out with the outcomes' statement.
	return store.WithPipeTx(ctx, d.db, func(tx pgx.Tx) error {
		if err := usePrimaryKeyPlans(ctx, tx); err != nil {
			return err
		}
		ids, err := d.q.WithTx(tx).MessageRecordOutcomes(ctx, p)
		if err != nil {
			return fmt.Errorf("error recording delivery outcomes: %w", err)
		}
		recorded := make(map[string]bool, len(ids))
		for _, id := range ids {
			recorded[id] = true
		}
		jobs := map[JobCompleter][]int64{}
		var order []JobCompleter
		for _, o := range group {
			if o.complete == nil || !recorded[o.m.ID] {
				continue
			}
			if _, ok := jobs[o.complete.By]; !ok {
				order = append(order, o.complete.By)
			}
			jobs[o.complete.By] = append(jobs[o.complete.By], o.complete.ID)
		}
		for _, c := range order {
			if err := c.CompleteTx(ctx, tx, jobs[c]); err != nil {
				return fmt.Errorf("error completing delivery jobs: %w", err)
			}
		}
		return nil
	})
}

// recordParams lays the group's outcomes out as MessageRecordOutcomes' arrays.
func recordParams(group []*outcome) (dbsqlc.MessageRecordOutcomesParams, error) {
	var p dbsqlc.MessageRecordOutcomesParams
	timeline := func(o *outcome, typ string, data map[string]any) error {
		b, err := json.Marshal(data)
		if err != nil {
			return fmt.Errorf("error encoding event: %w", err)
		}
		p.TimelineMessageIds = append(p.TimelineMessageIds, o.m.ID)
		p.TimelineTenantIds = append(p.TimelineTenantIds, o.m.TenantID)
		p.TimelineTypes = append(p.TimelineTypes, typ)
		p.TimelineData = append(p.TimelineData, string(b))
		return nil
	}
	for _, o := range group {
		reply, _ := json.Marshal(o.row.reply)
		next := time.Time{}
		if o.row.next != nil {
			next = *o.row.next
		}
		p.TenantIds = append(p.TenantIds, o.m.TenantID)
		p.Ids = append(p.Ids, o.m.ID)
		p.Attempts = append(p.Attempts, o.m.Attempts)
		p.Statuses = append(p.Statuses, o.row.status)
		p.LastReplies = append(p.LastReplies, string(reply))
		p.StatusReasons = append(p.StatusReasons, o.row.reason)
		p.NextAttemptAts = append(p.NextAttemptAts, next)
		if o.attempt != nil {
			if err := timeline(o, "attempt", o.attempt); err != nil {
				return p, err
			}
		}
		if err := timeline(o, o.step, o.data); err != nil {
			return p, err
		}
		e := messageStreamEvent(o.m, o.step, o.data)
		if e == nil {
			continue
		}
		row, err := event.Row(e)
		if err != nil {
			return p, err
		}
		p.EventIds = append(p.EventIds, row.ID)
		p.EventTenantIds = append(p.EventTenantIds, row.TenantID)
		p.EventTypes = append(p.EventTypes, row.Type)
		p.EventCreatedAts = append(p.EventCreatedAts, row.CreatedAt)
		p.EventMessageIds = append(p.EventMessageIds, o.m.ID)
		p.EventConnectorIds = append(p.EventConnectorIds, o.m.ConnectorID)
		p.EventData = append(p.EventData, string(row.Data))
	}
	return p, nil
}

// usePrimaryKeyPlans sets, for the rest of tx, how the group statements (claims and
// outcomes, which take arrays of ids) are planned. PostgreSQL keeps planning a custom plan
// for them on every call (about 1–2 ms of CPU each, several times their execution), so they
// use one generic plan per connection instead. A generic plan is made once, when the
// connection first runs the statement, and then kept until the table's statistics change:
// made while the tables are still small (a fresh database, before autovacuum has analysed
// them), it joined by hash over a sequential scan of messages, and went on scanning the
// whole table for every group (hundreds of pages per call in `make bench`). With sequential
// scans off while it is made, the plan is what it must be at any size: index lookups by
// primary key. Both settings end with the transaction.
func usePrimaryKeyPlans(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "SELECT set_config('plan_cache_mode', 'force_generic_plan', true), set_config('enable_seqscan', 'off', true)")
	if err != nil {
		return fmt.Errorf("error setting the group statements' plans: %w", err)
	}
	return nil
}
