package delivery

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// CodeAddressNotAllowed is the outcome of a dial refused by Settings.AllowAddrFunc.
const CodeAddressNotAllowed = "address.not_allowed"

// AddressError is a connection Sendwerk refused to open: the upstream's address is one the
// operator's policy forbids (e.g. loopback or a private network).
type AddressError struct {
	Addr netip.Addr
}

func (e *AddressError) Error() string {
	return fmt.Sprintf("connecting to %s is not allowed by this platform's policy", e.Addr)
}

// dialer returns a net.Dialer that applies AllowAddrFunc to the address actually dialed,
// after DNS resolution, so a host name that resolves (or later re-resolves) to a forbidden
// address is refused too.
func (s Settings) dialer() *net.Dialer {
	d := &net.Dialer{Timeout: s.ConnectTimeout, Resolver: s.Resolver}
	if s.AllowAddrFunc == nil {
		return d
	}
	allow := s.AllowAddrFunc
	d.Control = func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("error parsing dial address: %w", err)
		}
		if !allow(ap.Addr().Unmap()) {
			return &AddressError{Addr: ap.Addr().Unmap()}
		}
		return nil
	}
	return d
}

func addressRefused(err error) (*AddressError, bool) {
	var ae *AddressError
	ok := errors.As(err, &ae)
	return ae, ok
}

// specialPurpose lists the blocks of the IANA IPv4 and IPv6 Special-Purpose Address
// Registries (iana-ipv4-special-registry, iana-ipv6-special-registry) with their "Globally
// Reachable" column; "N/A" counts as not reachable. Where blocks nest, the most specific one
// decides (192.0.0.9/32 is reachable inside the unreachable 192.0.0.0/24). Multicast and the
// deprecated site-local block are not in the registries but are no SMTP server either.
var specialPurpose = []struct {
	prefix    netip.Prefix
	reachable bool
}{
	// IPv4
	{netip.MustParsePrefix("0.0.0.0/8"), false},       // "this network" (RFC 791)
	{netip.MustParsePrefix("10.0.0.0/8"), false},      // private use (RFC 1918)
	{netip.MustParsePrefix("100.64.0.0/10"), false},   // shared address space (RFC 6598)
	{netip.MustParsePrefix("127.0.0.0/8"), false},     // loopback
	{netip.MustParsePrefix("169.254.0.0/16"), false},  // link local
	{netip.MustParsePrefix("172.16.0.0/12"), false},   // private use
	{netip.MustParsePrefix("192.0.0.0/24"), false},    // IETF protocol assignments (RFC 6890)
	{netip.MustParsePrefix("192.0.0.0/29"), false},    // IPv4 service continuity prefix
	{netip.MustParsePrefix("192.0.0.8/32"), false},    // IPv4 dummy address
	{netip.MustParsePrefix("192.0.0.9/32"), true},     // port control protocol anycast
	{netip.MustParsePrefix("192.0.0.10/32"), true},    // TURN anycast
	{netip.MustParsePrefix("192.0.0.170/31"), false},  // NAT64/DNS64 discovery
	{netip.MustParsePrefix("192.0.2.0/24"), false},    // documentation (TEST-NET-1)
	{netip.MustParsePrefix("192.31.196.0/24"), true},  // AS112-v4
	{netip.MustParsePrefix("192.52.193.0/24"), true},  // AMT
	{netip.MustParsePrefix("192.88.99.0/24"), false},  // deprecated 6to4 relay anycast (RFC 7526)
	{netip.MustParsePrefix("192.88.99.2/32"), true},   // 6a44 relay anycast (RFC 6751)
	{netip.MustParsePrefix("192.168.0.0/16"), false},  // private use
	{netip.MustParsePrefix("192.175.48.0/24"), true},  // AS112 direct delegation
	{netip.MustParsePrefix("198.18.0.0/15"), false},   // benchmarking (RFC 2544)
	{netip.MustParsePrefix("198.51.100.0/24"), false}, // documentation (TEST-NET-2)
	{netip.MustParsePrefix("203.0.113.0/24"), false},  // documentation (TEST-NET-3)
	{netip.MustParsePrefix("224.0.0.0/4"), false},     // multicast
	{netip.MustParsePrefix("240.0.0.0/4"), false},     // reserved, and the limited broadcast 255.255.255.255
	// IPv6 (forms embedding an IPv4 address are judged by it before this table is asked)
	{netip.MustParsePrefix("::/128"), false},           // unspecified
	{netip.MustParsePrefix("::1/128"), false},          // loopback
	{netip.MustParsePrefix("::/96"), false},            // IPv4-compatible (deprecated, RFC 4291)
	{netip.MustParsePrefix("::ffff:0:0/96"), false},    // IPv4-mapped
	{netip.MustParsePrefix("64:ff9b:1::/48"), false},   // local-use IPv4/IPv6 translation (RFC 8215)
	{netip.MustParsePrefix("100::/64"), false},         // discard-only (RFC 6666)
	{netip.MustParsePrefix("100:0:0:1::/64"), false},   // dummy IPv6 prefix (RFC 9780)
	{netip.MustParsePrefix("2001::/23"), false},        // IETF protocol assignments
	{netip.MustParsePrefix("2001::/32"), false},        // TEREDO (N/A)
	{netip.MustParsePrefix("2001:1::1/128"), true},     // port control protocol anycast
	{netip.MustParsePrefix("2001:1::2/128"), true},     // TURN anycast
	{netip.MustParsePrefix("2001:1::3/128"), true},     // DNS-SD service registration protocol anycast
	{netip.MustParsePrefix("2001:2::/48"), false},      // benchmarking
	{netip.MustParsePrefix("2001:3::/32"), true},       // AMT
	{netip.MustParsePrefix("2001:4:112::/48"), true},   // AS112-v6
	{netip.MustParsePrefix("2001:10::/28"), false},     // deprecated ORCHID
	{netip.MustParsePrefix("2001:20::/28"), true},      // ORCHIDv2
	{netip.MustParsePrefix("2001:30::/28"), true},      // drone remote ID protocol entity tags
	{netip.MustParsePrefix("2001:db8::/32"), false},    // documentation
	{netip.MustParsePrefix("2620:4f:8000::/48"), true}, // AS112 direct delegation
	{netip.MustParsePrefix("3fff::/20"), false},        // documentation (RFC 9637)
	{netip.MustParsePrefix("5f00::/16"), false},        // segment routing SIDs (RFC 9602)
	{netip.MustParsePrefix("fc00::/7"), false},         // unique local
	{netip.MustParsePrefix("fe80::/10"), false},        // link-local unicast
	{netip.MustParsePrefix("fec0::/10"), false},        // site-local (deprecated, RFC 3879)
	{netip.MustParsePrefix("ff00::/8"), false},         // multicast
}

// Prefixes of IPv6 forms that carry an IPv4 address in their last 32 bits, or (6to4) in
// bits 16–47.
var (
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")    // RFC 6052
	ipv4Compatible = netip.MustParsePrefix("::/96")           // RFC 4291, deprecated
	ipv4Translated = netip.MustParsePrefix("::ffff:0:0:0/96") // SIIT (RFC 2765)
	sixToFour      = netip.MustParsePrefix("2002::/16")       // RFC 3056
)

// GloballyReachable reports whether addr may be an upstream SMTP server on the public
// Internet: every block the IANA special-purpose registries mark as not globally reachable
// is refused, and an IPv6 address that embeds an IPv4 one (mapped, compatible, translated,
// NAT64 well-known prefix, 6to4) is judged by the IPv4 address, so 64:ff9b::7f00:1 is
// loopback. A zone (fe80::1%eth0) is never global.
func GloballyReachable(addr netip.Addr) bool {
	if !addr.IsValid() || addr.Zone() != "" {
		return false
	}
	if v4, ok := embeddedIPv4(addr); ok {
		addr = v4
	}
	reachable, bits := true, -1
	for _, e := range specialPurpose {
		if e.prefix.Bits() > bits && e.prefix.Contains(addr) {
			reachable, bits = e.reachable, e.prefix.Bits()
		}
	}
	return reachable
}

// embeddedIPv4 returns the IPv4 address an IPv6 form carries.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	if a.Is4In6() {
		return a.Unmap(), true
	}
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case a == netip.IPv6Unspecified() || a == netip.IPv6Loopback():
		return netip.Addr{}, false // judged as themselves: the registry names them
	case nat64WellKnown.Contains(a), ipv4Compatible.Contains(a), ipv4Translated.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}
