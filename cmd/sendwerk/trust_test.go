package main

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// verifiedDomainOf gives a new tenant the domain, verified.
func (b *testBundle) verifiedDomainOf(t *testing.T, tenantName, domain string) {
	t.Helper()
	ctx := context.Background()
	_, _, key := b.newTenantKey(t, tenantName, sendwerk.ScopeManage)
	r, err := b.client(t, key).CreateDomainWithResponse(ctx, sendwerk.DomainCreate{Domain: domain})
	require.NoError(t, err)
	require.Equal(t, 201, r.StatusCode(), string(r.Body))
	_, err = b.pool.Exec(ctx, "UPDATE sending_domains SET status = 'verified', verified_at = now() WHERE id = $1", r.JSON201.Id)
	require.NoError(t, err)
}

// leftovers counts what a submission writes: messages, events, delivery jobs and usage.
func (b *testBundle) leftovers(t *testing.T) [4]int {
	t.Helper()
	var n [4]int
	for i, q := range []string{
		"SELECT count(*) FROM messages", "SELECT count(*) FROM message_events",
		"SELECT count(*) FROM river_job WHERE kind = 'message_deliver'", "SELECT coalesce(sum(count), 0) FROM usage_counters",
	} {
		require.NoError(t, b.pool.QueryRow(context.Background(), q).Scan(&n[i]))
	}
	return n
}

// TestDefaultSenderAtAnotherTenantsDomain: an smtp connector may send from exactly its
// default sender without a verified domain — but not from a domain another tenant verified.
func TestDefaultSenderAtAnotherTenantsDomain(t *testing.T) {
	t.Parallel()
	s := setupSend(t, nil, smtptest.Opts{}, nil)
	ctx := context.Background()
	// A connector made while later.example belonged to nobody.
	older := s.do(t, "POST", "/v1/connectors", s.key, "application/json",
		`{"name":"older","kind":"smtp","default_sender":{"email":"ceo@later.example"},"smtp":{"host":"`+s.up.Host()+`","port":`+strconv.Itoa(s.up.Port())+`,"security":"none"}}`)
	require.Equal(t, 201, older.status, string(older.body))
	s.verifiedDomainOf(t, "Other", "other.example")
	s.verifiedDomainOf(t, "Later", "later.example")

	t.Run("CreateRefused", func(t *testing.T) {
		r := s.do(t, "POST", "/v1/connectors", s.key, "application/json",
			`{"name":"spoof","kind":"smtp","default_sender":{"email":"ceo@other.example"},"smtp":{"host":"`+s.up.Host()+`","port":`+strconv.Itoa(s.up.Port())+`,"security":"none"}}`)
		require.Equal(t, 422, r.status, string(r.body))
		require.Contains(t, fieldsOf(r.problem)["default_sender.email"], "another account has verified")
	})
	t.Run("PatchRefused", func(t *testing.T) {
		r := s.do(t, "PATCH", "/v1/connectors/"+s.connector, s.key, "application/json", `{"default_sender":{"email":"ceo@other.example"}}`)
		require.Equal(t, 422, r.status, string(r.body))
		require.Contains(t, fieldsOf(r.problem)["default_sender.email"], "ceo@other.example is at other.example")
		got, err := s.c.GetConnectorWithResponse(ctx, s.connector)
		require.NoError(t, err)
		require.Equal(t, "noreply@acme.example", got.JSON200.DefaultSender.Email, "unchanged")
	})
	t.Run("SubmitRefusedAndLeavesNothing", func(t *testing.T) {
		before := s.leftovers(t)
		var created sendwerk.Connector
		require.NoError(t, json.Unmarshal(older.body, &created))
		m := simpleMessage("jane@customer.example")
		m.From, m.ConnectorId = named("ceo@later.example", "CEO"), &created.Id
		r := s.send(t, m)
		require.Equal(t, 422, r.StatusCode(), string(r.Body))
		require.Contains(t, string(r.Body), `"field":"from.email"`)
		require.Contains(t, string(r.Body), "another account has verified")
		require.Equal(t, before, s.leftovers(t))
	})
	t.Run("OwnDefaultSenderStillSends", func(t *testing.T) {
		r := s.send(t, simpleMessage("jane@customer.example"))
		require.Equal(t, 202, r.StatusCode(), string(r.Body))
	})
}
