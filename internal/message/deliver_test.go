package message

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/secret"
	"github.com/sendwerk/sendwerk/internal/smtptest"
	"github.com/sendwerk/sendwerk/internal/tenant"
)

// deliverBundle is a tenant with an smtp connector to an smtptest server, all inside one
// rolled-back transaction, and the River worker under rivertest.
type deliverBundle struct {
	ctx      context.Context
	tx       pgx.Tx
	srv      *smtptest.Server
	svc      *Service
	conns    *connector.Service
	tenantID string
	connID   string
	river    *river.Client[pgx.Tx]
	worker   *rivertest.Worker[DeliverArgs, pgx.Tx]
}

func setupDeliver(t *testing.T, opts smtptest.Opts, cfg DeliverConfig) *deliverBundle {
	t.Helper()
	ctx := context.Background()
	tx := dbtest.TestTx(ctx, t)
	srv := smtptest.NewServer(t, opts)
	box, err := secret.NewBox("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	require.NoError(t, err)
	conns := connector.NewService(tx, box, connector.Policy{AllowNoAuth: true, AllowPlaintext: true, AllowPrivateAddresses: true})
	ten, err := tenant.NewService(tx).Create(ctx, "Acme", nil)
	require.NoError(t, err)
	conn, err := conns.Create(ctx, ten.ID, connector.Input{Name: "own", Kind: connector.KindSMTP,
		SMTP:   &connector.SMTPInput{Host: srv.Host(), Port: srv.Port(), Security: string(delivery.SecurityNone)},
		Sender: connector.Sender{Email: "noreply@acme.example"}})
	require.NoError(t, err)
	pools := NewPools(nil)
	t.Cleanup(pools.Close)
	deliverer := NewDeliverer(tx, conns, noSenders{}, pools, nil, nil)
	worker := NewDeliverWorker(deliverer, cfg)
	workers := river.NewWorkers()
	river.AddWorker(workers, worker)
	rc := &river.Config{Workers: workers}
	client, err := river.NewClient(riverpgxv5.New(nil), rc)
	require.NoError(t, err)
	return &deliverBundle{ctx: ctx, tx: tx, srv: srv, conns: conns, tenantID: ten.ID, connID: conn.ID, river: client,
		svc:    NewService(tx, client, conns, noSenders{}, deliverer, Config{MaxAttempts: len(cfg.RetrySchedule) + 1}),
		worker: rivertest.NewWorker(t, riverpgxv5.New(nil), rc, worker)}
}

// submit queues a message and returns its id and job.
func (b *deliverBundle) submit(t *testing.T) (string, *rivertype.JobRow) {
	t.Helper()
	acc, _, err := b.svc.Submit(b.ctx, b.tenantID, request(), nil)
	require.NoError(t, err)
	var jobID int64
	require.NoError(t, b.tx.QueryRow(b.ctx, "SELECT job_id FROM messages WHERE id = $1", acc.ID).Scan(&jobID))
	job, err := b.river.JobGetTx(b.ctx, b.tx, jobID)
	require.NoError(t, err)
	return acc.ID, job
}

func (b *deliverBundle) work(t *testing.T, job *rivertype.JobRow) *rivertest.WorkResult {
	t.Helper()
	res, err := b.worker.WorkJob(b.ctx, t, b.tx, job)
	require.NoError(t, err)
	return res
}

// timeline is the message's events as (type, attempt outcome) pairs.
func (b *deliverBundle) timeline(t *testing.T, id string) []string {
	t.Helper()
	rows, err := b.tx.Query(b.ctx, "SELECT type, data FROM message_events WHERE message_id = $1 ORDER BY id", id)
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		var typ string
		var data []byte
		require.NoError(t, rows.Scan(&typ, &data))
		if typ == "attempt" {
			var a struct {
				Attempt int    `json:"attempt"`
				Outcome string `json:"outcome"`
			}
			require.NoError(t, json.Unmarshal(data, &a))
			typ = "attempt " + string(rune('0'+a.Attempt)) + " " + a.Outcome
		}
		out = append(out, typ)
	}
	require.NoError(t, rows.Err())
	return out
}

func (b *deliverBundle) status(t *testing.T, id string) string {
	t.Helper()
	var s string
	require.NoError(t, b.tx.QueryRow(b.ctx, "SELECT status FROM messages WHERE id = $1", id).Scan(&s))
	return s
}

var shortSchedule = DeliverConfig{RetrySchedule: []time.Duration{time.Minute, time.Minute}}

func TestDeliverWorker(t *testing.T) {
	t.Parallel()

	t.Run("DeliveredAndJobCompletedTogether", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, smtptest.Opts{}, shortSchedule)
		id, job := b.submit(t)
		res := b.work(t, job)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		require.Equal(t, StatusDelivered, b.status(t, id))
		require.Equal(t, []string{"queued", "attempt 1 delivered", "delivered"}, b.timeline(t, id))
		require.Len(t, b.srv.Messages(), 1)
	})

	t.Run("TemporaryFailureRetries", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, smtptest.Opts{Script: &smtptest.Script{DataFunc: func(smtptest.Message) *smtp.SMTPError {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		}}}, shortSchedule)
		id, job := b.submit(t)
		res, err := b.worker.WorkJob(b.ctx, t, b.tx, job)
		require.ErrorContains(t, err, "delivery deferred (smtp.deferred)")
		require.Equal(t, river.EventKindJobFailed, res.EventKind)
		require.Equal(t, rivertype.JobStateRetryable, res.Job.State)
		require.Equal(t, StatusDeferred, b.status(t, id))
		require.Equal(t, []string{"queued", "attempt 1 smtp.deferred", "deferred"}, b.timeline(t, id))
	})

	// A connection lost during DATA without a reply: the upstream may have taken the final
	// dot, so the attempt is unknown, not merely deferred.
	t.Run("DropDuringDataIsUnknown", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, smtptest.Opts{DropMidData: true}, shortSchedule)
		id, job := b.submit(t)
		_, err := b.worker.WorkJob(b.ctx, t, b.tx, job)
		require.ErrorContains(t, err, "delivery deferred (unknown)")
		require.Equal(t, StatusDeferred, b.status(t, id))
		require.Equal(t, []string{"queued", "attempt 1 unknown", "deferred"}, b.timeline(t, id))
	})

	t.Run("PermanentFailureCancels", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, smtptest.Opts{Script: &smtptest.Script{DataFunc: func(smtptest.Message) *smtp.SMTPError {
			return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "no"}
		}}}, shortSchedule)
		id, job := b.submit(t)
		res := b.work(t, job)
		require.Equal(t, river.EventKindJobCancelled, res.EventKind)
		require.Equal(t, StatusFailed, b.status(t, id))
		require.Equal(t, []string{"queued", "attempt 1 smtp.rejected", "failed"}, b.timeline(t, id))
	})

	t.Run("LastAttemptFails", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, smtptest.Opts{Script: &smtptest.Script{DataFunc: func(smtptest.Message) *smtp.SMTPError {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		}}}, shortSchedule)
		id, job := b.submit(t)
		_, err := b.tx.Exec(b.ctx, "UPDATE river_job SET attempt = max_attempts - 1 WHERE id = $1", job.ID)
		require.NoError(t, err)
		job, err = b.river.JobGetTx(b.ctx, b.tx, job.ID)
		require.NoError(t, err)
		res := b.work(t, job)
		require.Equal(t, river.EventKindJobCancelled, res.EventKind)
		require.Equal(t, StatusFailed, b.status(t, id))
	})

	// A process died after the attempt's start was committed (status sending) and before its
	// outcome was: River rescues the job, and the next attempt shows the lost one as unknown
	// before its own delivered — the timeline says the message may have arrived twice.
	t.Run("LostAttemptBecomesUnknown", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, smtptest.Opts{}, shortSchedule)
		id, job := b.submit(t)
		_, err := b.tx.Exec(b.ctx, "UPDATE messages SET status = 'sending', attempts = 1 WHERE id = $1", id)
		require.NoError(t, err)
		res := b.work(t, job)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		require.Equal(t, []string{"queued", "attempt 1 unknown", "attempt 2 delivered", "delivered"}, b.timeline(t, id))
	})

	t.Run("PausedConnectorSnoozes", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, smtptest.Opts{}, shortSchedule)
		id, job := b.submit(t)
		_, err := b.tx.Exec(b.ctx, "UPDATE connectors SET status = 'paused' WHERE id = $1", b.connID)
		require.NoError(t, err)
		res := b.work(t, job)
		require.Equal(t, river.EventKindJobSnoozed, res.EventKind)
		require.Equal(t, StatusQueued, b.status(t, id))
		require.Empty(t, b.srv.Messages())
	})

	t.Run("FinishedMessageCompletesWithoutSending", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, smtptest.Opts{}, shortSchedule)
		id, job := b.submit(t)
		_, err := b.tx.Exec(b.ctx, "UPDATE messages SET status = 'delivered' WHERE id = $1", id)
		require.NoError(t, err)
		res := b.work(t, job)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Empty(t, b.srv.Messages())
	})
}

// TestSendTest: a connector's test e-mail is one Deliverer attempt; whatever the upstream
// does, it answers with an outcome (never an error) and leaves the message final.
func TestSendTest(t *testing.T) {
	t.Parallel()

	t.Run("Delivered", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, smtptest.Opts{}, shortSchedule)
		out, err := b.svc.SendTest(b.ctx, b.tenantID, b.connID, "it@customer.example")
		require.NoError(t, err)
		require.True(t, out.OK, out.Message)
		require.Equal(t, StatusDelivered, b.status(t, out.ID))
	})

	// Regression: an upstream that wants AUTH the connector does not offer made the test
	// e-mail answer 500 (a panic on the fabricated River job) and stay `sending` for ever.
	t.Run("UnexpectedAuthNeverLeavesSending", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, smtptest.Opts{Auth: true, RequireAuth: true}, shortSchedule)
		out, err := b.svc.SendTest(b.ctx, b.tenantID, b.connID, "it@customer.example")
		require.NoError(t, err)
		require.False(t, out.OK)
		require.NotEmpty(t, out.Code)
		require.Equal(t, StatusFailed, b.status(t, out.ID))
		require.Equal(t, []string{"queued", "attempt 1 " + out.Code, "failed"}, b.timeline(t, out.ID))
	})

	t.Run("TemporaryFailureIsFinal", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, smtptest.Opts{DropMidData: true}, shortSchedule)
		out, err := b.svc.SendTest(b.ctx, b.tenantID, b.connID, "it@customer.example")
		require.NoError(t, err)
		require.False(t, out.OK)
		require.Equal(t, StatusFailed, b.status(t, out.ID))
	})
}
