package dnstest

import (
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

const testZone = `
$ORIGIN example.com.
$TTL 300
@        IN TXT   "v=spf1 -all"
@        IN MX    10 mail
mail     IN A     192.0.2.1
alias    IN CNAME mail
outside  IN CNAME mail.example.net.
deep.sub IN A     192.0.2.2
`

type testBundle struct {
	srv *Server
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	return &testBundle{srv: NewServer(t, testZone)}
}

func query(t *testing.T, addr, name string, qtype uint16, network string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg).SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: network, Timeout: time.Second}
	resp, _, err := c.Exchange(m, addr)
	require.NoError(t, err)
	return resp
}

func TestServer(t *testing.T) {
	t.Parallel()

	t.Run("AnswersOverUDPAndTCP", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, network := range []string{"udp", "tcp"} {
			resp := query(t, b.srv.Addr(), "Mail.Example.com", dns.TypeA, network)
			require.Equal(t, dns.RcodeSuccess, resp.Rcode)
			require.True(t, resp.Authoritative)
			require.Len(t, resp.Answer, 1)
			require.Equal(t, "192.0.2.1", resp.Answer[0].(*dns.A).A.String())
		}
		require.Equal(t, 2, b.srv.Queries())
	})

	t.Run("DistinguishesNXDomainFromNoData", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.Equal(t, dns.RcodeNameError, query(t, b.srv.Addr(), "nope.example.com", dns.TypeA, "udp").Rcode)
		nodata := query(t, b.srv.Addr(), "mail.example.com", dns.TypeTXT, "udp")
		require.Equal(t, dns.RcodeSuccess, nodata.Rcode)
		require.Empty(t, nodata.Answer)
		ent := query(t, b.srv.Addr(), "sub.example.com", dns.TypeA, "udp")
		require.Equal(t, dns.RcodeSuccess, ent.Rcode, "empty non-terminals exist")
	})

	t.Run("FollowsCNAMEInZone", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		resp := query(t, b.srv.Addr(), "alias.example.com", dns.TypeA, "udp")
		require.Len(t, resp.Answer, 2)
		require.IsType(t, &dns.CNAME{}, resp.Answer[0])
		require.IsType(t, &dns.A{}, resp.Answer[1])
		out := query(t, b.srv.Addr(), "outside.example.com", dns.TypeA, "udp")
		require.Equal(t, dns.RcodeNameError, out.Rcode, "target outside the zone does not exist here")
		require.Len(t, out.Answer, 1)
	})

	t.Run("InjectsFaults", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.srv.SetRcode("mail.example.com", dns.RcodeServerFailure)
		require.Equal(t, dns.RcodeServerFailure, query(t, b.srv.Addr(), "mail.example.com", dns.TypeA, "udp").Rcode)
		b.srv.SetRcode("mail.example.com", dns.RcodeRefused, dns.TypeMX)
		require.Equal(t, dns.RcodeSuccess, query(t, b.srv.Addr(), "mail.example.com", dns.TypeA, "udp").Rcode)
		b.srv.Clear("mail.example.com")

		b.srv.Drop("example.com")
		c := &dns.Client{Timeout: 100 * time.Millisecond}
		_, _, err := c.Exchange(new(dns.Msg).SetQuestion("example.com.", dns.TypeTXT), b.srv.Addr())
		require.Error(t, err)
	})

	t.Run("TruncatesUDPOnRequest", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.srv.Truncate("example.com", dns.TypeTXT)
		udp := query(t, b.srv.Addr(), "example.com", dns.TypeTXT, "udp")
		require.True(t, udp.Truncated)
		require.Empty(t, udp.Answer)
		tcp := query(t, b.srv.Addr(), "example.com", dns.TypeTXT, "tcp")
		require.False(t, tcp.Truncated)
		require.Len(t, tcp.Answer, 1)
	})

	t.Run("TruncatesLargeAnswersLikeARealServer", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		long := strings.Repeat("a", 250)
		for range 4 {
			b.srv.Add(`big.example.com. 300 IN TXT "` + long + `" "` + long + `"`)
		}
		require.True(t, query(t, b.srv.Addr(), "big.example.com", dns.TypeTXT, "udp").Truncated)
		require.Len(t, query(t, b.srv.Addr(), "big.example.com", dns.TypeTXT, "tcp").Answer, 4)
	})

	t.Run("ChangesRecordsDuringATest", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.srv.Add("new.example.com. 60 IN A 192.0.2.9")
		require.Len(t, query(t, b.srv.Addr(), "new.example.com", dns.TypeA, "udp").Answer, 1)
		b.srv.Remove("new.example.com", dns.TypeA)
		require.Equal(t, dns.RcodeNameError, query(t, b.srv.Addr(), "new.example.com", dns.TypeA, "udp").Rcode)
		b.srv.SetZone("other.test. 60 IN A 192.0.2.7")
		require.Equal(t, dns.RcodeNameError, query(t, b.srv.Addr(), "mail.example.com", dns.TypeA, "udp").Rcode)
		require.Len(t, query(t, b.srv.Addr(), "other.test", dns.TypeA, "udp").Answer, 1)
	})

	t.Run("ServesArbitraryOwnerNames", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.srv.AddRR(&dns.A{Hdr: dns.RR_Header{Name: "with space.example.com.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{192, 0, 2, 3}})
		require.Len(t, query(t, b.srv.Addr(), `with\032space.example.com`, dns.TypeA, "udp").Answer, 1)
		require.Equal(t, Canonical(`With\ Space.example.com`), Canonical("with space.example.com."))
	})
}

func TestEscapeTXT(t *testing.T) {
	t.Parallel()
	require.Equal(t, `a\"b\\c\000\239`, EscapeTXT("a\"b\\c\x00\xef"))
}
