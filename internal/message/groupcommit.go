package message

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/store"
)

// Group commit: concurrent single submissions (REST and the relay host's DATA) are
// validated and rendered in their callers' goroutines, then handed to a committer that
// looks the group's recipients up on the suppression lists in one query and writes
// whatever is waiting in one pipelined transaction (store.PipeTx) with the batch path's
// statements (River's InsertManyTx, COPY for the messages, one statement for their queued
// steps and stream events, one usage update per connector). No caller is answered before
// that commit. A committer takes what is queued when it is free, so
// under load the queue fills while the previous commit runs — the same self-clocking as a
// database's own group commit. Up to Committers transactions run at a time.
//
// Gathering: before it commits, a committer waits up to gatherWindow while other
// submissions are still being prepared (counted from the start of Submit until they
// queue), so they join its group instead of each taking a transaction of its own. A lone
// client's submission finds none being prepared and commits at once; with concurrent
// clients a submission waits at most the window. While one committer gathers, no other
// starts, or it would take the queue the first is waiting to fill.
//
// Spares: one committer commits while the queue fills behind it, which keeps groups large
// (fewer transactions, less CPU per message under load). A further committer starts only
// once the oldest waiting submission has waited spareDelay, that is when a commit is slow
// (a large group, a lock held by another transaction, a database under strain), so one
// tenant's slow commit holds up other submissions for at most that long.

// DefaultCommitters is how many group transactions may run at once.
const DefaultCommitters = 2

// gatherWindow bounds how long a committer waits for submissions still being prepared.
const gatherWindow = 2 * time.Millisecond

// spareDelay is how long the oldest queued submission waits for a busy committer before
// another one starts (up to Committers).
const spareDelay = 10 * time.Millisecond

// maxGroup bounds one transaction, so one commit does not hold counter locks for long.
const maxGroup = 200

// groupCommitTimeout bounds one group's transaction; callers' own contexts do not cancel a
// commit that carries other callers' messages.
const groupCommitTimeout = 30 * time.Second

// pending is one submission waiting for its commit.
type pending struct {
	tenantID string
	p        *prepared
	idem     *Idempotency
	acc      *Accepted
	arrival  *arrival
	done     chan commitResult
	// queued is when it joined the queue.
	queued time.Time
}

type commitResult struct {
	acc   *Accepted
	quota *Quota
	err   error
}

// committer queues pendings and runs up to max group transactions at a time.
type committer struct {
	s      *Service
	max    int
	window time.Duration
	// spareDelay: see spareDelay; spare is the timer that starts a spare committer.
	spareDelay time.Duration
	spare      *time.Timer
	// limit bounds a group (maxGroup).
	limit int
	mu    sync.Mutex
	queue []*pending
	// running counts committer goroutines; gathering is set while one of them waits for
	// submissions still being prepared, preparing counts those.
	running   int
	gathering bool
	preparing int
	// changed is closed (and replaced) whenever the queue grows or preparing drops.
	changed chan struct{}
	// groupFunc, when set (metrics, tests), is told the size of each group before it commits.
	groupFunc func(n int)
}

func newCommitter(s *Service, n int) *committer {
	return &committer{s: s, max: n, window: gatherWindow, spareDelay: spareDelay, limit: maxGroup, changed: make(chan struct{}), groupFunc: s.cfg.GroupSizeFunc}
}

// arrival is one submission being prepared, counted until it queues or gives up.
type arrival struct {
	c    *committer
	done bool
}

// arrive counts a submission that will probably reach the queue soon; nil-safe, so a
// service without grouping needs no branch.
func (c *committer) arrive() *arrival {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	c.preparing++
	c.mu.Unlock()
	return &arrival{c: c}
}

// leave ends the count of a submission that will not queue (refused, or an error).
func (a *arrival) leave() {
	if a == nil || a.done {
		return
	}
	a.c.mu.Lock()
	a.c.left(a)
	a.c.mu.Unlock()
}

// left drops a from the count; c.mu is held.
func (c *committer) left(a *arrival) {
	if a == nil || a.done {
		return
	}
	a.done = true
	c.preparing--
	c.notify()
}

// notify wakes a gathering committer; c.mu is held.
func (c *committer) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// submit queues pd and waits for its answer. When ctx ends first, the message may still be
// committed: the caller's answer is then ctx's error, as with a connection lost mid-commit.
func (c *committer) submit(ctx context.Context, pd *pending) (*Accepted, *Quota, error) {
	pd.done = make(chan commitResult, 1)
	c.mu.Lock()
	pd.queued = time.Now()
	c.queue = append(c.queue, pd)
	c.left(pd.arrival)
	c.notify()
	c.startLocked()
	c.mu.Unlock()
	select {
	case r := <-pd.done:
		return r.acc, r.quota, r.err
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

// startLocked starts a committer for the queue when none runs, or arms the spare timer
// when committers are busy and fewer than max run. c.mu is held.
func (c *committer) startLocked() {
	switch {
	case c.gathering || c.running >= c.max || len(c.queue) == 0:
	case c.running == 0 || c.spareDelay <= 0:
		c.running++
		go c.loop()
	case c.spare == nil:
		wait := c.spareDelay - time.Since(c.queue[0].queued)
		c.spare = time.AfterFunc(max(wait, 0), c.startSpare)
	}
}

// startSpare starts another committer when the oldest queued submission has waited
// spareDelay, or looks again when it will have.
func (c *committer) startSpare() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.spare = nil
	if len(c.queue) == 0 || c.gathering || c.running >= c.max {
		return
	}
	if time.Since(c.queue[0].queued) >= c.spareDelay {
		c.running++
		go c.loop()
		return
	}
	c.startLocked()
}

// loop commits what is queued until the queue is empty, or another committer is
// gathering it.
func (c *committer) loop() {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 || c.gathering {
			c.running--
			c.mu.Unlock()
			return
		}
		c.gather()
		n := min(len(c.queue), c.limit)
		group := slices.Clone(c.queue[:n])
		c.queue = slices.Delete(c.queue, 0, n)
		// What is left (more than a group, or arrivals while it gathered, which armed no
		// spare timer) must not wait for this commit longer than the spare delay.
		c.startLocked()
		c.mu.Unlock()
		c.commit(group)
	}
}

// gather waits, up to the window, while submissions are still being prepared and the
// group is not full. c.mu is held on entry and on return.
func (c *committer) gather() {
	if c.preparing == 0 || c.window <= 0 || len(c.queue) >= c.limit {
		return
	}
	c.gathering = true
	timer := time.NewTimer(c.window)
	defer timer.Stop()
	for c.preparing > 0 && len(c.queue) < c.limit {
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
			c.mu.Lock()
		case <-timer.C:
			c.mu.Lock()
			c.gathering = false
			return
		}
	}
	c.gathering = false
}

func (c *committer) commit(group []*pending) {
	ctx, cancel := context.WithTimeout(context.Background(), groupCommitTimeout)
	defer cancel()
	if c.groupFunc != nil {
		c.groupFunc(len(group))
	}
	group = c.s.screenSuppressed(ctx, group)
	c.s.reserveDirect(group)
	switch len(group) {
	case 0:
		return
	case 1:
		group[0].answer(c.s.commitOne(ctx, group[0]))
		return
	}
	leaders, followers := splitDuplicateKeys(group)
	results, err := c.s.commitGroup(ctx, leaders)
	var limit *LimitError
	_, unavailable := store.AsUnavailable(err)
	if errors.As(err, &limit) || (err != nil && !unavailable) {
		// A limit or quota is reached by the group as a whole, or one submission cannot be
		// stored (its tenant deleted meanwhile, say): the rollback undid everything, and
		// each submission is judged on its own, exactly as without grouping, so one bad
		// member fails alone. Only a database that is unavailable fails the whole group.
		for _, pd := range leaders {
			pd.answer(c.s.commitOne(ctx, pd))
		}
	} else {
		for i, pd := range leaders {
			if err != nil {
				pd.answer(nil, nil, err)
				continue
			}
			pd.answer(results[i].acc, results[i].quota, results[i].err)
		}
	}
	// A repeat of a key within one group is answered like a repeat after the commit:
	// the first request's answer for the same body, a conflict for another.
	for _, f := range followers {
		f.answer(c.s.Replay(ctx, f.tenantID, f.idem))
	}
}

// screenSuppressed looks up the recipients of the group's unscreened submissions on their
// tenants' suppression lists in one query, before the group's transaction (one round trip,
// as the lookup each made on its own before), and leaves the suppressed ones out of each,
// as a batch does. A submission left without recipients is answered alone with its
// *SuppressedError, and a failed lookup answers the submissions that needed it with the
// error; the others are returned, to be committed.
func (s *Service) screenSuppressed(ctx context.Context, group []*pending) []*pending {
	var due []*pending
	for _, pd := range group {
		if pd.p.unscreened {
			due = append(due, pd)
		}
	}
	if len(due) == 0 {
		return group
	}
	hits, err := s.matchPending(ctx, due)
	kept := make([]*pending, 0, len(group))
	for _, pd := range group {
		if !pd.p.unscreened {
			kept = append(kept, pd)
			continue
		}
		if err != nil {
			pd.answer(nil, nil, err)
			continue
		}
		pd.p.unscreened = false
		if err := hits[pd.tenantID].drop(pd.p); err != nil {
			pd.answer(nil, nil, err)
			continue
		}
		pd.acc.Suppressed = pd.p.suppressed
		kept = append(kept, pd)
	}
	return kept
}

func (pd *pending) answer(acc *Accepted, q *Quota, err error) {
	pd.settleDirect(err == nil)
	pd.done <- commitResult{acc: acc, quota: q, err: err}
}

// splitDuplicateKeys keeps the first submission of each Idempotency-Key in the group;
// later ones are answered after the first's commit.
func splitDuplicateKeys(group []*pending) (leaders, followers []*pending) {
	seen := map[[2]string]bool{}
	for _, pd := range group {
		if pd.idem == nil {
			leaders = append(leaders, pd)
			continue
		}
		k := [2]string{pd.tenantID, pd.idem.Key}
		if seen[k] {
			followers = append(followers, pd)
			continue
		}
		seen[k] = true
		leaders = append(leaders, pd)
	}
	return leaders, followers
}

// Replay answers a repeated Idempotency-Key from what its first request stored.
func (s *Service) Replay(ctx context.Context, tenantID string, idem *Idempotency) (*Accepted, *Quota, error) {
	raw, err := s.replay(ctx, tenantID, idem)
	if err == nil && raw == nil {
		return nil, nil, fmt.Errorf("error replaying idempotency key: no stored response")
	}
	return decodeAccepted(raw, err)
}

// commitOne is one submission in its own transaction: claim its key, insert, count, remember.
func (s *Service) commitOne(ctx context.Context, pd *pending) (*Accepted, *Quota, error) {
	var quota *Quota
	var replayed []byte
	err := store.WithPipeTx(ctx, s.db, func(tx pgx.Tx) error {
		resetDirect(pd)
		var err error
		if pd.idem != nil {
			if replayed, err = s.claim(ctx, tx, pd.tenantID, pd.idem); replayed != nil || err != nil {
				return err
			}
		}
		if err := s.insert(ctx, tx, pd.tenantID, []*prepared{pd.p}); err != nil {
			return err
		}
		if quota, err = s.addUsage(ctx, tx, pd.tenantID, map[*connector.Connector]int{pd.p.conn: 1}); err != nil {
			return err
		}
		return s.remember(ctx, tx, pd.tenantID, pd.idem, pd.acc)
	})
	if replayed != nil || err != nil {
		a, _, derr := decodeAccepted(replayed, err)
		return a, quota, derr
	}
	return pd.acc, quota, nil
}

// commitGroup writes leaders in one transaction and returns each one's answer. A key held
// by an earlier request is answered from it and its submission is not inserted; any other
// failure fails the whole group (a LimitError lets the caller judge each on its own).
func (s *Service) commitGroup(ctx context.Context, leaders []*pending) ([]commitResult, error) {
	results := make([]commitResult, len(leaders))
	err := store.WithPipeTx(ctx, s.db, func(tx pgx.Tx) error {
		clear(results)
		resetDirect(leaders...)
		keep, err := s.claimGroup(ctx, tx, leaders, results)
		if err != nil {
			return err
		}
		byTenant := map[string][]int{}
		for _, i := range keep {
			byTenant[leaders[i].tenantID] = append(byTenant[leaders[i].tenantID], i)
		}
		// Tenants in a fixed order, like connectors within addUsage, so concurrent groups
		// lock counter rows in the same order.
		for _, tenantID := range slices.Sorted(maps.Keys(byTenant)) {
			if err := s.commitTenant(ctx, tx, tenantID, leaders, byTenant[tenantID], results); err != nil {
				return err
			}
		}
		return nil
	})
	return results, err
}

// claimGroup claims the group's Idempotency-Keys in key order (so two groups cannot wait
// on each other) and returns the indexes of the submissions to insert.
func (s *Service) claimGroup(ctx context.Context, tx pgx.Tx, leaders []*pending, results []commitResult) ([]int, error) {
	order := make([]int, len(leaders))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(leaders[a].tenantID, leaders[b].tenantID), cmp.Compare(idemKey(leaders[a]), idemKey(leaders[b])))
	})
	var keep []int
	for _, i := range order {
		pd := leaders[i]
		if pd.idem == nil {
			keep = append(keep, i)
			continue
		}
		replayed, err := s.claim(ctx, tx, pd.tenantID, pd.idem)
		switch {
		case errors.Is(err, ErrIdempotencyReuse):
			results[i].err = err
		case err != nil:
			return nil, err
		case replayed != nil:
			results[i].acc, _, results[i].err = decodeAccepted(replayed, nil)
		default:
			keep = append(keep, i)
		}
	}
	slices.Sort(keep) // insert in arrival order
	return keep, nil
}

func idemKey(pd *pending) string {
	if pd.idem == nil {
		return ""
	}
	return pd.idem.Key
}

// commitTenant inserts one tenant's submissions of the group, counts them and stores the
// answers of those with an Idempotency-Key.
func (s *Service) commitTenant(ctx context.Context, tx pgx.Tx, tenantID string, leaders []*pending, idx []int, results []commitResult) error {
	ps := make([]*prepared, len(idx))
	perConnector := map[*connector.Connector]int{}
	byID := map[string]*connector.Connector{}
	for j, i := range idx {
		p := leaders[i].p
		ps[j] = p
		// Submissions of one connector may carry distinct copies of it; count them as one.
		c := byID[p.conn.ID]
		if c == nil {
			c = p.conn
			byID[p.conn.ID] = c
		}
		perConnector[c]++
	}
	if err := s.insert(ctx, tx, tenantID, ps); err != nil {
		return err
	}
	quota, err := s.addUsage(ctx, tx, tenantID, perConnector)
	if err != nil {
		return err
	}
	for _, i := range idx {
		pd := leaders[i]
		if err := s.remember(ctx, tx, tenantID, pd.idem, pd.acc); err != nil {
			return err
		}
		results[i] = commitResult{acc: pd.acc, quota: quota}
	}
	return nil
}
