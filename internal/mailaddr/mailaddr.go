// Package mailaddr parses and normalises e-mail addresses: RFC 5322 addr-spec syntax, with
// internationalised domains converted to their ASCII (A-label) form, so an address is
// stored and compared one way.
package mailaddr

import (
	"errors"
	"net/mail"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Address is a bare address: local part and A-label domain.
type Address struct {
	Local  string
	Domain string
}

// String is local@domain.
func (a Address) String() string { return a.Local + "@" + a.Domain }

// RFC 5321 section 4.5.3.1 size limits, in octets.
const (
	MaxLocalPart = 64
	MaxDomain    = 255
	// MaxAddress is the 256-octet limit of a path less its angle brackets.
	MaxAddress = 254
)

// Reasons an address is refused, phrased as rules for field errors.
var (
	ErrSyntax    = errors.New("must be an e-mail address like name@example.com")
	ErrDomain    = errors.New("must have a valid domain after the @")
	ErrLocalPart = errors.New("must have at most 64 octets before the @ (RFC 5321)")
	ErrLength    = errors.New("must be at most 254 octets long (RFC 5321)")
)

// Parse accepts a bare address ("name@example.com"), not a display-name form.
func Parse(s string) (Address, error) {
	if s == "" || !utf8.ValidString(s) || strings.ContainsAny(s, "\r\n<>\x00") {
		return Address{}, ErrSyntax
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return Address{}, ErrSyntax
	}
	local := s[:at]
	if len(local) > MaxLocalPart {
		return Address{}, ErrLocalPart
	}
	domain, err := Domain(s[at+1:])
	if err != nil {
		return Address{}, err
	}
	if len(local)+1+len(domain) > MaxAddress {
		return Address{}, ErrLength
	}
	// net/mail checks the local part's syntax; give it an ASCII domain so only the local
	// part is judged (it accepts UTF-8 local parts, as SMTPUTF8 allows).
	parsed, err := mail.ParseAddress(local + "@" + domain)
	if err != nil || parsed.Name != "" {
		return Address{}, ErrSyntax
	}
	return Address{Local: local, Domain: domain}, nil
}

// Domain validates a host name and returns its lower-case A-label form.
func Domain(s string) (string, error) {
	// IDNA would map invalid UTF-8 to U+FFFD and encode that; refuse it (and an input
	// too long to be any domain) first.
	if !utf8.ValidString(s) || len(s) > 4*MaxDomain {
		return "", ErrDomain
	}
	s = strings.TrimSuffix(s, ".")
	ascii, err := idna.Lookup.ToASCII(s)
	if err != nil || ascii == "" || len(ascii) > 253 || !strings.Contains(ascii, ".") {
		return "", ErrDomain
	}
	for _, label := range strings.Split(ascii, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return "", ErrDomain
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return "", ErrDomain
			}
		}
	}
	return strings.ToLower(ascii), nil
}
