package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// hookReceiver is a partner's webhook endpoint on loopback: it verifies every request with
// the Go client's helper and keeps the events.
type hookReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	events []*sendwerk.Event
	bad    int
	sigs   []string
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.sigs = append(h.sigs, r.Header.Get("webhook-signature"))
		ev, err := sendwerk.VerifyWebhook(body, r.Header, h.secret)
		if err != nil {
			h.bad++
			http.Error(w, "bad signature", http.StatusBadRequest)
			return
		}
		h.events = append(h.events, ev)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) setSecret(s string) { h.mu.Lock(); h.secret = s; h.mu.Unlock() }

// types lists the received events' types.
func (h *hookReceiver) types() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.events))
	for _, e := range h.events {
		d, _ := e.Discriminator()
		out = append(out, d)
	}
	return out
}

func (h *hookReceiver) find(t *testing.T, typ string) *sendwerk.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.events {
		if d, _ := e.Discriminator(); d == typ {
			return e
		}
	}
	t.Fatalf("no %s event received", typ)
	return nil
}

func TestEventsAndWebhooks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := setupSend(t, map[string]string{"SENDWERK_EGRESS_NETWORKS": "192.0.2.0/24", "SENDWERK_SPF_INCLUDE": "_spf.sendwerk.example"}, smtptest.Opts{}, nil)
	rcv := newHookReceiver(t)
	created, err := s.c.CreateWebhookWithResponse(ctx, sendwerk.WebhookCreate{Url: rcv.srv.URL + "/hooks", Description: ptr("dashboard")})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, created.StatusCode(), string(created.Body))
	hook := created.JSON201
	require.True(t, strings.HasPrefix(hook.Secret, "whsec_"))
	rcv.setSecret(hook.Secret)

	acc := s.send(t, simpleMessage("jane@customer.example"))
	require.Equal(t, http.StatusAccepted, acc.StatusCode(), string(acc.Body))
	msgID := acc.JSON202.Id
	s.waitStatus(t, msgID, sendwerk.MessageStatusDelivered, 15*time.Second)

	t.Run("WebhookReceivesTypedSignedEvents", func(t *testing.T) {
		require.Eventually(t, func() bool { return len(rcv.types()) >= 2 }, 15*time.Second, 50*time.Millisecond)
		require.Zero(t, rcv.bad)
		require.ElementsMatch(t, []string{"message.queued", "message.delivered"}, rcv.types())
		v, err := rcv.find(t, "message.delivered").ValueByDiscriminator()
		require.NoError(t, err)
		delivered := v.(sendwerk.MessageDeliveredEvent)
		require.Equal(t, msgID, delivered.MessageId)
		require.Equal(t, s.connector, delivered.ConnectorId)
		require.Equal(t, 250, delivered.Data.Reply.MustGet().Code)
		require.Equal(t, []string{"jane@customer.example"}, delivered.Data.Recipients)
		queued, err := rcv.find(t, "message.queued").AsMessageQueuedEvent()
		require.NoError(t, err)
		require.Less(t, queued.Sequence, delivered.Sequence, "sequence orders one message's events")
	})

	t.Run("FeedPagesWithCursorAndFilters", func(t *testing.T) {
		all, err := s.c.ListEventsWithResponse(ctx, &sendwerk.ListEventsParams{ResourceId: &msgID})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, all.StatusCode(), string(all.Body))
		require.Len(t, all.JSON200.Items, 2)
		first, err := all.JSON200.Items[0].AsMessageQueuedEvent()
		require.NoError(t, err)
		require.Equal(t, "message.queued", first.Type)
		require.Equal(t, sendwerk.MessageSourceApi, first.Data.Source)

		types := []sendwerk.EventType{sendwerk.EventTypeMessageDelivered}
		one, err := s.c.ListEventsWithResponse(ctx, &sendwerk.ListEventsParams{Type: &types, Limit: ptr(1)})
		require.NoError(t, err)
		require.Len(t, one.JSON200.Items, 1)
		next, err := s.c.ListEventsWithResponse(ctx, &sendwerk.ListEventsParams{Type: &types, Cursor: &one.JSON200.NextCursor})
		require.NoError(t, err)
		require.Empty(t, next.JSON200.Items)
		require.Equal(t, one.JSON200.NextCursor, next.JSON200.NextCursor, "an empty page keeps the cursor for the next poll")
	})

	t.Run("DeliveryLogAndTest", func(t *testing.T) {
		var ds *sendwerk.WebhookDeliveryList
		require.Eventually(t, func() bool {
			r, err := s.c.ListWebhookDeliveriesWithResponse(ctx, hook.Id, nil)
			require.NoError(t, err)
			ds = r.JSON200
			return len(ds.Items) == 2 && ds.Items[0].Status == sendwerk.WebhookDeliveryStatusSucceeded && ds.Items[1].Status == sendwerk.WebhookDeliveryStatusSucceeded
		}, 10*time.Second, 50*time.Millisecond)
		a := ds.Items[0].Attempts[0]
		require.Equal(t, http.StatusNoContent, a.StatusCode)
		require.Empty(t, a.Error)

		test, err := s.c.TestWebhookWithResponse(ctx, hook.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, test.StatusCode(), string(test.Body))
		require.Equal(t, http.StatusNoContent, test.JSON200.StatusCode)
		require.Contains(t, rcv.types(), "webhook.test")

		re, err := s.c.RedeliverWebhookDeliveryWithResponse(ctx, hook.Id, ds.Items[0].Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, re.StatusCode(), string(re.Body))
	})

	t.Run("RotationKeepsOldSecretValidDuringOverlap", func(t *testing.T) {
		rot, err := s.c.RotateWebhookSecretWithResponse(ctx, hook.Id, sendwerk.WebhookRotateSecret{OverlapSeconds: ptr(3600)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, rot.StatusCode(), string(rot.Body))
		require.NotEqual(t, hook.Secret, rot.JSON200.Secret)
		// The receiver still has the old secret: the delivery verifies with it.
		test, err := s.c.TestWebhookWithResponse(ctx, hook.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, test.JSON200.StatusCode, test.JSON200.ResponseBody)
		rcv.setSecret(rot.JSON200.Secret) // and with the new one
		test, err = s.c.TestWebhookWithResponse(ctx, hook.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, test.JSON200.StatusCode, test.JSON200.ResponseBody)
		rcv.mu.Lock()
		require.Len(t, strings.Fields(rcv.sigs[len(rcv.sigs)-1]), 2)
		rcv.mu.Unlock()
		got, err := s.c.GetWebhookWithResponse(ctx, hook.Id)
		require.NoError(t, err)
		require.False(t, got.JSON200.PreviousSecretExpiresAt.IsNull())
		require.NotContains(t, string(got.Body), "whsec_", "the secret is never shown again")
	})

	t.Run("ConnectorPauseIsAnEvent", func(t *testing.T) {
		paused := sendwerk.ConnectorStatusPaused
		r, err := s.c.UpdateConnectorWithResponse(ctx, s.connector, sendwerk.ConnectorUpdate{Status: &paused})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, r.StatusCode(), string(r.Body))
		require.Eventually(t, func() bool { return strings.Contains(strings.Join(rcv.types(), ","), "connector.paused") }, 10*time.Second, 50*time.Millisecond)
		ev, err := rcv.find(t, "connector.paused").AsConnectorPausedEvent()
		require.NoError(t, err)
		require.Equal(t, "manual", ev.Data.Reason)
	})

	t.Run("FailedConnectorTestIsAnEvent", func(t *testing.T) {
		closed := smtptest.NewServer(t, smtptest.Opts{})
		port := closed.Port()
		closed.Close()
		c, err := s.c.CreateConnectorWithResponse(ctx, sendwerk.ConnectorCreate{Name: "gone", Kind: sendwerk.ConnectorKindSmtp,
			Smtp:          &sendwerk.SMTPSettingsInput{Host: "127.0.0.1", Port: port, Security: sendwerk.SMTPSecurityNone},
			DefaultSender: sendwerk.Sender{Email: "noreply@acme.example"}})
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, c.StatusCode(), string(c.Body))
		tr, err := s.c.TestConnectorWithResponse(ctx, c.JSON201.Id)
		require.NoError(t, err)
		require.False(t, tr.JSON200.Ok)
		types := []sendwerk.EventType{sendwerk.EventTypeConnectorTestFailed}
		var page *sendwerk.EventPage
		require.Eventually(t, func() bool {
			r, err := s.c.ListEventsWithResponse(ctx, &sendwerk.ListEventsParams{Type: &types, ResourceId: &c.JSON201.Id})
			require.NoError(t, err)
			page = r.JSON200
			return len(page.Items) == 1
		}, 5*time.Second, 50*time.Millisecond)
		ev, err := page.Items[0].AsConnectorTestFailedEvent()
		require.NoError(t, err)
		require.Equal(t, "tcp.refused", ev.Data.Code)
		require.Equal(t, port, ev.Data.Port)
	})

	t.Run("RefusesBadInput", func(t *testing.T) {
		r := s.do(t, "GET", "/v1/events?type=message.nope", s.key, "", "")
		require.Equal(t, http.StatusBadRequest, r.status, r.body)
		r = s.do(t, "GET", "/v1/events?cursor=garbage!", s.key, "", "")
		require.Equal(t, http.StatusUnprocessableEntity, r.status, r.body)
		require.Contains(t, string(r.body), `"field":"cursor"`)
		r = s.do(t, "POST", "/v1/webhooks", s.key, "application/json", `{"url": "ftp://example.com/x"}`)
		require.Equal(t, http.StatusUnprocessableEntity, r.status, r.body)
		require.Contains(t, string(r.body), `"field":"url"`)
		r = s.do(t, "POST", "/v1/webhooks", s.key, "application/json", `{"url": "https://example.com/x", "event_types": ["nope"]}`)
		require.Equal(t, http.StatusUnprocessableEntity, r.status, string(r.body))
		require.Contains(t, string(r.body), `"field":"event_types[0]"`)
		_, _, otherKey := s.newTenantKey(t, "Other", sendwerk.ScopeManage)
		r = s.do(t, "GET", "/v1/webhooks/"+hook.Id, otherKey, "", "")
		require.Equal(t, http.StatusNotFound, r.status, r.body)
		r = s.do(t, "POST", "/v1/webhooks/"+hook.Id+"/test", otherKey, "", "")
		require.Equal(t, http.StatusNotFound, r.status, r.body)
		r = s.do(t, "GET", "/v1/events", otherKey, "", "")
		require.Equal(t, http.StatusOK, r.status, r.body)
		require.Contains(t, string(r.body), `"items":[]`, "another tenant's feed is its own")
	})

	t.Run("SecretStaysHidden", func(t *testing.T) {
		var row string
		require.NoError(t, s.pool.QueryRow(ctx, "SELECT w::text FROM webhooks w WHERE id = $1", hook.Id).Scan(&row))
		raw := strings.TrimPrefix(hook.Secret, "whsec_")
		require.NotContains(t, row, raw)
		list, err := s.c.ListWebhooksWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Len(t, list.JSON200.Items, 1)
		require.NotContains(t, string(list.Body), "whsec_")
		require.NotContains(t, s.logs.String(), raw)
	})

	t.Run("PlatformFactsAndTheirChange", func(t *testing.T) {
		p, err := s.c.GetPlatformWithResponse(ctx)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, p.StatusCode(), string(p.Body))
		require.Equal(t, []string{"192.0.2.0/24"}, p.JSON200.EgressNetworks)
		require.Equal(t, "_spf.sendwerk.example", p.JSON200.SpfInclude)
		require.Equal(t, []int{5, 300, 1800, 7200, 18000, 36000, 36000}, p.JSON200.Webhooks.RetryScheduleSeconds)
		require.Equal(t, 8, p.JSON200.Webhooks.MaxAttempts)

		// The operator adds a network and restarts: every tenant hears of it.
		b2 := setup(t, map[string]string{"DATABASE_URL": s.dbURL, "SENDWERK_EGRESS_NETWORKS": "192.0.2.0/24,198.51.100.0/24",
			"SENDWERK_SPF_INCLUDE": "_spf.sendwerk.example"})
		c2 := b2.client(t, s.key)
		types := []sendwerk.EventType{sendwerk.EventTypePlatformChanged}
		var page *sendwerk.EventPage
		require.Eventually(t, func() bool {
			r, err := c2.ListEventsWithResponse(ctx, &sendwerk.ListEventsParams{Type: &types})
			require.NoError(t, err)
			page = r.JSON200
			return len(page.Items) == 1
		}, 10*time.Second, 50*time.Millisecond)
		ev, err := page.Items[0].AsPlatformChangedEvent()
		require.NoError(t, err)
		require.Equal(t, []string{"egress_networks"}, ev.Data.Changed)
		require.Equal(t, []string{"192.0.2.0/24", "198.51.100.0/24"}, ev.Data.Current.EgressNetworks)
		raw, _ := json.Marshal(ev.Data.Previous)
		require.Contains(t, string(raw), `"egress_networks":["192.0.2.0/24"]`)
	})
}

// TestReadmeEvents runs the README's connector block, then its events block (with the
// webhook URL swapped for a loopback receiver's), then its openssl verification block on a
// delivery the receiver got, as written.
func TestReadmeEvents(t *testing.T) {
	t.Parallel()
	b, up := setupTrustedUpstream(t)
	_, _, key := b.newTenantKey(t, "Acme", sendwerk.ScopeManage, sendwerk.ScopeMessagesSend)
	type delivery struct {
		header http.Header
		body   []byte
	}
	var mu sync.Mutex
	var got []delivery
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, delivery{r.Header.Clone(), body})
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rcv.Close)

	script := strings.TrimSuffix(strings.TrimPrefix(readmeBlock(t, "connectors"), "```sh"), "```") +
		strings.TrimSuffix(strings.TrimPrefix(readmeBlock(t, "events"), "```sh"), "```") +
		"\necho \"secret=$WEBHOOK_SECRET\"\n"
	script = strings.ReplaceAll(script, `"host": "smtp.example.com", "port": 587`, fmt.Sprintf(`"host": "127.0.0.1", "port": %d`, up.Port()))
	script = strings.ReplaceAll(script, "https://app.example.com/hooks/sendwerk", rcv.URL+"/hooks/sendwerk")
	script = "BASE=" + b.baseURL + "\nAPI_KEY=" + key + "\n" + script
	out, err := exec.Command("bash", "-euo", "pipefail", "-c", script).CombinedOutput()
	require.NoError(t, err, string(out))
	text := string(out)
	require.Contains(t, text, `connector.paused`)
	require.Contains(t, text, `"reason": "manual"`)
	require.Contains(t, text, `"status_code": 204`)
	require.Contains(t, text, `"event_type": "connector.paused"`)
	require.Contains(t, text, `"status": "succeeded"`)
	require.Contains(t, text, `"new_secret": true`)
	require.Contains(t, text, `"webhooks": [`)
	_, secret, ok := strings.Cut(text, "secret=")
	require.True(t, ok)
	secret = strings.TrimSpace(secret)

	// The first delivery (the test event) was signed with the secret printed at creation only.
	mu.Lock()
	first := got[0]
	mu.Unlock()
	verify := strings.TrimSuffix(strings.TrimPrefix(readmeBlock(t, "verify"), "```sh"), "```")
	run := func(body []byte, secret string) string {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "body.json"), body, 0o600))
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", verify)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "ID="+first.header.Get("webhook-id"), "TS="+first.header.Get("webhook-timestamp"),
			"SIG="+first.header.Get("webhook-signature"), "WEBHOOK_SECRET="+secret)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		return strings.TrimSpace(string(out))
	}
	require.Equal(t, "verified", run(first.body, secret))
	require.Equal(t, "signature mismatch", run(append([]byte(" "), first.body...), secret))
	require.Equal(t, "signature mismatch", run(first.body, "whsec_"+base64.StdEncoding.EncodeToString([]byte("another secret of 32 bytes......"))))
}

// TestWebhookAddressPolicy: with private upstreams forbidden (production's default), webhooks
// cannot reach the operator's network: literal addresses are refused when saved, and names
// that resolve to them are refused when dialed.
func TestWebhookAddressPolicy(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"SENDWERK_ALLOW_PRIVATE_UPSTREAMS": "false"})
	_, _, key := b.newTenantKey(t, "Acme", sendwerk.ScopeManage)
	for _, u := range []string{"http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://[::1]:9/x", "http://169.254.169.254/latest/meta-data/"} {
		r := b.do(t, "POST", "/v1/webhooks", key, "application/json", `{"url": "`+u+`"}`)
		require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s: %s", u, r.body)
		require.Contains(t, string(r.body), "does not deliver to")
	}
	hit := make(chan struct{}, 1)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hit <- struct{}{} }))
	t.Cleanup(rcv.Close)
	_, port, _ := strings.Cut(strings.TrimPrefix(rcv.URL, "http://"), ":")
	c := b.client(t, key)
	hook, err := c.CreateWebhookWithResponse(context.Background(), sendwerk.WebhookCreate{Url: "http://localhost:" + port + "/x"})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, hook.StatusCode(), string(hook.Body))
	test, err := c.TestWebhookWithResponse(context.Background(), hook.JSON201.Id)
	require.NoError(t, err)
	require.Zero(t, test.JSON200.StatusCode)
	require.Contains(t, test.JSON200.Error, "not allowed by this platform's policy")
	select {
	case <-hit:
		t.Fatal("the loopback receiver was reached")
	default:
	}
}
