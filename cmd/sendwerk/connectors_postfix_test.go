package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
	"github.com/sendwerk/sendwerk/internal/postfixtest"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// TestConnectorAgainstPostfix proves the connection test and the test e-mail against a
// real MTA nobody here wrote: Debian's Postfix with STARTTLS and Cyrus SASL.
func TestConnectorAgainstPostfix(t *testing.T) {
	t.Parallel()
	sink := smtptest.NewServer(t, smtptest.Opts{})
	pf := postfixtest.Start(t, postfixtest.Opts{RelayHost: sink.Addr(), Users: map[string]string{"relayuser": upstreamPassword}})
	b := setup(t, nil)
	ctx := context.Background()
	_, _, key := b.newTenantKey(t, "Acme", sendwerk.ScopeManage)
	c := b.client(t, key)

	settings := func(security sendwerk.SMTPSecurity, mech sendwerk.SMTPAuthMechanism, password string) *sendwerk.SMTPSettingsInput {
		user := "relayuser@" + postfixtest.Domain
		return &sendwerk.SMTPSettingsInput{Host: "127.0.0.1", Port: pf.Port, Security: security, AuthMechanism: &mech,
			Username: &user, Password: &password, TlsSkipVerify: ptr(true)}
	}
	probe := func(t *testing.T, in *sendwerk.SMTPSettingsInput) *sendwerk.ConnectionTest {
		t.Helper()
		r, err := c.TestConnectorSettingsWithResponse(ctx, sendwerk.ConnectorCreate{Name: "pf", Kind: sendwerk.ConnectorKindSmtp, Smtp: in,
			DefaultSender: sendwerk.Sender{Email: "noreply@acme.example"}})
		require.NoError(t, err)
		require.Equal(t, 200, r.StatusCode(), string(r.Body))
		return r.JSON200
	}

	t.Run("StartTLSWithPlainAndLogin", func(t *testing.T) {
		for _, mech := range []sendwerk.SMTPAuthMechanism{sendwerk.SMTPAuthMechanismPlain, sendwerk.SMTPAuthMechanismLogin} {
			res := probe(t, settings(sendwerk.SMTPSecurityStarttls, mech, upstreamPassword))
			require.True(t, res.Ok, "%s: %v %v", mech, res.Code, res.Message)
			tlsStep := res.Steps[4]
			require.Equal(t, sendwerk.ConnectionTestStepNameTls, tlsStep.Name)
			require.Equal(t, "CN="+postfixtest.Domain, tlsStep.Tls.Subject)
			require.Contains(t, *tlsStep.Capabilities, "AUTH PLAIN LOGIN", "Postfix offers AUTH only after STARTTLS")
		}
	})
	t.Run("WrongPassword", func(t *testing.T) {
		res := probe(t, settings(sendwerk.SMTPSecurityStarttls, sendwerk.SMTPAuthMechanismPlain, "wrong-password"))
		require.False(t, res.Ok)
		require.Equal(t, "auth.failed", *res.Code)
		require.Equal(t, 535, res.Steps[5].Reply.Code)
	})
	t.Run("ImplicitTLSOnAPlainPort", func(t *testing.T) {
		res := probe(t, settings(sendwerk.SMTPSecurityTls, sendwerk.SMTPAuthMechanismPlain, upstreamPassword))
		require.False(t, res.Ok)
		require.Equal(t, "tls.not_tls", *res.Code, *res.Message)
		require.Contains(t, *res.Message, "STARTTLS")
	})
	t.Run("NoTLSMeansNoAuth", func(t *testing.T) {
		res := probe(t, settings(sendwerk.SMTPSecurityNone, sendwerk.SMTPAuthMechanismPlain, upstreamPassword))
		require.False(t, res.Ok)
		require.Contains(t, []string{"auth.requires_tls", "auth.mechanism_unsupported"}, *res.Code, *res.Message)
	})
	t.Run("TestEmailRelayedByPostfix", func(t *testing.T) {
		created, err := c.CreateConnectorWithResponse(ctx, sendwerk.ConnectorCreate{Name: "pf", Kind: sendwerk.ConnectorKindSmtp,
			Smtp:          settings(sendwerk.SMTPSecurityStarttls, sendwerk.SMTPAuthMechanismPlain, upstreamPassword),
			DefaultSender: sendwerk.Sender{Email: "noreply@acme.example", Name: ptr("Acme")}})
		require.NoError(t, err)
		require.Equal(t, 201, created.StatusCode(), string(created.Body))
		r, err := c.SendConnectorTestEmailWithResponse(ctx, created.JSON201.Id, sendwerk.TestEmailRequest{To: "it@customer.example"})
		require.NoError(t, err)
		require.True(t, r.JSON200.Ok, string(r.Body))
		require.NotEmpty(t, *r.JSON200.QueueId, "Postfix names its queue id in the 250 reply")
		msgs := sink.WaitMessages(t, 1, 20*time.Second)
		require.Equal(t, []string{"it@customer.example"}, msgs[0].To)
		require.Contains(t, string(msgs[0].Data), *r.JSON200.MessageId)
		require.Contains(t, pf.Log(), *r.JSON200.QueueId)
	})
	require.NotContains(t, b.logs.String(), upstreamPassword)
}
