package dnscheck

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dnstest"
)

// ed25519Key is the RFC 8463 appendix A example public key.
const ed25519Key = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="

// receiverZone holds records that look right to a string comparison but that receivers
// read differently (RFC 6376 3.6.1, RFC 7489 6.6.3, RFC 7208 7).
const receiverZone = `
$TTL 300
ktype._domainkey.example.com.    IN TXT "v=DKIM1; k=ed25519; p=" "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAv1Bz9pWq0Zx4Kd3pQ+eY8YmZ3bXtKc0gFQ=="
norsa._domainkey.example.com.    IN TXT "p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAv1Bz9pWq0Zx4Kd3pQ+eY8YmZ3bXtKc0gFQ=="
tlsrpt._domainkey.example.com.   IN TXT "v=DKIM1; s=tlsrpt; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAv1Bz9pWq0Zx4Kd3pQ+eY8YmZ3bXtKc0gFQ=="
svc._domainkey.example.com.      IN TXT "v=DKIM1; s=tlsrpt:email; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAv1Bz9pWq0Zx4Kd3pQ+eY8YmZ3bXtKc0gFQ=="
sha1._domainkey.example.com.     IN TXT "v=DKIM1; h=sha1; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAv1Bz9pWq0Zx4Kd3pQ+eY8YmZ3bXtKc0gFQ=="
hashes._domainkey.example.com.   IN TXT "v=DKIM1; h=sha1:sha256; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAv1Bz9pWq0Zx4Kd3pQ+eY8YmZ3bXtKc0gFQ=="
testing._domainkey.example.com.  IN TXT "v=DKIM1; t=y; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAv1Bz9pWq0Zx4Kd3pQ+eY8YmZ3bXtKc0gFQ=="
vlate._domainkey.example.com.    IN TXT "k=rsa; v=DKIM1; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAv1Bz9pWq0Zx4Kd3pQ+eY8YmZ3bXtKc0gFQ=="
ed._domainkey.example.com.       IN TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
edasrsa._domainkey.example.com.  IN TXT "v=DKIM1; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
quoted.test.                     IN TXT "\"sendwerk-verification=abc123\""
_dmarc.nop.test.                 IN TXT "v=DMARC1; rua=mailto:reports@nop.test"
_dmarc.badp.test.                IN TXT "v=DMARC1; p=maybe; rua=https://reports.example/x, mailto:r@badp.test!10m"
_dmarc.badrua.test.              IN TXT "v=DMARC1; p=reject; rua=bogus, mailto:ok@badrua.test"
_dmarc.norua.test.               IN TXT "v=DMARC1; rua=bogus"
macro.test.                      IN TXT "v=spf1 include:%{ir}.%{v}._spf.platform.test ~all"
viaplatform.test.                IN TXT "v=spf1 include:_spf.platform.test ~all"
_spf.platform.test.              IN TXT "v=spf1 include:%{ir}.%{v}._spf.platform.test -all"
10.2.0.192.in-addr._spf.platform.test. IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
1.100.51.198.in-addr._spf.platform.test. IN TXT "v=spf1 -all"
`

func setupReceivers(t *testing.T) *Checker {
	t.Helper()
	srv := dnstest.NewServer(t, receiverZone)
	return NewChecker(NewResolver(&ResolverConfig{Servers: []string{srv.Addr()}, Timeout: 300 * time.Millisecond, Attempts: 1}))
}

func TestCheckDKIMReadsTagsLikeReceivers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := setupReceivers(t)
	tests := []struct {
		name, selector, alg, key, status, code string
	}{
		{"RefusesKeyTypeOfOtherAlgorithm", "ktype", DKIMKeyRSA, dkimKey, "fail", "dkim.key_type_mismatch"},
		{"MissingKTagMeansRSA", "norsa", DKIMKeyRSA, dkimKey, "pass", "dkim.ok"},
		{"RefusesServiceOtherThanEmail", "tlsrpt", DKIMKeyRSA, dkimKey, "fail", "dkim.service_not_email"},
		{"AcceptsServiceListWithEmail", "svc", DKIMKeyRSA, dkimKey, "pass", "dkim.ok"},
		{"RefusesHashListWithoutSHA256", "sha1", DKIMKeyRSA, dkimKey, "fail", "dkim.hash_not_allowed"},
		{"AcceptsHashListWithSHA256", "hashes", DKIMKeyRSA, dkimKey, "pass", "dkim.ok"},
		{"SaysTestingMode", "testing", DKIMKeyRSA, dkimKey, "pass", "dkim.testing"},
		{"RefusesVersionNotFirst", "vlate", DKIMKeyRSA, dkimKey, "fail", "dkim.syntax"},
		{"PassesEd25519Key", "ed", DKIMKeyEd25519, ed25519Key, "pass", "dkim.ok"},
		{"RefusesEd25519KeyWithoutKTag", "edasrsa", DKIMKeyEd25519, ed25519Key, "fail", "dkim.key_type_mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := c.CheckDKIMKey(ctx, "example.com", DKIMKey{Selector: tt.selector, Algorithm: tt.alg, PublicKey: tt.key})
			require.Equal(t, CheckStatus(tt.status), res.Status, res.Message)
			require.Equal(t, tt.code, res.Code, res.Message)
			require.Equal(t, tt.selector, res.Selector)
		})
	}
}

func TestCheckOwnershipQuoted(t *testing.T) {
	t.Parallel()
	res := setupReceivers(t).CheckOwnership(context.Background(), "quoted.test", "sendwerk-verification=abc123")
	require.Equal(t, StatusFail, res.Status)
	require.Equal(t, "ownership.quoted", res.Code)
	require.Contains(t, res.Message, "remove the quotation marks")
}

func TestCheckDMARCReportURIs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := setupReceivers(t)

	t.Run("MissingPolicyWithRUAIsNone", func(t *testing.T) {
		t.Parallel()
		res := c.CheckDMARC(ctx, "nop.test")
		require.Equal(t, StatusPass, res.Status, res.Message)
		require.Equal(t, "dmarc.policy_implied", res.Code)
		require.Equal(t, "none", res.DMARC.Policy)
	})
	t.Run("InvalidPolicyWithRUAIsNone", func(t *testing.T) {
		t.Parallel()
		res := c.CheckDMARC(ctx, "badp.test")
		require.Equal(t, StatusPass, res.Status, res.Message)
		require.Equal(t, "none", res.DMARC.Policy)
		require.Equal(t, []string{"https://reports.example/x", "mailto:r@badp.test!10m"}, res.DMARC.RUA)
	})
	t.Run("InvalidReportURIIsIgnored", func(t *testing.T) {
		t.Parallel()
		res := c.CheckDMARC(ctx, "badrua.test")
		require.Equal(t, "dmarc.ok", res.Code, res.Message)
		require.Equal(t, "reject", res.DMARC.Policy)
		require.Equal(t, []string{"mailto:ok@badrua.test"}, res.DMARC.RUA)
	})
	t.Run("MissingPolicyWithoutValidRUAFails", func(t *testing.T) {
		t.Parallel()
		res := c.CheckDMARC(ctx, "norua.test")
		require.Equal(t, StatusFail, res.Status)
		require.Equal(t, "dmarc.syntax", res.Code)
	})
}

func TestCheckSPFIPMacros(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := setupReceivers(t)

	t.Run("IndeterminateWithoutPlatformIPs", func(t *testing.T) {
		t.Parallel()
		res := c.CheckSPFNetworks(ctx, "macro.test", nil, "spf.sendwerk.test")
		require.Equal(t, StatusPass, res.Status, res.Message)
		require.Equal(t, "spf.indeterminate", res.Code)
		require.Contains(t, res.Message, "SENDWERK_SPF_IPS")
		require.Contains(t, res.Message, "include:%{ir}.%{v}._spf.platform.test")
	})
	t.Run("IncludeFoundBeforeMacroBranchPasses", func(t *testing.T) {
		t.Parallel()
		res := c.CheckSPFNetworks(ctx, "viaplatform.test", nil, "_spf.platform.test")
		require.Equal(t, "spf.ok", res.Code, res.Message)
	})
	t.Run("EvaluatedWithPlatformIPs", func(t *testing.T) {
		t.Parallel()
		ip := netip.MustParsePrefix("192.0.2.10/32")
		res := c.CheckSPFNetworks(ctx, "viaplatform.test", []netip.Prefix{ip}, "")
		require.Equal(t, "spf.ok", res.Code, res.Message)
		res = c.CheckSPF(ctx, "macro.test", []net.IP{net.ParseIP("198.51.100.1")}, "")
		require.Equal(t, "spf.include_missing", res.Code, res.Message)
	})
}

// referralServer is an authoritative server for example.com that delegates
// _domainkey.example.com elsewhere: it answers names below the cut with a referral.
func referralServer(t *testing.T) string {
	t.Helper()
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg).SetReply(req)
		m.Ns = append(m.Ns, &dns.NS{Hdr: dns.RR_Header{Name: "_domainkey.example.com.", Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 300}, Ns: "ns.dkim-host.example."})
		_ = w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &dns.Server{PacketConn: pc, Handler: mux}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestReferralIsNotRecursive(t *testing.T) {
	t.Parallel()
	addr := referralServer(t)
	r := NewResolver(&ResolverConfig{Servers: []string{addr}, Timeout: 300 * time.Millisecond, Attempts: 1})
	res := NewChecker(r).CheckDKIM(context.Background(), "sw1", "example.com", dkimKey)
	require.Equal(t, StatusTempError, res.Status, res.Message)
	require.Equal(t, "dns.not_recursive", res.Code)
	require.Contains(t, res.Message, "SENDWERK_DNS_SERVERS")
	require.ErrorContains(t, r.CheckRecursion(context.Background()), addr)
}
