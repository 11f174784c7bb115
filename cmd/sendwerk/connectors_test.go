package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

const upstreamPassword = "correct-horse-battery-staple"

func smtpInput(srv *smtptest.Server, password string) *sendwerk.SMTPSettingsInput {
	host, port := srv.Host(), srv.Port()
	user := "relay-user"
	return &sendwerk.SMTPSettingsInput{
		Host: host, Port: port, Security: sendwerk.SMTPSecurityStarttls, Username: &user, Password: &password,
		AuthMechanism: ptr(sendwerk.SMTPAuthMechanismPlain), TlsSkipVerify: ptr(true),
	}
}

func newUpstream(t *testing.T, opts smtptest.Opts) *smtptest.Server {
	t.Helper()
	opts.Auth = true
	opts.Users = map[string]string{"relay-user": upstreamPassword}
	return smtptest.NewServer(t, opts)
}

func TestConnectors(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	_, _, key := b.newTenantKey(t, "Acme", sendwerk.ScopeManage)
	c := b.client(t, key)
	up := newUpstream(t, smtptest.Opts{StartTLS: true})

	create := func(t *testing.T, body sendwerk.ConnectorCreate) *sendwerk.Connector {
		t.Helper()
		r, err := c.CreateConnectorWithResponse(ctx, body)
		require.NoError(t, err)
		require.Equal(t, 201, r.StatusCode(), string(r.Body))
		require.NotContains(t, string(r.Body), upstreamPassword)
		return r.JSON201
	}
	first := create(t, sendwerk.ConnectorCreate{Name: "own", Kind: sendwerk.ConnectorKindSmtp, Smtp: smtpInput(up, upstreamPassword),
		DefaultSender: sendwerk.Sender{Email: "noreply@acme.example", Name: ptr("Acme")},
		Limits:        &sendwerk.ConnectorLimits{PerMinute: nullable.NewNullableWithValue[int64](60)}})

	t.Run("CreatedWithSecretsHidden", func(t *testing.T) {
		require.True(t, first.IsDefault, "a tenant's first connector is its default")
		require.Equal(t, sendwerk.ConnectorStatusActive, first.Status)
		require.True(t, first.Smtp.PasswordSet)
		require.Equal(t, 15, first.Smtp.ConnectTimeoutSeconds)
		require.Equal(t, int64(60), first.Limits.PerMinute.MustGet())
		require.True(t, first.Limits.PerHour.IsNull())
		require.Contains(t, first.Warnings[0], "tls_skip_verify")
		var row string
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT c::text FROM connectors c WHERE id = $1", first.Id).Scan(&row))
		require.NotContains(t, row, upstreamPassword, "the password is stored encrypted")
		require.NotContains(t, row, fmt.Sprintf("%x", upstreamPassword))
	})
	t.Run("TestSavedConnector", func(t *testing.T) {
		r, err := c.TestConnectorWithResponse(ctx, first.Id)
		require.NoError(t, err)
		require.Equal(t, 200, r.StatusCode(), string(r.Body))
		res := r.JSON200
		require.True(t, res.Ok, string(r.Body))
		var names []string
		for _, st := range res.Steps {
			names = append(names, string(st.Name))
			require.Equal(t, sendwerk.ConnectionTestStepStatusOk, st.Status, st.Detail)
		}
		require.Equal(t, []string{"resolve", "connect", "banner", "ehlo", "tls", "auth", "quit"}, names)
		require.NotNil(t, res.Steps[4].Tls)
		require.False(t, res.Steps[4].Tls.Verified, "self-signed: verification was skipped, and said so")

		got, err := c.GetConnectorWithResponse(ctx, first.Id)
		require.NoError(t, err)
		require.NotNil(t, got.JSON200.LastTest, "the last test is stored")
		require.True(t, got.JSON200.LastTest.Ok)
	})
	t.Run("WrongPasswordNamesTheStep", func(t *testing.T) {
		body := sendwerk.ConnectorCreate{Name: "x", Kind: sendwerk.ConnectorKindSmtp, Smtp: smtpInput(up, "wrong-password"),
			DefaultSender: sendwerk.Sender{Email: "noreply@acme.example"}}
		r, err := c.TestConnectorSettingsWithResponse(ctx, body)
		require.NoError(t, err)
		require.Equal(t, 200, r.StatusCode(), string(r.Body))
		require.False(t, r.JSON200.Ok)
		require.Equal(t, "auth.failed", *r.JSON200.Code)
		require.Contains(t, *r.JSON200.Message, "535")
		require.NotContains(t, string(r.Body), "wrong-password")
	})
	t.Run("RefusedPort", func(t *testing.T) {
		in := smtpInput(up, upstreamPassword)
		in.Port = smtptest.ClosedPort(t)
		r, err := c.TestConnectorSettingsWithResponse(ctx, sendwerk.ConnectorCreate{Name: "x", Kind: sendwerk.ConnectorKindSmtp, Smtp: in,
			DefaultSender: sendwerk.Sender{Email: "noreply@acme.example"}})
		require.NoError(t, err)
		require.Equal(t, "tcp.refused", *r.JSON200.Code)
		require.Equal(t, sendwerk.ConnectionTestStepStatusFailed, r.JSON200.Steps[1].Status)
		require.Equal(t, sendwerk.ConnectionTestStepStatusSkipped, r.JSON200.Steps[2].Status)
	})
	t.Run("TestEmail", func(t *testing.T) {
		r, err := c.SendConnectorTestEmailWithResponse(ctx, first.Id, sendwerk.TestEmailRequest{To: "it@customer.example"})
		require.NoError(t, err)
		require.Equal(t, 200, r.StatusCode(), string(r.Body))
		require.True(t, r.JSON200.Ok, string(r.Body))
		require.Equal(t, 250, r.JSON200.Reply.Code)
		require.NotEmpty(t, *r.JSON200.QueueId)
		msgs := up.WaitMessages(t, 1, 5*time.Second)
		m := msgs[len(msgs)-1]
		require.Equal(t, "noreply@acme.example", m.From)
		require.Equal(t, []string{"it@customer.example"}, m.To)
		require.True(t, m.TLS)
		require.Equal(t, "relay-user", m.AuthUser)
		require.Contains(t, string(m.Data), "Subject: Sendwerk test e-mail")
		require.Contains(t, string(m.Data), *r.JSON200.MessageId)

		logged, err := c.GetMessageWithResponse(ctx, r.JSON200.Id)
		require.NoError(t, err)
		require.Equal(t, 200, logged.StatusCode(), string(logged.Body))
		require.Equal(t, sendwerk.MessageSourceTest, logged.JSON200.Source, "the test e-mail is in the message log")
		require.Equal(t, sendwerk.MessageStatusDelivered, logged.JSON200.Status)
		require.Equal(t, []string{"queued", "attempt", "delivered"}, eventTypes(logged.JSON200))
	})
	t.Run("TestEmailRejected", func(t *testing.T) {
		r, err := c.SendConnectorTestEmailWithResponse(ctx, first.Id, sendwerk.TestEmailRequest{To: "not an address"})
		require.NoError(t, err)
		require.Equal(t, 422, r.StatusCode(), string(r.Body))
		require.Equal(t, "to", (*r.ApplicationproblemJSON422.Errors)[0].Field)
	})
	t.Run("PatchKeepsPasswordAndClearsTest", func(t *testing.T) {
		r, err := c.UpdateConnectorWithResponse(ctx, first.Id, sendwerk.ConnectorUpdate{Smtp: &sendwerk.SMTPSettingsPatch{HeloName: nullable.NewNullableWithValue("mta.acme.example")}})
		require.NoError(t, err)
		require.Equal(t, 200, r.StatusCode(), string(r.Body))
		require.True(t, r.JSON200.Smtp.PasswordSet)
		require.Equal(t, "mta.acme.example", *r.JSON200.Smtp.HeloName)
		require.Nil(t, r.JSON200.LastTest, "a test of the old settings is cleared")

		tested, err := c.TestConnectorWithResponse(ctx, first.Id)
		require.NoError(t, err)
		require.True(t, tested.JSON200.Ok, "the kept password still works")
	})
	t.Run("PatchPasswordNullRequiresNoAuth", func(t *testing.T) {
		r := b.do(t, "PATCH", "/v1/connectors/"+first.Id, key, "application/json", `{"smtp":{"password":null}}`)
		require.Equal(t, 422, r.status, string(r.body))
		require.Equal(t, "is required when auth_mechanism is plain", fieldsOf(r.problem)["smtp.password"])
	})
	t.Run("DefaultMovesAndSurvivesDelete", func(t *testing.T) {
		second := create(t, sendwerk.ConnectorCreate{Name: "second", Kind: sendwerk.ConnectorKindSmtp, Smtp: smtpInput(up, upstreamPassword),
			DefaultSender: sendwerk.Sender{Email: "info@acme.example"}, IsDefault: ptr(true)})
		require.True(t, second.IsDefault)
		got, err := c.GetConnectorWithResponse(ctx, first.Id)
		require.NoError(t, err)
		require.False(t, got.JSON200.IsDefault)

		r, err := c.UpdateConnectorWithResponse(ctx, first.Id, sendwerk.ConnectorUpdate{IsDefault: ptr(sendwerk.ConnectorUpdateIsDefault(true)), Status: ptr(sendwerk.ConnectorStatusPaused)})
		require.NoError(t, err)
		require.Equal(t, 200, r.StatusCode(), string(r.Body))
		require.True(t, r.JSON200.IsDefault)
		require.Equal(t, sendwerk.ConnectorStatusPaused, r.JSON200.Status)

		d, err := c.DeleteConnectorWithResponse(ctx, first.Id)
		require.NoError(t, err)
		require.Equal(t, 204, d.StatusCode())
		after, err := c.GetConnectorWithResponse(ctx, second.Id)
		require.NoError(t, err)
		require.True(t, after.JSON200.IsDefault, "the remaining connector becomes the default")
	})
	t.Run("SecretsNeverLogged", func(t *testing.T) {
		require.NotContains(t, b.logs.String(), upstreamPassword)
		require.NotContains(t, b.logs.String(), "wrong-password")
	})
}

func TestConnectorValidation(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"SENDWERK_ALLOW_UNAUTHENTICATED_UPSTREAMS": "false"})
	_, _, key := b.newTenantKey(t, "Acme", sendwerk.ScopeManage)
	cases := []struct {
		name, body string
		fields     map[string]string
	}{
		{"SMTPRequired", `{"name":"x","kind":"smtp","default_sender":{"email":"a@acme.example"}}`, map[string]string{"smtp": "is required when kind is smtp"}},
		{"BadSender", `{"name":"x","kind":"smtp","smtp":{"host":"smtp.acme.example","port":587,"security":"starttls","username":"u","password":"p"},"default_sender":{"email":"nope"}}`,
			map[string]string{"default_sender.email": "must be an e-mail address like name@example.com"}},
		{"SchemaRules", `{"name":"x","kind":"smtp","smtp":{"host":"smtp.acme.example","port":0,"security":"ssl"},"default_sender":{"email":"a@acme.example"}}`,
			map[string]string{"smtp.port": "", "smtp.security": "must be one of: tls, starttls, none"}},
		{"UsernameNeeded", `{"name":"x","kind":"smtp","smtp":{"host":"smtp.acme.example","port":587,"security":"starttls","auth_mechanism":"login"},"default_sender":{"email":"a@acme.example"}}`,
			map[string]string{"smtp.username": "is required when auth_mechanism is login"}},
		{"NoAuthForbiddenByPolicy", `{"name":"x","kind":"smtp","smtp":{"host":"smtp.acme.example","port":25,"security":"none"},"default_sender":{"email":"a@acme.example"}}`,
			map[string]string{"smtp.auth_mechanism": "none is not allowed by this platform; the server must require a login"}},
		{"BadHost", `{"name":"x","kind":"smtp","smtp":{"host":"smtp acme","port":587,"security":"starttls","username":"u","password":"p"},"default_sender":{"email":"a@acme.example"}}`,
			map[string]string{"smtp.host": "must be a host name like smtp.example.com or an IP address"}},
		{"PlatformNotConfigured", `{"name":"x","kind":"platform","default_sender":{"email":"a@acme.example"}}`,
			map[string]string{"kind": "platform is not available: the operator has not configured a platform relay"}},
		{"PasswordIsWriteOnlyNotReadable", `{"name":"x","kind":"smtp","smtp":{"host":"smtp.acme.example","port":587,"security":"starttls","username":"u","password":"p","password_set":true},"default_sender":{"email":"a@acme.example"}}`,
			map[string]string{"smtp.password_set": "is not a known field"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := b.do(t, "POST", "/v1/connectors", key, "application/json", tc.body)
			require.Equal(t, 422, r.status, string(r.body))
			got := fieldsOf(r.problem)
			for f, msg := range tc.fields {
				require.Contains(t, got, f, string(r.body))
				if msg != "" {
					require.Equal(t, msg, got[f])
				}
			}
		})
	}
}

func TestConnectorPolicyPrivateAddresses(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"SENDWERK_ALLOW_PRIVATE_UPSTREAMS": "false"})
	ctx := context.Background()
	_, _, key := b.newTenantKey(t, "Acme", sendwerk.ScopeManage)
	c := b.client(t, key)
	up := newUpstream(t, smtptest.Opts{})

	in := smtpInput(up, upstreamPassword)
	r, err := c.CreateConnectorWithResponse(ctx, sendwerk.ConnectorCreate{Name: "x", Kind: sendwerk.ConnectorKindSmtp, Smtp: in, DefaultSender: sendwerk.Sender{Email: "a@acme.example"}})
	require.NoError(t, err)
	require.Equal(t, 422, r.StatusCode(), string(r.Body))
	require.Contains(t, (*r.ApplicationproblemJSON422.Errors)[0].Message, "must be a public address")

	in.Host = "localhost"
	tr, err := c.TestConnectorSettingsWithResponse(ctx, sendwerk.ConnectorCreate{Name: "x", Kind: sendwerk.ConnectorKindSmtp, Smtp: in, DefaultSender: sendwerk.Sender{Email: "a@acme.example"}})
	require.NoError(t, err)
	require.Equal(t, 200, tr.StatusCode(), string(tr.Body))
	require.Equal(t, "address.not_allowed", *tr.JSON200.Code)
	require.Zero(t, up.Connections(), "no connection was opened")
}

func TestPlatformConnector(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, smtptest.Opts{})
	b := setup(t, map[string]string{
		"SENDWERK_PLATFORM_SMTP_URL": fmt.Sprintf("smtp://relay-user:%s@%s:%d?auth=login", upstreamPassword, up.Host(), up.Port()),
	})
	ctx := context.Background()
	_, _, key := b.newTenantKey(t, "Acme", sendwerk.ScopeManage)
	c := b.client(t, key)

	r, err := c.CreateConnectorWithResponse(ctx, sendwerk.ConnectorCreate{Name: "platform", Kind: sendwerk.ConnectorKindPlatform,
		DefaultSender: sendwerk.Sender{Email: "noreply@acme.example"}})
	require.NoError(t, err)
	require.Equal(t, 201, r.StatusCode(), string(r.Body))
	require.Nil(t, r.JSON201.Smtp, "the platform relay's settings are not the tenant's to see")

	tr, err := c.TestConnectorWithResponse(ctx, r.JSON201.Id)
	require.NoError(t, err)
	require.True(t, tr.JSON200.Ok, string(tr.Body))
	require.Equal(t, "LOGIN", *tr.JSON200.Steps[5].Mechanism)

	// A platform connector sends only from verified domains, test e-mails included.
	mr, err := c.SendConnectorTestEmailWithResponse(ctx, r.JSON201.Id, sendwerk.TestEmailRequest{To: "it@customer.example"})
	require.NoError(t, err)
	require.Equal(t, 422, mr.StatusCode(), string(mr.Body))
	require.Contains(t, (*mr.ApplicationproblemJSON422.Errors)[0].Message, "acme.example is not a sender domain")
	require.Empty(t, up.Messages())
	require.NotContains(t, b.logs.String(), upstreamPassword)
	require.NotContains(t, string(tr.Body)+string(mr.Body), upstreamPassword)
}

func TestConnectorIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	_, _, keyA := b.newTenantKey(t, "A", sendwerk.ScopeManage)
	_, _, keyB := b.newTenantKey(t, "B", sendwerk.ScopeManage)
	up := newUpstream(t, smtptest.Opts{})
	in := smtpInput(up, upstreamPassword)
	in.Security = sendwerk.SMTPSecurityNone
	created, err := b.client(t, keyA).CreateConnectorWithResponse(ctx, sendwerk.ConnectorCreate{Name: "a", Kind: sendwerk.ConnectorKindSmtp, Smtp: in, DefaultSender: sendwerk.Sender{Email: "a@a.example"}})
	require.NoError(t, err)
	require.Equal(t, 201, created.StatusCode(), string(created.Body))
	id := created.JSON201.Id

	for _, call := range []struct{ method, path, body string }{
		{"GET", "/v1/connectors/" + id, ""},
		{"PATCH", "/v1/connectors/" + id, `{"name":"mine"}`},
		{"POST", "/v1/connectors/" + id + "/test", ""},
		{"POST", "/v1/connectors/" + id + "/test-email", `{"to":"x@b.example"}`},
		{"DELETE", "/v1/connectors/" + id, ""},
	} {
		ctype := ""
		if call.body != "" {
			ctype = "application/json"
		}
		r := b.do(t, call.method, call.path, keyB, ctype, call.body)
		require.Equal(t, http.StatusNotFound, r.status, "%s %s: %s", call.method, call.path, r.body)
	}
	list, err := b.client(t, keyB).ListConnectorsWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, list.JSON200.Items)
	require.Zero(t, up.Connections(), "tenant B never reached A's server")
	got, err := b.client(t, keyA).GetConnectorWithResponse(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "a", got.JSON200.Name)
	require.True(t, strings.Contains(got.JSON200.Warnings[0], "unencrypted"))
}
