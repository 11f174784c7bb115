package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	sendwerkspec "github.com/sendwerk/sendwerk"
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

// TestHostileInput walks every operation of openapi.yaml: write endpoints get bodies with a
// NUL byte in each top-level string field, invalid UTF-8 and trailing data; every query
// parameter gets a NUL and invalid UTF-8; every path a NUL. Each answer is a 4xx problem,
// never a 5xx (PostgreSQL refuses such text; the server must refuse it first).
func TestHostileInput(t *testing.T) {
	t.Parallel()
	s := setupSend(t, nil, smtptest.Opts{}, nil)
	doc, err := openapi3.NewLoader().LoadFromData(sendwerkspec.OpenAPISpec)
	require.NoError(t, err)
	check := func(t *testing.T, r rawResponse, what string) {
		t.Helper()
		require.True(t, r.status >= 400 && r.status < 500, "%s: %d %s", what, r.status, r.body)
		require.Contains(t, r.header.Get("Content-Type"), "application/problem+json", what)
	}
	writes, reads := 0, 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			token := s.key
			if op.Security != nil && len(*op.Security) > 0 {
				if _, admin := (*op.Security)[0]["adminToken"]; admin {
					token = testAdminToken
				}
			}
			url := pathParam.ReplaceAllString(path, "x0")
			t.Run(method+" "+path, func(t *testing.T) {
				if strings.HasPrefix(url, "/v1/") {
					check(t, s.do(t, method, strings.Replace(url, "/v1/", "/v1/%00", 1), token, "", ""), "NUL in the path")
				}
				if op.RequestBody != nil {
					writes++
					for _, body := range []string{"{\"name\":\"\xff\xfe\"}", `{"name":"x"}xyz`, `{}{}`, `{"name":"a\ud800b"}`} {
						check(t, s.do(t, method, url, token, "application/json", body), body)
					}
					for _, prop := range topLevelProperties(op) {
						r := s.do(t, method, url, token, "application/json", `{"`+prop+`":"a\u0000b"}`)
						check(t, r, prop)
						require.Equal(t, 422, r.status, "%s: %s", prop, r.body)
						require.Contains(t, fieldsOf(r.problem), prop)
					}
				}
				for _, p := range op.Parameters {
					if p.Value.In != "query" {
						continue
					}
					reads++
					for _, v := range []string{"%00", "%FF%FE", "a%00b"} {
						r := s.do(t, method, url+"?"+p.Value.Name+"="+v, token, "", "")
						check(t, r, p.Value.Name+"="+v)
						require.Contains(t, fieldsOf(r.problem), p.Value.Name, string(r.body))
					}
					if p.Value.Name == "cursor" {
						r := s.do(t, method, url+"?cursor=garbage", token, "", "")
						check(t, r, "cursor=garbage")
						if r.status != 404 { // a list under a resource that does not exist
							require.Contains(t, fieldsOf(r.problem), "cursor", string(r.body))
						}
					}
				}
			})
		}
	}
	require.GreaterOrEqual(t, writes, 12, "every write endpoint was tried")
	require.NotZero(t, reads)
	// The list cursors of existing collections, decoded by the one cursor decoder.
	for _, list := range []string{"/v1/messages", "/v1/connectors", "/v1/domains", "/v1/api-keys", "/v1/connectors/" + s.connector + "/relay-credentials"} {
		r := s.do(t, "GET", list+"?cursor=garbage", s.key, "", "")
		require.Equal(t, 400, r.status, "%s: %s", list, r.body)
		require.Contains(t, fieldsOf(r.problem), "cursor")
	}
	r := s.do(t, "GET", "/v1/tenants?cursor=garbage", testAdminToken, "", "")
	require.Equal(t, 400, r.status, string(r.body))
	require.NotContains(t, s.logs.String(), `"status":500`)
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// topLevelProperties are the names of an operation's JSON body properties.
func topLevelProperties(op *openapi3.Operation) []string {
	mt := op.RequestBody.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		return nil
	}
	var out []string
	for name := range mt.Schema.Value.Properties {
		out = append(out, name)
	}
	return out
}
