package devdns

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dnstest"
)

type source map[string][]string

func (s source) ExpectedTXT(_ context.Context, name string) ([]string, error) { return s[name], nil }

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Addr, cfg.Logger = "127.0.0.1:0", slog.New(slog.DiscardHandler)
	srv, err := Start(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func ask(t *testing.T, srv *Server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	resp, _, err := new(dns.Client).Exchange(new(dns.Msg).SetQuestion(dns.Fqdn(name), qtype), srv.Addr())
	require.NoError(t, err)
	return resp
}

func TestServer(t *testing.T) {
	t.Parallel()
	upstream := dnstest.NewServer(t, `example.com. 300 IN TXT "v=spf1 -all"`)
	long := "v=DKIM1; k=rsa; p=" + strings.Repeat("A", 400)
	srv := start(t, Config{Forward: []string{upstream.Addr()}})

	t.Run("ServfailWithoutSource", func(t *testing.T) {
		require.Equal(t, dns.RcodeServerFailure, ask(t, srv, "shop.test", dns.TypeTXT).Rcode)
	})
	srv.SetSource(source{"shop.test": {"sendwerk-verification=abc"}, "sw1._domainkey.shop.test": {long}})

	t.Run("AnswersUnderTheSuffix", func(t *testing.T) {
		resp := ask(t, srv, "SHOP.test", dns.TypeTXT)
		require.True(t, resp.Authoritative)
		require.Len(t, resp.Answer, 1)
		require.Equal(t, []string{"sendwerk-verification=abc"}, resp.Answer[0].(*dns.TXT).Txt)
	})
	t.Run("SplitsLongValues", func(t *testing.T) {
		resp := ask(t, srv, "sw1._domainkey.shop.test", dns.TypeTXT)
		require.Len(t, resp.Answer, 1)
		txt := resp.Answer[0].(*dns.TXT).Txt
		require.Len(t, txt, 2)
		require.Equal(t, long, strings.Join(txt, ""))
	})
	t.Run("NoDataAndNXDomain", func(t *testing.T) {
		resp := ask(t, srv, "shop.test", dns.TypeA)
		require.Equal(t, dns.RcodeSuccess, resp.Rcode)
		require.Empty(t, resp.Answer)
		require.Equal(t, dns.RcodeNameError, ask(t, srv, "nobody.test", dns.TypeTXT).Rcode)
	})
	t.Run("ForwardsOtherNames", func(t *testing.T) {
		resp := ask(t, srv, "example.com", dns.TypeTXT)
		require.Len(t, resp.Answer, 1)
		require.Equal(t, []string{"v=spf1 -all"}, resp.Answer[0].(*dns.TXT).Txt)
	})
	t.Run("ForwardsTruncatedAnswersWhole", func(t *testing.T) {
		upstream.Truncate("example.com") // UDP answers carry TC and no records
		resp, _, err := (&dns.Client{Net: "tcp"}).Exchange(new(dns.Msg).SetQuestion("example.com.", dns.TypeTXT), srv.Addr())
		require.NoError(t, err)
		require.False(t, resp.Truncated)
		require.Len(t, resp.Answer, 1, "asked the upstream again over TCP")
	})
	t.Run("RefusesWithoutForwarders", func(t *testing.T) {
		alone := start(t, Config{})
		require.Equal(t, dns.RcodeRefused, ask(t, alone, "example.com", dns.TypeTXT).Rcode)
	})
}

func TestListenPair(t *testing.T) {
	t.Parallel()
	t.Run("PortZeroGivesOnePortForBoth", func(t *testing.T) {
		t.Parallel()
		for range 20 {
			pc, ln, err := listenPair("127.0.0.1:0")
			require.NoError(t, err)
			require.Equal(t, pc.LocalAddr().String(), ln.Addr().String())
			_ = pc.Close()
			_ = ln.Close()
		}
	})
	t.Run("AFixedPortTakenOnTCPFailsAndFreesUDP", func(t *testing.T) {
		t.Parallel()
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer taken.Close()
		addr := taken.Addr().String()
		_, _, err = listenPair(addr)
		require.ErrorContains(t, err, "error listening on tcp "+addr)
		pc, err := net.ListenPacket("udp", addr)
		require.NoError(t, err, "the UDP port was given back")
		_ = pc.Close()
	})
}
