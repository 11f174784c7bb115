package message

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/secret"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// TestCircuitBreakerPausesOnWrongPassword: after three attempts in a row answered 535, the
// connector is paused, no further login reaches the server and the messages wait; fixing
// the password resumes it and they deliver.
func TestCircuitBreakerPausesOnWrongPassword(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	srv := smtptest.NewServer(t, smtptest.Opts{Auth: true, RequireAuth: true})
	conns := b.svc.connectors
	conn, err := conns.Default(ctx, b.tenantID)
	require.NoError(t, err)
	port, plain := srv.Port(), string(delivery.AuthPlain)
	user, wrong := connector.Optional[string]{Value: ptr(smtptest.DefaultUsername)}, connector.Optional[string]{Value: ptr("wrong password")}
	_, err = conns.Update(ctx, b.tenantID, conn.ID, connector.Patch{SMTP: &connector.SMTPPatch{Port: &port, AuthMechanism: &plain, Username: &user, Password: &wrong}})
	require.NoError(t, err)

	w := b.svc.deliverer
	var ids []string
	for range 2 {
		acc, _, err := b.svc.Submit(ctx, b.tenantID, request(), nil)
		require.NoError(t, err)
		ids = append(ids, acc.ID)
	}
	work := func(id string) *Attempt {
		a, err := w.Attempt(ctx, b.tenantID, id, AttemptOpts{RetryAt: time.Now().Add(time.Minute)})
		require.NoError(t, err)
		return a
	}

	// Three attempts across the two messages, each a failed login.
	for _, id := range []string{ids[0], ids[1], ids[0]} {
		a := work(id)
		require.Equal(t, VerdictDeferred, a.Verdict)
		require.Equal(t, delivery.CodeAuthFailed, a.Outcome.Code)
	}
	conn, err = conns.Get(ctx, b.tenantID, conn.ID)
	require.NoError(t, err)
	require.Equal(t, connector.StatusPaused, conn.Status)
	require.Equal(t, connector.PausedAuthFailed, conn.Breaker.PausedReason)
	require.Equal(t, 3, conn.Breaker.ConsecutiveFailures)
	require.Equal(t, 535, conn.Breaker.LastFailure.SMTPCode, "the last reply is kept: %+v", conn.Breaker.LastFailure)
	var paused string
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT data->>'reason' FROM events WHERE type = 'connector.paused' AND connector_id = $1", conn.ID).Scan(&paused))
	require.Equal(t, "auth.failed", paused)

	logins := srv.Connections()
	for _, id := range ids {
		require.Equal(t, VerdictPaused, work(id).Verdict, "a paused connector's messages wait")
	}
	require.Equal(t, logins, srv.Connections(), "no further login reaches the server")
	for _, id := range ids {
		m, err := b.svc.Get(ctx, b.tenantID, id)
		require.NoError(t, err)
		require.NotEqual(t, StatusFailed, m.Status)
	}

	// The tenant fixes the password: the PATCH resumes the connector.
	right := connector.Optional[string]{Value: ptr(smtptest.DefaultPassword)}
	conn, err = conns.Update(ctx, b.tenantID, conn.ID, connector.Patch{SMTP: &connector.SMTPPatch{Password: &right}})
	require.NoError(t, err)
	require.Equal(t, connector.StatusActive, conn.Status)
	require.Zero(t, conn.Breaker.ConsecutiveFailures)
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT data->>'name' FROM events WHERE type = 'connector.resumed' AND connector_id = $1", conn.ID).Scan(new(string)))
	for _, id := range ids {
		require.Equal(t, VerdictDelivered, work(id).Verdict)
		m, err := b.svc.Get(ctx, b.tenantID, id)
		require.NoError(t, err)
		require.Equal(t, StatusDelivered, m.Status)
	}
	require.Len(t, srv.WaitMessages(t, 2, 5*time.Second), 2)
}

// TestCircuitBreakerResetsOnSuccess: failures must be consecutive.
func TestCircuitBreakerResetsOnSuccess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	conns := b.svc.connectors
	conn, err := conns.Default(ctx, b.tenantID)
	require.NoError(t, err)
	authErr := &delivery.Error{Outcome: delivery.Outcome{Class: delivery.ClassConfig, Code: delivery.CodeAuthFailed, SMTPCode: 535, Text: "bad credentials"}, Stage: delivery.StageConnect}
	for range 2 {
		tripped, err := conns.ObserveAttempt(ctx, conn, authErr)
		require.NoError(t, err)
		require.False(t, tripped)
	}
	conn, err = conns.Get(ctx, b.tenantID, conn.ID)
	require.NoError(t, err)
	require.Equal(t, 2, conn.Breaker.ConsecutiveFailures)
	_, err = conns.ObserveAttempt(ctx, conn, nil)
	require.NoError(t, err)
	conn, err = conns.Get(ctx, b.tenantID, conn.ID)
	require.NoError(t, err)
	require.Zero(t, conn.Breaker.ConsecutiveFailures)
	tripped, err := conns.ObserveAttempt(ctx, conn, authErr)
	require.NoError(t, err)
	require.False(t, tripped, "one failure after a success is not three in a row")

	t.Run("CertificateThatStoppedVerifying", func(t *testing.T) {
		tlsErr := &delivery.Error{Outcome: delivery.Outcome{Class: delivery.ClassTemporary, Code: delivery.CodeTLSCertificateInvalid, Text: "expired"}, Stage: delivery.StageConnect}
		var tripped bool
		for range 3 {
			tripped, err = conns.ObserveAttempt(ctx, conn, tlsErr)
			require.NoError(t, err)
		}
		require.True(t, tripped, "a different kind starts over, and three in a row pause")
		conn, err = conns.Get(ctx, b.tenantID, conn.ID)
		require.NoError(t, err)
		require.Equal(t, connector.PausedTLSInvalid, conn.Breaker.PausedReason)
	})
}

func ptr[T any](v T) *T { return &v }

// TestCircuitBreakerPausesOnExpiredCertificate: a server whose certificate worked and then
// expired is retried as temporary by delivery, but three attempts in a row pause the
// connector with tls.certificate_invalid.
func TestCircuitBreakerPausesOnExpiredCertificate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	ca := smtptest.NewCA(t)
	srv := smtptest.NewServer(t, smtptest.Opts{StartTLS: true, CA: ca})
	box, err := secret.NewBox("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	require.NoError(t, err)
	conns := connector.NewService(b.pool, box, connector.Policy{AllowNoAuth: true, AllowPlaintext: true, AllowPrivateAddresses: true, RootCAs: ca.Pool()})
	conn, err := conns.Default(ctx, b.tenantID)
	require.NoError(t, err)
	port, starttls := srv.Port(), string(delivery.SecurityStartTLS)
	_, err = conns.Update(ctx, b.tenantID, conn.ID, connector.Patch{SMTP: &connector.SMTPPatch{Port: &port, Security: &starttls}})
	require.NoError(t, err)
	d := NewDeliverer(b.pool, conns, noSenders{}, NewPools(&delivery.PoolConfig{IdleTimeout: time.Millisecond}), nil, nil)
	svc := NewService(b.pool, b.svc.jobs, conns, noSenders{}, d, Config{})
	work := func() *Attempt {
		acc, _, err := svc.Submit(ctx, b.tenantID, request(), nil)
		require.NoError(t, err)
		a, err := d.Attempt(ctx, b.tenantID, acc.ID, AttemptOpts{RetryAt: time.Now().Add(time.Minute)})
		require.NoError(t, err)
		return a
	}
	require.Equal(t, VerdictDelivered, work().Verdict, "the certificate verifies at first")

	srv.SetCertificate(ca.Issue(t, smtptest.CertOpts{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}))
	time.Sleep(50 * time.Millisecond) // the idle connection with the old certificate is closed
	for range 3 {
		a := work()
		require.Equal(t, VerdictDeferred, a.Verdict, "a certificate problem on an upstream that worked is temporary for the message")
		require.Equal(t, delivery.CodeTLSCertificateInvalid, a.Outcome.Code)
	}
	conn, err = conns.Get(ctx, b.tenantID, conn.ID)
	require.NoError(t, err)
	require.Equal(t, connector.StatusPaused, conn.Status)
	require.Equal(t, connector.PausedTLSInvalid, conn.Breaker.PausedReason)
	require.Contains(t, conn.Breaker.LastFailure.Text, "expired")
}

// TestCircuitBreakerPausesOnSettingsFault: a plaintext connector to a server that offers AUTH
// only after STARTTLS can never deliver; a retry would meet the same answer. Three attempts in
// a row pause the connector with the delivery code as the reason, and its messages wait
// instead of failing on the retry schedule; switching to STARTTLS resumes and delivers.
func TestCircuitBreakerPausesOnSettingsFault(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	srv := smtptest.NewServer(t, smtptest.Opts{StartTLS: true, Auth: true, RequireTLSForAuth: true, RequireAuth: true})
	conns := b.svc.connectors
	conn, err := conns.Default(ctx, b.tenantID)
	require.NoError(t, err)
	port, plain, none := srv.Port(), string(delivery.AuthPlain), string(delivery.SecurityNone)
	user, pass := connector.Optional[string]{Value: ptr(smtptest.DefaultUsername)}, connector.Optional[string]{Value: ptr(smtptest.DefaultPassword)}
	_, err = conns.Update(ctx, b.tenantID, conn.ID, connector.Patch{SMTP: &connector.SMTPPatch{Port: &port, Security: &none, AuthMechanism: &plain, Username: &user, Password: &pass}})
	require.NoError(t, err)

	acc, _, err := b.svc.Submit(ctx, b.tenantID, request(), nil)
	require.NoError(t, err)
	for range 3 {
		a, err := b.svc.deliverer.Attempt(ctx, b.tenantID, acc.ID, AttemptOpts{RetryAt: time.Now().Add(time.Minute)})
		require.NoError(t, err)
		require.Equal(t, delivery.CodeAuthRequiresTLS, a.Outcome.Code, "%+v", a.Outcome)
		require.Equal(t, delivery.ClassConfig, a.Outcome.Class)
	}
	conn, err = conns.Get(ctx, b.tenantID, conn.ID)
	require.NoError(t, err)
	require.Equal(t, connector.StatusPaused, conn.Status)
	require.Equal(t, delivery.CodeAuthRequiresTLS, conn.Breaker.PausedReason)
	require.True(t, conn.Breaker.Tripped())

	a, err := b.svc.deliverer.Attempt(ctx, b.tenantID, acc.ID, AttemptOpts{Last: true})
	require.NoError(t, err)
	require.Equal(t, VerdictPaused, a.Verdict, "even a last attempt waits while the connector is paused")
	m, err := b.svc.Get(ctx, b.tenantID, acc.ID)
	require.NoError(t, err)
	require.NotEqual(t, StatusFailed, m.Status)

	starttls := string(delivery.SecurityStartTLS)
	conn, err = conns.Update(ctx, b.tenantID, conn.ID, connector.Patch{SMTP: &connector.SMTPPatch{Security: &starttls}})
	require.NoError(t, err)
	require.Equal(t, connector.StatusActive, conn.Status, "fixing the settings resumes the connector")
}
