package message

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// claimProbe is a script for the sink that looks at the message's row from another
// connection whenever the attempt reaches MAIL and DATA, so a test sees what was durable
// when.
type claimProbe struct {
	b              *recordBundle
	id             string
	mails          atomic.Int64
	atMail, atData atomic.Value // the row as another connection saw it: "status/attempts"
}

func (p *claimProbe) script() *smtptest.Script {
	return &smtptest.Script{
		MailFunc: func(string) *smtp.SMTPError {
			p.mails.Add(1)
			p.atMail.Store(p.row())
			return nil
		},
		DataFunc: func(smtptest.Message) *smtp.SMTPError {
			p.atData.Store(p.row())
			return nil
		},
	}
}

// row reads the message's status and attempts on a connection of its own.
func (p *claimProbe) row() string {
	var status string
	var attempts int
	if err := p.b.pool.QueryRow(context.Background(), "SELECT status, attempts FROM messages WHERE id = $1", p.id).Scan(&status, &attempts); err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%s/%d", status, attempts)
}

// atCommitSQL makes every COMMIT that claims a message run fn first: a deferred constraint
// trigger fires at COMMIT, after the claim's statement has returned its row.
const atCommitSQL = `CREATE FUNCTION at_claim_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	%s;
	RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER at_claim_commit AFTER UPDATE ON messages DEFERRABLE INITIALLY DEFERRED
	FOR EACH ROW WHEN (NEW.status = 'sending') EXECUTE FUNCTION at_claim_commit()`

func TestClaimCommitGatesData(t *testing.T) {
	t.Parallel()

	t.Run("DataWaitsForTheCommit", func(t *testing.T) {
		t.Parallel()
		p := &claimProbe{}
		b := setupRecordWith(t, 1, smtptest.Opts{Script: p.script()})
		p.b = b
		p.id = b.submit(t, 1)[0]
		// The claim's COMMIT takes half a second; MAIL goes meanwhile, DATA after it.
		_, err := b.pool.Exec(context.Background(), fmt.Sprintf(atCommitSQL, "PERFORM pg_sleep(0.5)"))
		require.NoError(t, err)
		a, err := b.deliverer.Attempt(context.Background(), b.tenantID, p.id, AttemptOpts{RetryAt: time.Now().Add(time.Hour)})
		require.NoError(t, err)
		require.Equal(t, VerdictDelivered, a.Verdict)
		require.Equal(t, "queued/0", p.atMail.Load(), "MAIL went out while the claim's COMMIT was in flight")
		require.Equal(t, "sending/1", p.atData.Load(), "the message was handed over only after its claim was durable")
		require.Len(t, b.srv.Messages(), 1)
		require.Equal(t, 1, b.countWhere(t, "SELECT count(*) FROM messages WHERE id = $1 AND status = 'delivered' AND attempts = 1", p.id))
	})

	t.Run("FailedCommitSendsNoData", func(t *testing.T) {
		t.Parallel()
		p := &claimProbe{}
		b := setupRecordWith(t, 1, smtptest.Opts{Script: p.script()})
		p.b = b
		p.id = b.submit(t, 1)[0]
		_, err := b.pool.Exec(context.Background(), fmt.Sprintf(atCommitSQL, "PERFORM pg_sleep(0.2); RAISE EXCEPTION 'claim refused at commit'"))
		require.NoError(t, err)
		a, err := b.deliverer.Attempt(context.Background(), b.tenantID, p.id, AttemptOpts{RetryAt: time.Now().Add(time.Hour)})
		require.Nil(t, a)
		require.ErrorContains(t, err, "claim refused at commit")
		require.EqualValues(t, 1, p.mails.Load(), "MAIL went out while the claim's COMMIT was in flight")
		require.Nil(t, p.atData.Load(), "no DATA after a failed COMMIT")
		require.Empty(t, b.srv.Messages())
		require.Equal(t, 1, b.countWhere(t, "SELECT count(*) FROM messages WHERE id = $1 AND status = 'queued' AND attempts = 0", p.id), "the message is as it was")
		require.Zero(t, b.countWhere(t, "SELECT count(*) FROM message_events WHERE message_id = $1 AND type <> 'queued'", p.id))

		// The transaction was reset, so the pooled connection carries the next attempt.
		_, err = b.pool.Exec(context.Background(), "DROP TRIGGER at_claim_commit ON messages")
		require.NoError(t, err)
		a, err = b.deliverer.Attempt(context.Background(), b.tenantID, p.id, AttemptOpts{RetryAt: time.Now().Add(time.Hour)})
		require.NoError(t, err)
		require.Equal(t, VerdictDelivered, a.Verdict)
		require.Equal(t, 1, a.Number, "the failed claim did not count as an attempt")
		require.Len(t, b.srv.Messages(), 1)
		require.Equal(t, 1, b.srv.Connections())
	})
}

// TestFailedGroupCommitSendsNoData: claims that commit as a group get their rows before the
// COMMIT too, and none of them sends DATA when it fails.
func TestFailedGroupCommitSendsNoData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var mails, datas atomic.Int64
	b := setupRecordWith(t, 1, smtptest.Opts{Script: &smtptest.Script{
		MailFunc: func(string) *smtp.SMTPError { mails.Add(1); return nil },
		DataFunc: func(smtptest.Message) *smtp.SMTPError { datas.Add(1); return nil },
	}})
	c := newClaimer(b.deliverer, 1)
	groups := make(chan int, 10)
	c.groupFunc = func(n int) { groups <- n }
	b.deliverer.claimer = c
	ids := b.submit(t, 3)
	_, err := b.pool.Exec(ctx, fmt.Sprintf(atCommitSQL, "RAISE EXCEPTION 'claim refused at commit'"))
	require.NoError(t, err)
	// The first claim waits behind a lock while the other two queue, then they go as a group.
	lock, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = lock.Rollback(ctx) })
	_, err = lock.Exec(ctx, "LOCK TABLE message_events IN EXCLUSIVE MODE")
	require.NoError(t, err)
	errs := make(chan error, len(ids))
	for i, id := range ids {
		go func() {
			_, err := b.deliverer.Attempt(ctx, b.tenantID, id, AttemptOpts{RetryAt: time.Now().Add(time.Hour)})
			errs <- err
		}()
		if i == 0 {
			require.Equal(t, 1, <-groups)
		}
	}
	require.Eventually(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.queue) == 2 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, lock.Rollback(ctx))
	require.Equal(t, 2, <-groups, "the queued claims form one group")
	for range ids {
		require.ErrorContains(t, <-errs, "claim refused at commit")
	}
	require.EqualValues(t, 3, mails.Load(), "each attempt sent MAIL while its claim's COMMIT was in flight")
	require.Zero(t, datas.Load())
	require.Empty(t, b.srv.Messages())
	require.Equal(t, 3, b.countWhere(t, "SELECT count(*) FROM messages WHERE status = 'queued' AND attempts = 0"))
}
