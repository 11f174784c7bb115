package sendingdomain

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/event"
)

// TestStreamEvents: every status change of a domain reaches the tenant's event stream with
// its type, in the check's transaction.
func TestStreamEvents(t *testing.T) {
	t.Parallel()
	b := setup(t, &Config{SPFInclude: platformSPF, SPFNetworks: platformNets, KeyBits: 1024, GracePeriod: time.Hour, GraceChecks: 1})
	d := b.create(t, "example.com")
	b.serve(t, d, allRecords)
	d, _ = b.check(t, d)
	require.Equal(t, StatusVerified, d.Status)
	b.serve(t, d, []string{CheckSPF, CheckDKIM, CheckDMARC})
	b.clock.Advance(time.Minute)
	d, _ = b.check(t, d)
	require.Equal(t, StatusAtRisk, d.Status)
	b.clock.Advance(2 * time.Hour)
	d, _ = b.check(t, d)
	require.Equal(t, StatusRevoked, d.Status)
	b.serve(t, d, allRecords)
	b.clock.Advance(time.Minute)
	d, chk := b.check(t, d)
	require.Equal(t, StatusVerified, d.Status)

	page, err := event.List(b.ctx, b.db, b.tenantID, event.Filter{ResourceID: d.ID, Limit: 10})
	require.NoError(t, err)
	var types []event.Type
	for _, e := range page.Events {
		types = append(types, e.Type())
	}
	require.Equal(t, []event.Type{event.DomainVerified, event.DomainAtRisk, event.DomainRevoked, event.DomainRestored}, types)
	last := page.Events[3].Data.(*event.DomainRestoredData)
	require.Equal(t, "example.com", last.Domain)
	require.Equal(t, "revoked", last.FromStatus)
	require.Equal(t, chk.ID, last.CheckID)
	require.Equal(t, b.clock.Now(), page.Events[3].CreatedAt, "the event carries the check's time")
	at := page.Events[1].Data.(*event.DomainAtRiskData)
	require.Equal(t, "ownership.token_missing", at.Code)
}
