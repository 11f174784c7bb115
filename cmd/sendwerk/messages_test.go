package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"
	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
	"github.com/sendwerk/sendwerk/internal/dnstest"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// sendBundle is a server with a tenant, a send key and an smtp connector to a test upstream.
type sendBundle struct {
	*testBundle
	up        *smtptest.Server
	key       string
	c         *sendwerk.ClientWithResponses
	connector string
}

// setupSend starts a server whose tenant has an smtp connector (default sender
// noreply@acme.example) to an in-process upstream.
func setupSend(t *testing.T, env map[string]string, opts smtptest.Opts, limits *sendwerk.ConnectorLimits) *sendBundle {
	t.Helper()
	up := smtptest.NewServer(t, opts)
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env["SENDWERK_DELIVERY_RETRY_SCHEDULE"]; !ok {
		env["SENDWERK_DELIVERY_RETRY_SCHEDULE"] = "1s,1s"
	}
	b := setup(t, env)
	_, _, key := b.newTenantKey(t, "Acme", sendwerk.ScopeManage, sendwerk.ScopeMessagesSend)
	c := b.client(t, key)
	r, err := c.CreateConnectorWithResponse(context.Background(), sendwerk.ConnectorCreate{
		Name: "own", Kind: sendwerk.ConnectorKindSmtp, Limits: limits,
		Smtp:          &sendwerk.SMTPSettingsInput{Host: up.Host(), Port: up.Port(), Security: sendwerk.SMTPSecurityNone},
		DefaultSender: sendwerk.Sender{Email: "noreply@acme.example", Name: ptr("Acme")},
	})
	require.NoError(t, err)
	require.Equal(t, 201, r.StatusCode(), string(r.Body))
	return &sendBundle{testBundle: b, up: up, key: key, c: c, connector: r.JSON201.Id}
}

func addr(s string) sendwerk.EmailAddress {
	var e sendwerk.EmailAddress
	_ = e.FromEmailAddress0(s)
	return e
}

func named(email, name string) sendwerk.EmailAddress {
	var e sendwerk.EmailAddress
	_ = e.FromSender(sendwerk.Sender{Email: email, Name: &name})
	return e
}

func simpleMessage(to ...string) sendwerk.MessageCreate {
	return sendwerk.MessageCreate{From: named("noreply@acme.example", "Acme"), To: sendwerk.To(to...), Subject: "Reset your password", Text: ptr("Open the link to reset your password.")}
}

func (s *sendBundle) send(t *testing.T, m sendwerk.MessageCreate) *sendwerk.SendMessageResponse {
	t.Helper()
	r, err := s.c.SendMessageWithResponse(context.Background(), nil, m)
	require.NoError(t, err)
	return r
}

// waitStatus polls a message until it reaches status.
func (s *sendBundle) waitStatus(t *testing.T, id string, status sendwerk.MessageStatus, within time.Duration) *sendwerk.MessageDetail {
	t.Helper()
	var last *sendwerk.MessageDetail
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		r, err := s.c.GetMessageWithResponse(context.Background(), id)
		require.NoError(t, err)
		require.Equal(t, 200, r.StatusCode(), string(r.Body))
		last = r.JSON200
		if last.Status == status {
			return last
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("message %s is %s, not %s, after %s: %+v", id, last.Status, status, within, last)
	return nil
}

func eventTypes(m *sendwerk.MessageDetail) []string {
	var out []string
	for _, e := range m.Events {
		out = append(out, string(e.Type))
	}
	return out
}

func TestSendAndDeliver(t *testing.T) {
	t.Parallel()
	s := setupSend(t, nil, smtptest.Opts{}, nil)

	m := simpleMessage("jane@customer.example")
	m.Cc = &[]sendwerk.EmailAddress{named("boss@customer.example", "The Boss")}
	m.Bcc = &[]sendwerk.EmailAddress{addr("audit@acme.example")}
	m.Html = ptr(`<p>Open the <a href="https://acme.example/r">link</a>.</p><img src="cid:logo">`)
	m.Headers = &map[string]string{"X-Campaign": "reset"}
	m.Tags = &[]string{"password-reset"}
	m.Metadata = &map[string]string{"user_id": "42"}
	m.Attachments = &[]sendwerk.Attachment{
		{Filename: "notice.txt", Content: base64.StdEncoding.EncodeToString([]byte("attached text")), ContentType: ptr("text/plain")},
		{Filename: "logo.png", Content: base64.StdEncoding.EncodeToString([]byte("\x89PNG fake")), ContentType: ptr("image/png"), ContentId: ptr("logo")},
	}
	r := s.send(t, m)
	require.Equal(t, 202, r.StatusCode(), string(r.Body))
	require.Equal(t, sendwerk.MessageStatusQueued, r.JSON202.Status)
	require.True(t, strings.HasSuffix(r.JSON202.MessageId, "@acme.example>"))
	require.Empty(t, r.HTTPResponse.Header.Get("RateLimit-Limit"), "no limits, no headers")

	got := s.waitStatus(t, r.JSON202.Id, sendwerk.MessageStatusDelivered, 15*time.Second)
	require.Equal(t, []string{"queued", "attempt", "delivered"}, eventTypes(got))
	delivered := got.Events[2].Data
	require.NotEmpty(t, delivered["queue_id"], "the upstream's queue id is recorded")
	require.Equal(t, 250, got.LastReply.Code)
	require.Equal(t, 1, got.Attempts)
	require.ElementsMatch(t, []string{"jane@customer.example", "boss@customer.example", "audit@acme.example"}, got.Recipients)
	require.Equal(t, map[string]string{"user_id": "42"}, got.Metadata)

	msgs := s.up.WaitMessages(t, 1, 5*time.Second)
	require.Equal(t, "noreply@acme.example", msgs[0].From)
	require.ElementsMatch(t, got.Recipients, msgs[0].To)
	data := string(msgs[0].Data)
	require.Contains(t, data, "Message-ID: "+r.JSON202.MessageId)
	require.Contains(t, data, "X-Campaign: reset")
	require.Contains(t, data, `"The Boss" <boss@customer.example>`)
	require.NotContains(t, data, "audit@acme.example", "bcc stays out of the headers")
	require.Contains(t, data, "Content-Id: <logo>")
	require.Contains(t, data, `filename="notice.txt"`)

	t.Run("ListedWithFilters", func(t *testing.T) {
		ctx := context.Background()
		for _, p := range []sendwerk.ListMessagesParams{
			{Tag: ptr("password-reset")}, {Recipient: ptr("audit@acme.example")},
			{Status: ptr(sendwerk.MessageStatusDelivered)}, {ConnectorId: &s.connector},
		} {
			l, err := s.c.ListMessagesWithResponse(ctx, &p)
			require.NoError(t, err)
			require.Len(t, l.JSON200.Items, 1, "%+v", p)
		}
		l, err := s.c.ListMessagesWithResponse(ctx, &sendwerk.ListMessagesParams{Tag: ptr("other")})
		require.NoError(t, err)
		require.Empty(t, l.JSON200.Items)
	})
}

func TestSendValidation(t *testing.T) {
	t.Parallel()
	s := setupSend(t, nil, smtptest.Opts{}, nil)
	cases := []struct {
		name, body string
		fields     map[string]string
	}{
		{"NoRecipients", `{"from":"noreply@acme.example","subject":"x","text":"y"}`, map[string]string{"to": "at least one recipient (to, cc or bcc) is required"}},
		{"BadAddresses", `{"from":"noreply@acme.example","to":["jane@","x@customer.example"],"cc":[{"email":"nope"}],"subject":"x","text":"y"}`,
			map[string]string{"to[0].email": "must be an e-mail address like name@example.com", "cc[0].email": ""}},
		{"NoBody", `{"from":"noreply@acme.example","to":["a@b.example"],"subject":"x"}`, map[string]string{"text": "text or html is required"}},
		{"ForbiddenHeaders", `{"from":"noreply@acme.example","to":["a@b.example"],"subject":"x","text":"y","headers":{"Bcc":"x@y.example","X-Ok":"a\r\nb"}}`,
			map[string]string{"headers.Bcc": "is set by Sendwerk and may not be given as a custom header", "headers.X-Ok": "must not contain line breaks"}},
		{"BadAttachment", `{"from":"noreply@acme.example","to":["a@b.example"],"subject":"x","text":"y","attachments":[{"filename":"a.pdf","content":"%%%"}]}`,
			map[string]string{"attachments[0].content": "must be base64 (RFC 4648, with padding)"}},
		{"TooManyRecipients", `{"from":"noreply@acme.example","to":[` + strings.TrimSuffix(strings.Repeat(`"a@b.example",`, 51), ",") + `],"subject":"x","text":"y"}`,
			map[string]string{"to": ""}},
		{"UnverifiedSender", `{"from":"ceo@other.example","to":["a@b.example"],"subject":"x","text":"y"}`,
			map[string]string{"from.email": ""}},
		{"UnknownConnector", `{"connector_id":"con_06h08583y1r596y07grz39yhqm","from":"noreply@acme.example","to":["a@b.example"],"subject":"x","text":"y"}`,
			map[string]string{"connector_id": `no connector with id "con_06h08583y1r596y07grz39yhqm"`}},
		{"HeaderInjectionInSubject", `{"from":"noreply@acme.example","to":["a@b.example"],"subject":"x\r\nBcc: evil@x.example","text":"y"}`,
			map[string]string{"subject": "must be one line"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, "POST", "/v1/messages", s.key, "application/json", tc.body)
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
	var n int
	require.NoError(t, s.pool.QueryRow(context.Background(), "SELECT count(*) FROM messages").Scan(&n))
	require.Zero(t, n, "nothing refused was stored")
	require.Contains(t, fieldsOf(s.do(t, "POST", "/v1/messages", s.key, "application/json", cases[6].body).problem)["from.email"], "domain other.example is not a sender domain")
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	s := setupSend(t, nil, smtptest.Opts{}, nil)
	ctx := context.Background()
	key := "order-4711-confirmation"
	send := func(m sendwerk.MessageCreate) *sendwerk.SendMessageResponse {
		r, err := s.c.SendMessageWithResponse(ctx, &sendwerk.SendMessageParams{IdempotencyKey: &key}, m)
		require.NoError(t, err)
		return r
	}
	first := send(simpleMessage("jane@customer.example"))
	require.Equal(t, 202, first.StatusCode(), string(first.Body))
	again := send(simpleMessage("jane@customer.example"))
	require.Equal(t, 202, again.StatusCode())
	require.Equal(t, first.JSON202.Id, again.JSON202.Id, "the same key and body return the first answer")

	other := send(simpleMessage("john@customer.example"))
	require.Equal(t, 409, other.StatusCode(), string(other.Body))
	require.Contains(t, *other.ApplicationproblemJSON409.Detail, "Idempotency-Key")

	// Concurrent retries of one request create one message.
	key = "concurrent-key"
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := send(simpleMessage("jane@customer.example"))
			if r.JSON202 != nil {
				ids[i] = r.JSON202.Id
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		require.Equal(t, ids[0], id)
	}
	var n int
	require.NoError(t, s.pool.QueryRow(ctx, "SELECT count(*) FROM messages").Scan(&n))
	require.Equal(t, 2, n)
}

func TestBatch(t *testing.T) {
	t.Parallel()
	s := setupSend(t, nil, smtptest.Opts{}, nil)
	bad := simpleMessage("not-an-address")
	r, err := s.c.SendMessageBatchWithResponse(context.Background(), nil, sendwerk.MessageBatch{Messages: []sendwerk.MessageCreate{
		simpleMessage("a@customer.example"), bad, simpleMessage("b@customer.example"),
	}})
	require.NoError(t, err)
	require.Equal(t, 200, r.StatusCode(), string(r.Body))
	res := r.JSON200
	require.Equal(t, 2, res.Accepted)
	require.Equal(t, 1, res.Rejected)
	require.NotNil(t, res.Items[0].Id)
	require.Nil(t, res.Items[1].Id)
	require.Equal(t, 422, res.Items[1].Problem.Status)
	require.Equal(t, "to[0].email", (*res.Items[1].Problem.Errors)[0].Field)
	require.NotNil(t, res.Items[2].Id)
	s.waitStatus(t, *res.Items[0].Id, sendwerk.MessageStatusDelivered, 15*time.Second)
	s.waitStatus(t, *res.Items[2].Id, sendwerk.MessageStatusDelivered, 15*time.Second)
	require.Len(t, s.up.WaitMessages(t, 2, 5*time.Second), 2)

	t.Run("UndecodableContentRefusesTheBatch", func(t *testing.T) {
		body := `{"messages":[{"from":"noreply@acme.example","to":["a@b.example"],"subject":"x","text":"y","attachments":[{"filename":"a","content":"!!"}]}]}`
		r := s.do(t, "POST", "/v1/messages/batch", s.key, "application/json", body)
		require.Equal(t, 422, r.status, string(r.body))
		require.Contains(t, fieldsOf(r.problem), "messages[0].attachments[0].content")
	})
}

func TestLimits(t *testing.T) {
	t.Parallel()
	clearOfMinuteBoundary(t)
	s := setupSend(t, nil, smtptest.Opts{}, &sendwerk.ConnectorLimits{PerMinute: nullable.NewNullableWithValue[int64](2), MonthlyQuota: nullable.NewNullableWithValue[int64](1000)})
	first := s.send(t, simpleMessage("a@customer.example"))
	require.Equal(t, 202, first.StatusCode(), string(first.Body))
	require.Equal(t, "2", first.HTTPResponse.Header.Get("RateLimit-Limit"))
	require.Equal(t, "1", first.HTTPResponse.Header.Get("RateLimit-Remaining"))
	require.NotEmpty(t, first.HTTPResponse.Header.Get("RateLimit-Reset"))
	second := s.send(t, simpleMessage("b@customer.example"))
	require.Equal(t, 202, second.StatusCode())
	require.Equal(t, "0", second.HTTPResponse.Header.Get("RateLimit-Remaining"))

	third := s.send(t, simpleMessage("c@customer.example"))
	require.Equal(t, 429, third.StatusCode(), string(third.Body))
	require.Equal(t, "urn:sendwerk:problem:rate-limited", third.ApplicationproblemJSON429.Type)
	require.Contains(t, *third.ApplicationproblemJSON429.Detail, "connector per-minute limit of 2 messages")
	retry := third.HTTPResponse.Header.Get("Retry-After")
	require.NotEmpty(t, retry)
	require.Equal(t, "0", third.HTTPResponse.Header.Get("RateLimit-Remaining"))

	var n int
	require.NoError(t, s.pool.QueryRow(context.Background(), "SELECT count(*) FROM messages").Scan(&n))
	require.Equal(t, 2, n, "the refused message was not stored")
	var jobs int
	require.NoError(t, s.pool.QueryRow(context.Background(), "SELECT count(*) FROM river_job WHERE kind = 'message_deliver'").Scan(&jobs))
	require.Equal(t, 2, jobs, "and has no delivery job: message, job and counting commit or roll back together")

	u, err := s.c.GetUsageWithResponse(context.Background())
	require.NoError(t, err)
	require.Equal(t, 200, u.StatusCode(), string(u.Body))
	require.Equal(t, int64(2), u.JSON200.Connectors[0].Minute.Count)
	require.Equal(t, int64(0), u.JSON200.Connectors[0].Minute.Remaining.MustGet())
	require.Equal(t, int64(998), u.JSON200.Connectors[0].Month.Remaining.MustGet())
	require.Equal(t, int64(2), u.JSON200.Month.Count)
	require.True(t, u.JSON200.Month.Limit.IsNull())
}

func TestTenantQuota(t *testing.T) {
	t.Parallel()
	s := setupSend(t, nil, smtptest.Opts{}, nil)
	tenantID := s.tenantOf(t)
	// Through the operator API, in this process: a change made elsewhere (the admin CLI,
	// another serve) is seen within SENDWERK_CACHE_TTL.
	up, err := s.admin.UpdateTenantWithResponse(context.Background(), tenantID, sendwerk.TenantUpdate{MonthlyQuota: nullable.NewNullableWithValue(int64(1))})
	require.NoError(t, err)
	require.Equal(t, 200, up.StatusCode(), string(up.Body))
	require.Equal(t, 202, s.send(t, simpleMessage("a@customer.example")).StatusCode())
	r := s.send(t, simpleMessage("b@customer.example"))
	require.Equal(t, 429, r.StatusCode(), string(r.Body))
	require.Contains(t, *r.ApplicationproblemJSON429.Detail, "tenant monthly quota of 1 messages")
}

func (s *sendBundle) tenantOf(t *testing.T) string {
	me, err := s.c.GetMeWithResponse(context.Background())
	require.NoError(t, err)
	return me.JSON200.Tenant.Id
}

func TestRetriesAndFailures(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	calls := map[string]int{}
	opts := smtptest.Opts{Script: &smtptest.Script{RcptFunc: func(to string) *smtp.SMTPError {
		mu.Lock()
		defer mu.Unlock()
		calls[to]++
		switch {
		case strings.HasPrefix(to, "later@") && calls[to] == 1:
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
		case strings.HasPrefix(to, "never@"):
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		case strings.HasPrefix(to, "always-later@"):
			return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
		}
		return nil
	}}}
	s := setupSend(t, map[string]string{"SENDWERK_DELIVERY_RETRY_SCHEDULE": "1s"}, opts, nil)

	t.Run("DeferredThenDelivered", func(t *testing.T) {
		t.Parallel()
		r := s.send(t, simpleMessage("later@customer.example"))
		require.Equal(t, 202, r.StatusCode())
		deferred := s.waitStatus(t, r.JSON202.Id, sendwerk.MessageStatusDeferred, 15*time.Second)
		require.True(t, deferred.NextAttemptAt.IsSpecified() && !deferred.NextAttemptAt.IsNull())
		require.Contains(t, deferred.StatusReason, "smtp.")
		got := s.waitStatus(t, r.JSON202.Id, sendwerk.MessageStatusDelivered, 30*time.Second)
		require.Equal(t, []string{"queued", "attempt", "deferred", "attempt", "delivered"}, eventTypes(got))
		require.Equal(t, 2, got.Attempts)
		reply := got.Events[1].Data["reply"].(map[string]any)
		require.EqualValues(t, 451, reply["code"])
	})
	t.Run("PermanentFailureIsNotRetried", func(t *testing.T) {
		t.Parallel()
		r := s.send(t, simpleMessage("never@customer.example"))
		got := s.waitStatus(t, r.JSON202.Id, sendwerk.MessageStatusFailed, 15*time.Second)
		require.Equal(t, []string{"queued", "attempt", "failed"}, eventTypes(got))
		require.Equal(t, 1, got.Attempts)
		require.Contains(t, got.StatusReason, "no such user")
		require.Equal(t, 550, got.LastReply.Code)
	})
	t.Run("GivesUpAfterTheSchedule", func(t *testing.T) {
		t.Parallel()
		r := s.send(t, simpleMessage("always-later@customer.example"))
		got := s.waitStatus(t, r.JSON202.Id, sendwerk.MessageStatusFailed, 40*time.Second)
		require.Equal(t, []string{"queued", "attempt", "deferred", "attempt", "failed"}, eventTypes(got))
		require.Contains(t, got.StatusReason, "mailbox full")
	})
}

func TestCancelAndIsolation(t *testing.T) {
	t.Parallel()
	s := setupSend(t, nil, smtptest.Opts{}, nil)
	ctx := context.Background()
	later := time.Now().Add(time.Hour)
	m := simpleMessage("jane@customer.example")
	m.SendAt = &later
	r := s.send(t, m)
	require.Equal(t, 202, r.StatusCode(), string(r.Body))
	id := r.JSON202.Id

	_, _, otherKey := s.newTenantKey(t, "Other", sendwerk.ScopeManage, sendwerk.ScopeMessagesSend)
	other := s.client(t, otherKey)
	g, err := other.GetMessageWithResponse(ctx, id)
	require.NoError(t, err)
	require.Equal(t, 404, g.StatusCode())
	cx, err := other.CancelMessageWithResponse(ctx, id)
	require.NoError(t, err)
	require.Equal(t, 404, cx.StatusCode())
	l, err := other.ListMessagesWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, l.JSON200.Items)
	u, err := other.GetUsageWithResponse(ctx)
	require.NoError(t, err)
	require.Zero(t, u.JSON200.Month.Count)

	c, err := s.c.CancelMessageWithResponse(ctx, id)
	require.NoError(t, err)
	require.Equal(t, 200, c.StatusCode(), string(c.Body))
	require.Equal(t, sendwerk.MessageStatusCancelled, c.JSON200.Status)
	var state string
	require.NoError(t, s.pool.QueryRow(ctx, "SELECT j.state FROM river_job j JOIN messages m ON m.job_id = j.id WHERE m.id = $1", id).Scan(&state))
	require.Equal(t, "cancelled", state)
	again, err := s.c.CancelMessageWithResponse(ctx, id)
	require.NoError(t, err)
	require.Equal(t, 409, again.StatusCode())
	got := s.waitStatus(t, id, sendwerk.MessageStatusCancelled, time.Second)
	require.Equal(t, []string{"queued", "cancelled"}, eventTypes(got))
}

func TestConnectionReuseAndPause(t *testing.T) {
	t.Parallel()
	s := setupSend(t, map[string]string{"SENDWERK_SMTP_POOL_SIZE": "1"}, smtptest.Opts{}, nil)
	ctx := context.Background()
	var ids []string
	for i := range 20 {
		r := s.send(t, simpleMessage(fmt.Sprintf("user%d@customer.example", i)))
		require.Equal(t, 202, r.StatusCode())
		ids = append(ids, r.JSON202.Id)
	}
	for _, id := range ids {
		s.waitStatus(t, id, sendwerk.MessageStatusDelivered, 20*time.Second)
	}
	require.Equal(t, 1, s.up.Connections(), "20 messages over one connection")

	paused, err := s.c.UpdateConnectorWithResponse(ctx, s.connector, sendwerk.ConnectorUpdate{Status: ptr(sendwerk.ConnectorStatusPaused)})
	require.NoError(t, err)
	require.Equal(t, 200, paused.StatusCode())
	r := s.send(t, simpleMessage("x@customer.example"))
	require.Equal(t, 409, r.StatusCode(), string(r.Body))
	require.Contains(t, *r.ApplicationproblemJSON409.Detail, "paused")
}

// TestDKIMSignedFromVerifiedDomain verifies a domain against a test DNS zone, sends from it
// through a platform connector, and checks the delivered bytes' DKIM signature with the
// public key the zone publishes.
func TestDKIMSignedFromVerifiedDomain(t *testing.T) {
	t.Parallel()
	up := smtptest.NewServer(t, smtptest.Opts{})
	zone := dnstest.NewServer(t, "$ORIGIN example.\n@ 3600 IN SOA ns.example. hostmaster.example. 1 3600 600 86400 60\n")
	b := setup(t, map[string]string{
		"SENDWERK_DNS_SERVERS":       zone.Addr(),
		"SENDWERK_PLATFORM_SMTP_URL": fmt.Sprintf("smtp://%s:%d", up.Host(), up.Port()),
		"SENDWERK_SPF_INCLUDE":       "_spf.sendwerk.example",
	})
	ctx := context.Background()
	_, _, key := b.newTenantKey(t, "Acme", sendwerk.ScopeManage, sendwerk.ScopeMessagesSend)
	c := b.client(t, key)
	conn, err := c.CreateConnectorWithResponse(ctx, sendwerk.ConnectorCreate{Name: "platform", Kind: sendwerk.ConnectorKindPlatform, DefaultSender: sendwerk.Sender{Email: "noreply@acme.example"}})
	require.NoError(t, err)
	require.Equal(t, 201, conn.StatusCode(), string(conn.Body))
	s := &sendBundle{testBundle: b, up: up, key: key, c: c, connector: conn.JSON201.Id}

	// Not yet verified: the platform refuses the sender.
	r := s.send(t, simpleMessage("jane@customer.example"))
	require.Equal(t, 422, r.StatusCode(), string(r.Body))

	d, err := c.CreateDomainWithResponse(ctx, sendwerk.DomainCreate{Domain: "acme.example"})
	require.NoError(t, err)
	require.Equal(t, 201, d.StatusCode(), string(d.Body))
	zoneText := b.do(t, "GET", "/v1/domains/"+d.JSON201.Id+"/records?format=zone", key, "", "")
	require.Equal(t, 200, zoneText.status, string(zoneText.body))
	zone.SetZone("$ORIGIN example.\n@ 3600 IN SOA ns.example. hostmaster.example. 1 3600 600 86400 60\n" +
		"_spf.sendwerk 3600 IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n" + string(zoneText.body))
	chk, err := c.CheckDomainWithResponse(ctx, d.JSON201.Id)
	require.NoError(t, err)
	require.Equal(t, 200, chk.StatusCode(), string(chk.Body))
	require.Equal(t, "verified", string(chk.JSON200.Domain.Status), string(chk.Body))

	r = s.send(t, simpleMessage("jane@customer.example"))
	require.Equal(t, 202, r.StatusCode(), string(r.Body))
	s.waitStatus(t, r.JSON202.Id, sendwerk.MessageStatusDelivered, 15*time.Second)
	raw := up.WaitMessages(t, 1, 5*time.Second)[0].Data
	require.True(t, bytes.HasPrefix(raw, []byte("DKIM-Signature:")), "the signature is the first header")
	verifications, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		return lookupTXT(t, zone.Addr(), name)
	}})
	require.NoError(t, err)
	require.Len(t, verifications, 1)
	require.NoError(t, verifications[0].Err)
	require.Equal(t, "acme.example", verifications[0].Domain)
}

// lookupTXT asks the test DNS server, joining each record's strings as DKIM requires.
func lookupTXT(t *testing.T, server, name string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	in, err := dns.Exchange(m, server)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range in.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	return out, nil
}

// TestTwoProcessesDeliverOnce runs two servers on one database: both accept and both work
// the delivery queue, and each message is delivered once.
func TestTwoProcessesDeliverOnce(t *testing.T) {
	t.Parallel()
	s := setupSend(t, nil, smtptest.Opts{}, nil)
	second := setup(t, map[string]string{"DATABASE_URL": s.dbURL})
	clients := []*sendwerk.ClientWithResponses{s.c, second.client(t, s.key)}
	const n = 60
	ids := make([]string, n)
	for i := range n {
		r, err := clients[i%2].SendMessageWithResponse(context.Background(), nil, simpleMessage(fmt.Sprintf("u%d@customer.example", i)))
		require.NoError(t, err)
		require.Equal(t, 202, r.StatusCode(), string(r.Body))
		ids[i] = r.JSON202.MessageId
	}
	s.up.WaitMessages(t, n, 30*time.Second)
	time.Sleep(500 * time.Millisecond) // a duplicate would arrive now
	msgs := s.up.Messages()
	require.Len(t, msgs, n)
	seen := map[string]bool{}
	for _, m := range msgs {
		for _, id := range ids {
			if bytes.Contains(m.Data, []byte("Message-ID: "+id)) {
				require.False(t, seen[id], "delivered twice: %s", id)
				seen[id] = true
			}
		}
	}
	require.Len(t, seen, n)
	var attempts int
	require.NoError(t, s.pool.QueryRow(context.Background(), "SELECT sum(attempts) FROM messages").Scan(&attempts))
	require.Equal(t, n, attempts)
	var workers int
	require.NoError(t, s.pool.QueryRow(context.Background(), "SELECT count(DISTINCT attempted_by[1]) FROM river_job WHERE kind = 'message_deliver'").Scan(&workers))
	require.Equal(t, 2, workers, "both processes delivered")
}

// clearOfMinuteBoundary waits while the clock is in the last seconds of a minute, so a test
// of a per-minute limit does not see the server open a new window halfway through.
func clearOfMinuteBoundary(t *testing.T) {
	t.Helper()
	if left := time.Until(time.Now().Truncate(time.Minute).Add(time.Minute)); left < 10*time.Second {
		time.Sleep(left + 100*time.Millisecond)
	}
}
