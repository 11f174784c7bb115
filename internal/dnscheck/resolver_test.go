package dnscheck

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dnstest"
)

// longKey is longer than one 255-byte TXT string and than a 512-byte UDP answer.
func longKey() string {
	return strings.Repeat("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA", 14)
}

func resolverZone() string {
	key := longKey()
	return `
$ORIGIN example.com.
@          300 IN TXT   "v=spf1 -all"
@          300 IN MX    10 mail
mail       300 IN A     192.0.2.1
mail       300 IN AAAA  2001:db8::1
alias      300 IN CNAME mail
loop1      300 IN CNAME loop2
loop2      300 IN CNAME loop1
big        300 IN TXT   "` + key[:255] + `" "` + key[255:510] + `" "` + key[510:] + `"
`
}

type resolverBundle struct {
	srv *dnstest.Server
	res *Resolver
}

func setupResolver(t *testing.T) *resolverBundle {
	t.Helper()
	srv := dnstest.NewServer(t, resolverZone())
	return &resolverBundle{
		srv: srv,
		res: NewResolver(&ResolverConfig{Servers: []string{srv.Addr()}, Timeout: 300 * time.Millisecond, Attempts: 1}),
	}
}

func TestResolver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("FindsRecordsAndReportsServer", func(t *testing.T) {
		t.Parallel()
		b := setupResolver(t)
		ans, err := b.res.Lookup(ctx, "mail.example.com", dns.TypeA)
		require.NoError(t, err)
		require.Equal(t, "ok", ans.Status())
		require.Equal(t, b.srv.Addr(), ans.Server)
		require.Equal(t, "192.0.2.1", ans.IPs()[0].String())
	})

	t.Run("DistinguishesNXDomainFromNoData", func(t *testing.T) {
		t.Parallel()
		b := setupResolver(t)
		nx, err := b.res.Lookup(ctx, "missing.example.com", dns.TypeTXT)
		require.NoError(t, err)
		require.True(t, nx.NXDomain())
		require.True(t, nx.Void())
		nodata, err := b.res.Lookup(ctx, "mail.example.com", dns.TypeTXT)
		require.NoError(t, err)
		require.False(t, nodata.NXDomain())
		require.True(t, nodata.Void())
		require.Equal(t, "nodata", nodata.Status())
	})

	t.Run("FollowsCNAMEs", func(t *testing.T) {
		t.Parallel()
		b := setupResolver(t)
		ans, err := b.res.Lookup(ctx, "alias.example.com", dns.TypeAAAA)
		require.NoError(t, err)
		require.Equal(t, []string{"mail.example.com"}, ans.CNAMEs)
		require.Equal(t, "2001:db8::1", ans.IPs()[0].String())
	})

	t.Run("ReportsCNAMELoopAsPermanent", func(t *testing.T) {
		t.Parallel()
		b := setupResolver(t)
		_, err := b.res.Lookup(ctx, "loop1.example.com", dns.TypeA)
		var le *LookupError
		require.ErrorAs(t, err, &le)
		require.Equal(t, KindCNAMELoop, le.Kind)
		require.False(t, IsTemporary(err))
	})

	t.Run("JoinsTXTStringsAndFallsBackToTCP", func(t *testing.T) {
		t.Parallel()
		b := setupResolver(t)
		small := NewResolver(&ResolverConfig{Servers: []string{b.srv.Addr()}, UDPSize: 512, Attempts: 1})
		ans, err := small.Lookup(ctx, "big.example.com", dns.TypeTXT)
		require.NoError(t, err)
		require.Equal(t, []string{longKey()}, ans.TXT())

		b.srv.Truncate("example.com")
		ans, err = b.res.Lookup(ctx, "example.com", dns.TypeTXT)
		require.NoError(t, err)
		require.Equal(t, []string{"v=spf1 -all"}, ans.TXT())
	})

	t.Run("TypesTemporaryErrors", func(t *testing.T) {
		t.Parallel()
		b := setupResolver(t)
		b.srv.SetRcode("mail.example.com", dns.RcodeServerFailure)
		b.srv.SetRcode("example.com", dns.RcodeRefused)
		b.srv.Drop("alias.example.com")
		for name, kind := range map[string]ErrorKind{
			"mail.example.com":  KindServFail,
			"example.com":       KindRefused,
			"alias.example.com": KindTimeout,
		} {
			_, err := b.res.Lookup(ctx, name, dns.TypeA)
			var le *LookupError
			require.ErrorAs(t, err, &le, name)
			require.Equal(t, kind, le.Kind, name)
			require.True(t, IsTemporary(err), name)
		}
	})

	t.Run("TriesTheNextServer", func(t *testing.T) {
		t.Parallel()
		b := setupResolver(t)
		dead := dnstest.NewServer(t, "")
		dead.Drop("example.com")
		res := NewResolver(&ResolverConfig{Servers: []string{dead.Addr(), b.srv.Addr()}, Timeout: 300 * time.Millisecond})
		ans, err := res.Lookup(ctx, "example.com", dns.TypeTXT)
		require.NoError(t, err)
		require.Equal(t, b.srv.Addr(), ans.Server)
	})

	t.Run("RefusesUnqueryableNames", func(t *testing.T) {
		t.Parallel()
		b := setupResolver(t)
		_, err := b.res.Lookup(ctx, strings.Repeat("a", 64)+".example.com", dns.TypeA)
		var le *LookupError
		require.ErrorAs(t, err, &le)
		require.Equal(t, KindInvalidName, le.Kind)
		require.Zero(t, b.srv.Queries())
	})
}

func TestDefaultServers(t *testing.T) {
	t.Parallel()
	servers := DefaultServers()
	require.NotEmpty(t, servers)
	for _, s := range servers {
		require.Contains(t, s, ":")
	}
}
