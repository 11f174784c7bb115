package message

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/smtptest"
	"github.com/sendwerk/sendwerk/internal/suppression"
	"github.com/sendwerk/sendwerk/internal/tenant"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// withSuppressions turns the suppression list on in a setup bundle.
func (b *testBundle) withSuppressions() *suppression.Service {
	sup := suppression.NewService(b.pool)
	b.svc.cfg.Suppressions = sup
	return sup
}

func TestSubmitLeavesSuppressedRecipientsOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("SomeSuppressed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sup := b.withSuppressions()
		_, err := sup.Add(ctx, b.tenantID, suppression.Entry{Address: "GONE@customer.example", Reason: suppression.ReasonHardBounce})
		require.NoError(t, err)
		req := request()
		req.To = append(req.To, Address{Email: "gone@customer.example"})
		acc, _, err := b.svc.Submit(ctx, b.tenantID, req, nil)
		require.NoError(t, err)
		require.Equal(t, []SuppressedRecipient{{Address: "gone@customer.example", Reason: suppression.ReasonHardBounce}}, acc.Suppressed)
		m, err := b.svc.Get(ctx, b.tenantID, acc.ID)
		require.NoError(t, err)
		require.Equal(t, []string{"jane@customer.example"}, m.Recipients, "the envelope leaves the suppressed address out")
		require.Len(t, m.Events, 2)
		require.Equal(t, EventSuppressed, m.Events[1].Type)
		require.Contains(t, m.Events[1].Data["recipients"], map[string]any{"address": "gone@customer.example", "reason": "hard_bounce"})
	})
	t.Run("AllSuppressed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sup := b.withSuppressions()
		_, err := sup.Add(ctx, b.tenantID, suppression.Entry{Address: "jane@customer.example", Reason: suppression.ReasonComplaint})
		require.NoError(t, err)
		_, _, err = b.svc.Submit(ctx, b.tenantID, request(), nil)
		var se *SuppressedError
		require.True(t, errors.As(err, &se), "got %v", err)
		var ve *validate.Error
		require.True(t, errors.As(err, &ve), "front doors see a field error")
		require.Equal(t, "recipients", ve.Fields[0].Field)
		require.Contains(t, ve.Fields[0].Message, "jane@customer.example is on the suppression list (complaint)")
		require.Zero(t, b.count(t, "messages"))
	})
	t.Run("ExpiredEntryNoLongerSuppresses", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sup := b.withSuppressions()
		_, err := sup.Add(ctx, b.tenantID, suppression.Entry{Address: "jane@customer.example", Reason: suppression.ReasonManual})
		require.NoError(t, err)
		_, err = b.pool.Exec(ctx, "UPDATE suppressions SET expires_at = now() - interval '1 second'")
		require.NoError(t, err)
		acc, _, err := b.svc.Submit(ctx, b.tenantID, request(), nil)
		require.NoError(t, err)
		require.Empty(t, acc.Suppressed)
	})
	t.Run("BatchItemsAreJudgedOnTheirOwn", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sup := b.withSuppressions()
		_, err := sup.Add(ctx, b.tenantID, suppression.Entry{Address: "jane@customer.example", Reason: suppression.ReasonUnsubscribe})
		require.NoError(t, err)
		other := request()
		other.To = []Address{{Email: "joe@customer.example"}}
		items, _, err := b.svc.SubmitBatch(ctx, b.tenantID, []*Request{request(), other}, nil)
		require.NoError(t, err)
		require.NotNil(t, items[0].Refusal)
		require.Equal(t, RefusalInvalid, items[0].Refusal.Reason)
		require.Equal(t, "recipients", items[0].Refusal.Errors[0].Field)
		require.NotNil(t, items[1].Accepted)
	})
}

// TestGroupCommitLooksSuppressionsUpOnce: the submissions of one group commit, of two
// tenants, are looked up on their suppression lists in one statement, and each is judged
// on its own as if it had been submitted alone: one whose every recipient is suppressed is
// refused while the others commit, one with some suppressed is told which, also on a
// replay of its key, and one tenant's entry does not suppress another's recipient.
func TestGroupCommitLooksSuppressionsUpOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupGroup(t)
	pool, tr := tracedPool(t, b.pool)
	svc := NewService(pool, b.svc.jobs, b.svc.connectors, noSenders{}, b.svc.deliverer, Config{Suppressions: suppression.NewService(pool)})
	svc.group = b.svc.group
	svc.group.s = svc
	b.svc = svc

	other, err := tenant.NewService(b.pool).Create(ctx, "Other", nil)
	require.NoError(t, err)
	_, err = b.svc.connectors.Create(ctx, other.ID, connector.Input{Name: "own", Kind: connector.KindSMTP,
		SMTP:   &connector.SMTPInput{Host: "127.0.0.1", Port: 25, Security: string(delivery.SecurityNone)},
		Sender: connector.Sender{Email: "noreply@acme.example"}})
	require.NoError(t, err)
	for _, e := range []suppression.Entry{{Address: "jane@customer.example", Reason: suppression.ReasonComplaint}, {Address: "gone@customer.example", Reason: suppression.ReasonHardBounce}} {
		_, err := b.svc.cfg.Suppressions.Add(ctx, b.tenantID, e)
		require.NoError(t, err)
	}
	to := func(addrs ...string) *Request {
		r := request()
		r.To = nil
		for _, a := range addrs {
			r.To = append(r.To, Address{Email: a})
		}
		return r
	}
	idem := NewIdempotency("k-some", "send", []byte("{}"))
	// The last commits alone first; the others commit as one group behind it.
	subs := []struct {
		tenantID string
		req      *Request
		idem     *Idempotency
	}{
		{b.tenantID, to("jane@customer.example"), nil},
		{b.tenantID, to("joe@customer.example", "gone@customer.example"), idem},
		{b.tenantID, to("joe@customer.example"), nil},
		{other.ID, to("jane@customer.example"), nil},
		{b.tenantID, to("jane@customer.example", "joe@customer.example"), nil},
	}
	accs, errs := b.behindLock(t, "usage_counters", len(subs), func(i int) (*Accepted, error) {
		acc, _, err := b.svc.Submit(ctx, subs[i].tenantID, subs[i].req, subs[i].idem)
		return acc, err
	})
	require.Equal(t, []int{1, 4}, b.groups)
	require.Equal(t, 2, tr.lookups, "one lookup for the lone commit, one for the group")

	var se *SuppressedError
	require.True(t, errors.As(errs[0], &se), "got %v", errs[0])
	require.Equal(t, []SuppressedRecipient{{Address: "jane@customer.example", Reason: suppression.ReasonComplaint}}, se.Recipients)
	for i := 1; i < len(subs); i++ {
		require.NoError(t, errs[i], "submission %d", i)
	}
	require.Equal(t, 4, b.count(t, "messages"), "only the refused one is missing")

	some := []SuppressedRecipient{{Address: "gone@customer.example", Reason: suppression.ReasonHardBounce}}
	require.Equal(t, some, accs[1].Suppressed)
	m, err := b.svc.Get(ctx, b.tenantID, accs[1].ID)
	require.NoError(t, err)
	require.Equal(t, []string{"joe@customer.example"}, m.Recipients)
	require.Len(t, m.Events, 2)
	require.Equal(t, EventSuppressed, m.Events[1].Type)
	replayed, _, err := b.svc.Submit(ctx, b.tenantID, subs[1].req, idem)
	require.NoError(t, err)
	require.Equal(t, accs[1].ID, replayed.ID)
	require.Equal(t, some, replayed.Suppressed, "the stored answer names the suppressed recipient")

	require.Empty(t, accs[2].Suppressed)
	require.Empty(t, accs[3].Suppressed, "the other tenant's list does not have jane")
	require.Equal(t, []SuppressedRecipient{{Address: "jane@customer.example", Reason: suppression.ReasonComplaint}}, accs[4].Suppressed)
	var suppressedEvents int
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT count(*) FROM events WHERE type = 'message.suppressed'").Scan(&suppressedEvents))
	require.Equal(t, 2, suppressedEvents)
}

// TestDeliverySuppressesUnknownMailboxes: a 5.1.1 at RCPT suppresses that address, a 5.7.1
// policy rejection does not.
func TestDeliverySuppressesUnknownMailboxes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	sup := b.withSuppressions()
	srv := smtptest.NewServer(t, smtptest.Opts{Script: &smtptest.Script{RcptFunc: func(to string) *smtp.SMTPError {
		switch to {
		case "gone@customer.example":
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "Recipient address rejected: User unknown"}
		case "picky@customer.example":
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected by policy"}
		}
		return nil
	}}})
	conn, err := b.svc.connectors.Default(ctx, b.tenantID)
	require.NoError(t, err)
	port := srv.Port()
	_, err = b.svc.connectors.Update(ctx, b.tenantID, conn.ID, connector.Patch{SMTP: &connector.SMTPPatch{Port: &port}})
	require.NoError(t, err)
	d := b.svc.deliverer
	d.opts.Suppressions = sup

	req := request()
	req.To = []Address{{Email: "gone@customer.example"}, {Email: "picky@customer.example"}}
	acc, _, err := b.svc.Submit(ctx, b.tenantID, req, nil)
	require.NoError(t, err)
	a, err := d.Attempt(ctx, b.tenantID, acc.ID, AttemptOpts{RetryAt: time.Now()})
	require.NoError(t, err)
	require.Equal(t, VerdictFailed, a.Verdict, "a permanent rejection fails the message")

	s, err := sup.Check(ctx, b.tenantID, "gone@customer.example")
	require.NoError(t, err)
	require.NotNil(t, s)
	require.Equal(t, suppression.ReasonHardBounce, s.Reason)
	require.Equal(t, acc.ID, s.SourceMessageID)
	require.Contains(t, s.Detail, "550 5.1.1")
	s, err = sup.Check(ctx, b.tenantID, "picky@customer.example")
	require.NoError(t, err)
	require.Nil(t, s, "a policy rejection does not suppress")
}

func TestSuppressedStreamEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	sup := b.withSuppressions()
	_, err := sup.Add(ctx, b.tenantID, suppression.Entry{Address: "gone@customer.example", Reason: suppression.ReasonHardBounce})
	require.NoError(t, err)
	req := request()
	req.To = append(req.To, Address{Email: "gone@customer.example"})
	acc, _, err := b.svc.Submit(ctx, b.tenantID, req, nil)
	require.NoError(t, err)
	var data string
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT data::text FROM events WHERE type = 'message.suppressed' AND message_id = $1", acc.ID).Scan(&data))
	require.Contains(t, data, `"suppressed": [{"reason": "hard_bounce", "address": "gone@customer.example"}]`)
}

// TestDeliverySuppressesOnDataReply: a single-recipient message refused after DATA with
// 5.1.1 (servers that check recipients late) suppresses its recipient too.
func TestDeliverySuppressesOnDataReply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	sup := b.withSuppressions()
	srv := smtptest.NewServer(t, smtptest.Opts{Script: &smtptest.Script{DataFunc: func(smtptest.Message) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "Mailbox does not exist"}
	}}})
	conn, err := b.svc.connectors.Default(ctx, b.tenantID)
	require.NoError(t, err)
	port := srv.Port()
	_, err = b.svc.connectors.Update(ctx, b.tenantID, conn.ID, connector.Patch{SMTP: &connector.SMTPPatch{Port: &port}})
	require.NoError(t, err)
	d := b.svc.deliverer
	d.opts.Suppressions = sup
	acc, _, err := b.svc.Submit(ctx, b.tenantID, request(), nil)
	require.NoError(t, err)
	a, err := d.Attempt(ctx, b.tenantID, acc.ID, AttemptOpts{RetryAt: time.Now()})
	require.NoError(t, err)
	require.Equal(t, VerdictFailed, a.Verdict)
	s, err := sup.Check(ctx, b.tenantID, "jane@customer.example")
	require.NoError(t, err)
	require.NotNil(t, s)
	require.Contains(t, s.Detail, "550 5.1.1 Mailbox does not exist")
}

func TestRetentionPurgesBounceReportsAndExpiredSuppressions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	sup := b.withSuppressions()
	for _, a := range []string{"old@customer.example", "live@customer.example"} {
		_, err := sup.Add(ctx, b.tenantID, suppression.Entry{Address: a, Reason: suppression.ReasonManual})
		require.NoError(t, err)
	}
	_, err := b.pool.Exec(ctx, "UPDATE suppressions SET expires_at = now() - interval '1 minute' WHERE address = 'old@customer.example'")
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `INSERT INTO bounce_reports (id, kind, outcome, raw, size_bytes, received_at) VALUES
		('bnc_old', 'unknown', 'unparsed', 'x', 1, now() - interval '40 days'), ('bnc_new', 'unknown', 'unparsed', 'y', 1, now())`)
	require.NoError(t, err)
	require.NoError(t, NewRetentionWorker(b.pool, 0).Work(ctx, &river.Job[RetentionArgs]{JobRow: &rivertype.JobRow{}}))
	require.Equal(t, 1, b.count(t, "suppressions"))
	require.Equal(t, 1, b.count(t, "bounce_reports"))
}

// TestSubmitRawLooksRecipientsUpUnlessChecked: a raw submission leaves a suppressed recipient
// out like Submit does, unless its caller says it has just looked every recipient up itself
// (the relay, at RCPT); then the pipeline does not look them up a second time.
func TestSubmitRawLooksRecipientsUpUnlessChecked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	sup := b.withSuppressions()
	_, err := sup.Add(ctx, b.tenantID, suppression.Entry{Address: "gone@customer.example", Reason: suppression.ReasonHardBounce})
	require.NoError(t, err)
	var connectorID string
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT id FROM connectors").Scan(&connectorID))
	raw := func(checked bool) RawSubmission {
		return RawSubmission{
			ConnectorID: connectorID, EnvelopeFrom: "noreply@acme.example", Recipients: []string{"jane@customer.example", "gone@customer.example"},
			Data:              []byte("From: <noreply@acme.example>\r\nTo: <jane@customer.example>\r\nSubject: Hi\r\n\r\nHello\r\n"),
			RecipientsChecked: checked,
		}
	}

	acc, _, err := b.svc.SubmitRaw(ctx, b.tenantID, raw(false))
	require.NoError(t, err)
	require.Equal(t, []SuppressedRecipient{{Address: "gone@customer.example", Reason: suppression.ReasonHardBounce}}, acc.Suppressed)
	m, err := b.svc.Get(ctx, b.tenantID, acc.ID)
	require.NoError(t, err)
	require.Equal(t, []string{"jane@customer.example"}, m.Recipients)

	acc, _, err = b.svc.SubmitRaw(ctx, b.tenantID, raw(true))
	require.NoError(t, err)
	require.Empty(t, acc.Suppressed, "the caller's own lookup stands")
	m, err = b.svc.Get(ctx, b.tenantID, acc.ID)
	require.NoError(t, err)
	require.Equal(t, []string{"jane@customer.example", "gone@customer.example"}, m.Recipients)
}

// TestSubmitScreensSuppressionsUngroupedAndPaused: with group commit off, a submission is
// still looked up on the suppression list before its transaction; and a paused connector's
// submission whose every recipient is suppressed gets the suppression refusal, as it did
// when the lookup came before the pause check.
func TestSubmitScreensSuppressionsUngroupedAndPaused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, grouped := range []bool{false, true} {
		b := setup(t)
		if !grouped {
			b.svc.group = nil
		}
		sup := b.withSuppressions()
		_, err := sup.Add(ctx, b.tenantID, suppression.Entry{Address: "gone@customer.example", Reason: suppression.ReasonHardBounce})
		require.NoError(t, err)
		req := request()
		req.To = append(req.To, Address{Email: "gone@customer.example"})
		acc, _, err := b.svc.Submit(ctx, b.tenantID, req, nil)
		require.NoError(t, err)
		require.Equal(t, []SuppressedRecipient{{Address: "gone@customer.example", Reason: suppression.ReasonHardBounce}}, acc.Suppressed)
		gone := request()
		gone.To = []Address{{Email: "gone@customer.example"}}
		_, _, err = b.svc.Submit(ctx, b.tenantID, gone, nil)
		var se *SuppressedError
		require.True(t, errors.As(err, &se), "got %v", err)
		require.Equal(t, 1, b.count(t, "messages"))

		if !grouped {
			continue
		}
		_, err = b.pool.Exec(ctx, "UPDATE connectors SET status = 'paused'")
		require.NoError(t, err)
		_, _, err = b.svc.Submit(ctx, b.tenantID, gone, nil)
		require.True(t, errors.As(err, &se), "every recipient suppressed, paused connector: got %v", err)
		_, _, err = b.svc.Submit(ctx, b.tenantID, req, nil)
		var pe *ConnectorPausedError
		require.True(t, errors.As(err, &pe), "some recipients left, paused connector: got %v", err)
	}
}
