package message

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/event"
)

func TestStreamEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("SubmitAndCancelAppendTypedEvents", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		req := request()
		req.Tags, req.Metadata = []string{"reset"}, map[string]string{"user": "42"}
		acc, _, err := b.svc.Submit(ctx, b.tenantID, req, nil)
		require.NoError(t, err)
		_, err = b.svc.Cancel(ctx, b.tenantID, acc.ID)
		require.NoError(t, err)
		page, err := event.List(ctx, b.pool, b.tenantID, event.Filter{ResourceID: acc.ID, Limit: 10})
		require.NoError(t, err)
		require.Len(t, page.Events, 2)
		q := page.Events[0].Data.(*event.MessageQueuedData)
		require.Equal(t, []string{"jane@customer.example"}, q.Recipients)
		require.Equal(t, "42", q.Metadata["user"])
		require.Equal(t, "api", q.Source)
		c := page.Events[1].Data.(*event.MessageCancelledData)
		require.Equal(t, []string{"reset"}, c.Tags)
		require.NotEmpty(t, page.Events[1].ConnectorID)
	})

	t.Run("QuotaThresholdsOnceEach", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.pool.Exec(ctx, "UPDATE tenants SET monthly_quota = 10 WHERE id = $1", b.tenantID)
		require.NoError(t, err)
		thresholds := func() []int {
			page, err := event.List(ctx, b.pool, b.tenantID, event.Filter{Types: []event.Type{event.QuotaThreshold}, Limit: 10})
			require.NoError(t, err)
			var out []int
			for _, e := range page.Events {
				d := e.Data.(*event.QuotaThresholdData)
				require.Equal(t, "tenant", d.Scope)
				require.EqualValues(t, 10, d.Limit)
				out = append(out, d.ThresholdPercent)
			}
			return out
		}
		for range 7 {
			_, _, err := b.svc.Submit(ctx, b.tenantID, request(), nil)
			require.NoError(t, err)
		}
		require.Empty(t, thresholds())
		_, _, err = b.svc.Submit(ctx, b.tenantID, request(), nil)
		require.NoError(t, err)
		require.Equal(t, []int{80}, thresholds())
		for range 2 {
			_, _, err := b.svc.Submit(ctx, b.tenantID, request(), nil)
			require.NoError(t, err)
		}
		require.Equal(t, []int{80, 90, 100}, thresholds())
		_, _, err = b.svc.Submit(ctx, b.tenantID, request(), nil)
		require.Error(t, err, "over quota")
		require.Equal(t, []int{80, 90, 100}, thresholds(), "a refused submission appends nothing")
	})
}
