package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
	"github.com/wneessen/go-mail"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/message"
	"github.com/sendwerk/sendwerk/internal/tenant"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// goMailClient is go-mail configured like a mail server's relay-host settings.
func (b *testBundle) goMailClient(t *testing.T, implicitTLS bool, auth mail.SMTPAuthType, password string) *mail.Client {
	t.Helper()
	addr := b.srv.Addr()
	opts := []mail.Option{mail.WithTLSPolicy(mail.TLSMandatory), mail.WithTLSConfig(b.tlsConfig()), mail.WithSMTPAuth(auth),
		mail.WithUsername(b.username), mail.WithPassword(password), mail.WithTimeout(10 * time.Second), mail.WithHELO("erp.customer.example")}
	if implicitTLS {
		addr = b.srv.TLSAddr()
		opts = append(opts, mail.WithSSL())
	}
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	c, err := mail.NewClient(host, append(opts, mail.WithPort(p))...)
	require.NoError(t, err)
	return c
}

func goMailMessage(t *testing.T, from, subject string, to ...string) *mail.Msg {
	t.Helper()
	m := mail.NewMsg()
	require.NoError(t, m.FromFormat("Acme", from))
	require.NoError(t, m.To(to...))
	m.Subject(subject)
	m.SetBodyString(mail.TypeTextPlain, "Your invoice is attached. Grüße aus dem ERP.")
	return m
}

// sendErr returns go-mail's per-message error with its SMTP reply.
func sendErr(t *testing.T, err error) *mail.SendError {
	t.Helper()
	var se *mail.SendError
	require.True(t, errors.As(err, &se), "want a SendError, got %v", err)
	return se
}

func TestRelayAcceptsAuthenticatedSubmission(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)

	t.Run("StartTLSWithPlain", func(t *testing.T) {
		c := b.goMailClient(t, false, mail.SMTPAuthPlain, b.password)
		require.NoError(t, c.DialAndSend(goMailMessage(t, sender, "Invoice 1", "jane@customer.example")))
	})
	t.Run("ImplicitTLSWithLogin", func(t *testing.T) {
		c := b.goMailClient(t, true, mail.SMTPAuthLogin, b.password)
		require.NoError(t, c.DialAndSend(goMailMessage(t, sender, "Invoice 2", "jane@customer.example", "john@customer.example")))
	})

	msgs := b.messages(t)
	require.Len(t, msgs, 2)
	require.Equal(t, 2, b.jobCount(t), "each message was committed with its delivery job")
	for _, m := range msgs {
		require.Equal(t, "smtp", m.Source)
		require.Equal(t, "queued", m.Status)
		require.Equal(t, sender, m.EnvelopeFrom)
		require.Equal(t, sender, m.FromEmail)
		require.True(t, bytes.HasPrefix(m.MIME, []byte("Received: from erp.customer.example ([127.0.0.1])\r\n\tby "+testHostname+" (Sendwerk) with ESMTPSA (TLS")), string(m.MIME[:200]))
		require.Contains(t, string(m.MIME), "\tid "+m.ID)
		require.Contains(t, string(m.MIME), "User-Agent: go-mail", "the client's own headers are kept")
	}
	require.Equal(t, "Invoice 1", msgs[0].Subject)
	require.Contains(t, string(msgs[0].MIME), "\r\n\tfor <jane@customer.example>; ")
	require.ElementsMatch(t, []string{"jane@customer.example", "john@customer.example"}, msgs[1].Recipients)
	require.NotContains(t, string(msgs[1].MIME), "\tfor <", "no recipient is named when there are several")

	require.Equal(t, 2.0, metricValue(b.srv.metrics.messages.WithLabelValues("accepted")))
	require.Equal(t, 2.0, metricValue(b.srv.metrics.auth.WithLabelValues("ok")))
	logs := b.logs.String()
	require.Contains(t, logs, `"msg":"smtp message accepted"`)
	require.Contains(t, logs, `"username":"`+b.username+`"`)
	require.NotContains(t, logs, b.password, "passwords never reach the log")
	require.NotContains(t, logs, "Grüße", "bodies never reach the log")

	var lastUsed *time.Time
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT last_used_at FROM relay_credentials WHERE username = $1", b.username).Scan(&lastUsed))
	require.NotNil(t, lastUsed, "a login records the credential's last use")
}

func TestRelayRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()

	t.Run("WrongPassword", func(t *testing.T) {
		err := b.goMailClient(t, false, mail.SMTPAuthPlain, "wrong-password").DialAndSend(goMailMessage(t, sender, "x", "a@customer.example"))
		require.ErrorContains(t, err, "535")
		c := dialRaw(t, b.srv.Addr())
		c.expectCmd(250, "EHLO client.example")
		c.starttls(b.tlsConfig())
		require.Equal(t, "5.7.8 Authentication credentials invalid", c.expectCmd(535, "AUTH PLAIN %s", plain("sw-nosuchuser", b.password)))
		// A user name that is not text (once a 454 "temporary" database error).
		c.expectCmd(535, "AUTH PLAIN %s", plain("sw-\xff\xfe", b.password))
	})
	t.Run("AuthBeforeTLS", func(t *testing.T) {
		c := dialRaw(t, b.srv.Addr())
		ehlo := c.expectCmd(250, "EHLO client.example")
		require.Contains(t, ehlo, "STARTTLS")
		require.NotContains(t, ehlo, "AUTH", "no AUTH is offered before TLS")
		code, msg := c.cmd("AUTH PLAIN %s", plain(b.username, b.password))
		require.Equal(t, 523, code, msg)
		require.Contains(t, msg, "5.7.10")
		require.Equal(t, "5.7.0 "+errAuthRequired.Message, c.expectCmd(530, "MAIL FROM:<%s>", sender))
	})
	t.Run("MailWithoutAuth", func(t *testing.T) {
		c := dialRaw(t, b.srv.Addr())
		c.expectCmd(250, "EHLO client.example")
		c.starttls(b.tlsConfig())
		c.expectCmd(530, "MAIL FROM:<%s>", sender)
	})
	t.Run("UnverifiedEnvelopeSenderAtMail", func(t *testing.T) {
		c := b.session(t)
		msg := c.expectCmd(550, "MAIL FROM:<ceo@other.example>")
		require.True(t, strings.HasPrefix(msg, "5.7.1 Sender <ceo@other.example> refused: domain other.example is not a sender domain of this account"), msg)
		require.Contains(t, msg, "this connector may also send from its default sender "+sender)
		// go-mail sees the refusal as a permanent error of the message.
		err := b.goMailClient(t, false, mail.SMTPAuthPlain, b.password).DialAndSend(goMailMessage(t, "ceo@other.example", "x", "a@customer.example"))
		se := sendErr(t, err)
		require.False(t, se.IsTemp())
		require.Equal(t, 550, se.ErrorCode())
	})
	t.Run("UnverifiedFromHeaderAfterData", func(t *testing.T) {
		c := b.session(t)
		c.expectCmd(250, "MAIL FROM:<%s>", sender)
		c.expectCmd(250, "RCPT TO:<a@customer.example>")
		code, msg := c.data(testMessage("ceo@other.example", "a@customer.example", "Spoofed"))
		require.Equal(t, 550, code)
		require.True(t, strings.HasPrefix(msg, "5.7.1 Sender <ceo@other.example> refused: domain other.example is not a sender domain"), msg)
	})
	t.Run("NullSender", func(t *testing.T) {
		c := b.session(t)
		require.Contains(t, c.expectCmd(550, "MAIL FROM:<>"), "5.7.1 A null sender")
	})
	t.Run("Oversized", func(t *testing.T) {
		m := goMailMessage(t, sender, "Big", "a@customer.example")
		m.SetBodyString(mail.TypeTextPlain, strings.Repeat("0123456789abcdef\r\n", int(testMaxMessageBytes)/16))
		se := sendErr(t, b.goMailClient(t, false, mail.SMTPAuthPlain, b.password).DialAndSend(m))
		require.Equal(t, 552, se.ErrorCode())
		c := b.session(t)
		ehlo := c.expectCmd(250, "EHLO again.example")
		require.Contains(t, ehlo, "SIZE "+strconv.FormatInt(testAdvertisedMaxLen, 10))
		require.Contains(t, c.expectCmd(552, "MAIL FROM:<%s> SIZE=%d", sender, testMaxMessageBytes), "5.3.4", "a declared size over the limit is refused at MAIL")
	})
	t.Run("TooManyRecipients", func(t *testing.T) {
		c := b.session(t)
		c.expectCmd(250, "MAIL FROM:<%s>", sender)
		for i := range 50 {
			c.expectCmd(250, "RCPT TO:<user%d@customer.example>", i)
		}
		require.Equal(t, "4.5.3 Maximum limit of 50 recipients reached", c.expectCmd(452, "RCPT TO:<user50@customer.example>"))
		code, msg := c.data(testMessage(sender, "list@customer.example", "Fifty"))
		require.Equal(t, 250, code, "the first 50 recipients still get the message: %s", msg)

		// go-mail gives up the whole message at the refused RCPT; the 452 is temporary.
		to := make([]string, 51)
		for i := range to {
			to[i] = fmt.Sprintf("user%d@customer.example", i)
		}
		se := sendErr(t, b.goMailClient(t, false, mail.SMTPAuthPlain, b.password).DialAndSend(goMailMessage(t, sender, "Fifty-one", to...)))
		require.Equal(t, 452, se.ErrorCode())
		require.Equal(t, "4.5.3", se.EnhancedStatusCode())
		require.True(t, se.IsTemp())
	})
	t.Run("BadRecipient", func(t *testing.T) {
		c := b.session(t)
		c.expectCmd(250, "MAIL FROM:<%s>", sender)
		c.expectCmd(501, "RCPT TO:<no-at-sign>") // go-smtp's own syntax check
		require.Equal(t, "5.1.3 Bad recipient address: must have a valid domain after the @", c.expectCmd(501, "RCPT TO:<root@localhost>"))
		c.expectCmd(553, "RCPT TO:<jürgen@customer.example>")
	})
	t.Run("QuotaExhausted", func(t *testing.T) {
		one := int64(1)
		limited, err := b.connectors.Create(ctx, b.tenantID, connector.Input{
			Name: "limited", Kind: connector.KindSMTP, Sender: connector.Sender{Email: sender}, Limits: connector.Limits{MonthlyQuota: &one},
			SMTP: &connector.SMTPInput{Host: "127.0.0.1", Port: 2525, Security: "none"},
		})
		require.NoError(t, err)
		cred, password, err := b.creds.Create(ctx, b.tenantID, limited.ID, "")
		require.NoError(t, err)
		before := len(b.messages(t))
		c := dialRaw(t, b.srv.Addr())
		c.expectCmd(250, "EHLO client.example")
		c.starttls(b.tlsConfig())
		c.login(cred.Username, password)
		for i, want := range []int{250, 451} {
			c.expectCmd(250, "MAIL FROM:<%s>", sender)
			c.expectCmd(250, "RCPT TO:<a@customer.example>")
			code, msg := c.data(testMessage(sender, "a@customer.example", fmt.Sprintf("Quota %d", i)))
			require.Equal(t, want, code, msg)
			if code == 451 {
				require.True(t, strings.HasPrefix(msg, "4.7.1 The connector monthly quota of 1 messages is reached; it resets at "), msg)
				require.Regexp(t, `retry after \d{4}-\d\d-01T00:00:00Z \(in \d+h\d+m\d+s\)$`, msg)
			}
		}
		require.Len(t, b.messages(t), before+1, "the refused message was not stored")

		gm := b.goMailClient(t, false, mail.SMTPAuthPlain, password)
		require.NoError(t, mail.WithUsername(cred.Username)(gm))
		se := sendErr(t, gm.DialAndSend(goMailMessage(t, sender, "Third", "a@customer.example")))
		require.True(t, se.IsTemp(), "a quota is temporary: the mail server keeps the message and retries")
		require.Equal(t, 451, se.ErrorCode())
	})
	t.Run("PausedConnector", func(t *testing.T) {
		_, err := b.pool.Exec(ctx, "UPDATE connectors SET status = 'paused' WHERE id = $1", b.connector.ID)
		require.NoError(t, err)
		defer func() {
			_, _ = b.pool.Exec(ctx, "UPDATE connectors SET status = 'active' WHERE id = $1", b.connector.ID)
		}()
		c := b.session(t)
		require.Equal(t, "4.7.0 The connector is paused and accepts no messages; try again later", c.expectCmd(451, "MAIL FROM:<%s>", sender))
	})
	t.Run("RevokedCredentialMidSession", func(t *testing.T) {
		cred, password, err := b.creds.Create(ctx, b.tenantID, b.connector.ID, "to revoke")
		require.NoError(t, err)
		c := dialRaw(t, b.srv.Addr())
		c.expectCmd(250, "EHLO client.example")
		c.starttls(b.tlsConfig())
		c.login(cred.Username, password)
		_, err = b.creds.Revoke(ctx, b.tenantID, b.connector.ID, cred.ID)
		require.NoError(t, err)
		require.Contains(t, c.expectCmd(530, "MAIL FROM:<%s>", sender), "revoked")
		c2 := dialRaw(t, b.srv.Addr())
		c2.expectCmd(250, "EHLO client.example")
		c2.starttls(b.tlsConfig())
		c2.expectCmd(535, "AUTH PLAIN %s", plain(cred.Username, password))
	})
	t.Run("SuppressedRecipientsAtRcpt", func(t *testing.T) { refusesSuppressedRecipients(t, b) })
	require.NotContains(t, b.logs.String(), b.password)
}

func TestRelayExtensions(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	c := b.session(t)
	ehlo := c.expectCmd(250, "EHLO client.example")
	for _, ext := range []string{"8BITMIME", "SMTPUTF8", "PIPELINING", "ENHANCEDSTATUSCODES", "AUTH PLAIN LOGIN", "LIMITS RCPTMAX=50"} {
		require.Contains(t, ehlo, ext)
	}
	require.True(t, strings.HasPrefix(ehlo, "Hello client.example"), ehlo)

	// The implicit-TLS listener offers AUTH at once and no STARTTLS.
	smtps := dialRawTLS(t, b.srv.TLSAddr(), b.tlsConfig())
	ehlo = smtps.expectCmd(250, "EHLO client.example")
	require.Contains(t, ehlo, "AUTH PLAIN LOGIN")
	require.NotContains(t, ehlo, "STARTTLS")
	smtps.login(b.username, b.password)

	// SMTPUTF8: a UTF-8 recipient and 8-bit headers pass through untouched.
	c.expectCmd(250, "MAIL FROM:<%s> SMTPUTF8 BODY=8BITMIME", sender)
	c.expectCmd(250, "RCPT TO:<jürgen@bücher.example>")
	code, msg := c.data("From: " + sender + "\r\nTo: jürgen@bücher.example\r\nSubject: Grüße\r\n\r\nÄÖÜ\r\n")
	require.Equal(t, 250, code, msg)
	require.Regexp(t, `^2\.0\.0 Ok: queued as msg_[0-9a-z]{26}$`, msg)
	m := b.messages(t)[0]
	require.Equal(t, []string{"jürgen@xn--bcher-kva.example"}, m.Recipients, "the domain is stored as its A-label")
	require.Contains(t, string(m.MIME), "Subject: Grüße\r\n")
	require.Equal(t, strings.TrimPrefix(msg, "2.0.0 Ok: queued as "), m.ID, "the 250 names the message id of the log")
}

func TestRelayAuthThrottle(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.AuthFailureLimit = 3; c.AuthFailureDelay = 50 * time.Millisecond })
	c := dialRaw(t, b.srv.Addr())
	c.expectCmd(250, "EHLO client.example")
	c.starttls(b.tlsConfig())
	for range 3 {
		start := time.Now()
		c.expectCmd(535, "AUTH PLAIN %s", plain(b.username, "guess"))
		require.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond, "failures are answered slowly")
	}
	msg := c.expectCmd(454, "AUTH PLAIN %s", plain(b.username, b.password))
	require.Contains(t, msg, "4.7.0 Too many failed logins from your address; try again after ")

	// Another address (127.0.0.2 is loopback too on Linux) is not throttled by the first.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", b.srv.Addr())
	require.NoError(t, err)
	other := &rawClient{t: t, conn: conn, text: textproto.NewConn(conn)}
	t.Cleanup(func() { _ = conn.Close() })
	other.expect(220)
	other.expectCmd(250, "EHLO other.example")
	other.starttls(b.tlsConfig())
	other.login(b.username, b.password)
	require.Equal(t, 3.0, metricValue(b.srv.metrics.auth.WithLabelValues(string(connector.RelayAuthWrongPassword))))
	require.Equal(t, 1.0, metricValue(b.srv.metrics.auth.WithLabelValues("throttled")))
	require.Contains(t, b.logs.String(), `"msg":"smtp login throttled"`)
}

func TestRelayUserNameThrottle(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.AuthFailureLimit = 2 })
	fail := func(local string) *rawClient {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
		conn, err := d.Dial("tcp", b.srv.Addr())
		require.NoError(t, err)
		c := &rawClient{t: t, conn: conn, text: textproto.NewConn(conn)}
		t.Cleanup(func() { _ = conn.Close() })
		c.expect(220)
		c.expectCmd(250, "EHLO x.example")
		c.starttls(b.tlsConfig())
		return c
	}
	for _, ip := range []string{"127.0.0.3", "127.0.0.4"} {
		c := fail(ip)
		c.expectCmd(535, "AUTH PLAIN %s", plain(b.username, "guess"))
		c.expectCmd(535, "AUTH PLAIN %s", plain(b.username, "guess"))
	}
	c := fail("127.0.0.5")
	require.Contains(t, c.expectCmd(454, "AUTH PLAIN %s", plain(b.username, b.password)), "for this user name")
	c.expectCmd(535, "AUTH PLAIN %s", plain("sw-someoneelse", "x")) // other user names are not locked
}

func TestRelayInsecureAuthOnlyOnLoopback(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.AllowInsecureAuth = true })
	c := dialRaw(t, b.srv.Addr())
	require.Contains(t, c.expectCmd(250, "EHLO client.example"), "AUTH PLAIN LOGIN")
	c.login(b.username, b.password)
	c.expectCmd(250, "MAIL FROM:<%s>", sender)
	c.expectCmd(250, "RCPT TO:<a@customer.example>")
	code, msg := c.data(testMessage(sender, "a@customer.example", "Plain"))
	require.Equal(t, 250, code, msg)
	require.Contains(t, string(b.messages(t)[0].MIME), "with ESMTPA\r\n", "no S: the session had no TLS")

	// The session check itself: a non-loopback client never gets plaintext AUTH.
	s := &session{srv: b.srv, tc: &trackedConn{ip: mustAddr("192.0.2.7")}}
	require.Nil(t, s.AuthMechanisms())
	_, err := s.Auth("PLAIN")
	require.Equal(t, errEncryptionRequired, err)
}

func TestRelayPerIPConnectionLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.MaxConnsPerIP = 2 })
	dialRaw(t, b.srv.Addr())
	second := dialRaw(t, b.srv.Addr())
	for _, addr := range []string{b.srv.Addr(), b.srv.TLSAddr()} {
		var conn net.Conn
		var err error
		if addr == b.srv.TLSAddr() {
			conn, err = tls.Dial("tcp", addr, b.tlsConfig())
		} else {
			conn, err = net.Dial("tcp", addr)
		}
		require.NoError(t, err)
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		lines := readLines(t, conn)
		require.Equal(t, []string{"421 4.7.0 " + testHostname + " Too many connections from your address, try again later"}, lines)
	}
	second.expectCmd(221, "QUIT")
	waitFor(t, 5*time.Second, func() bool { return b.srv.perIP.count(mustAddr("127.0.0.1")) == 1 }, "the closed connection frees its slot")
	dialRaw(t, b.srv.Addr()).expectCmd(250, "EHLO client.example")
	require.Equal(t, 2.0, metricValue(b.srv.metrics.refused.WithLabelValues("per_ip_limit")))
}

func TestRelayRobustness(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.AllowInsecureAuth = true; c.Timeout = 2 * time.Second })

	t.Run("GarbageCommands", func(t *testing.T) {
		for _, script := range []string{
			"\x00\x01\x02\xff\r\nHELO\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x>\r\nDATA\r\nAUTH\r\nAUTH XOAUTH9 abc\r\nEHLO\r\nVRFY root\r\n",
			"EHLO x\r\nAUTH PLAIN !!!notbase64\r\nAUTH LOGIN\r\n*\r\nAUTH PLAIN " + plain("", "") + "\r\nMAIL FROM:<>\r\nBDAT 5 LAST\r\nabcde",
			"FOO\r\nBAR\r\nBAZ\r\nQUX\r\nQUUX\r\nNOOP\r\n",
		} {
			conn, err := net.Dial("tcp", b.srv.Addr())
			require.NoError(t, err)
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = conn.Write([]byte(script))
			require.NoError(t, err)
			lines := readLines(t, conn)
			_ = conn.Close()
			require.NotEmpty(t, lines)
			require.True(t, strings.HasPrefix(lines[0], "220 "), lines[0])
			for _, l := range lines[1:] {
				if strings.HasPrefix(l, "250") || strings.HasPrefix(l, "252") || strings.HasPrefix(l, "334") {
					continue // EHLO x, VRFY and the LOGIN prompt are fine answers
				}
				require.Regexp(t, `^[45]\d\d[ -]`, l, "%q", script)
			}
		}
	})
	t.Run("TooLongLine", func(t *testing.T) {
		c := dialRaw(t, b.srv.Addr())
		_, err := c.conn.Write([]byte("EHLO " + strings.Repeat("x", 3000) + "\r\n"))
		require.NoError(t, err)
		lines := readLines(t, c.conn)
		require.Equal(t, []string{"500 5.4.0 Too long line, closing connection"}, lines)
	})
	t.Run("PipelinedSession", func(t *testing.T) {
		conn, err := net.Dial("tcp", b.srv.Addr())
		require.NoError(t, err)
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		script := "EHLO pipe.example\r\nAUTH PLAIN " + plain(b.username, b.password) + "\r\nMAIL FROM:<" + sender + ">\r\n" +
			"RCPT TO:<a@customer.example>\r\nRCPT TO:<b@customer.example>\r\nDATA\r\n" +
			strings.ReplaceAll(testMessage(sender, "a@customer.example", "Pipelined"), "\r\n", "\r\n") + ".\r\nRSET\r\nNOOP\r\nQUIT\r\n"
		_, err = conn.Write([]byte(script))
		require.NoError(t, err)
		var codes []string
		for _, l := range readLines(t, conn) {
			if len(l) >= 4 && l[3] == ' ' {
				codes = append(codes, l[:3])
			}
		}
		require.Equal(t, []string{"220", "250", "235", "250", "250", "250", "354", "250", "250", "250", "221"}, codes)
	})
	t.Run("Chunking", func(t *testing.T) {
		conn, err := net.Dial("tcp", b.srv.Addr())
		require.NoError(t, err)
		defer func() { _ = conn.Close() }()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		msg := testMessage(sender, "a@customer.example", "Chunked")
		script := "EHLO bdat.example\r\nAUTH PLAIN " + plain(b.username, b.password) + "\r\nMAIL FROM:<" + sender + ">\r\nRCPT TO:<a@customer.example>\r\n" +
			fmt.Sprintf("BDAT %d\r\n%s", 20, msg[:20]) + fmt.Sprintf("BDAT %d LAST\r\n%s", len(msg)-20, msg[20:]) + "QUIT\r\n"
		_, err = conn.Write([]byte(script))
		require.NoError(t, err)
		lines := strings.Join(readLines(t, conn), "\n")
		require.Contains(t, lines, "250 2.0.0 Continue")
		require.Regexp(t, `250 2\.0\.0 Ok: queued as msg_`, lines)
	})
	t.Run("BareLineFeeds", func(t *testing.T) {
		conn, err := net.Dial("tcp", b.srv.Addr())
		require.NoError(t, err)
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		body := strings.ReplaceAll(testMessage(sender, "a@customer.example", "Bare LF"), "\r\n", "\n") + "second line\n"
		script := "EHLO lf.example\nAUTH PLAIN " + plain(b.username, b.password) + "\nMAIL FROM:<" + sender + ">\nRCPT TO:<a@customer.example>\nDATA\n" +
			body + "\r\n.\r\nQUIT\n"
		_, err = conn.Write([]byte(script))
		require.NoError(t, err)
		lines := readLines(t, conn)
		require.Contains(t, strings.Join(lines, "\n"), "250 2.0.0 Ok: queued as msg_")
		var stored []byte
		for _, m := range b.messages(t) {
			if m.Subject == "Bare LF" {
				stored = m.MIME
			}
		}
		require.NotNil(t, stored)
		require.Equal(t, bytes.Count(stored, []byte("\n")), bytes.Count(stored, []byte("\r\n")), "every line ends in CRLF")
		require.Contains(t, string(stored), "Hello from the ERP.\r\nsecond line\r\n")
	})
	t.Run("BareLFDotDoesNotEndData", func(t *testing.T) {
		before := len(b.messages(t))
		conn, err := net.Dial("tcp", b.srv.Addr())
		require.NoError(t, err)
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		// SMTP smuggling: "\n.\n" must not end the message and start a second transaction.
		script := "EHLO lf.example\r\nAUTH PLAIN " + plain(b.username, b.password) + "\r\nMAIL FROM:<" + sender + ">\r\nRCPT TO:<a@customer.example>\r\nDATA\r\n" +
			testMessage(sender, "a@customer.example", "Outer") + "\n.\nMAIL FROM:<" + sender + ">\r\nRCPT TO:<victim@customer.example>\r\nDATA\r\n" +
			testMessage(sender, "victim@customer.example", "Smuggled") + "\r\n.\r\nQUIT\r\n"
		_, err = conn.Write([]byte(script))
		require.NoError(t, err)
		readLines(t, conn)
		msgs := b.messages(t)
		require.Len(t, msgs, before+1, "one message, not two")
		require.Equal(t, "Outer", msgs[len(msgs)-1].Subject)
		require.Equal(t, []string{"a@customer.example"}, msgs[len(msgs)-1].Recipients)
	})
	t.Run("ClientDisconnectsMidData", func(t *testing.T) {
		before := len(b.messages(t))
		c := dialRaw(t, b.srv.Addr())
		c.expectCmd(250, "EHLO client.example")
		c.login(b.username, b.password)
		c.expectCmd(250, "MAIL FROM:<%s>", sender)
		c.expectCmd(250, "RCPT TO:<a@customer.example>")
		c.expectCmd(354, "DATA")
		_, err := c.conn.Write([]byte(testMessage(sender, "a@customer.example", "Cut off")[:60]))
		require.NoError(t, err)
		require.NoError(t, c.conn.Close())
		waitFor(t, 5*time.Second, func() bool { return strings.Contains(b.logs.String(), `"msg":"smtp message aborted"`) }, "the aborted message is logged")
		require.Len(t, b.messages(t), before, "nothing was stored")
	})
	t.Run("StalledClientTimesOut", func(t *testing.T) {
		c := dialRaw(t, b.srv.Addr())
		c.expectCmd(250, "EHLO client.example")
		start := time.Now()
		code, msg := c.reply()
		require.Equal(t, 421, code, msg)
		require.InDelta(t, 2, time.Since(start).Seconds(), 1)
	})
	t.Run("StillServing", func(t *testing.T) {
		c := dialRaw(t, b.srv.Addr())
		c.expectCmd(250, "EHLO client.example")
		c.login(b.username, b.password)
		c.expectCmd(250, "MAIL FROM:<%s>", sender)
	})
}

// TestRelayHugeMessage sends 100 MB to a relay that takes 256 KiB: it answers 552 after
// discarding the rest as it arrives, without buffering it, and the session goes on.
func TestRelayHugeMessage(t *testing.T) {
	// Not parallel: the allocation bound reads the process-wide counter, and tests running
	// beside it (all parallel ones wait until the sequential tests are done) would count
	// into it — it failed that way on a loaded machine.
	// A generous timeout: it bounds the whole DATA phase, and 100 MB over loopback takes
	// over ten seconds under the race detector.
	b := setup(t, func(c *Config) { c.AllowInsecureAuth = true; c.Timeout = time.Minute })
	c := dialRaw(t, b.srv.Addr())
	c.expectCmd(250, "EHLO client.example")
	c.login(b.username, b.password)
	c.expectCmd(250, "MAIL FROM:<%s>", sender)
	c.expectCmd(250, "RCPT TO:<a@customer.example>")
	c.expectCmd(354, "DATA")
	_ = c.conn.SetDeadline(time.Now().Add(2 * time.Minute))

	var before, after runtimeMem
	before.read()
	line := []byte(strings.Repeat("0123456789", 9) + "\r\n") // 92 bytes
	chunk := bytes.Repeat(line, 1<<14)                       // ≈1.5 MB
	_, err := c.conn.Write([]byte(testMessage(sender, "a@customer.example", "Huge")))
	require.NoError(t, err)
	start := time.Now()
	written := 0
	for written < 100<<20 {
		n, err := c.conn.Write(chunk)
		require.NoError(t, err)
		written += n
	}
	_, err = c.conn.Write([]byte(".\r\n"))
	require.NoError(t, err)
	code, msg := c.reply()
	took := time.Since(start)
	after.read()
	require.Equal(t, 552, code, msg)
	require.Contains(t, msg, "5.3.4 Message too large")
	grew := int64(after.totalAlloc - before.totalAlloc)
	t.Logf("100 MB refused in %s; the process allocated %d MB meanwhile", took.Round(time.Millisecond), grew>>20)
	if !raceEnabled {
		require.Less(t, grew, int64(40<<20), "the body was discarded as it arrived, not buffered")
	}

	code, msg = c.cmd("MAIL FROM:<%s>", sender)
	require.Equal(t, 250, code, "the session goes on after a refused message: %s", msg)
	c.expectCmd(250, "RCPT TO:<a@customer.example>")
	code, msg = c.data(testMessage(sender, "a@customer.example", "Small"))
	require.Equal(t, 250, code, msg)
	require.Len(t, b.messages(t), 1)
}

func TestRelayGracefulShutdown(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	busy := b.session(t)
	busy.expectCmd(250, "MAIL FROM:<%s>", sender)
	busy.expectCmd(250, "RCPT TO:<a@customer.example>")
	busy.expectCmd(354, "DATA")
	msg := testMessage(sender, "a@customer.example", "In flight")
	_, err := busy.conn.Write([]byte(msg[:40]))
	require.NoError(t, err)
	idle := b.session(t)

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- b.srv.Shutdown(ctx)
	}()
	code, text := idle.reply()
	require.Equal(t, 421, code, "an idle session is closed at once: %s", text)
	_, err = net.DialTimeout("tcp", b.srv.Addr(), time.Second)
	require.Error(t, err, "no new connections")
	select {
	case err := <-done:
		t.Fatalf("shutdown returned while a message was in flight: %v", err)
	case <-time.After(200 * time.Millisecond):
	}

	_, err = busy.conn.Write([]byte(msg[40:] + ".\r\n"))
	require.NoError(t, err)
	code, text = busy.reply()
	require.Equal(t, 250, code, "the message in flight is accepted: %s", text)
	code, _ = busy.reply()
	require.Equal(t, 421, code, "then the session is closed")
	require.NoError(t, <-done)
	require.Len(t, b.messages(t), 1)
}

func TestRelayPrometheusMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.session(t).expectCmd(221, "QUIT")
	families, err := b.registry.Gather()
	require.NoError(t, err)
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	for _, want := range []string{"sendwerk_smtp_connections_total", "sendwerk_smtp_auth_total"} {
		require.Contains(t, names, want)
	}
	require.Equal(t, 1.0, metricValue(b.srv.metrics.connections.WithLabelValues("submission")))
}

func TestReceivedLine(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	got := string(received(receivedLine{helo: "evil\r\nBcc: x (y)", ip: mustAddr("2001:db8::7"), by: "relay.example", auth: true, id: "msg_1", rcpt: "a@b.example", at: at}))
	require.Equal(t, "Received: from evilBcc:xy ([IPv6:2001:db8::7])\r\n\tby relay.example (Sendwerk) with ESMTPA\r\n\tid msg_1\r\n\tfor <a@b.example>; Mon, 02 Mar 2026 10:00:00 +0000\r\n", got)
	got = string(received(receivedLine{ip: mustAddr("192.0.2.1"), by: "r", at: at, rcpt: "x>@y"}))
	require.Equal(t, "Received: from unknown ([192.0.2.1])\r\n\tby r (Sendwerk) with ESMTP\r\n\tid ; Mon, 02 Mar 2026 10:00:00 +0000\r\n", got)
}

func TestNormalizeLineEndings(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"a\r\nb\r\n": "a\r\nb\r\n", "a\nb\n": "a\r\nb\r\n", "\n": "\r\n", "a\r\n\nb": "a\r\n\r\nb", "": "", "a\rb\n": "a\rb\r\n",
	} {
		require.Equal(t, want, string(normalizeLineEndings([]byte(in))), "%q", in)
	}
}

// normalizeReference is normalizeLineEndings written the plain way, byte by byte: the fast
// one must agree with it on every input.
func normalizeReference(data []byte) []byte {
	var out []byte
	for i, c := range data {
		if c == '\n' && (i == 0 || data[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// FuzzNormalizeLineEndings: the IndexByte scan agrees with the byte-by-byte reference, and
// a message without bare line feeds comes back as the same slice (no copy).
func FuzzNormalizeLineEndings(f *testing.F) {
	for _, seed := range []string{"", "\n", "\n\n", "\r\n", "\r\r\n", "a\nb", "a\r\nb\r\n", "a\r\n\nb", "\na\n", "\r", "x\r\n\r\n\n\r\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		got := normalizeLineEndings(in)
		require.Equal(t, string(normalizeReference(orig)), string(got), "%q", orig)
		require.Equal(t, orig, in, "the input is not changed")
		if len(got) == len(in) && len(in) > 0 {
			require.Same(t, &in[0], &got[0], "no bare line feed: no copy")
		}
	})
}

// BenchmarkNormalizeLineEndings: a typical transactional message, CRLF throughout.
func BenchmarkNormalizeLineEndings(b *testing.B) {
	msg := []byte(strings.Repeat("Subject: Your report is ready, with a line of about seventy characters\r\n", 36))
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		normalizeLineEndings(msg)
	}
}

// BenchmarkRelayMessage is one logged-in STARTTLS session sending messages the way the
// benchmark's submission phase does (MAIL, RCPT, DATA, one recipient, a 2.6 KB body),
// through the real pipeline and database; allocs/op are the process's per message, the
// test client's included. Deliveries are not worked.
func BenchmarkRelayMessage(b *testing.B) {
	bundle := setup(b, nil)
	c := bundle.session(b)
	msg := testMessage(sender, "a@customer.example", "bench") + strings.Repeat("A line of a report, about seventy characters long, as text mail has.\r\n", 36)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		c.expectCmd(250, "MAIL FROM:<%s>", sender)
		c.expectCmd(250, "RCPT TO:<a@customer.example>")
		if code, reply := c.data(msg); code != 250 {
			b.Fatalf("DATA: %d %s", code, reply)
		}
	}
}

// TestWithReceived: a message read with room in front gets its Received line there without
// a copy; bare line feeds, a message longer than the first buffer and a line longer than
// the room still come out whole.
func TestWithReceived(t *testing.T) {
	t.Parallel()
	short := []byte("Received: from x\r\n")
	long := []byte("Received: " + strings.Repeat("x", receivedRoom) + "\r\n")
	big := strings.Repeat("0123456789abcdef\r\n", 1000) // beyond the first 4 KB buffer
	for _, tc := range []struct {
		body, want string
		line       []byte
		inPlace    bool
	}{
		{"Subject: a\r\n\r\nhi\r\n", "Subject: a\r\n\r\nhi\r\n", short, true},
		{"", "", short, true},
		{big, big, short, true},
		{"Subject: a\n\nhi\n", "Subject: a\r\n\r\nhi\r\n", short, false},
		{"Subject: a\r\n\r\nhi\r\n", "Subject: a\r\n\r\nhi\r\n", long, false},
	} {
		data, err := readWithRoom(iotest.OneByteReader(strings.NewReader(tc.body)))
		require.NoError(t, err)
		require.Equal(t, tc.body, string(data[receivedRoom:]))
		full := withReceived(data, tc.line)
		require.Equal(t, string(tc.line)+tc.want, string(full))
		require.Equal(t, tc.inPlace, &full[len(full)-1] == &data[len(data)-1], "the message stays where it was read: %v", tc.inPlace)
	}
}

// TestReceivedLineNoAllocations: the relay renders each message's Received line into a
// buffer on its stack, with TLS named, without a heap allocation; and the message built
// around a line from such a buffer never shares it (the next message reuses it).
func TestReceivedLineNoAllocations(t *testing.T) {
	r := receivedLine{helo: "mta.customer.example", ip: mustAddr("2001:db8::7"), by: "relay.example", auth: true, id: "msg_06h2m7cp85t3v1mbgvvcpty728",
		rcpt: "someone@customer.example", at: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC), tlsVersion: tls.VersionTLS13, tlsCipher: tls.TLS_AES_128_GCM_SHA256}
	var buf [receivedRoom]byte
	var line []byte
	allocs := testing.AllocsPerRun(100, func() { line = appendReceived(buf[:0], r) })
	require.Zero(t, allocs)
	require.Equal(t, "Received: from mta.customer.example ([IPv6:2001:db8::7])\r\n\tby relay.example (Sendwerk) with ESMTPSA (TLS 1.3 TLS_AES_128_GCM_SHA256)\r\n\t"+
		"id msg_06h2m7cp85t3v1mbgvvcpty728\r\n\tfor <someone@customer.example>; Mon, 02 Mar 2026 10:00:00 +0000\r\n", string(line))
	require.Equal(t, string(received(r)), string(line))
	require.Equal(t, "Received: from unknown ([invalid IP])\r\n\tby r (Sendwerk) with ESMTP\r\n\tid ; Mon, 02 Mar 2026 10:00:00 +0000\r\n",
		string(received(receivedLine{by: "r", at: r.at})))

	// A short message with a bare line feed is copied; the copy must not be built in the
	// line's buffer, which has room for it.
	data, err := readWithRoom(strings.NewReader("S: x\n\nhi"))
	require.NoError(t, err)
	full := withReceived(data, line)
	want := string(line) + "S: x\r\n\r\nhi"
	for i := range buf {
		buf[i] = 'X' // the next message's line
	}
	require.Equal(t, want, string(full))
}

func TestReplyFor(t *testing.T) {
	t.Parallel()
	r, class := replyFor(fmt.Errorf("wrapped: %w", errors.New("boom")), time.Now())
	require.Equal(t, errTempFailure, r)
	require.Equal(t, "error", class)

	// Each typed refusal of message maps to its reply by type, never by its words.
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		err   error
		code  int
		enh   smtp.EnhancedCode
		class string
	}{
		{&message.SenderRefusedError{Field: "header.from", Address: "ceo@other.example", Reason: "no"}, 550, smtp.EnhancedCode{5, 7, 1}, "rejected"},
		{&message.TooLargeError{Field: "data", Size: 20, Limit: 10}, 552, smtp.EnhancedCode{5, 3, 4}, "rejected"},
		{&message.TooManyRecipientsError{Field: "recipients", Count: 51, Limit: 50}, 452, smtp.EnhancedCode{4, 5, 3}, "rejected"},
		{&message.BadAddressError{Field: "envelope_from", Role: message.RoleSender, Address: "x", Reason: "bad"}, 553, smtp.EnhancedCode{5, 1, 7}, "rejected"},
		{&message.BadAddressError{Field: "recipients[0]", Role: message.RoleRecipient, Address: "x", Reason: "bad"}, 550, smtp.EnhancedCode{5, 1, 3}, "rejected"},
		{&message.MessageFormatError{Reason: "two From fields"}, 550, smtp.EnhancedCode{5, 6, 0}, "rejected"},
		{&message.ConnectorNotFoundError{ID: "con_x"}, 550, smtp.EnhancedCode{5, 7, 0}, "rejected"},
		{&message.ConnectorPausedError{ConnectorID: "con_x"}, 451, smtp.EnhancedCode{4, 7, 0}, "deferred"},
		{&message.LimitError{Scope: "connector", Period: "hour", Quota: message.Quota{Limit: 5, Reset: now.Add(time.Hour)}}, 451, smtp.EnhancedCode{4, 7, 1}, "deferred"},
		{validate.Field("subject", "must be one line"), 550, smtp.EnhancedCode{5, 6, 0}, "rejected"},
		// A size refusal in words that once matched "at most" is an ordinary field error.
		{validate.Field("data", "at most one From"), 550, smtp.EnhancedCode{5, 6, 0}, "rejected"},
	} {
		r, class := replyFor(fmt.Errorf("wrapped: %w", tc.err), now)
		require.Equal(t, tc.code, r.Code, "%T", tc.err)
		require.Equal(t, tc.enh, r.EnhancedCode, "%T", tc.err)
		require.Equal(t, tc.class, class, "%T", tc.err)
		require.NotContains(t, r.Message, "\n")
	}
}

// TestRelayDatabaseDown: when the message cannot be committed the client hears a temporary
// 451, keeps the message and retries; nothing was accepted that is not stored.
func TestRelayDatabaseDown(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	c := b.session(t)
	c.expectCmd(250, "MAIL FROM:<%s>", sender)
	c.expectCmd(250, "RCPT TO:<a@customer.example>")
	b.pool.Close()
	code, msg := c.data(testMessage(sender, "a@customer.example", "Lost?"))
	require.Equal(t, 451, code)
	require.Equal(t, "4.3.0 Temporary server error, try again later", msg)
	require.Contains(t, b.logs.String(), `"msg":"smtp submission failed"`)
	require.Equal(t, 1.0, metricValue(b.srv.metrics.messages.WithLabelValues("error")))
}

func TestRelayShutdownTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	stuck := b.session(t)
	stuck.expectCmd(250, "MAIL FROM:<%s>", sender)
	stuck.expectCmd(250, "RCPT TO:<a@customer.example>")
	stuck.expectCmd(354, "DATA") // and never ends the message
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := b.srv.Shutdown(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 3*time.Second)
	_ = stuck.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = stuck.conn.Read(make([]byte, 1))
	require.Error(t, err, "the session was closed")
	require.Empty(t, b.messages(t))
}

// TestRelaySlowDrip: a client sending one byte at a time, each well within the timeout, is
// cut off when a whole command line or the whole message has taken the timeout.
func TestRelaySlowDrip(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	b := setup(t, func(c *Config) { c.AllowInsecureAuth = true; c.Timeout = timeout })
	// drip writes script one byte every 250 ms until the server hangs up, and returns the
	// lines it answered and when it hung up, counted from start.
	drip := func(t *testing.T, c *rawClient, script string) ([]string, time.Duration) {
		start := time.Now()
		go func() {
			for i := 0; i < len(script); i++ {
				if _, err := c.conn.Write([]byte{script[i]}); err != nil {
					return
				}
				time.Sleep(250 * time.Millisecond)
			}
		}()
		_ = c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		lines := readLines(t, c.conn)
		return lines, time.Since(start)
	}
	t.Run("CommandLine", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, b.srv.Addr())
		lines, took := drip(t, c, "EHLO client.example.with.a.rather.long.name.that.takes.a.while\r\n")
		require.Less(t, took, timeout+1500*time.Millisecond, "cut off after one timeout, not per byte: %q", lines)
		require.NotEmpty(t, lines)
		require.Regexp(t, `^421 4\.4\.2`, lines[len(lines)-1])
	})
	t.Run("DataPhase", func(t *testing.T) {
		t.Parallel()
		before := len(b.messages(t))
		c := dialRaw(t, b.srv.Addr())
		c.expectCmd(250, "EHLO client.example")
		c.login(b.username, b.password)
		c.expectCmd(250, "MAIL FROM:<%s>", sender)
		c.expectCmd(250, "RCPT TO:<a@customer.example>")
		c.expectCmd(354, "DATA")
		lines, took := drip(t, c, testMessage(sender, "a@customer.example", "Dripped")+".\r\n")
		require.Less(t, took, timeout+1500*time.Millisecond, "the whole DATA phase is bounded: %q", lines)
		require.Contains(t, strings.Join(lines, "\n"), "421 4.4.2")
		require.Len(t, b.messages(t), before, "nothing was stored")
	})
	t.Run("ChunkingPhase", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, b.srv.Addr())
		c.expectCmd(250, "EHLO client.example")
		c.login(b.username, b.password)
		c.expectCmd(250, "MAIL FROM:<%s>", sender)
		c.expectCmd(250, "RCPT TO:<a@customer.example>")
		start := time.Now()
		go func() { // whole BDAT commands of one byte each: every command line is quick
			for i := 0; i < 60; i++ {
				if _, err := c.conn.Write([]byte("BDAT 1\r\nx")); err != nil {
					return
				}
				time.Sleep(250 * time.Millisecond)
			}
		}()
		_ = c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		lines := readLines(t, c.conn)
		require.Less(t, time.Since(start), timeout+1500*time.Millisecond, "the message is bounded across BDAT chunks: %q", lines)
	})
}

// leftovers counts what a submission writes: messages, their events, delivery jobs and
// usage counters. A refused message must change none of them.
func (b *testBundle) leftovers(t *testing.T) [4]int {
	t.Helper()
	var n [4]int
	for i, q := range []string{
		"SELECT count(*) FROM messages", "SELECT count(*) FROM message_events",
		"SELECT count(*) FROM river_job WHERE kind = 'message_deliver'", "SELECT coalesce(sum(count), 0) FROM usage_counters",
	} {
		require.NoError(t, b.pool.QueryRow(context.Background(), q).Scan(&n[i]))
	}
	return n
}

// verifyDomain gives tenantID the domain with send rights.
func (b *testBundle) verifyDomain(t *testing.T, tenantID, name string) {
	t.Helper()
	d, err := b.domains.Create(context.Background(), tenantID, name)
	require.NoError(t, err)
	_, err = b.pool.Exec(context.Background(), "UPDATE sending_domains SET status = 'verified', verified_at = now() WHERE id = $1", d.ID)
	require.NoError(t, err)
}

// TestRelaySenderIdentity: the sender rule applies to every mailbox a message claims to come
// from — each From address, the Sender field — and exactly one From field is accepted;
// an smtp connector's default sender does not cover a domain another tenant verified.
func TestRelaySenderIdentity(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	other, err := tenant.NewService(b.pool).Create(ctx, "Other", nil)
	require.NoError(t, err)
	b.verifyDomain(t, other.ID, "other.example")
	b.verifyDomain(t, b.tenantID, "acme.example")

	header := "To: a@customer.example\r\nSubject: Identity\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <id@acme.example>\r\n"
	for name, tc := range map[string]struct {
		fields string
		code   int
		want   string
	}{
		"TwoFromFields": {"From: Acme <" + sender + ">\r\nFrom: CEO <ceo@other.example>\r\n", 550, "5.6.0 The message must have exactly one From header field, not 2"},
		"NoFromField":   {"", 550, "5.6.0 The message must have exactly one From header field, not 0"},
		"SecondFromMailboxOfOtherTenant": {"From: " + sender + ", ceo@other.example\r\nSender: " + sender + "\r\n", 550,
			"5.7.1 Sender <ceo@other.example> refused: domain other.example is not a sender domain of this account"},
		"SeveralFromMailboxesWithoutSender": {"From: " + sender + ", billing@acme.example\r\n", 550, "5.6.0 A From header field with several addresses needs a Sender header field"},
		"SenderFieldOfOtherTenant": {"From: " + sender + "\r\nSender: ceo@other.example\r\n", 550,
			"5.7.1 Sender <ceo@other.example> refused: domain other.example is not a sender domain of this account"},
		"TwoSenderFields": {"From: " + sender + "\r\nSender: " + sender + "\r\nSender: billing@acme.example\r\n", 550, "5.6.0 The message may have at most one Sender header field, not 2"},
	} {
		t.Run(name, func(t *testing.T) {
			before := b.leftovers(t)
			c := b.session(t)
			c.expectCmd(250, "MAIL FROM:<%s>", sender)
			c.expectCmd(250, "RCPT TO:<a@customer.example>")
			code, msg := c.data(tc.fields + header + "\r\nHello\r\n")
			require.Equal(t, tc.code, code, msg)
			require.True(t, strings.HasPrefix(msg, tc.want), msg)
			require.Equal(t, before, b.leftovers(t), "a refused message leaves nothing behind")
		})
	}
	t.Run("SeveralFromMailboxesAllowed", func(t *testing.T) {
		c := b.session(t)
		c.expectCmd(250, "MAIL FROM:<%s>", sender)
		c.expectCmd(250, "RCPT TO:<a@customer.example>")
		code, msg := c.data("From: " + sender + ", billing@acme.example\r\nSender: " + sender + "\r\n" + header + "\r\nHello\r\n")
		require.Equal(t, 250, code, msg)
	})
	t.Run("EightBitHeaderTextIsStored", func(t *testing.T) {
		// Latin-1 in the header: text PostgreSQL refuses; once a 451 for ever.
		c := b.session(t)
		c.expectCmd(250, "MAIL FROM:<%s>", sender)
		c.expectCmd(250, "RCPT TO:<a@customer.example>")
		code, msg := c.data("From: Mueller <" + sender + ">\r\nTo: a@customer.example\r\nSubject: Gr\xfc\xdfe!\r\nMessage-ID: <a\xff@acme.example>\r\n\r\nHello\r\n")
		require.Equal(t, 250, code, msg)
		var subject string
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT subject FROM messages WHERE id = $1", strings.TrimPrefix(msg, "2.0.0 Ok: queued as ")).Scan(&subject))
		require.Equal(t, "Gr\uFFFDe!", subject)
	})
	t.Run("DefaultSenderAtDomainOfOtherTenant", func(t *testing.T) {
		// An smtp connector whose default sender is at a domain only the other tenant verified.
		_, err := b.connectors.Create(ctx, b.tenantID, connector.Input{
			Name: "spoof", Kind: connector.KindSMTP, Sender: connector.Sender{Email: "ceo@other.example"},
			SMTP: &connector.SMTPInput{Host: "127.0.0.1", Port: 2525, Security: "none"},
		})
		var v *validate.Error
		require.ErrorAs(t, err, &v)
		require.Equal(t, "default_sender.email", v.Fields[0].Field)
		require.Contains(t, v.Fields[0].Message, "another account has verified")

		// One made before the other tenant verified the domain is refused when used.
		spoof, err := b.connectors.Create(ctx, b.tenantID, connector.Input{
			Name: "older", Kind: connector.KindSMTP, Sender: connector.Sender{Email: "ceo@later.example"},
			SMTP: &connector.SMTPInput{Host: "127.0.0.1", Port: 2525, Security: "none"},
		})
		require.NoError(t, err)
		b.verifyDomain(t, other.ID, "later.example")
		cred, password, err := b.creds.Create(ctx, b.tenantID, spoof.ID, "")
		require.NoError(t, err)
		before := b.leftovers(t)
		c := dialRaw(t, b.srv.Addr())
		c.expectCmd(250, "EHLO client.example")
		c.starttls(b.tlsConfig())
		c.login(cred.Username, password)
		msg := c.expectCmd(550, "MAIL FROM:<ceo@later.example>")
		require.True(t, strings.HasPrefix(msg, "5.7.1 Sender <ceo@later.example> refused: ceo@later.example is at later.example, a domain another account has verified"), msg)
		// And in the header, behind an allowed envelope sender.
		c.expectCmd(250, "MAIL FROM:<%s>", sender)
		c.expectCmd(250, "RCPT TO:<a@customer.example>")
		code, msg := c.data("From: ceo@later.example\r\n" + header + "\r\nHello\r\n")
		require.Equal(t, 550, code, msg)
		require.Contains(t, msg, "5.7.1 Sender <ceo@later.example> refused")
		require.Equal(t, before, b.leftovers(t), "a refused message leaves nothing behind")

		// A PATCH to such an address is refused too; the connector's own address still works.
		_, err = b.connectors.Update(ctx, b.tenantID, b.connector.ID, connector.Patch{Sender: &connector.Sender{Email: "noreply@later.example"}})
		require.ErrorAs(t, err, &v)
		require.Equal(t, "default_sender.email", v.Fields[0].Field)
	})
}
