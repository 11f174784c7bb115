package main

import (
	"context"
	"testing"
	"time"

	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// TestCircuitBreaker: with a wrong password, River's retries stop after three failed logins
// across messages; the API says why the connector is paused, no further login reaches the
// server and the messages wait; a PATCH with the right password resumes it.
func TestCircuitBreaker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	up := smtptest.NewServer(t, smtptest.Opts{Auth: true, RequireAuth: true})
	b := setup(t, map[string]string{"SENDWERK_DELIVERY_RETRY_SCHEDULE": "1s,1s,1s,1s,1s,1s"})
	_, _, key := b.newTenantKey(t, "Acme", sendwerk.ScopeManage, sendwerk.ScopeMessagesSend)
	c := b.client(t, key)
	plain := sendwerk.SMTPAuthMechanismPlain
	cr, err := c.CreateConnectorWithResponse(ctx, sendwerk.ConnectorCreate{
		Name: "office", Kind: sendwerk.ConnectorKindSmtp,
		Smtp: &sendwerk.SMTPSettingsInput{Host: up.Host(), Port: up.Port(), Security: sendwerk.SMTPSecurityNone,
			AuthMechanism: &plain, Username: ptr(smtptest.DefaultUsername), Password: ptr("wrong password")},
		DefaultSender: sendwerk.Sender{Email: "noreply@acme.example"},
	})
	require.NoError(t, err)
	require.Equal(t, 201, cr.StatusCode(), string(cr.Body))
	s := &sendBundle{testBundle: b, up: up, key: key, c: c, connector: cr.JSON201.Id}
	var ids []string
	for _, to := range []string{"a@customer.example", "b@customer.example"} {
		r := s.send(t, simpleMessage(to))
		require.Equal(t, 202, r.StatusCode(), string(r.Body))
		ids = append(ids, r.JSON202.Id)
	}

	var conn *sendwerk.Connector
	deadline := time.Now().Add(30 * time.Second)
	for {
		g, err := c.GetConnectorWithResponse(ctx, s.connector)
		require.NoError(t, err)
		conn = g.JSON200
		if conn.Status == sendwerk.ConnectorStatusPaused || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.Equal(t, sendwerk.ConnectorStatusPaused, conn.Status)
	reason, err := conn.PausedReason.Get()
	require.NoError(t, err)
	require.Equal(t, sendwerk.ConnectorPausedReasonAuthFailed, reason)
	require.GreaterOrEqual(t, *conn.ConsecutiveFailures, 3)
	require.Equal(t, "auth.failed", conn.LastFailure.Code)
	require.Equal(t, 535, *conn.LastFailure.SmtpCode)

	// Three failed logins pause it; an attempt of the other message that was already under
	// way when the third failed may add one more.
	time.Sleep(500 * time.Millisecond)
	logins := up.Connections()
	require.GreaterOrEqual(t, logins, 3)
	require.LessOrEqual(t, logins, 4)
	time.Sleep(3 * time.Second) // several retry intervals
	require.Equal(t, logins, up.Connections(), "no further login reaches the server")
	for _, id := range ids {
		g, err := c.GetMessageWithResponse(ctx, id)
		require.NoError(t, err)
		require.NotEqual(t, sendwerk.MessageStatusFailed, g.JSON200.Status, "messages wait")
	}

	var pw nullable.Nullable[string]
	pw.Set(smtptest.DefaultPassword)
	u, err := c.UpdateConnectorWithResponse(ctx, s.connector, sendwerk.ConnectorUpdate{Smtp: &sendwerk.SMTPSettingsPatch{Password: pw}})
	require.NoError(t, err)
	require.Equal(t, 200, u.StatusCode(), string(u.Body))
	require.Equal(t, sendwerk.ConnectorStatusActive, u.JSON200.Status, "fixing the password resumes the connector")
	require.Zero(t, *u.JSON200.ConsecutiveFailures)
	require.True(t, u.JSON200.PausedReason.IsNull())
}
