package dnscheck

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dnstest"
)

const (
	platformInclude = "spf.sendwerk.test"
	dkimKey         = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAv1Bz9pWq0Zx4Kd3pQ+eY8YmZ3bXtKc0gFQ=="
)

const checkZone = `
$TTL 300
example.com.                 IN TXT "sendwerk-verification=abc123"
example.com.                 IN TXT "v=spf1 include:_spf.example.com ~all"
_spf.example.com.            IN TXT "v=spf1 include:spf.sendwerk.test -all"
spf.sendwerk.test.           IN TXT "v=spf1 ip4:192.0.2.10 ip4:192.0.2.11 ~all"
sel._domainkey.example.com.  IN CNAME sel.dkim.example.net.
sel.dkim.example.net.        IN TXT "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A" "MIIBCgKCAQEAv1Bz9pWq0Zx4Kd3pQ+eY8YmZ3bXtKc0gFQ=="
rev._domainkey.example.com.  IN TXT "v=DKIM1; p="
old._domainkey.example.com.  IN TXT "v=DKIM1; k=rsa; p=AAAAB3NzaC1yc2E="
bad._domainkey.example.com.  IN TXT "v=DKIM1; k=rsa; p=!!notbase64"
_dmarc.example.com.          IN TXT "v=DMARC1; p=quarantine; adkim=s; rua=mailto:dmarc@example.com"
sub.example.com.             IN A   192.0.2.99
mismatch.test.               IN TXT "sendwerk-verification=zzz"
nospf.test.                  IN TXT "hello"
multi.test.                  IN TXT "v=spf1 -all"
multi.test.                  IN TXT "v=spf1 ~all"
bad.test.                    IN TXT "v=spf1 foo:bar -all"
_dmarc.bad.test.             IN TXT "v=DMARC1; p=maybe"
toomany.test.                IN TXT "v=spf1 a a a a a a a a a a a include:spf.sendwerk.test -all"
void.test.                   IN TXT "v=spf1 a:n1.void.test a:n2.void.test a:n3.void.test include:spf.sendwerk.test -all"
other.test.                  IN TXT "v=spf1 ip4:198.51.100.1 -all"
viaredirect.test.            IN TXT "v=spf1 redirect=example.com"
afterall.test.               IN TXT "v=spf1 -all include:spf.sendwerk.test"
slow.test.                   IN TXT "v=spf1 -all"
broken.test.                 IN TXT "v=spf1 -all"
`

type checkBundle struct {
	srv     *dnstest.Server
	checker *Checker
	now     time.Time
}

func setupCheck(t *testing.T) *checkBundle {
	t.Helper()
	srv := dnstest.NewServer(t, checkZone)
	srv.Drop("slow.test")
	srv.SetRcode("broken.test", dns.RcodeServerFailure)
	res := NewResolver(&ResolverConfig{Servers: []string{srv.Addr()}, Timeout: 300 * time.Millisecond, Attempts: 1})
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	c := NewChecker(res)
	c.NowFunc = func() time.Time { return now }
	return &checkBundle{srv: srv, checker: c, now: now}
}

func TestCheckOwnership(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupCheck(t)
	tests := []struct {
		name, domain, status, code string
	}{
		{"PassesWithToken", "example.com", "pass", "ownership.ok"},
		{"FailsWithoutToken", "nospf.test", "fail", "ownership.token_missing"},
		{"FailsOnNXDomain", "nowhere.test", "fail", "ownership.token_missing"},
		{"FailsWithOtherToken", "mismatch.test", "fail", "ownership.token_mismatch"},
		{"TimeoutIsTemporary", "slow.test", "temperror", "dns.timeout"},
		{"ServFailIsTemporary", "broken.test", "temperror", "dns.servfail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := b.checker.CheckOwnership(ctx, tt.domain, "sendwerk-verification=abc123")
			require.Equal(t, CheckStatus(tt.status), res.Status, res.Message)
			require.Equal(t, tt.code, res.Code)
			require.Equal(t, "sendwerk-verification=abc123", res.Expected)
			require.Equal(t, b.now, res.CheckedAt)
			require.Equal(t, b.srv.Addr(), res.Resolver)
			require.NotEmpty(t, res.Message)
		})
	}
	t.Run("MessageSaysWhatToPublish", func(t *testing.T) {
		t.Parallel()
		res := b.checker.CheckOwnership(ctx, "nospf.test", "sendwerk-verification=abc123")
		require.Equal(t, "No TXT record sendwerk-verification=abc123 was found at nospf.test; publish it and check again.", res.Message)
		require.Equal(t, []string{"hello"}, res.Observed)
	})
}

func TestCheckSPF(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupCheck(t)
	ips := []net.IP{net.ParseIP("192.0.2.10")}
	tests := []struct {
		name, domain, status, code string
		ips                        []net.IP
	}{
		{"PassesThroughNestedInclude", "example.com", "pass", "spf.ok", ips},
		{"PassesThroughRedirect", "viaredirect.test", "pass", "spf.ok", ips},
		{"PassesOnIncludeAlone", "example.com", "pass", "spf.ok", nil},
		{"FailsWithoutRecord", "nospf.test", "fail", "spf.record_missing", ips},
		{"FailsWithTwoRecords", "multi.test", "fail", "spf.multiple_records", ips},
		{"FailsOnSyntax", "bad.test", "fail", "spf.syntax", ips},
		{"FailsOverLookupLimit", "toomany.test", "fail", "spf.too_many_lookups", ips},
		{"FailsOverVoidLimit", "void.test", "fail", "spf.void_lookups", ips},
		{"FailsWithoutInclude", "other.test", "fail", "spf.include_missing", ips},
		{"FailsWhenIncludeFollowsAll", "afterall.test", "fail", "spf.include_missing", ips},
		{"TimeoutIsTemporary", "slow.test", "temperror", "dns.timeout", ips},
		{"ServFailIsTemporary", "broken.test", "temperror", "dns.servfail", ips},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := b.checker.CheckSPF(ctx, tt.domain, tt.ips, platformInclude)
			require.Equal(t, CheckStatus(tt.status), res.Status, res.Message)
			require.Equal(t, tt.code, res.Code, res.Message)
			require.Equal(t, "include:"+platformInclude, res.Expected)
		})
	}

	t.Run("ReportsPathLookupsAndSuggestion", func(t *testing.T) {
		t.Parallel()
		res := b.checker.CheckSPF(ctx, "viaredirect.test", ips, platformInclude)
		require.Equal(t, []string{"viaredirect.test", "example.com", "_spf.example.com", platformInclude}, res.SPF.IncludePath)
		require.Equal(t, 3, res.SPF.Lookups)
		require.Len(t, res.SPF.Evaluations, 1)
		require.Equal(t, SPFPass, res.SPF.Evaluations[0].Result)

		other := b.checker.CheckSPF(ctx, "other.test", ips, platformInclude)
		require.Equal(t, "v=spf1 ip4:198.51.100.1 include:spf.sendwerk.test -all", other.SPF.SuggestedRecord)
		require.Contains(t, other.Message, other.SPF.SuggestedRecord)
	})

	t.Run("NetworksNeedFirstAndLastAddress", func(t *testing.T) {
		t.Parallel()
		b.srv.Add(`nets.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/25 -all"`)
		half := b.checker.CheckSPFNetworks(ctx, "nets.test", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/25")}, "")
		require.Equal(t, StatusPass, half.Status, half.Message)
		require.Equal(t, "ip4:192.0.2.0/25", half.Expected)
		require.Len(t, half.SPF.Evaluations, 2)
		require.Equal(t, "192.0.2.127", half.SPF.Evaluations[1].IP)

		whole := b.checker.CheckSPFNetworks(ctx, "nets.test", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, "")
		require.Equal(t, StatusFail, whole.Status, "192.0.2.255 is outside the /25")
		require.Equal(t, "spf.include_missing", whole.Code)
		require.Equal(t, "v=spf1 ip4:192.0.2.0/25 ip4:192.0.2.0/24 -all", whole.SPF.SuggestedRecord)
	})

	t.Run("PlusAllPassesWithAWarning", func(t *testing.T) {
		t.Parallel()
		b.srv.Add(`plusall.test. 300 IN TXT "v=spf1 mx +all"`)
		res := b.checker.CheckSPF(ctx, "plusall.test", ips, platformInclude)
		require.Equal(t, StatusPass, res.Status)
		require.Equal(t, "spf.allows_all", res.Code)
		require.Equal(t, "v=spf1 mx include:spf.sendwerk.test ~all", res.SPF.SuggestedRecord)
		require.Contains(t, res.Message, "+all")
	})

	t.Run("PassesOnPlatformIPsWithoutInclude", func(t *testing.T) {
		t.Parallel()
		res := b.checker.CheckSPF(ctx, "example.com", ips, "")
		require.Equal(t, StatusPass, res.Status, res.Message)
		require.Equal(t, "ip4:192.0.2.10", res.Expected)
	})
}

func TestCheckDKIM(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupCheck(t)
	tests := []struct {
		name, selector, key, status, code string
	}{
		{"PassesThroughCNAMEAndSplitStrings", "sel", dkimKey, "pass", "dkim.ok"},
		{"ToleratesWhitespaceInExpectedKey", "sel", dkimKey[:20] + " \n" + dkimKey[20:], "pass", "dkim.ok"},
		{"FailsOnOtherKey", "old", dkimKey, "fail", "dkim.key_mismatch"},
		{"FailsOnRevokedKey", "rev", dkimKey, "fail", "dkim.key_revoked"},
		{"FailsOnBadKey", "bad", dkimKey, "fail", "dkim.syntax"},
		{"FailsWithoutRecord", "none", dkimKey, "fail", "dkim.record_missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := b.checker.CheckDKIM(ctx, tt.selector, "example.com", tt.key)
			require.Equal(t, CheckStatus(tt.status), res.Status, res.Message)
			require.Equal(t, tt.code, res.Code)
			require.Equal(t, "v=DKIM1; k=rsa; p="+dkimKey, res.Expected)
		})
	}
	t.Run("TimeoutIsTemporary", func(t *testing.T) {
		t.Parallel()
		b.srv.Drop("slow._domainkey.example.com")
		res := b.checker.CheckDKIM(ctx, "slow", "example.com", dkimKey)
		require.Equal(t, StatusTempError, res.Status)
		require.Equal(t, "dns.timeout", res.Code)
	})
}

func TestCheckDMARC(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupCheck(t)

	t.Run("ParsesPolicy", func(t *testing.T) {
		t.Parallel()
		res := b.checker.CheckDMARC(ctx, "example.com")
		require.Equal(t, StatusPass, res.Status, res.Message)
		require.Equal(t, "quarantine", res.DMARC.Policy)
		require.Equal(t, "s", res.DMARC.ADKIM)
		require.Equal(t, "r", res.DMARC.ASPF)
		require.Equal(t, []string{"mailto:dmarc@example.com"}, res.DMARC.RUA)
	})

	t.Run("FallsBackToOrganizationalDomain", func(t *testing.T) {
		t.Parallel()
		res := b.checker.CheckDMARC(ctx, "sub.example.com")
		require.Equal(t, StatusPass, res.Status, res.Message)
		require.Equal(t, "example.com", res.DMARC.Domain)
	})

	t.Run("FailsWithoutRecord", func(t *testing.T) {
		t.Parallel()
		res := b.checker.CheckDMARC(ctx, "other.test")
		require.Equal(t, StatusFail, res.Status)
		require.Equal(t, "dmarc.record_missing", res.Code)
	})

	t.Run("FailsOnSyntax", func(t *testing.T) {
		t.Parallel()
		res := b.checker.CheckDMARC(ctx, "bad.test")
		require.Equal(t, StatusFail, res.Status)
		require.Equal(t, "dmarc.syntax", res.Code)
	})
}

func TestSuggestSPFRecord(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, current, want string
	}{
		{"CreatesRecord", "", "v=spf1 include:spf.sendwerk.test ~all"},
		{"InsertsBeforeAll", "v=spf1 mx -all", "v=spf1 mx include:spf.sendwerk.test -all"},
		{"InsertsBeforeRedirect", "v=spf1 a redirect=_spf.example.com", "v=spf1 a include:spf.sendwerk.test redirect=_spf.example.com"},
		{"AppendsWithoutAll", "v=spf1  ip4:192.0.2.1", "v=spf1 ip4:192.0.2.1 include:spf.sendwerk.test"},
		{"KeepsExistingInclude", "v=spf1 +include:SPF.sendwerk.test ~all", "v=spf1 +include:SPF.sendwerk.test ~all"},
		{"ReplacesNonSPFText", "hello", "v=spf1 include:spf.sendwerk.test ~all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, SuggestSPFRecord(tt.current, platformInclude+"."))
		})
	}
}

func TestCheckHost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupCheck(t)
	eval := NewSPFEvaluator(b.checker.dns)
	platformIP := net.ParseIP("192.0.2.10")

	t.Run("ReportsIncludePathAndTrace", func(t *testing.T) {
		t.Parallel()
		res := eval.CheckHost(ctx, platformIP, "example.com", "", "")
		require.Equal(t, SPFPass, res.Result)
		require.Equal(t, []string{"example.com", "_spf.example.com", platformInclude}, res.IncludePath)
		require.Equal(t, 2, res.DNSLookups)
		require.Len(t, res.Trace, 3)
		require.Equal(t, "postmaster@example.com", res.Sender)
		require.Equal(t, b.srv.Addr(), res.Resolver)
	})

	t.Run("ExplainsFail", func(t *testing.T) {
		t.Parallel()
		res := eval.CheckHost(ctx, net.ParseIP("203.0.113.5"), "other.test", "", "")
		require.Equal(t, SPFFail, res.Result)
		require.Equal(t, "-all", res.Mechanism)
		require.Equal(t, "203.0.113.5 is not allowed to send mail for other.test according to its SPF record", res.Explanation)
	})

	t.Run("MarshalsSnakeCase", func(t *testing.T) {
		t.Parallel()
		raw, err := json.Marshal(eval.CheckHost(ctx, platformIP, "example.com", "", ""))
		require.NoError(t, err)
		for _, key := range []string{`"result":"pass"`, `"dns_lookups":2`, `"void_lookups":0`, `"include_path":`, `"trace":[`} {
			require.Contains(t, string(raw), key)
		}
	})

	t.Run("ConvertsIDNDomains", func(t *testing.T) {
		t.Parallel()
		b.srv.Add(`xn--bcher-kva.example. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`)
		res := eval.CheckHost(ctx, platformIP, "bücher.example", "", "")
		require.Equal(t, SPFPass, res.Result, res.Message)
		require.Equal(t, "xn--bcher-kva.example", res.Domain)
	})

	t.Run("TreatsMappedIPv6AsIPv4", func(t *testing.T) {
		t.Parallel()
		res := eval.CheckHost(ctx, net.ParseIP("::ffff:192.0.2.10"), "spf.sendwerk.test", "", "")
		require.Equal(t, SPFPass, res.Result)
		require.Equal(t, "192.0.2.10", res.IP)
	})

	t.Run("NoneForNonFQDN", func(t *testing.T) {
		t.Parallel()
		res := eval.CheckHost(ctx, platformIP, "localhost", "", "")
		require.Equal(t, SPFNone, res.Result)
		require.Equal(t, ProblemInvalidDomain, res.Problem)
		require.Empty(t, res.Trace)
		require.True(t, strings.Contains(res.Message, "localhost"))
	})
}
