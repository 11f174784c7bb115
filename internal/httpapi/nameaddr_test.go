package httpapi

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/api"
	"github.com/sendwerk/sendwerk/internal/message"
)

func TestNameAddr(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]message.Address{
		"jane@example.com":                    {Email: "jane@example.com"},
		"Jane Doe <jane@example.com>":         {Email: "jane@example.com", Name: "Jane Doe"},
		` "Doe, Jane"  < jane@example.com > `: {Email: "jane@example.com", Name: "Doe, Jane"},
		`"Say \"hi\"" <jane@example.com>`:     {Email: "jane@example.com", Name: `Say "hi"`},
		"<jane@example.com>":                  {Email: "jane@example.com"},
		"Jane <jane@example.com":              {Email: "Jane <jane@example.com"}, // judged, and refused, as an address
		"Müller <müller@bücher.example>":      {Email: "müller@bücher.example", Name: "Müller"},
	} {
		require.Equal(t, want, nameAddr(in), in)
	}
}

func TestRecipients(t *testing.T) {
	t.Parallel()
	decode := func(js string) []message.Address {
		var m api.MessageCreate
		require.NoError(t, json.Unmarshal([]byte(`{"from": "a@example.com", "subject": "s", "to": `+js+`}`), &m))
		return recipients(m.To)
	}
	require.Equal(t, []message.Address{{Email: "jane@example.com", Name: "Jane"}}, decode(`"Jane <jane@example.com>"`))
	require.Equal(t, []message.Address{{Email: "jane@example.com", Name: "Jane"}}, decode(`{"email": "jane@example.com", "name": "Jane"}`))
	require.Equal(t, []message.Address{{Email: "a@example.com"}, {Email: "b@example.com", Name: "B"}}, decode(`["a@example.com", "B <b@example.com>"]`))
	require.Nil(t, recipients(nil))
}
