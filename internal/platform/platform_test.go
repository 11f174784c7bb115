package platform_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/event"
	"github.com/sendwerk/sendwerk/internal/platform"
	"github.com/sendwerk/sendwerk/internal/tenant"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestPublish(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	a, err := tenant.NewService(pool).Create(ctx, "A", nil)
	require.NoError(t, err)
	b, err := tenant.NewService(pool).Create(ctx, "B", nil)
	require.NoError(t, err)
	facts := platform.Facts{EgressNetworks: []string{"198.51.100.0/24", "192.0.2.0/24"}, SPFInclude: "_spf.example.net",
		RelayHosts: []event.RelayHost{{Host: "smtp.example.net", Port: 587, Security: "starttls"}}}
	feed := func(tenantID string) []*event.Event {
		p, err := event.List(ctx, pool, tenantID, event.Filter{Types: []event.Type{event.PlatformChanged}, Limit: 10})
		require.NoError(t, err)
		return p.Events
	}

	changed, err := platform.Publish(ctx, pool, facts, time.Now())
	require.NoError(t, err)
	require.Nil(t, changed, "the first start has nothing to compare with")
	// The same facts in another order are no change.
	facts.EgressNetworks = []string{"192.0.2.0/24", "198.51.100.0/24"}
	changed, err = platform.Publish(ctx, pool, facts, time.Now())
	require.NoError(t, err)
	require.Empty(t, changed)
	require.Empty(t, feed(a.ID))

	facts.BounceDomain = "bounces.example.net"
	facts.RelayHosts = append(facts.RelayHosts, event.RelayHost{Host: "smtp.example.net", Port: 465, Security: "tls"})
	changed, err = platform.Publish(ctx, pool, facts, time.Now())
	require.NoError(t, err)
	require.Equal(t, []string{"relay_hosts", "bounce_domain"}, changed)
	for _, id := range []string{a.ID, b.ID} {
		es := feed(id)
		require.Len(t, es, 1)
		d := es[0].Data.(*event.PlatformChangedData)
		require.Equal(t, changed, d.Changed)
		require.Empty(t, d.Previous.BounceDomain)
		require.Equal(t, "bounces.example.net", d.Current.BounceDomain)
		require.Len(t, d.Current.RelayHosts, 2)
	}
}
