package message

import (
	"bytes"
	"fmt"
	"mime"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/validate"
)

func TestRender(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

	t.Run("RendersParsableMIME", func(t *testing.T) {
		r, err := render(&Request{
			From: Address{Email: "noreply@Bücher.example", Name: "Bücher Shop"},
			To:   []Address{{Email: "jane@customer.example", Name: "Jane"}}, Bcc: []Address{{Email: "JANE@customer.example"}, {Email: "audit@acme.example"}},
			Subject: "Grüße", Text: "Hallo", HTML: "<b>Hallo</b>", Headers: map[string]string{"X-Trace": "abc"},
		}, "msg_x", now, 1<<20)
		require.NoError(t, err)
		require.Equal(t, "noreply@xn--bcher-kva.example", r.from.String(), "IDN domains become A-labels")
		require.Equal(t, []string{"jane@customer.example", "audit@acme.example"}, r.recipients, "duplicates collapse, case-insensitively")
		require.Equal(t, "msg_x@xn--bcher-kva.example", r.messageID)
		m, err := mail.ReadMessage(bytes.NewReader(r.mime))
		require.NoError(t, err)
		require.Equal(t, "<msg_x@xn--bcher-kva.example>", m.Header.Get("Message-Id"))
		subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		require.NoError(t, err)
		require.Equal(t, "Grüße", subject)
		require.Equal(t, "abc", m.Header.Get("X-Trace"))
		require.Empty(t, m.Header.Get("Bcc"))
		require.True(t, strings.HasPrefix(m.Header.Get("Content-Type"), "multipart/alternative"))
	})
	t.Run("SizeLimit", func(t *testing.T) {
		_, err := render(&Request{From: Address{Email: "a@acme.example"}, To: []Address{{Email: "b@c.example"}}, Text: strings.Repeat("x", 5000)}, "msg_x", now, 2048)
		var tl *TooLargeError
		require.ErrorAs(t, err, &tl)
		require.Equal(t, TooLargeError{Field: "attachments", Size: tl.Size, Limit: 2048}, *tl)
		require.Greater(t, tl.Size, 5000)
	})
	t.Run("TooManyRecipients", func(t *testing.T) {
		to := make([]Address, MaxRecipients+1)
		for i := range to {
			to[i] = Address{Email: fmt.Sprintf("u%d@c.example", i)}
		}
		_, err := render(&Request{From: Address{Email: "a@acme.example"}, To: to, Text: "x"}, "msg_x", now, 1<<20)
		var tm *TooManyRecipientsError
		require.ErrorAs(t, err, &tm)
		require.Equal(t, TooManyRecipientsError{Field: "to", Count: MaxRecipients + 1, Limit: MaxRecipients}, *tm)
	})
	t.Run("EveryFieldNamed", func(t *testing.T) {
		_, err := render(&Request{
			From: Address{Email: "bad"}, To: []Address{{Email: "x@y.example", Name: "a\nb"}}, Subject: "a\rb",
			Headers: map[string]string{"Bad Name": "x", "DKIM-Signature": "x"}, Tags: []string{"ok", "not ok"},
			Metadata:    map[string]string{"k": strings.Repeat("v", 501)},
			Attachments: []Attachment{{Filename: "../etc/passwd", Content: []byte("x"), ContentType: "pdf", ContentID: "a b"}},
		}, "msg_x", now, 1<<20)
		var v *validate.Error
		require.ErrorAs(t, err, &v)
		fields := map[string]bool{}
		for _, f := range v.Fields {
			fields[f.Field] = true
		}
		for _, want := range []string{"from.email", "to[0].name", "subject", "text", "headers.Bad Name", "headers.DKIM-Signature", "tags[1]", "metadata.k",
			"attachments[0].filename", "attachments[0].content_type", "attachments[0].content_id"} {
			require.True(t, fields[want], "missing %s in %v", want, v.Fields)
		}
	})
}
