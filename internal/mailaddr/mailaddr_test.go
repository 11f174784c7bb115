package mailaddr

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	t.Parallel()
	good := map[string]string{
		"noreply@acme.example":          "noreply@acme.example",
		"No.Reply+tag@Acme.Example":     "No.Reply+tag@acme.example",
		"info@bücher.example":           "info@xn--bcher-kva.example",
		"\"quoted local\"@acme.example": "\"quoted local\"@acme.example",
		"user@sub.domain.example.":      "user@sub.domain.example",
	}
	for in, want := range good {
		a, err := Parse(in)
		require.NoError(t, err, in)
		require.Equal(t, want, a.String(), in)
	}
	for _, bad := range []string{"", "plain", "@acme.example", "user@", "user@localhost", "a b@acme.example",
		"Name <user@acme.example>", "user@acme.example\r\nBcc: x@y.example", "user@-bad.example", "user@acme..example"} {
		_, err := Parse(bad)
		require.Error(t, err, bad)
	}
}

// domainOf returns a valid domain of exactly n octets (n >= 9).
func domainOf(n int) string {
	var labels []string
	for n > 0 {
		l := min(n-1, 63)
		if n <= 64 {
			l = n - len(".example") // the last label ends the domain
			labels = append(labels, strings.Repeat("d", l), "example")
			break
		}
		labels = append(labels, strings.Repeat("d", l))
		n -= l + 1
	}
	return strings.Join(labels, ".")
}

func TestParseLimits(t *testing.T) {
	t.Parallel()
	local := func(n int) string { return strings.Repeat("a", n) }
	for _, tc := range []struct {
		addr string
		err  error
	}{
		{local(64) + "@acme.example", nil},
		{local(65) + "@acme.example", ErrLocalPart},
		{local(300) + "@acme.example", ErrLocalPart},
		{local(64) + "@" + domainOf(189), nil},
		{local(64) + "@" + domainOf(190), ErrLength},
		{"user@" + domainOf(253), ErrLength},
		{"user@" + domainOf(254), ErrDomain},
		{"user@b\xfccher.example", ErrSyntax},
		{"us\xffer@acme.example", ErrSyntax},
		{"user\x00@acme.example", ErrSyntax},
	} {
		_, err := Parse(tc.addr)
		if tc.err == nil {
			require.NoError(t, err, tc.addr)
			continue
		}
		require.ErrorIs(t, err, tc.err, "%q", tc.addr)
	}
	_, err := Domain("b\xfccher.example")
	require.ErrorIs(t, err, ErrDomain, "invalid UTF-8 never becomes an A-label")
}

// FuzzParse: what Parse accepts is an address within RFC 5321's limits, text PostgreSQL and
// a mail header can carry, and parses again to itself.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{"noreply@acme.example", "info@bücher.example", "\"quoted local\"@acme.example",
		"user@b\xfccher.example", strings.Repeat("a", 65) + "@acme.example", "a@b@c.example", "user@acme.example\r\nBcc: x@y.example",
		"user@xn--bcher-kva.example", "user@\u0130.example", "\"a\\\"b\"@acme.example", "user@acme.example."} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			return
		}
		out := a.String()
		require.True(t, utf8.ValidString(out), "%q", out)
		require.False(t, strings.ContainsAny(out, "\r\n\x00<>"), "%q", out)
		require.LessOrEqual(t, len(a.Local), MaxLocalPart)
		require.LessOrEqual(t, len(out), MaxAddress)
		again, err := Parse(out)
		require.NoError(t, err, "%q from %q", out, s)
		require.Equal(t, a, again)
	})
}
