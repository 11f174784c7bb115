package delivery_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/postfixtest"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// TestSMTPUTF8AgainstPostfix: Postfix records the protocol in its Received header, UTF8SMTPSA
// when the client asked for SMTPUTF8. ASCII mail must arrive as plain ESMTPSA.
func TestSMTPUTF8AgainstPostfix(t *testing.T) {
	t.Parallel()
	sink := smtptest.NewServer(t, smtptest.Opts{})
	pf := postfixtest.Start(t, postfixtest.Opts{RelayHost: sink.Addr(), Users: map[string]string{"relayuser": "relay-pass"}})
	s := settingsFor("127.0.0.1", pf.Port, delivery.SecurityStartTLS)
	s.TLSSkipVerify = true
	s.AuthMechanism, s.Username, s.Password = delivery.AuthPlain, "relayuser@"+postfixtest.Domain, "relay-pass"
	pool, err := delivery.NewPool(s, nil)
	require.NoError(t, err)
	defer pool.Close()

	env := delivery.Envelope{From: "sender@example.test", To: []string{"rcpt@example.test"}}
	_, err = pool.Send(context.Background(), env, []byte("From: sender@example.test\r\nTo: rcpt@example.test\r\nSubject: ascii\r\n\r\nplain\r\n"))
	require.NoError(t, err)
	_, err = pool.Send(context.Background(), env, []byte("From: =?utf-8?q?J=C3=BCrgen?= <sender@example.test>\r\nTo: rcpt@example.test\r\nSubject: Grüße\r\n\r\nÄÖÜ\r\n"))
	require.NoError(t, err)
	pf.Flush()
	got := map[string]string{}
	for _, m := range sink.WaitMessages(t, 2, 30*time.Second) {
		got[subjectOf(string(m.Data))] = string(m.Data)
	}
	require.Contains(t, got["ascii"], "with ESMTPSA")
	require.NotContains(t, got["ascii"], "UTF8SMTP")
	require.Contains(t, got["Grüße"], "with UTF8SMTPSA")
}

func subjectOf(raw string) string {
	for _, line := range strings.Split(raw, "\r\n") {
		if subject, ok := strings.CutPrefix(line, "Subject: "); ok {
			return subject
		}
	}
	return ""
}
