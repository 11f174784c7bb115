package httpapi

import (
	"encoding/base64"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestDecodeCursor(t *testing.T) {
	t.Parallel()
	id := "msg_06h08583y1r596y07grz39yhqm"
	got, err := decodeCursor(*nextCursor(id, 1, 1))
	require.NoError(t, err)
	require.Equal(t, id, got)
	for _, bad := range []string{"garbage", "%00", "AA", "____", base64.RawURLEncoding.EncodeToString([]byte("a\x00b")),
		base64.RawURLEncoding.EncodeToString([]byte("\xff\xfe")), base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("a", 101)))} {
		_, err := decodeCursor(bad)
		require.ErrorIs(t, err, errBadCursor, bad)
	}
}

// FuzzDecodeCursor: whatever a client sends as a cursor, the decoder answers with an id
// PostgreSQL can take as text, or refuses it.
func FuzzDecodeCursor(f *testing.F) {
	for _, seed := range []string{"", "garbage", "bXNnXzA2aDA4NTgzeTFyNTk2eTA3Z3J6Mzl5aHFt", "_w", "AAAA", "%00", "//8"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := decodeCursor(s)
		if err != nil {
			require.Empty(t, id)
			return
		}
		require.True(t, utf8.ValidString(id))
		require.NotContains(t, id, "\x00")
		require.LessOrEqual(t, len(id), 100)
		require.Equal(t, s, base64.RawURLEncoding.EncodeToString([]byte(id)), "only cursors this API could have made")
	})
}

func TestCheckJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body   string
		status int
		field  string
	}{
		{`{"name":"x"}`, 0, ""},
		{`{"name":"caf\u00e9 \ufffd ` + "\uFFFD" + `"}`, 0, ""},
		{`  {"name":"x"}` + "\n", 0, ""},
		{`{"name":"x"}xyz`, 400, ""},
		{`{"name":"x"}{"name":"y"}`, 400, ""},
		{`{"name":"x"`, 400, ""},
		{`{"name":"a\u0000b"}`, 422, "name"},
		{`{"to":[{"email":"a@b.example","name":"\u0000"}]}`, 422, "to[0].name"},
		{`{"metadata":{"k\u0000":"v"}}`, 422, "metadata.k\x00"},
		{"{\"name\":\"\xff\"}", 422, "name"},
		{`{"tags":["ok","\ud800"]}`, 422, "tags[1]"},
	} {
		p := checkJSON([]byte(tc.body))
		if tc.status == 0 {
			require.Nil(t, p, tc.body)
			continue
		}
		require.NotNil(t, p, tc.body)
		require.Equal(t, tc.status, p.Status, tc.body)
		if tc.field != "" {
			require.Equal(t, tc.field, (*p.Errors)[0].Field, tc.body)
		}
	}
}

// BenchmarkCheckJSON measures the input check on a typical message body: it runs on every
// submission.
func BenchmarkCheckJSON(b *testing.B) {
	body := []byte(`{"from":{"email":"noreply@acme.example","name":"Acme"},"to":["jane@customer.example"],"subject":"Reset your password",` +
		`"text":"Open the link to reset your password: https://acme.example/reset?token=` + strings.Repeat("x", 400) + `","tags":["reset"],"metadata":{"user":"42"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if p := checkJSON(body); p != nil {
			b.Fatal(p)
		}
	}
}
