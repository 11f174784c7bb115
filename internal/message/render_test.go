package message

import (
	"bytes"
	"fmt"
	"mime"
	"mime/multipart"
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

func TestRenderAttachmentHeaders(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	req := func(a Attachment) *Request {
		a.Content = []byte("%PDF")
		return &Request{From: Address{Email: "a@acme.example"}, To: []Address{{Email: "b@c.example"}}, Text: "x", Attachments: []Attachment{a}}
	}
	for name, a := range map[string]Attachment{
		"ContentTypeCRLF":      {Filename: "a.pdf", ContentType: "application/pdf\r\nBcc: victim@x.example"},
		"ContentTypeLF":        {Filename: "a.pdf", ContentType: "application/pdf\nX-Injected: 1"},
		"ContentTypeGarbage":   {Filename: "a.pdf", ContentType: "application/pdf; name"},
		"ContentTypeMultipart": {Filename: "a.pdf", ContentType: "multipart/mixed; boundary=x"},
		"FilenameControl":      {Filename: "a\x0bb.pdf", ContentType: "application/pdf"},
		"FilenameNUL":          {Filename: "a\x00.pdf"},
		"ContentIDCRLF":        {Filename: "a.png", ContentID: "x\r\nBcc: victim@x.example"},
	} {
		_, err := render(req(a), "msg_x", now, 1<<20)
		var v *validate.Error
		require.ErrorAs(t, err, &v, name)
	}
	r, err := render(req(Attachment{Filename: "Rechnung.pdf", ContentType: `application/PDF; name="Rechnung März.pdf"`}), "msg_x", now, 1<<20)
	require.NoError(t, err)
	require.Contains(t, string(r.mime), "Content-Type: application/pdf; name*=utf-8''Rechnung%20M%C3%A4rz.pdf")
}

// FuzzRenderHeaders feeds every request field that ends up in a MIME header: whatever
// render accepts yields a message whose header fields, and whose parts' header fields, are
// only the ones Sendwerk writes — no input can add one.
func FuzzRenderHeaders(f *testing.F) {
	f.Add("Hello", "Acme", "Jane", "abc", "a.pdf", "application/pdf", "logo")
	f.Add("x\r\nBcc: v@x.example", "A\nB", "J", "v\r\nX: y", "a\r\n.pdf", "application/pdf\r\nBcc: v@x.example", "a\r\nb")
	f.Add("Grüße", "Müller, Jürgen", "\"Q\"", "=?utf-8?q?x?=", "März.pdf", `text/plain; charset="utf-8"; x="a\"b"`, "a@b")
	f.Add("", "", "", "", "a", "a/b; c=\"\r\n\"", "")
	f.Fuzz(func(t *testing.T, subject, fromName, toName, header, filename, contentType, cid string) {
		r := &Request{
			From: Address{Email: "a@acme.example", Name: fromName}, To: []Address{{Email: "b@c.example", Name: toName}},
			Subject: subject, Text: "x", Headers: map[string]string{"X-Trace": header},
			Attachments: []Attachment{{Filename: filename, ContentType: contentType, ContentID: cid, Content: []byte("data")}},
		}
		out, err := render(r, "msg_x", time.Unix(0, 0), 1<<20)
		if err != nil {
			require.NotEmpty(t, FieldErrors(err), "a refusal names its field: %v", err)
			return
		}
		m, err := mail.ReadMessage(bytes.NewReader(out.mime))
		require.NoError(t, err)
		for name := range m.Header {
			require.Contains(t, []string{"From", "To", "Subject", "Message-Id", "Date", "Mime-Version", "Content-Type", "X-Trace"}, name)
		}
		_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
		require.NoError(t, err)
		mr := multipart.NewReader(m.Body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				break
			}
			for name := range p.Header {
				require.Contains(t, []string{"Content-Type", "Content-Disposition", "Content-Transfer-Encoding", "Content-Id"}, name)
			}
		}
	})
}
