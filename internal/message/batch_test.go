package message

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/suppression"
)

// countingSenders allows the domains in allowed, refuses others, and counts lookups.
type countingSenders struct {
	noSenders
	allowed map[string]bool
	mu      sync.Mutex
	calls   map[string]int
}

func (c *countingSenders) CheckSender(ctx context.Context, tenantID, domain string, requireSPF bool) error {
	c.mu.Lock()
	c.calls[domain]++
	c.mu.Unlock()
	if c.allowed[domain] {
		return nil
	}
	return c.noSenders.CheckSender(ctx, tenantID, domain, requireSPF)
}

func TestSubmitBatchSharesLookups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("OneSenderLookupPerDomain", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		senders := &countingSenders{allowed: map[string]bool{"a.example": true}, calls: map[string]int{}}
		b.svc.senders = senders
		var reqs []*Request
		for i := range 6 {
			req := request()
			req.From = Address{Email: []string{"x@a.example", "y@a.example", "z@b.example"}[i%3]}
			reqs = append(reqs, req)
		}
		items, _, err := b.svc.SubmitBatch(ctx, b.tenantID, reqs, nil)
		require.NoError(t, err)
		require.Equal(t, map[string]int{"a.example": 1, "b.example": 1}, senders.calls)
		for i, it := range items {
			if i%3 == 2 {
				require.NotNil(t, it.Refusal, "item %d", i)
				require.Equal(t, "from.email", it.Refusal.Errors[0].Field, "each refusal still names its field")
				require.Contains(t, it.Refusal.Errors[0].Message, "domain b.example is not a sender domain")
				continue
			}
			require.NotNil(t, it.Accepted, "item %d", i)
		}
		require.Equal(t, 4, b.count(t, "messages"))
	})
	t.Run("SuppressionsMatchedAcrossTheBatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sup := b.withSuppressions()
		_, err := sup.Add(ctx, b.tenantID, suppression.Entry{Address: "gone@customer.example", Reason: suppression.ReasonHardBounce})
		require.NoError(t, err)
		// The same suppressed address written two ways in two messages, one message
		// with a suppressed and a live recipient, and one untouched.
		upper := request()
		upper.To = []Address{{Email: "Gone@Customer.example"}}
		lower := request()
		lower.To = []Address{{Email: "gone@customer.example"}}
		mixed := request()
		mixed.To = []Address{{Email: "jane@customer.example"}, {Email: "GONE@customer.example"}}
		items, _, err := b.svc.SubmitBatch(ctx, b.tenantID, []*Request{upper, lower, mixed, request()}, nil)
		require.NoError(t, err)
		for i := range 2 {
			require.NotNil(t, items[i].Refusal, "item %d", i)
			require.Equal(t, RefusalInvalid, items[i].Refusal.Reason)
			require.Equal(t, "recipients", items[i].Refusal.Errors[0].Field)
		}
		require.NotNil(t, items[2].Accepted)
		require.Equal(t, []SuppressedRecipient{{Address: "GONE@customer.example", Reason: suppression.ReasonHardBounce}}, items[2].Accepted.Suppressed)
		m, err := b.svc.Get(ctx, b.tenantID, items[2].Accepted.ID)
		require.NoError(t, err)
		require.Equal(t, []string{"jane@customer.example"}, m.Recipients)
		require.NotNil(t, items[3].Accepted)
		require.Empty(t, items[3].Accepted.Suppressed)
		require.Equal(t, 2, b.count(t, "messages"))
	})
}
