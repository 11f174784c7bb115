package main

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/config"
	"github.com/sendwerk/sendwerk/internal/dnstest"
)

// TestDNSWarnings: serve warns at start-up about DNS settings that make checks report less
// than they could, against a real authoritative server (Knot) and a real resolver (unbound).
func TestDNSWarnings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	knot := dnstest.NewKnot(t, map[string]string{"example.com": "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns hostmaster 1 3600 600 86400 300\n@ IN NS ns\nns IN A 127.0.0.1\n"})
	unbound := dnstest.NewUnbound(t, map[string]string{"example.com": knot.Addr})

	t.Run("AuthoritativeServerIsNotRecursive", func(t *testing.T) {
		t.Parallel()
		ws := dnsWarnings(ctx, &config.Config{DNSServers: []string{knot.Addr}, DNSTimeout: time.Second})
		require.Len(t, ws, 1)
		require.Contains(t, ws[0], knot.Addr+" (recursion not available)")
		require.Contains(t, ws[0], "SENDWERK_DNS_SERVERS")
	})
	t.Run("SPFIncludeWithoutIPs", func(t *testing.T) {
		t.Parallel()
		ws := dnsWarnings(ctx, &config.Config{DNSServers: []string{unbound.Addr}, DNSTimeout: time.Second, SPFInclude: "_spf.sendwerk.example"})
		require.Len(t, ws, 1)
		require.Contains(t, ws[0], "SENDWERK_SPF_IPS")
	})
	t.Run("RecursiveResolverWithIPsIsQuiet", func(t *testing.T) {
		t.Parallel()
		ws := dnsWarnings(ctx, &config.Config{DNSServers: []string{unbound.Addr}, DNSTimeout: time.Second, SPFInclude: "_spf.sendwerk.example",
			SPFNetworks: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32")}})
		require.Empty(t, ws)
	})
}
