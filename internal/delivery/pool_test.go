package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// testMessage renders a small message with CRLF line ends, as submission stores it.
func testMessage(subject string) []byte {
	return []byte("From: Sender <sender@example.test>\r\n" +
		"To: rcpt@example.test\r\n" +
		"Subject: " + subject + "\r\n" +
		"Message-ID: <" + subject + "@example.test>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" +
		"Hello,\r\n.leading dot survives dot-stuffing\r\n")
}

// testEnvelope has a Bcc-style recipient that is not in the headers.
func testEnvelope() delivery.Envelope {
	return delivery.Envelope{From: "bounce@example.test", To: []string{"rcpt@example.test", "hidden@example.test"}}
}

type poolBundle struct {
	srv  *smtptest.Server
	pool *delivery.Pool
}

// setupPool starts a server with opts and a pool for it, closed at cleanup.
func setupPool(t *testing.T, opts smtptest.Opts, sec delivery.Security, mech delivery.AuthMechanism, cfg *delivery.PoolConfig) *poolBundle {
	t.Helper()
	if opts.Auth && opts.Users == nil {
		opts.Users = testUsers()
	}
	srv := smtptest.NewServer(t, opts)
	s := serverSettings(srv, sec)
	if mech != delivery.AuthNone {
		s = withAuth(s, mech)
	}
	pool, err := delivery.NewPool(s, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = pool.Close() })
	return &poolBundle{srv: srv, pool: pool}
}

func TestPoolSend(t *testing.T) {
	t.Parallel()

	t.Run("BytesAndEnvelopeGoOutUnchanged", func(t *testing.T) {
		t.Parallel()
		b := setupPool(t, smtptest.Opts{}, delivery.SecurityNone, delivery.AuthNone, nil)
		raw := testMessage("unchanged")
		res, err := b.pool.Send(context.Background(), testEnvelope(), raw)
		require.NoError(t, err)
		msg := b.srv.WaitMessages(t, 1, time.Second)[0]
		require.Equal(t, string(raw), string(msg.Data))
		require.Equal(t, "bounce@example.test", msg.From)
		require.Equal(t, []string{"rcpt@example.test", "hidden@example.test"}, msg.To)
		require.Equal(t, "sendwerk.test", msg.HELO)
		require.Equal(t, delivery.Reply{Code: 250, EnhancedCode: "2.0.0", Text: "Ok: queued as " + msg.QueueID}, res.Reply)
		require.Equal(t, msg.QueueID, res.QueueID)
		require.Equal(t, b.srv.Addr(), res.Host)
		require.Equal(t, b.srv.Addr(), res.RemoteAddr)
		require.Len(t, res.Recipients, 2)
		require.True(t, res.Recipients[0].Accepted && res.Recipients[1].Accepted)
		require.False(t, res.Reused)
		require.Equal(t, delivery.ClassDelivered, delivery.Classify(err).Class)
	})

	t.Run("SMTPUTF8And8BitMIME", func(t *testing.T) {
		t.Parallel()
		b := setupPool(t, smtptest.Opts{}, delivery.SecurityNone, delivery.AuthNone, nil)
		raw := []byte("From: jürgen@example.test\r\nTo: zoë@example.test\r\nSubject: Grüße\r\n\r\nÄÖÜ\r\n")
		_, err := b.pool.Send(context.Background(), delivery.Envelope{From: "jürgen@example.test", To: []string{"zoë@example.test"}}, raw)
		require.NoError(t, err)
		msg := b.srv.WaitMessages(t, 1, time.Second)[0]
		require.True(t, msg.UTF8)
		require.Equal(t, smtp.Body8BitMIME, msg.Body)
		require.Equal(t, string(raw), string(msg.Data))
	})

	t.Run("NoSMTPUTF8ForASCIIMail", func(t *testing.T) {
		t.Parallel()
		b := setupPool(t, smtptest.Opts{}, delivery.SecurityNone, delivery.AuthNone, nil)
		raw := []byte("From: sender@example.test\r\nTo: rcpt@example.test\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nÄÖÜ in the body needs 8BITMIME only\r\n")
		_, err := b.pool.Send(context.Background(), testEnvelope(), raw)
		require.NoError(t, err)
		msg := b.srv.WaitMessages(t, 1, time.Second)[0]
		require.False(t, msg.UTF8)
		require.Equal(t, smtp.Body8BitMIME, msg.Body)
	})

	t.Run("SMTPUTF8ForUTF8HeaderOnly", func(t *testing.T) {
		t.Parallel()
		b := setupPool(t, smtptest.Opts{}, delivery.SecurityNone, delivery.AuthNone, nil)
		_, err := b.pool.Send(context.Background(), testEnvelope(), []byte("From: Jürgen <sender@example.test>\r\nTo: rcpt@example.test\r\n\r\nhi\r\n"))
		require.NoError(t, err)
		require.True(t, b.srv.WaitMessages(t, 1, time.Second)[0].UTF8)
	})

	for _, mech := range []delivery.AuthMechanism{delivery.AuthPlain, delivery.AuthLogin, delivery.AuthCRAMMD5} {
		t.Run("StartTLSAuth/"+string(mech), func(t *testing.T) {
			t.Parallel()
			b := setupPool(t, smtptest.Opts{StartTLS: true, CA: smtptest.NewCA(t), Auth: true, RequireTLSForAuth: true, RequireAuth: true},
				delivery.SecurityStartTLS, mech, nil)
			res, err := b.pool.Send(context.Background(), testEnvelope(), testMessage("auth"))
			require.NoError(t, err)
			require.True(t, res.TLS)
			msg := b.srv.WaitMessages(t, 1, time.Second)[0]
			require.True(t, msg.TLS)
			require.Equal(t, testUser, msg.AuthUser)
		})
	}

	t.Run("ImplicitTLSAuth", func(t *testing.T) {
		t.Parallel()
		b := setupPool(t, smtptest.Opts{ImplicitTLS: true, CA: smtptest.NewCA(t), Auth: true, RequireTLSForAuth: true, RequireAuth: true},
			delivery.SecurityTLS, delivery.AuthPlain, nil)
		res, err := b.pool.Send(context.Background(), testEnvelope(), testMessage("implicit"))
		require.NoError(t, err)
		require.True(t, res.TLS)
		require.Equal(t, testUser, b.srv.WaitMessages(t, 1, time.Second)[0].AuthUser)
	})

	t.Run("SequentialMessagesShareOneConnection", func(t *testing.T) {
		t.Parallel()
		b := setupPool(t, smtptest.Opts{StartTLS: true, CA: smtptest.NewCA(t), Auth: true}, delivery.SecurityStartTLS, delivery.AuthPlain, nil)
		for i := range 100 {
			res, err := b.pool.Send(context.Background(), testEnvelope(), testMessage(fmt.Sprint("seq", i)))
			require.NoError(t, err)
			require.Equal(t, i > 0, res.Reused)
		}
		require.Len(t, b.srv.Messages(), 100)
		require.Equal(t, 1, b.srv.Connections())
		require.Equal(t, delivery.PoolStats{Idle: 1}, b.pool.Stats())
	})

	t.Run("ConcurrentSendsStayWithinMaxConns", func(t *testing.T) {
		t.Parallel()
		b := setupPool(t, smtptest.Opts{Delay: 2 * time.Millisecond}, delivery.SecurityNone, delivery.AuthNone, &delivery.PoolConfig{MaxConns: 3})
		var wg sync.WaitGroup
		var failed atomic.Int64
		for i := range 60 {
			wg.Go(func() {
				if _, err := b.pool.Send(context.Background(), testEnvelope(), testMessage(fmt.Sprint("par", i))); err != nil {
					failed.Add(1)
				}
			})
		}
		wg.Wait()
		require.Zero(t, failed.Load())
		require.Len(t, b.srv.Messages(), 60)
		require.LessOrEqual(t, b.srv.Connections(), 3)
		require.Greater(t, b.srv.Connections(), 1, "sends should have overlapped")
	})

	t.Run("MaxMessagesPerConnRetiresConnections", func(t *testing.T) {
		t.Parallel()
		b := setupPool(t, smtptest.Opts{}, delivery.SecurityNone, delivery.AuthNone, &delivery.PoolConfig{MaxMessagesPerConn: 10})
		for i := range 25 {
			_, err := b.pool.Send(context.Background(), testEnvelope(), testMessage(fmt.Sprint("max", i)))
			require.NoError(t, err)
		}
		require.Equal(t, 3, b.srv.Connections())
	})

	t.Run("IdleConnectionsClose", func(t *testing.T) {
		t.Parallel()
		b := setupPool(t, smtptest.Opts{}, delivery.SecurityNone, delivery.AuthNone, &delivery.PoolConfig{IdleTimeout: 50 * time.Millisecond})
		_, err := b.pool.Send(context.Background(), testEnvelope(), testMessage("idle1"))
		require.NoError(t, err)
		require.Eventually(t, func() bool { return b.pool.Stats().Idle == 0 }, 2*time.Second, 10*time.Millisecond)
		res, err := b.pool.Send(context.Background(), testEnvelope(), testMessage("idle2"))
		require.NoError(t, err)
		require.False(t, res.Reused)
		require.Equal(t, 2, b.srv.Connections())
	})

	t.Run("StaleConnectionIsRedialled", func(t *testing.T) {
		t.Parallel()
		var mails atomic.Int64
		b := setupPool(t, smtptest.Opts{Script: &smtptest.Script{MailFunc: func(string) *smtp.SMTPError {
			if mails.Add(1) == 2 {
				return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "idle timeout, closing"}
			}
			return nil
		}}}, delivery.SecurityNone, delivery.AuthNone, nil)
		for i := range 2 {
			_, err := b.pool.Send(context.Background(), testEnvelope(), testMessage(fmt.Sprint("stale", i)))
			require.NoError(t, err)
		}
		require.Len(t, b.srv.Messages(), 2)
		require.Equal(t, 2, b.srv.Connections())
	})

	t.Run("RejectedRecipientKeepsConnection", func(t *testing.T) {
		t.Parallel()
		b := setupPool(t, smtptest.Opts{Script: &smtptest.Script{RcptFunc: rejectUnknown}}, delivery.SecurityNone, delivery.AuthNone, nil)
		env := delivery.Envelope{From: "bounce@example.test", To: []string{"rcpt@example.test", "unknown@example.test"}}
		_, err := b.pool.Send(context.Background(), env, testMessage("partial"))
		require.Error(t, err)
		_, err = b.pool.Send(context.Background(), testEnvelope(), testMessage("next"))
		require.NoError(t, err)
		require.Len(t, b.srv.Messages(), 1)
		require.Equal(t, 1, b.srv.Connections())
	})

	t.Run("ClosedPoolRefusesSends", func(t *testing.T) {
		t.Parallel()
		b := setupPool(t, smtptest.Opts{}, delivery.SecurityNone, delivery.AuthNone, nil)
		_, err := b.pool.Send(context.Background(), testEnvelope(), testMessage("before"))
		require.NoError(t, err)
		require.NoError(t, b.pool.Close())
		_, err = b.pool.Send(context.Background(), testEnvelope(), testMessage("after"))
		require.Equal(t, delivery.CodePoolClosed, delivery.Classify(err).Code)
		require.Equal(t, delivery.PoolStats{}, b.pool.Stats())
	})

	t.Run("CancelledWhileWaitingForAConnection", func(t *testing.T) {
		t.Parallel()
		b := setupPool(t, smtptest.Opts{Delay: 300 * time.Millisecond}, delivery.SecurityNone, delivery.AuthNone, &delivery.PoolConfig{MaxConns: 1})
		go func() { _, _ = b.pool.Send(context.Background(), testEnvelope(), testMessage("slow")) }()
		require.Eventually(t, func() bool { return b.pool.Stats().Busy == 1 }, time.Second, time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := b.pool.Send(ctx, testEnvelope(), testMessage("waiting"))
		require.True(t, delivery.IsTemporary(err))
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})

	t.Run("InvalidEnvelopeIsPermanent", func(t *testing.T) {
		t.Parallel()
		b := setupPool(t, smtptest.Opts{}, delivery.SecurityNone, delivery.AuthNone, nil)
		_, err := b.pool.Send(context.Background(), delivery.Envelope{From: "a@example.test"}, testMessage("none"))
		require.True(t, delivery.IsPermanent(err))
		_, err = b.pool.Send(context.Background(), delivery.Envelope{From: "a@example.test\r\nRCPT TO:<x@y>", To: []string{"b@example.test"}}, testMessage("inject"))
		require.Equal(t, delivery.CodeInvalidMessage, delivery.Classify(err).Code)
		require.Zero(t, b.srv.Connections())
	})
}

// rejectUnknown rejects recipients whose local part is "unknown".
func rejectUnknown(to string) *smtp.SMTPError {
	if strings.HasPrefix(to, "unknown@") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "unknown@example.test: no such user"}
	}
	return nil
}

func TestNewPoolRejectsInvalidSettings(t *testing.T) {
	t.Parallel()
	s := settingsFor("smtp.example.test", 587, delivery.SecurityStartTLS)
	s.AuthMechanism, s.Username, s.Password = delivery.AuthPlain, testUser, ""
	_, err := delivery.NewPool(s, nil)
	require.ErrorContains(t, err, "username and password are required")
	s.Password = testPassword
	s.Security = "ssl"
	_, err = delivery.NewPool(s, nil)
	require.ErrorContains(t, err, "security must be")
	require.False(t, errors.Is(err, context.Canceled))
	requireNoSecret(t, testPassword, err)
}

func BenchmarkPoolSend(b *testing.B) {
	srv := smtptest.NewServer(b, smtptest.Opts{})
	pool, err := delivery.NewPool(serverSettings(srv, delivery.SecurityNone), nil)
	require.NoError(b, err)
	defer pool.Close()
	raw := append(testMessage("bench"), []byte(strings.Repeat("x", 1024-len(testMessage("bench"))-2)+"\r\n")...)
	env := testEnvelope()
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := pool.Send(context.Background(), env, raw); err != nil {
			b.Fatal(err)
		}
	}
}
