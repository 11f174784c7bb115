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
	return GuardDialer(&net.Dialer{Timeout: s.ConnectTimeout, Resolver: s.Resolver}, s.AllowAddrFunc)
}

// GuardDialer makes d refuse, with an *AddressError, every address allow rejects, checked
// on the address actually dialed (after DNS). Webhook delivery uses it with the same policy
// as upstream SMTP servers. A nil allow leaves d as it is.
func GuardDialer(d *net.Dialer, allow func(netip.Addr) bool) *net.Dialer {
	if allow == nil {
		return d
	}
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
