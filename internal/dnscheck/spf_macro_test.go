package dnscheck

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMacroExpansion checks the examples of RFC 7208 section 7.4.
func TestMacroExpansion(t *testing.T) {
	t.Parallel()
	env := func(ip string) *macroEnv {
		return &macroEnv{
			sender: "strong-bad@email.example.com", local: "strong-bad", senderDomain: "email.example.com",
			domain: "email.example.com", helo: "mx.example.org", ip: netip.MustParseAddr(ip),
			ptrFunc: func() string { return "mx.example.org" },
		}
	}
	tests := []struct {
		macro, ip, want string
	}{
		{"%{s}", "192.0.2.3", "strong-bad@email.example.com"},
		{"%{o}", "192.0.2.3", "email.example.com"},
		{"%{d4}", "192.0.2.3", "email.example.com"},
		{"%{d2}", "192.0.2.3", "example.com"},
		{"%{d1}", "192.0.2.3", "com"},
		{"%{dr}", "192.0.2.3", "com.example.email"},
		{"%{d2r}", "192.0.2.3", "example.email"},
		{"%{l-}", "192.0.2.3", "strong.bad"},
		{"%{lr}", "192.0.2.3", "strong-bad"},
		{"%{lr-}", "192.0.2.3", "bad.strong"},
		{"%{l1r-}", "192.0.2.3", "strong"},
		{"%{ir}.%{v}._spf.%{d2}", "192.0.2.3", "3.2.0.192.in-addr._spf.example.com"},
		{"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "192.0.2.3", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
		{"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "192.0.2.3", "3.2.0.192.in-addr.strong.lp._spf.example.com"},
		{"%{d2}.trusted-domains.example.net", "192.0.2.3", "example.com.trusted-domains.example.net"},
		{"%{ir}.%{v}._spf.%{d2}", "2001:db8::cb01", "1.0.B.C.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2.ip6._spf.example.com"},
		{"%{p2}.%{h}", "192.0.2.3", "example.org.mx.example.org"},
		{"%%%_%-%{S}", "192.0.2.3", "% %20strong-bad%40email.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.macro, func(t *testing.T) {
			t.Parallel()
			ms, err := parseMacroString(tt.macro, false)
			require.NoError(t, err)
			require.Equal(t, tt.want, ms.expand(env(tt.ip)))
		})
	}
}

func TestMacroSyntax(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"%", "%x", "%{", "%{x}", "%{d0}", "%{d2q}", "%{c}", "a b", "%{}"} {
		_, err := parseMacroString(bad, false)
		require.ErrorIs(t, err, errMacroSyntax, bad)
	}
	_, err := parseMacroString("%{c} says %{r} at %{t}", true)
	require.NoError(t, err, "c, r, t and spaces are allowed in explanations")
}

func TestParseSPF(t *testing.T) {
	t.Parallel()
	valid := []string{
		"v=spf1",
		"V=SPF1 +A:%{d}/24//64 MX ~all",
		"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 include:_spf.example.com exists:%{i}.bl.example.net ?all",
		"v=spf1 a:foo:bar/baz.example.com/28 ptr ptr:example.com redirect=_spf.example.com unknown=%{l}",
	}
	for _, rec := range valid {
		_, err := parseSPF(rec)
		require.NoError(t, err, rec)
	}
	invalid := []string{
		"v=spf1 ip4:192.0.2.300", "v=spf1 ip4:192.0.2.1/33", "v=spf1 ip6:2001:db8::1%eth0",
		"v=spf1 a/24/64", "v=spf1 mx:", "v=spf1 include:example", "v=spf1 exp=a.example.com exp=b.example.com",
		"v=spf1 redirect=%{r}.example.com", "v=spf1 all/0", "v=spf1 +", "v=spf1 a\ttab",
	}
	for _, rec := range invalid {
		_, err := parseSPF(rec)
		require.ErrorIs(t, err, errSPFSyntax, rec)
	}
}
