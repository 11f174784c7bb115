package webhook_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
	"github.com/sendwerk/sendwerk/internal/webhook"
)

func TestIdleDispatch(t *testing.T) {
	t.Parallel()

	t.Run("NoWebhookReadsNoEventsAndSkipsThem", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, webhook.Config{})
		now := time.Now()
		b.dispatch.NowFunc = func() time.Time { return now }
		position := func() string {
			var xid string
			require.NoError(t, b.pool.QueryRow(ctx, `SELECT after_xid FROM webhook_dispatch`).Scan(&xid))
			return xid
		}
		for range 3 {
			b.appendEvent(t, ids.New(ids.Message))
		}
		n, err := b.dispatch.DispatchOnce(ctx)
		require.NoError(t, err)
		require.Zero(t, n, "no webhook: no events are read")
		skipped := position()
		require.NotEmpty(t, skipped, "the position moved past the events no webhook could receive")

		b.appendEvent(t, ids.New(ids.Message))
		n, err = b.dispatch.DispatchOnce(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
		require.Equal(t, skipped, position(), "the position moves at most every 10 s while idle")

		rcv := newReceiver(t, nil)
		w, _ := b.create(t, rcv.srv.URL)
		n, err = b.dispatch.DispatchOnce(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n, "with a webhook, the dispatcher reads on from the skipped position: only the event after it")
		require.Empty(t, b.deliveries(t, w.ID), "an event older than the webhook is not delivered to it")

		e := b.appendEvent(t, ids.New(ids.Message))
		n, err = b.dispatch.DispatchOnce(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		ds := b.deliveries(t, w.ID)
		require.Len(t, ds, 1)
		require.Equal(t, e.ID, ds[0].EventID)
	})
	t.Run("SkipRefusedWhileAWebhookIsEnabled", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, webhook.Config{})
		rcv := newReceiver(t, nil)
		b.create(t, rcv.srv.URL)
		b.appendEvent(t, ids.New(ids.Message))
		moved, err := dbsqlc.New(b.pool).WebhookDispatchSkipIdle(ctx)
		require.NoError(t, err)
		require.Zero(t, moved, "events a webhook may receive are never skipped")
		n, err := b.dispatch.DispatchOnce(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})
	t.Run("RunDeliversAfterIdlePolls", func(t *testing.T) {
		t.Parallel()
		b := setup(t, webhook.Config{})
		rcv := newReceiver(t, nil)
		b.create(t, rcv.srv.URL)
		b.start(t)
		time.Sleep(300 * time.Millisecond) // polls find nothing: the pause grows to its cap (5 × 20 ms)
		e := b.appendEvent(t, ids.New(ids.Message))
		require.Eventually(t, func() bool { return len(rcv.received()) == 1 }, 5*time.Second, 10*time.Millisecond)
		require.Equal(t, e.ID, rcv.received()[0].header.Get("webhook-id"))
	})
}
