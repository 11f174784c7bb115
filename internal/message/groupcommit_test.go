package message

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// groupBundle is a service with one committer whose first commit waits behind a lock the
// test holds, so the submissions started meanwhile queue up and commit as one group.
type groupBundle struct {
	*testBundle
	mu     sync.Mutex
	groups []int
}

func setupGroup(t *testing.T) *groupBundle {
	t.Helper()
	b := &groupBundle{testBundle: setup(t)}
	b.svc.group = newCommitter(b.svc, 1)
	b.svc.group.groupFunc = func(n int) {
		b.mu.Lock()
		b.groups = append(b.groups, n)
		b.mu.Unlock()
	}
	return b
}

// submitBehindLock locks table, starts the last of n submissions and waits until its
// commit has begun (it then waits behind the lock), starts the others, waits until they are
// queued behind that commit, releases the lock and returns each answer. Starting the first
// alone keeps the groups deterministic: the committer goroutine may be scheduled late, and
// submissions arriving before it runs would otherwise share the first commit.
func (b *groupBundle) submitBehindLock(t *testing.T, table string, n int, req func(i int) (*Request, *Idempotency)) ([]*Accepted, []error) {
	t.Helper()
	return b.behindLock(t, table, n, func(i int) (*Accepted, error) {
		r, idem := req(i)
		acc, _, err := b.svc.Submit(context.Background(), b.tenantID, r, idem)
		return acc, err
	})
}

// behindLock is submitBehindLock with each submission made by submit.
func (b *groupBundle) behindLock(t *testing.T, table string, n int, submit func(i int) (*Accepted, error)) ([]*Accepted, []error) {
	t.Helper()
	ctx := context.Background()
	lock, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = lock.Rollback(ctx) })
	_, err = lock.Exec(ctx, "LOCK TABLE "+table+" IN EXCLUSIVE MODE")
	require.NoError(t, err)
	accs, errs := make([]*Accepted, n), make([]error, n)
	var wg sync.WaitGroup
	start := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			accs[i], errs[i] = submit(i)
		}()
	}
	start(n - 1)
	require.Eventually(t, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.groups) == 1
	}, 10*time.Second, 5*time.Millisecond, "the first submission's commit begins")
	for i := range n - 1 {
		start(i)
	}
	require.Eventually(t, func() bool {
		b.svc.group.mu.Lock()
		defer b.svc.group.mu.Unlock()
		return len(b.svc.group.queue) == n-1
	}, 10*time.Second, 5*time.Millisecond, "the submissions queue behind the first commit")
	require.NoError(t, lock.Rollback(ctx))
	wg.Wait()
	return accs, errs
}

func TestGroupCommit(t *testing.T) {
	t.Parallel()

	t.Run("CommitsQueuedSubmissionsTogether", func(t *testing.T) {
		t.Parallel()
		b := setupGroup(t)
		accs, errs := b.submitBehindLock(t, "usage_counters", 20, func(int) (*Request, *Idempotency) { return request(), nil })
		ids := map[string]bool{}
		for i := range accs {
			require.NoError(t, errs[i])
			ids[accs[i].ID] = true
		}
		require.Len(t, ids, 20, "every caller gets its own message")
		require.Equal(t, []int{1, 19}, b.groups, "the first commits alone, the rest as one group")
		for _, table := range []string{"messages", "message_events", "river_job"} {
			require.Equal(t, 20, b.count(t, table), table)
		}
		var unlinked int
		require.NoError(t, b.pool.QueryRow(context.Background(),
			"SELECT count(*) FROM messages m LEFT JOIN river_job j ON j.id = m.job_id WHERE j.id IS NULL OR j.args->>'message_id' <> m.id").Scan(&unlinked))
		require.Zero(t, unlinked, "each message points at its own job")
		u, err := b.svc.Usage(context.Background(), b.tenantID)
		require.NoError(t, err)
		require.Equal(t, int64(20), u.Month.Count)
	})

	t.Run("LimitJudgesEachSubmissionOnItsOwn", func(t *testing.T) {
		t.Parallel()
		b := setupGroup(t)
		_, err := b.pool.Exec(context.Background(), "UPDATE connectors SET limit_per_minute = 5")
		require.NoError(t, err)
		// One fixed instant: a run crossing a minute boundary would start a new window.
		now := time.Now()
		b.svc.NowFunc = func() time.Time { return now }
		_, errs := b.submitBehindLock(t, "usage_counters", 12, func(int) (*Request, *Idempotency) { return request(), nil })
		accepted, limited := 0, 0
		for _, err := range errs {
			var le *LimitError
			switch {
			case err == nil:
				accepted++
			case errors.As(err, &le):
				limited++
			default:
				t.Fatal(err)
			}
		}
		require.Equal(t, 5, accepted)
		require.Equal(t, 7, limited)
		require.Equal(t, 5, b.count(t, "messages"))
		u, err := b.svc.Usage(context.Background(), b.tenantID)
		require.NoError(t, err)
		require.Equal(t, int64(5), u.Month.Count, "the group's rolled-back counting left nothing behind")
	})

	t.Run("RepeatedKeyInOneGroupMakesOneMessage", func(t *testing.T) {
		t.Parallel()
		b := setupGroup(t)
		// Seven requests with one key: six with one body, one with another. Whichever
		// body arrives first wins; every request with that body gets its message, every
		// request with the other body a conflict. A different key fills the lone first commit.
		body := func(i int) string {
			if i == 7 {
				return "other"
			}
			return "same"
		}
		accs, errs := b.submitBehindLock(t, "usage_counters", 9, func(i int) (*Request, *Idempotency) {
			key := "k-group"
			if i == 8 {
				key = "k-other"
			}
			return request(), NewIdempotency(key, "send", []byte(body(i)))
		})
		won := map[string]map[string]bool{} // body → message ids answered
		lost := map[string]int{}            // body → conflicts
		accepted := 0
		for i := range 8 {
			if errors.Is(errs[i], ErrIdempotencyReuse) {
				lost[body(i)]++
				continue
			}
			require.NoError(t, errs[i])
			accepted++
			if won[body(i)] == nil {
				won[body(i)] = map[string]bool{}
			}
			won[body(i)][accs[i].ID] = true
		}
		require.Len(t, won, 1, "one body wins the key: %v, conflicts %v", won, lost)
		for winner, ids := range won {
			require.Len(t, ids, 1, "every repeat of the winning request answers with one message")
			require.Zero(t, lost[winner])
		}
		require.Equal(t, 8, accepted+lost["same"]+lost["other"])
		require.NoError(t, errs[8])
		require.Equal(t, 2, b.count(t, "messages"))
	})

	t.Run("AFailedCommitFailsEveryCallerAndStoresNothing", func(t *testing.T) {
		t.Parallel()
		b := setupGroup(t)
		_, err := b.pool.Exec(context.Background(), "ALTER TABLE river_job ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
		require.NoError(t, err)
		// Keys are claimed first, so the first commit waits there and fails after.
		_, errs := b.submitBehindLock(t, "idempotency_keys", 10, func(i int) (*Request, *Idempotency) {
			return request(), NewIdempotency("k"+string(rune('a'+i)), "send", []byte("{}"))
		})
		for _, err := range errs {
			require.Error(t, err)
		}
		for _, table := range []string{"messages", "message_events", "river_job", "usage_counters", "idempotency_keys"} {
			require.Zero(t, b.count(t, table), "%s must be empty after a failed group", table)
		}
	})

	t.Run("SubmissionsBeingPreparedJoinTheGroup", func(t *testing.T) {
		t.Parallel()
		b := setupGroup(t)
		b.svc.group.window = time.Minute // only the arrivals end the wait here
		ctx := context.Background()
		late := b.svc.group.arrive() // a submission still being prepared
		errs := make(chan error, 2)
		submit := func() {
			_, _, err := b.svc.Submit(ctx, b.tenantID, request(), nil)
			errs <- err
		}
		go submit()
		require.Eventually(t, func() bool {
			b.svc.group.mu.Lock()
			defer b.svc.group.mu.Unlock()
			return b.svc.group.gathering && len(b.svc.group.queue) == 1
		}, 10*time.Second, time.Millisecond, "the committer waits for the one being prepared")
		go submit()
		require.Eventually(t, func() bool {
			b.svc.group.mu.Lock()
			defer b.svc.group.mu.Unlock()
			return len(b.svc.group.queue) == 2
		}, 10*time.Second, time.Millisecond, "a second submission joins the queue")
		b.mu.Lock()
		require.Empty(t, b.groups, "nothing commits while a submission is still being prepared")
		b.mu.Unlock()
		late.leave() // refused, say: it will not queue
		require.NoError(t, <-errs)
		require.NoError(t, <-errs)
		require.Equal(t, []int{2}, b.groups)
		require.Equal(t, 2, b.count(t, "messages"))
	})

	t.Run("GatheringWaitsAtMostTheWindow", func(t *testing.T) {
		t.Parallel()
		b := setupGroup(t)
		b.svc.group.window = 50 * time.Millisecond
		never := b.svc.group.arrive()
		defer never.leave()
		start := time.Now()
		_, _, err := b.svc.Submit(context.Background(), b.tenantID, request(), nil)
		require.NoError(t, err)
		require.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond, "it waited for the submission being prepared")
		require.Less(t, time.Since(start), 5*time.Second, "but not past the window")
		require.Equal(t, []int{1}, b.groups)
	})

	t.Run("AMemberThatCannotBeStoredFailsAlone", func(t *testing.T) {
		t.Parallel()
		b := setupGroup(t)
		ctx := context.Background()
		// The last submission (queued with the others) names a tenant that no longer
		// exists: the group's insert fails on it, and the others must not fail with it.
		accs, errs := b.behindLock(t, "usage_counters", 6, func(i int) (*Accepted, error) {
			if i != 4 {
				acc, _, err := b.svc.Submit(ctx, b.tenantID, request(), nil)
				return acc, err
			}
			p, err := b.svc.prepare(ctx, b.tenantID, request())
			if err != nil {
				return nil, err
			}
			acc, _, err := b.svc.group.submit(ctx, &pending{tenantID: "ten_gone", p: p, acc: &Accepted{ID: p.id, Status: StatusQueued}})
			return acc, err
		})
		require.Equal(t, []int{1, 5}, b.groups, "the five queued behind the first commit as one group")
		for i := range accs {
			if i == 4 {
				require.Error(t, errs[i], "the member that cannot be stored fails")
				continue
			}
			require.NoError(t, errs[i], "submission %d", i)
		}
		require.Equal(t, 5, b.count(t, "messages"))
		require.Equal(t, 5, b.count(t, "river_job"))
	})

	t.Run("ALoneSubmissionIsNotDelayed", func(t *testing.T) {
		t.Parallel()
		b := setupGroup(t)
		b.svc.group.window = time.Minute // a lone submission must not wait for it at all
		start := time.Now()
		for range 3 {
			_, _, err := b.svc.Submit(context.Background(), b.tenantID, request(), nil)
			require.NoError(t, err)
		}
		require.Less(t, time.Since(start), 30*time.Second, "no submission waited for the window")
		require.Equal(t, []int{1, 1, 1}, b.groups)
	})

	t.Run("ASpareCommitterStartsBehindASlowCommit", func(t *testing.T) {
		t.Parallel()
		b := setupGroup(t)
		b.svc.group.max = 2
		ctx := context.Background()
		// Another transaction holds the Idempotency-Key the first submission claims, so
		// that submission's commit waits until the test lets it go.
		idem := func() *Idempotency { return NewIdempotency("held", "send", []byte("{}")) }
		holder, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		t.Cleanup(func() { _ = holder.Rollback(ctx) })
		_, err = b.svc.claim(ctx, holder, b.tenantID, idem())
		require.NoError(t, err)

		slow := make(chan error, 1)
		go func() {
			_, _, err := b.svc.Submit(ctx, b.tenantID, request(), idem())
			slow <- err
		}()
		require.Eventually(t, func() bool {
			b.mu.Lock()
			defer b.mu.Unlock()
			return len(b.groups) == 1
		}, 10*time.Second, time.Millisecond, "the first commit begins and waits for the key")

		// With a long spare delay the next submission waits behind the slow commit.
		b.svc.group.mu.Lock()
		b.svc.group.spareDelay = time.Hour
		b.svc.group.mu.Unlock()
		waiting := make(chan error, 1)
		go func() {
			_, _, err := b.svc.Submit(ctx, b.tenantID, request(), nil)
			waiting <- err
		}()
		require.Eventually(t, func() bool {
			b.svc.group.mu.Lock()
			defer b.svc.group.mu.Unlock()
			return len(b.svc.group.queue) == 1 && b.svc.group.spare != nil
		}, 10*time.Second, time.Millisecond, "it queues and arms the spare timer")
		select {
		case err := <-waiting:
			t.Fatalf("a submission behind a busy committer committed before the spare delay: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		b.svc.group.mu.Lock()
		require.Equal(t, 1, b.svc.group.running, "no spare committer yet")
		// Once the oldest has waited the delay, a spare commits it while the slow one waits.
		b.svc.group.spareDelay = 20 * time.Millisecond
		b.svc.group.spare.Reset(0)
		b.svc.group.mu.Unlock()
		select {
		case err := <-waiting:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("no spare committer started behind the slow commit")
		}
		select {
		case err := <-slow:
			t.Fatalf("the slow commit ended while its key was held: %v", err)
		default:
		}
		require.NoError(t, holder.Rollback(ctx))
		require.NoError(t, <-slow)
		require.Equal(t, []int{1, 1}, b.groups)
		require.Equal(t, 2, b.count(t, "messages"))
	})

	t.Run("LeftoversBehindAFullGroupGetASpare", func(t *testing.T) {
		t.Parallel()
		b := setupGroup(t)
		c := b.svc.group
		c.max, c.limit = 2, 2
		ctx := context.Background()
		hold := func(key string) pgx.Tx {
			tx, err := b.pool.Begin(ctx)
			require.NoError(t, err)
			t.Cleanup(func() { _ = tx.Rollback(ctx) })
			_, err = b.svc.claim(ctx, tx, b.tenantID, NewIdempotency(key, "send", []byte("{}")))
			require.NoError(t, err)
			return tx
		}
		submit := func(key string) chan error {
			done := make(chan error, 1)
			go func() {
				var idem *Idempotency
				if key != "" {
					idem = NewIdempotency(key, "send", []byte("{}"))
				}
				_, _, err := b.svc.Submit(ctx, b.tenantID, request(), idem)
				done <- err
			}()
			return done
		}
		queued := func(n int) func() bool {
			return func() bool {
				c.mu.Lock()
				defer c.mu.Unlock()
				return len(c.queue) == n
			}
		}
		c.mu.Lock()
		c.spareDelay = time.Hour
		c.mu.Unlock()
		// The first commit waits for key w; x (waiting for key x), y and z queue behind it.
		heldW, heldX := hold("w"), hold("x")
		w := submit("w")
		require.Eventually(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.groups) == 1 }, 10*time.Second, time.Millisecond)
		x := submit("x")
		require.Eventually(t, queued(1), 10*time.Second, time.Millisecond)
		y := submit("")
		require.Eventually(t, queued(2), 10*time.Second, time.Millisecond)
		z := submit("")
		require.Eventually(t, queued(3), 10*time.Second, time.Millisecond)
		// No spare timer is armed (as for submissions that queued while a committer
		// gathered); once w commits, the committer takes the full group [x y], which waits
		// for key x, and z is left over.
		c.mu.Lock()
		c.spare.Stop()
		c.spare = nil
		c.spareDelay = 20 * time.Millisecond
		c.mu.Unlock()
		require.NoError(t, heldW.Rollback(ctx))
		require.NoError(t, <-w)
		select {
		case err := <-z:
			require.NoError(t, err, "a spare committer commits the leftover")
		case <-time.After(10 * time.Second):
			t.Fatal("the submission left behind a full group waited for its commit")
		}
		select {
		case err := <-x:
			t.Fatalf("the full group committed while key x was held: %v", err)
		default:
		}
		require.NoError(t, heldX.Rollback(ctx))
		require.NoError(t, <-x)
		require.NoError(t, <-y)
		require.Equal(t, []int{1, 2, 1}, b.groups)
	})
}
