// Package mailaddr parses and normalises e-mail addresses: RFC 5322 addr-spec syntax, with
// internationalised domains converted to their ASCII (A-label) form, so an address is
// stored and compared one way.
package mailaddr

import (
	"errors"
	"net/mail"
	"strings"

	"golang.org/x/net/idna"
)

// Address is a bare address: local part and A-label domain.
type Address struct {
	Local  string
	Domain string
}

// String is local@domain.
func (a Address) String() string { return a.Local + "@" + a.Domain }

// Reasons an address is refused, phrased as rules for field errors.
var (
	ErrSyntax = errors.New("must be an e-mail address like name@example.com")
	ErrDomain = errors.New("must have a valid domain after the @")
)

// Parse accepts a bare address ("name@example.com"), not a display-name form.
func Parse(s string) (Address, error) {
	if s == "" || len(s) > 320 || strings.ContainsAny(s, "\r\n<>") {
		return Address{}, ErrSyntax
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return Address{}, ErrSyntax
	}
	domain, err := Domain(s[at+1:])
	if err != nil {
		return Address{}, err
	}
	local := s[:at]
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
