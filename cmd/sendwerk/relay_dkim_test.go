package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
)

// TestRelaySignsUnsubscribeHeaders: a message through the relay host keeps the tenant's
// headers, and the signature covers them — List-Unsubscribe and List-Unsubscribe-Post
// over-signed, as RFC 8058 one-click unsubscribe requires — the same set as REST messages.
func TestRelaySignsUnsubscribeHeaders(t *testing.T) {
	t.Parallel()
	v := setupVerifiedPlatform(t)
	m := relayMessage(t, "news@acme.example", "Unsubscribable", "jane@customer.example")
	m.SetGenHeader("List-Unsubscribe", "<https://acme.example/u/42>")
	m.SetGenHeader("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
	m.SetGenHeader("X-Campaign", "spring")
	require.NoError(t, v.goMail(t, false, v.cred.Password).DialAndSend(m))
	logged := v.messageBySubject(t, "Unsubscribable")
	v.waitStatus(t, logged.Id, sendwerk.MessageStatusDelivered, 15*time.Second)
	raw := v.up.WaitMessages(t, 1, 5*time.Second)[0].Data
	v.requireDKIM(t, raw)

	vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		return lookupTXT(t, v.zone.Addr(), name)
	}})
	require.NoError(t, err)
	count := map[string]int{}
	for _, h := range vs[0].HeaderKeys {
		count[strings.ToLower(h)]++
	}
	require.Equal(t, 2, count["list-unsubscribe"], "%v", vs[0].HeaderKeys)
	require.Equal(t, 2, count["list-unsubscribe-post"], "%v", vs[0].HeaderKeys)
	require.Equal(t, 2, count["from"])
	require.Equal(t, 1, count["x-campaign"], "the tenant's own headers are signed")
	require.Zero(t, count["received"], "trace fields are not signed")

	tampered := append([]byte("List-Unsubscribe: <https://evil.example/u>\r\n"), raw...)
	vs, err = dkim.VerifyWithOptions(bytes.NewReader(tampered), &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		return lookupTXT(t, v.zone.Addr(), name)
	}})
	require.NoError(t, err)
	require.Error(t, vs[0].Err, "a List-Unsubscribe added after signing breaks the signature")
}
