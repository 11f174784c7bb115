package devinbox

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
)

type testBundle struct {
	inbox *Inbox
	key   ed25519.PrivateKey
	http  *httptest.Server
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	record := "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	in, err := Start(Config{
		Addr:   "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler),
		LookupTXT: func(_ context.Context, name string) ([]string, error) {
			if name == "sw1._domainkey.shop.test" {
				return []string{record}, nil
			}
			return nil, nil
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = in.Close() })
	srv := httptest.NewServer(in.Handler())
	t.Cleanup(srv.Close)
	return &testBundle{inbox: in, key: key, http: srv}
}

func (b *testBundle) send(t *testing.T, subject string, sign bool, tamper bool) {
	t.Helper()
	msg := "From: Shop <noreply@shop.test>\r\nTo: jane@example.org\r\nSubject: " + subject + "\r\nMessage-ID: <1@shop.test>\r\n\r\nHello Jane.\r\n"
	if sign {
		var signed bytes.Buffer
		require.NoError(t, dkim.Sign(&signed, strings.NewReader(msg), &dkim.SignOptions{Domain: "shop.test", Selector: "sw1", Signer: b.key}))
		msg = signed.String()
	}
	if tamper {
		msg = strings.Replace(msg, "Hello Jane.", "Hello Mallory.", 1)
	}
	sendPlain(t, b.inbox.Addr(), "bounce@shop.test", "jane@example.org", msg)
}

// sendPlain sends over plain SMTP, as the development relay does.
func sendPlain(t *testing.T, addr, from, to, msg string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	require.NoError(t, c.SendMail(from, []string{to}, strings.NewReader(msg)))
	require.NoError(t, c.Quit())
}

func TestInbox(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.send(t, "Signed", true, false)
	b.send(t, "Tampered", true, true)
	b.send(t, "=?utf-8?q?Gr=C3=BC=C3=9Fe?=", false, false)

	msgs := b.inbox.Messages()
	require.Len(t, msgs, 3)
	require.Equal(t, "Grüße", msgs[0].Subject, "newest first, encoded words decoded")
	require.Equal(t, DKIMNone, msgs[0].DKIM.Result)
	require.Equal(t, DKIMFail, msgs[1].DKIM.Result, "a changed body fails the body hash")
	require.Equal(t, "shop.test", msgs[1].DKIM.Domain)
	require.NotEmpty(t, msgs[1].DKIM.Detail)
	require.Equal(t, DKIMPass, msgs[2].DKIM.Result)
	require.Equal(t, "Shop <noreply@shop.test>", msgs[2].From)
	require.Equal(t, "bounce@shop.test", msgs[2].MailFrom)
	require.Equal(t, []string{"jane@example.org"}, msgs[2].RcptTo)

	t.Run("ServesJSON", func(t *testing.T) {
		resp, err := http.Get(b.http.URL + "/dev/inbox.json")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		var got struct{ Items []Message }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
		require.Len(t, got.Items, 3)
		require.Equal(t, "pass", got.Items[2].DKIM.Result)
	})

	t.Run("ServesPageAndRaw", func(t *testing.T) {
		resp, err := http.Get(b.http.URL + "/dev/inbox")
		require.NoError(t, err)
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Contains(t, string(page), "dkim=pass")
		require.Contains(t, string(page), "Grüße")
		require.Contains(t, string(page), `href="inbox/`+msgs[2].ID+`/raw"`)

		resp, err = http.Get(b.http.URL + "/dev/inbox/" + msgs[2].ID + "/raw")
		require.NoError(t, err)
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, string(raw), "DKIM-Signature:")

		resp, err = http.Get(b.http.URL + "/dev/inbox/999/raw")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	})

	t.Run("Clears", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodDelete, b.http.URL+"/dev/inbox", nil)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
		require.Empty(t, b.inbox.Messages())
	})
}

func TestInboxKeepsNewest(t *testing.T) {
	t.Parallel()
	in, err := Start(Config{Addr: "127.0.0.1:0", MaxMessages: 2, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = in.Close() })
	for _, s := range []string{"one", "two", "three"} {
		sendPlain(t, in.Addr(), "a@shop.test", "b@example.org", "Subject: "+s+"\r\n\r\nx\r\n")
	}
	msgs := in.Messages()
	require.Len(t, msgs, 2)
	require.Equal(t, "three", msgs[0].Subject)
	require.Equal(t, "two", msgs[1].Subject)
}
