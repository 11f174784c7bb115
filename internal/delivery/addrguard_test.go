package delivery_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

func TestAllowAddrFunc(t *testing.T) {
	t.Parallel()
	srv := smtptest.NewServer(t, smtptest.Opts{})
	denyLoopback := func(a netip.Addr) bool { return !a.IsLoopback() }

	t.Run("ProbeRefusesBeforeConnecting", func(t *testing.T) {
		s := settingsFor("localhost", srv.Port(), delivery.SecurityNone)
		s.AllowAddrFunc = denyLoopback
		res := delivery.Probe(context.Background(), s)
		require.False(t, res.OK)
		require.Equal(t, delivery.CodeAddressNotAllowed, res.Code)
		require.Contains(t, res.Message, "not a public address")
		require.Zero(t, srv.Connections())
	})
	t.Run("PoolRefusesAsConfigProblem", func(t *testing.T) {
		s := settingsFor(srv.Host(), srv.Port(), delivery.SecurityNone)
		s.AllowAddrFunc = denyLoopback
		pool, err := delivery.NewPool(s, nil)
		require.NoError(t, err)
		defer pool.Close()
		_, err = pool.Send(context.Background(), delivery.Envelope{From: "a@example.test", To: []string{"b@example.test"}}, []byte("Subject: x\r\n\r\nx\r\n"))
		require.Error(t, err)
		o := delivery.Classify(err)
		require.Equal(t, delivery.CodeAddressNotAllowed, o.Code)
		require.Equal(t, delivery.ClassConfig, o.Class)
		require.Zero(t, srv.Connections())
	})
	t.Run("AllowedAddressesConnect", func(t *testing.T) {
		s := settingsFor(srv.Host(), srv.Port(), delivery.SecurityNone)
		s.AllowAddrFunc = func(netip.Addr) bool { return true }
		require.True(t, delivery.Probe(context.Background(), s).OK)
	})
}

// TestGloballyReachable walks the IANA IPv4 and IPv6 Special-Purpose Address Registries:
// one address inside each block (and its edges where blocks nest), the addresses found let
// through before, and IPv6 forms that embed an IPv4 address.
func TestGloballyReachable(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		// Found let through before (issue: upstream address policy).
		"64:ff9b::7f00:1": false, "2002:7f00:1::1": false, "::7f00:1": false, "0.1.2.3": false,
		"198.18.0.1": false, "240.0.0.1": false, "192.0.0.8": false,
		// IPv4 registry.
		"0.0.0.0": false, "10.1.2.3": false, "100.64.0.1": false, "100.127.255.254": false, "127.0.0.1": false,
		"127.255.255.255": false, "169.254.169.254": false, "172.16.0.1": false, "172.31.255.255": false,
		"192.0.0.1": false, "192.0.0.7": false, "192.0.0.9": true, "192.0.0.10": true, "192.0.0.11": false,
		"192.0.0.170": false, "192.0.0.171": false, "192.0.0.255": false, "192.0.2.1": false,
		"192.31.196.1": true, "192.52.193.1": true, "192.88.99.1": false, "192.88.99.2": true,
		"192.168.1.1": false, "192.175.48.1": true, "198.19.255.255": false, "198.51.100.7": false,
		"203.0.113.9": false, "224.0.0.1": false, "239.255.255.250": false, "255.255.255.255": false,
		// IPv4 public neighbours of the blocks.
		"8.8.8.8": true, "1.1.1.1": true, "100.63.255.255": true, "100.128.0.1": true, "172.32.0.1": true,
		"192.0.1.1": true, "198.17.255.255": true, "198.20.0.1": true, "223.255.255.254": true,
		// IPv6 registry.
		"::": false, "::1": false, "100::1": false, "100:0:0:1::1": false, "2001::1": false,
		"2001:0:4136:e378:8000:63bf:3fff:fdd2": false, "2001:1::1": true, "2001:1::2": true, "2001:1::3": true,
		"2001:1::4": false, "2001:2::1": false, "2001:3::1": true, "2001:4:112::1": true, "2001:10::1": false,
		"2001:20::1": true, "2001:30::1": true, "2001:1ff::1": false, "2001:db8::1": false,
		"2620:4f:8000::1": true, "3fff::1": false, "3fff:fff::1": false, "5f00::1": false, "fc00::1": false,
		"fd12:3456::1": false, "fe80::1": false, "febf::1": false, "fec0::1": false, "ff02::1": false,
		"64:ff9b:1::1": false, "64:ff9b:1::7f00:1": false, "fe80::1%eth0": false,
		// IPv6 public.
		"2001:200::1": true, "2001:4860:4860::8888": true, "2606:4700::1111": true, "2620:4f:8001::1": true,
		// IPv6 forms embedding IPv4, judged by the IPv4 address.
		"::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "::ffff:8.8.8.8": true,
		"::10.0.0.1": false, "::8.8.8.8": true, "::ffff:0:7f00:1": false, "::ffff:0:808:808": true,
		"64:ff9b::a00:1": false, "64:ff9b::c612:1": false, "64:ff9b::808:808": true,
		"2002:a00:1::1": false, "2002:c000:208::1": false, "2002:808:808::1": true, "2002::1": false,
	} {
		a := netip.MustParseAddr(addr)
		require.Equal(t, want, delivery.GloballyReachable(a), "%s", addr)
	}
}

// TestDialRefusesSpecialPurpose dials each address found let through before and checks
// that the refusal comes from the policy, before any packet is sent.
func TestDialRefusesSpecialPurpose(t *testing.T) {
	t.Parallel()
	for _, host := range []string{"64:ff9b::7f00:1", "2002:7f00:1::1", "::7f00:1", "0.1.2.3", "198.18.0.1", "240.0.0.1", "192.0.0.8"} {
		s := settingsFor(host, 25, delivery.SecurityNone)
		s.AllowAddrFunc = delivery.GloballyReachable
		res := delivery.Probe(context.Background(), s)
		require.Equal(t, delivery.CodeAddressNotAllowed, res.Code, "%s: %s", host, res.Message)
	}
}
