package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
	"github.com/sendwerk/sendwerk/internal/httpapi"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// longCache is a TTL no test outlives: what these tests see at once, the invalidation in
// the process that made the change did, not the TTL.
var longCache = map[string]string{"SENDWERK_CACHE_TTL": "1h"}

func TestCachesSeeChangesAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RevokedKeyRefusedOnTheNextRequest", func(t *testing.T) {
		t.Parallel()
		s := setupSend(t, longCache, smtptest.Opts{}, nil)
		created, err := s.c.CreateApiKeyWithResponse(ctx, sendwerk.ApiKeyCreate{Name: "temp", Scopes: []sendwerk.Scope{sendwerk.ScopeRead}})
		require.NoError(t, err)
		require.Equal(t, 201, created.StatusCode(), string(created.Body))
		me := s.do(t, "GET", "/v1/me", created.JSON201.Secret, "", "")
		require.Equal(t, 200, me.status, "the key is read and cached: %s", me.body)
		rv, err := s.c.RevokeApiKeyWithResponse(ctx, created.JSON201.Id)
		require.NoError(t, err)
		require.Equal(t, 200, rv.StatusCode(), string(rv.Body))
		after := s.do(t, "GET", "/v1/me", created.JSON201.Secret, "", "")
		require.Equal(t, 401, after.status, string(after.body))
		require.Equal(t, httpapi.TypeUnauthorized, after.problem.Type)
		require.Contains(t, *after.problem.Detail, "revoked")
	})
	t.Run("PausedConnectorRefusedOnTheNextSubmission", func(t *testing.T) {
		t.Parallel()
		s := setupSend(t, longCache, smtptest.Opts{}, nil)
		require.Equal(t, 202, s.send(t, simpleMessage("a@customer.example")).StatusCode(), "the connector is read and cached")
		r, err := s.c.UpdateConnectorWithResponse(ctx, s.connector, sendwerk.ConnectorUpdate{Status: ptr(sendwerk.ConnectorStatusPaused)})
		require.NoError(t, err)
		require.Equal(t, 200, r.StatusCode(), string(r.Body))
		refused := s.send(t, simpleMessage("b@customer.example"))
		require.NotEqual(t, 202, refused.StatusCode(), "a paused connector accepts nothing: %s", refused.Body)
		require.Contains(t, string(refused.Body), "paused")
	})
	t.Run("RevokedRelayCredentialRefusedAtTheNextMailFrom", func(t *testing.T) {
		t.Parallel()
		r := setupRelayE2E(t, longCache)
		c := r.goMail(t, false, r.cred.Password)
		require.NoError(t, c.DialWithContext(ctx))
		t.Cleanup(func() { _ = c.Close() })
		require.NoError(t, c.Send(relayMessage(t, "noreply@acme.example", "Before revoke", "jane@customer.example")),
			"the session's credential is checked and cached")
		rv, err := r.c.RevokeRelayCredentialWithResponse(ctx, r.connector, r.cred.Id)
		require.NoError(t, err)
		require.Equal(t, 200, rv.StatusCode(), string(rv.Body))
		err = c.Send(relayMessage(t, "noreply@acme.example", "After revoke", "jane@customer.example"))
		require.ErrorContains(t, err, "revoked", "the same session, logged in before the revoke")
	})
	t.Run("DeletedTenantsRelaySessionRefusedAtTheNextMailFrom", func(t *testing.T) {
		t.Parallel()
		r := setupRelayE2E(t, longCache)
		c := r.goMail(t, false, r.cred.Password)
		require.NoError(t, c.DialWithContext(ctx))
		t.Cleanup(func() { _ = c.Close() })
		require.NoError(t, c.Send(relayMessage(t, "noreply@acme.example", "Before delete", "jane@customer.example")),
			"credential, connector and sender are checked and cached")
		d, err := r.admin.DeleteTenantWithResponse(ctx, r.tenantOf(t))
		require.NoError(t, err)
		require.Equal(t, 204, d.StatusCode(), string(d.Body))
		err = c.Send(relayMessage(t, "noreply@acme.example", "After delete", "jane@customer.example"))
		require.Error(t, err, "the tenant's credential went with it, and the caches forgot it")
		require.Contains(t, err.Error(), "revoked", "refused at MAIL FROM, not at the commit")
	})
}
