package sendingdomain

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/devdns"
	"github.com/sendwerk/sendwerk/internal/dnscheck"
	"github.com/sendwerk/sendwerk/internal/secret"
	"github.com/sendwerk/sendwerk/internal/tenant"
)

func TestExpectedTXT(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	d := b.create(t, "shop.test")

	got, err := b.svc.ExpectedTXT(b.ctx, "Shop.Test.")
	require.NoError(t, err)
	require.Len(t, got, 2, "ownership and SPF at the domain")
	require.Equal(t, "sendwerk-verification="+d.VerificationToken, got[0])
	require.Contains(t, got[1], "include:"+platformSPF)

	got, err = b.svc.ExpectedTXT(b.ctx, "sw1._domainkey.shop.test")
	require.NoError(t, err)
	require.Equal(t, []string{"v=DKIM1; k=rsa; p=" + d.DKIMPublicKey}, got)

	got, err = b.svc.ExpectedTXT(b.ctx, "_dmarc.shop.test")
	require.NoError(t, err)
	require.Equal(t, []string{DefaultDMARCRecord}, got)

	got, err = b.svc.ExpectedTXT(b.ctx, platformSPF)
	require.NoError(t, err)
	require.Equal(t, []string{"v=spf1 ip4:192.0.2.10/32 -all"}, got, "the platform's include authorises its networks")

	got, err = b.svc.ExpectedTXT(b.ctx, "other.test")
	require.NoError(t, err)
	require.Empty(t, got)

	t.Run("NewestTenantWins", func(t *testing.T) {
		other, err := tenant.NewService(b.db).Create(b.ctx, "Other", nil)
		require.NoError(t, err)
		b.clock.Advance(time.Minute)
		d2, err := b.svc.Create(b.ctx, other.ID, "shop.test")
		require.NoError(t, err)
		got, err := b.svc.ExpectedTXT(b.ctx, "sw1._domainkey.shop.test")
		require.NoError(t, err)
		require.Equal(t, []string{"v=DKIM1; k=rsa; p=" + d2.DKIMPublicKey}, got, "one DKIM key per selector")
	})
}

// TestDevDNSVerifiesDomains checks a domain through the real check path against the
// development DNS answering from ExpectedTXT: it verifies at once, SPF included.
func TestDevDNSVerifiesDomains(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A pool, not the usual rolled-back transaction: the DNS server reads while the check runs.
	pool, err := pgxpool.New(ctx, dbtest.NewDatabase(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	b := setupDB(t, pool, nil)
	srv, err := devdns.Start(devdns.Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	box, err := secret.NewBox(testSecretKey)
	require.NoError(t, err)
	resolver := dnscheck.NewResolver(&dnscheck.ResolverConfig{Servers: []string{srv.Addr()}, Timeout: time.Second})
	svc, err := NewService(b.db, box, resolver, &Config{SPFInclude: "_spf.platform.test", SPFNetworks: platformNets, KeyBits: 1024})
	require.NoError(t, err)
	srv.SetSource(svc)

	d, err := svc.Create(ctx, b.tenantID, "mail.shop.test")
	require.NoError(t, err)
	d, chk, err := svc.RunCheck(ctx, b.tenantID, d.ID)
	require.NoError(t, err)
	var results []string
	for _, r := range chk.Results {
		results = append(results, r.Check+":"+string(r.Status))
	}
	require.Equal(t, StatusVerified, d.Status, strings.Join(results, " "))
	require.ElementsMatch(t, []string{"ownership:pass", "spf:pass", "dkim:pass", "dmarc:pass"}, results)
}
