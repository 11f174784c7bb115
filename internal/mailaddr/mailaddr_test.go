package mailaddr

import (
	"testing"

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
