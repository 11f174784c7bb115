package message

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/delivery"
)

// rsaSenders signs every message with one RSA-2048 key, as a verified domain's would be.
type rsaSenders struct {
	noSenders
	key *rsa.PrivateKey
}

func (s rsaSenders) DKIMSigners(context.Context, string, string) ([]delivery.DKIMOptions, error) {
	return []delivery.DKIMOptions{{Domain: "acme.example", Selector: "sw1", Signer: s.key}}, nil
}

// BenchmarkAttemptLatency makes lone delivery attempts one after another (claim, RSA-2048
// DKIM, send to a go-smtp sink on loopback, record), as at a steady low rate, and reports
// the p50 and p99 of one attempt.
func BenchmarkAttemptLatency(b *testing.B) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(b, err)
	rb := setupRecord(b, 1)
	rb.deliverer.senders = rsaSenders{key: key}
	ids := make([]string, b.N)
	for i := range ids {
		acc, _, err := rb.svc.Submit(context.Background(), rb.tenantID, request(), nil)
		require.NoError(b, err)
		ids[i] = acc.ID
	}
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for _, id := range ids {
		start := time.Now()
		a, err := rb.deliverer.Attempt(context.Background(), rb.tenantID, id, AttemptOpts{RetryAt: time.Now().Add(time.Hour)})
		took = append(took, time.Since(start))
		require.NoError(b, err)
		require.Equal(b, VerdictDelivered, a.Verdict)
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}
