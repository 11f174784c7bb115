package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/event"
	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/secret"
	"github.com/sendwerk/sendwerk/internal/tenant"
	"github.com/sendwerk/sendwerk/internal/validate"
	"github.com/sendwerk/sendwerk/internal/webhook"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// receiver is a real HTTP endpoint on loopback that records what it got and answers as
// scripted.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []received
	// answer decides the reply to the n-th request (0-based); nil answers 204.
	answer func(n int, w http.ResponseWriter)
	n      atomic.Int64
}

type received struct {
	header http.Header
	body   []byte
}

func newReceiver(t testing.TB, answer func(n int, w http.ResponseWriter)) *receiver {
	r := &receiver{answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		n := int(r.n.Add(1) - 1)
		r.mu.Lock()
		r.got = append(r.got, received{req.Header.Clone(), body})
		r.mu.Unlock()
		if r.answer != nil {
			r.answer(n, w)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

type testBundle struct {
	pool     *pgxpool.Pool
	box      *secret.Box
	cfg      webhook.Config
	svc      *webhook.Service
	worker   *webhook.DeliverWorker
	client   *river.Client[pgx.Tx]
	dispatch *webhook.Dispatcher
	tenantID string
}

func setup(t testing.TB, cfg webhook.Config) *testBundle {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	box, err := secret.NewBox("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	require.NoError(t, err)
	if cfg.RetrySchedule == nil {
		cfg.RetrySchedule = []time.Duration{time.Millisecond, time.Millisecond}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	cfg.AllowHTTP = true
	if cfg.AllowAddrFunc == nil {
		cfg.AllowPrivateAddresses = true
	}
	ten, err := tenant.NewService(pool).Create(ctx, "Acme", nil)
	require.NoError(t, err)
	b := &testBundle{pool: pool, box: box, cfg: cfg, tenantID: ten.ID}
	b.worker = webhook.NewDeliverWorker(pool, box, cfg, slog.New(slog.DiscardHandler))
	b.client = b.newClient(t)
	b.svc = webhook.NewService(pool, box, b.client, cfg)
	b.dispatch = webhook.NewDispatcher(pool, b.client, cfg, 20*time.Millisecond, nil)
	return b
}

// newClient is a River client working the webhook queue; not started.
func (b *testBundle) newClient(t testing.TB) *river.Client[pgx.Tx] {
	workers := river.NewWorkers()
	river.AddWorker(workers, b.worker)
	c, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{
		Workers: workers, Queues: map[string]river.QueueConfig{webhook.QueueWebhooks: {MaxWorkers: 10}},
		FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond, TestOnly: true,
	})
	require.NoError(t, err)
	return c
}

func (b *testBundle) start(t testing.TB) {
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, b.client.Start(ctx))
	done := make(chan struct{})
	go func() { defer close(done); b.dispatch.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		sctx, c2 := context.WithTimeout(context.Background(), 5*time.Second)
		defer c2()
		_ = b.client.Stop(sctx)
	})
}

func (b *testBundle) create(t testing.TB, url string, types ...event.Type) (*webhook.Webhook, string) {
	w, sec, err := b.svc.Create(context.Background(), b.tenantID, webhook.Input{URL: url, EventTypes: types})
	require.NoError(t, err)
	return w, sec
}

func (b *testBundle) appendEvent(t testing.TB, msgID string) *event.Event {
	e := &event.Event{TenantID: b.tenantID, MessageID: msgID, Data: event.MessageDeliveredData{
		MessageInfo: event.MessageInfo{From: "a@example.com", Recipients: []string{"b@example.org"}, Tags: []string{}, Metadata: map[string]string{"order": "42"}},
		Attempt:     1, Reply: &event.Reply{Code: 250, Text: "ok"},
	}}
	require.NoError(t, event.Append(context.Background(), b.pool, e))
	return e
}

func (b *testBundle) deliveries(t *testing.T, webhookID string) []*webhook.Delivery {
	ds, err := b.svc.ListDeliveries(context.Background(), b.tenantID, webhookID, "", "", 100)
	require.NoError(t, err)
	return ds
}

func verify(t *testing.T, secret string, r received) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	require.NoError(t, wh.Verify(r.body, r.header))
}

func TestDelivery(t *testing.T) {
	t.Parallel()

	t.Run("SignedEventArrives", func(t *testing.T) {
		t.Parallel()
		b := setup(t, webhook.Config{})
		rcv := newReceiver(t, nil)
		w, sec := b.create(t, rcv.srv.URL)
		other := newReceiver(t, nil)
		b.create(t, other.srv.URL, event.DomainRevoked) // not subscribed to message events
		b.start(t)
		e := b.appendEvent(t, ids.New(ids.Message))
		require.Eventually(t, func() bool { return len(rcv.received()) == 1 }, 10*time.Second, 20*time.Millisecond)
		got := rcv.received()[0]
		verify(t, sec, got)
		require.Equal(t, e.ID, got.header.Get("webhook-id"))
		var body map[string]any
		require.NoError(t, json.Unmarshal(got.body, &body))
		require.Equal(t, "message.delivered", body["type"])
		require.Equal(t, e.MessageID, body["message_id"])
		require.EqualValues(t, e.Sequence, body["sequence"])
		require.Equal(t, "42", body["data"].(map[string]any)["metadata"].(map[string]any)["order"])
		require.Eventually(t, func() bool {
			ds := b.deliveries(t, w.ID)
			return len(ds) == 1 && ds[0].Status == webhook.StatusSucceeded && len(ds[0].Attempts) == 1
		}, 5*time.Second, 20*time.Millisecond)
		require.Empty(t, other.received())
	})

	t.Run("ScriptedFailuresAreRetriedAndLogged", func(t *testing.T) {
		t.Parallel()
		b := setup(t, webhook.Config{RetrySchedule: []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond, time.Millisecond}, Timeout: 500 * time.Millisecond})
		rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
			switch n {
			case 0: // a server error, with a body
				w.Header().Set("X-Trace", "abc")
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = w.Write([]byte(strings.Repeat("e", 3000)))
			case 1: // connection reset
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					_ = conn.(*net.TCPConn).SetLinger(0)
					_ = conn.Close()
				}
			case 2: // slower than the timeout
				time.Sleep(time.Second)
			case 3: // slow but in time
				time.Sleep(100 * time.Millisecond)
				w.WriteHeader(http.StatusOK)
			}
		})
		w, sec := b.create(t, rcv.srv.URL)
		b.start(t)
		b.appendEvent(t, ids.New(ids.Message))
		var d *webhook.Delivery
		require.Eventually(t, func() bool {
			ds := b.deliveries(t, w.ID)
			if len(ds) == 1 && ds[0].Status == webhook.StatusSucceeded {
				d = ds[0]
			}
			return d != nil
		}, 30*time.Second, 50*time.Millisecond)
		require.Len(t, d.Attempts, 4)
		a := d.Attempts
		require.Equal(t, 500, a[0].StatusCode)
		require.Equal(t, "abc", a[0].Headers["x-trace"])
		require.Len(t, a[0].Body, webhook.BodyExcerptBytes)
		require.Zero(t, a[1].StatusCode)
		require.NotEmpty(t, a[1].Error)
		require.Zero(t, a[2].StatusCode)
		require.Contains(t, a[2].Error, "timed out")
		require.Equal(t, 200, a[3].StatusCode)
		require.GreaterOrEqual(t, a[3].Latency, 100*time.Millisecond)
		got := rcv.received()
		require.Equal(t, got[0].header.Get("webhook-id"), got[3].header.Get("webhook-id"), "retries keep the id receivers deduplicate by")
		verify(t, sec, got[3])
		fresh, err := b.svc.Get(context.Background(), b.tenantID, w.ID)
		require.NoError(t, err)
		require.Nil(t, fresh.FailingSince, "a success ends the failure streak")
	})

	t.Run("NoEventLostAcrossRestart", func(t *testing.T) {
		t.Parallel()
		b := setup(t, webhook.Config{})
		rcv := newReceiver(t, nil)
		b.create(t, rcv.srv.URL)
		// The state change commits and is dispatched into a job, but no worker runs it:
		// the process "dies" here.
		e := b.appendEvent(t, ids.New(ids.Message))
		n, err := b.dispatch.DispatchOnce(context.Background())
		require.NoError(t, err)
		require.Equal(t, 1, n)
		time.Sleep(100 * time.Millisecond)
		require.Empty(t, rcv.received())
		// A new process starts: a new River client and dispatcher on the same database.
		b.client = b.newClient(t)
		b.dispatch = webhook.NewDispatcher(b.pool, b.client, b.cfg, 20*time.Millisecond, nil)
		b.start(t)
		require.Eventually(t, func() bool { return len(rcv.received()) == 1 }, 10*time.Second, 20*time.Millisecond)
		require.Equal(t, e.ID, rcv.received()[0].header.Get("webhook-id"))
		time.Sleep(200 * time.Millisecond)
		require.Len(t, rcv.received(), 1, "dispatched once")
	})

	t.Run("RotationSignsWithBothSecretsDuringOverlap", func(t *testing.T) {
		t.Parallel()
		b := setup(t, webhook.Config{})
		rcv := newReceiver(t, nil)
		w, oldSec := b.create(t, rcv.srv.URL)
		rotated, newSec, err := b.svc.RotateSecret(context.Background(), b.tenantID, w.ID, time.Hour)
		require.NoError(t, err)
		require.NotEqual(t, oldSec, newSec)
		require.True(t, strings.HasPrefix(newSec, "whsec_"))
		require.NotNil(t, rotated.PreviousSecretExpiresAt)
		b.start(t)
		b.appendEvent(t, ids.New(ids.Message))
		require.Eventually(t, func() bool { return len(rcv.received()) == 1 }, 10*time.Second, 20*time.Millisecond)
		got := rcv.received()[0]
		require.Len(t, strings.Fields(got.header.Get("webhook-signature")), 2)
		verify(t, oldSec, got)
		verify(t, newSec, got)

		// After the overlap only the new secret signs.
		b.svc.NowFunc = func() time.Time { return time.Now().Add(2 * time.Hour) }
		ans, err := b.svc.Test(context.Background(), b.tenantID, w.ID)
		require.NoError(t, err)
		require.True(t, ans.OK())
		test := rcv.received()[1]
		require.Len(t, strings.Fields(test.header.Get("webhook-signature")), 1)
		for sec, ok := range map[string]bool{newSec: true, oldSec: false} {
			wh, err := standardwebhooks.NewWebhook(sec)
			require.NoError(t, err)
			require.Equal(t, ok, wh.VerifyIgnoringTimestamp(test.body, test.header) == nil)
		}
	})

	t.Run("FailingEndpointIsDisabledWithEvent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, webhook.Config{DisableAfter: time.Hour, RetrySchedule: []time.Duration{time.Millisecond}})
		rcv := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) })
		w, _ := b.create(t, rcv.srv.URL, event.MessageDelivered)
		var now atomic.Int64
		now.Store(time.Now().UnixNano())
		b.worker.SetNowFunc(func() time.Time { return time.Unix(0, now.Load()) })
		b.start(t)
		b.appendEvent(t, ids.New(ids.Message))
		require.Eventually(t, func() bool {
			return len(b.deliveries(t, w.ID)) == 1 && b.deliveries(t, w.ID)[0].Status == webhook.StatusFailed
		}, 10*time.Second, 20*time.Millisecond)
		fresh, err := b.svc.Get(context.Background(), b.tenantID, w.ID)
		require.NoError(t, err)
		require.True(t, fresh.Enabled, "failing for less than DisableAfter")
		require.NotNil(t, fresh.FailingSince)

		now.Add(int64(2 * time.Hour))
		b.appendEvent(t, ids.New(ids.Message))
		require.Eventually(t, func() bool {
			fresh, err = b.svc.Get(context.Background(), b.tenantID, w.ID)
			return err == nil && !fresh.Enabled
		}, 10*time.Second, 20*time.Millisecond)
		require.Contains(t, fresh.DisabledReason, "failed")
		page, err := event.List(context.Background(), b.pool, b.tenantID, event.Filter{Types: []event.Type{event.WebhookDisabled}, Limit: 10})
		require.NoError(t, err)
		require.Len(t, page.Events, 1)
		require.Equal(t, w.ID, page.Events[0].WebhookID)

		// A disabled endpoint gets nothing more; what was still pending ends as failed.
		before := len(rcv.received())
		b.appendEvent(t, ids.New(ids.Message))
		time.Sleep(300 * time.Millisecond)
		require.Len(t, rcv.received(), before)
		require.Eventually(t, func() bool {
			for _, d := range b.deliveries(t, w.ID) {
				if d.Status == webhook.StatusPending {
					return false
				}
			}
			return true
		}, 5*time.Second, 20*time.Millisecond)

		// Enabling it again clears the reason and the streak.
		on := true
		fresh, err = b.svc.Update(context.Background(), b.tenantID, w.ID, webhook.Patch{Enabled: &on})
		require.NoError(t, err)
		require.True(t, fresh.Enabled)
		require.Empty(t, fresh.DisabledReason)
		require.Nil(t, fresh.FailingSince)
	})

	t.Run("RedeliverSendsAgain", func(t *testing.T) {
		t.Parallel()
		b := setup(t, webhook.Config{})
		rcv := newReceiver(t, nil)
		w, _ := b.create(t, rcv.srv.URL)
		b.start(t)
		b.appendEvent(t, ids.New(ids.Message))
		require.Eventually(t, func() bool { return len(rcv.received()) == 1 }, 10*time.Second, 20*time.Millisecond)
		var ds []*webhook.Delivery
		require.Eventually(t, func() bool { ds = b.deliveries(t, w.ID); return ds[0].Status == webhook.StatusSucceeded }, 5*time.Second, 20*time.Millisecond)
		_, err := b.svc.Redeliver(context.Background(), b.tenantID, w.ID, ds[0].ID)
		require.NoError(t, err)
		require.Eventually(t, func() bool { return len(rcv.received()) == 2 }, 10*time.Second, 20*time.Millisecond)
		require.Equal(t, rcv.received()[0].header.Get("webhook-id"), rcv.received()[1].header.Get("webhook-id"))
		_, err = b.svc.Redeliver(context.Background(), b.tenantID, w.ID, ids.New(ids.WebhookDelivery))
		require.True(t, webhook.IsNotFound(err))
	})
}

func TestURLPolicy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RefusesPrivateTargets", func(t *testing.T) {
		t.Parallel()
		b := setup(t, webhook.Config{AllowAddrFunc: connector.PublicAddr})
		for _, u := range []string{"http://127.0.0.1:8080/x", "http://10.0.0.1/x", "http://[::1]/x", "http://169.254.169.254/latest/meta-data"} {
			_, _, err := b.svc.Create(ctx, b.tenantID, webhook.Input{URL: u})
			var ve *validate.Error
			require.ErrorAs(t, err, &ve, u)
			require.Equal(t, "url", ve.Fields[0].Field)
		}
		// A name that resolves to loopback passes the form check but is refused at dial time.
		rcv := newReceiver(t, nil)
		port := rcv.srv.Listener.Addr().(*net.TCPAddr).Port
		w, _, err := b.svc.Create(ctx, b.tenantID, webhook.Input{URL: "http://localhost:" + strconv.Itoa(port) + "/hook"})
		require.NoError(t, err)
		ans, err := b.svc.Test(ctx, b.tenantID, w.ID)
		require.NoError(t, err)
		require.Zero(t, ans.StatusCode)
		require.Contains(t, ans.Error, "not allowed by this platform's policy")
		require.Empty(t, rcv.received())
	})

	t.Run("RequiresHTTPSUnlessAllowed", func(t *testing.T) {
		t.Parallel()
		pool := dbtest.NewPool(t)
		box, err := secret.NewBox("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
		require.NoError(t, err)
		svc := webhook.NewService(pool, box, nil, webhook.Config{})
		var ve *validate.Error
		_, _, err = svc.Create(ctx, "ten_x", webhook.Input{URL: "http://hooks.example.com/x"})
		require.ErrorAs(t, err, &ve)
		require.Contains(t, ve.Fields[0].Message, "https")
		_, _, err = svc.Create(ctx, "ten_x", webhook.Input{URL: "https://user:pw@hooks.example.com/x"})
		require.ErrorAs(t, err, &ve)
		_, _, err = svc.Create(ctx, "ten_x", webhook.Input{URL: "https://hooks.example.com/x", EventTypes: []event.Type{"message.nope"}})
		require.ErrorAs(t, err, &ve)
		require.Equal(t, "event_types", ve.Fields[0].Field)
	})

	t.Run("RedirectsAreNotFollowed", func(t *testing.T) {
		t.Parallel()
		b := setup(t, webhook.Config{})
		target := newReceiver(t, nil)
		rcv := newReceiver(t, func(_ int, w http.ResponseWriter) {
			w.Header().Set("Location", target.srv.URL)
			w.WriteHeader(http.StatusTemporaryRedirect)
		})
		w, _ := b.create(t, rcv.srv.URL)
		ans, err := b.svc.Test(ctx, b.tenantID, w.ID)
		require.NoError(t, err)
		require.Equal(t, http.StatusTemporaryRedirect, ans.StatusCode)
		require.False(t, ans.OK())
		require.Empty(t, target.received())
	})
}
