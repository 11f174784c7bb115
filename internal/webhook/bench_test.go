package webhook_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/event"
	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/webhook"
)

// BenchmarkThroughput measures events delivered per second to a loopback receiver: events
// are appended in batches (as a busy tenant's submissions would), then dispatched, signed,
// posted and logged by 20 workers. Run: go test -run '^$' -bench Throughput ./internal/webhook/
func BenchmarkThroughput(b *testing.B) {
	const events = 2000
	for b.Loop() {
		bb := setup(b, webhook.Config{})
		rcv := newReceiver(b, nil)
		bb.create(b, rcv.srv.URL)
		workers := river.NewWorkers()
		river.AddWorker(workers, bb.worker)
		client, err := river.NewClient(riverpgxv5.New(bb.pool), &river.Config{
			Workers: workers, Queues: map[string]river.QueueConfig{webhook.QueueWebhooks: {MaxWorkers: 20}},
			FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond, TestOnly: true,
		})
		require.NoError(b, err)
		bb.client = client
		bb.dispatch = webhook.NewDispatcher(bb.pool, client, bb.cfg, 50*time.Millisecond, nil)
		ctx := context.Background()
		for i := 0; i < events; i += 100 {
			require.NoError(b, store.WithTx(ctx, bb.pool, func(tx pgx.Tx) error {
				es := make([]*event.Event, 100)
				for j := range es {
					es[j] = &event.Event{TenantID: bb.tenantID, MessageID: ids.New(ids.Message), Data: event.MessageDeliveredData{
						MessageInfo: event.MessageInfo{From: "a@example.com", Recipients: []string{"b@example.org"}, Tags: []string{}, Metadata: map[string]string{}},
						Attempt:     1, Reply: &event.Reply{Code: 250, Text: "2.0.0 Ok: queued"},
					}}
				}
				return event.AppendMany(ctx, tx, es)
			}))
		}
		start := time.Now()
		bb.start(b)
		for int(rcv.n.Load()) < events {
			time.Sleep(5 * time.Millisecond)
		}
		elapsed := time.Since(start)
		b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
	}
}
