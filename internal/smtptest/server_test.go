package smtptest_test

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/smtptest"
)

const testMessage = "From: a@example.test\r\nTo: b@example.test\r\nSubject: hi\r\n\r\nhello\r\n"

// send runs one transaction over c and returns the DATA reply text.
func send(t *testing.T, c *smtp.Client, from string, to ...string) (string, error) {
	t.Helper()
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	_, err = w.Write([]byte(testMessage))
	require.NoError(t, err)
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return resp.StatusText, nil
}

func dial(t *testing.T, addr string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestServer(t *testing.T) {
	t.Parallel()

	t.Run("RecordsMessagesWithQueueIDReply", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{})
		c := dial(t, srv.Addr())
		var replies []string
		for range 3 {
			text, err := send(t, c, "a@example.test", "b@example.test", "c@example.test")
			require.NoError(t, err)
			replies = append(replies, text)
		}
		msgs := srv.WaitMessages(t, 3, time.Second)
		require.Len(t, msgs, 3)
		require.Equal(t, []string{"b@example.test", "c@example.test"}, msgs[0].To)
		require.Equal(t, testMessage, string(msgs[0].Data))
		require.NotEmpty(t, msgs[2].QueueID)
		require.Equal(t, "2.0.0 Ok: queued as "+msgs[2].QueueID, replies[2])
		require.Equal(t, 1, srv.Connections())
		require.False(t, msgs[0].TLS)
	})

	t.Run("StartTLSAndAuth", func(t *testing.T) {
		t.Parallel()
		ca := smtptest.NewCA(t)
		srv := smtptest.NewServer(t, smtptest.Opts{StartTLS: true, CA: ca, Auth: true, RequireTLSForAuth: true})
		c, err := smtp.DialStartTLS(srv.Addr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		require.NoError(t, c.Auth(sasl.NewLoginClient(smtptest.DefaultUsername, smtptest.DefaultPassword)))
		_, err = send(t, c, "a@example.test", "b@example.test")
		require.NoError(t, err)
		msg := srv.WaitMessages(t, 1, time.Second)[0]
		require.True(t, msg.TLS)
		require.Equal(t, smtptest.DefaultUsername, msg.AuthUser)
	})

	t.Run("WrongPasswordIs535", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{Auth: true})
		c := dial(t, srv.Addr())
		err := c.Auth(sasl.NewPlainClient("", smtptest.DefaultUsername, "wrong"))
		var smtpErr *smtp.SMTPError
		require.ErrorAs(t, err, &smtpErr)
		require.Equal(t, 535, smtpErr.Code)
		require.Equal(t, smtp.EnhancedCode{5, 7, 8}, smtpErr.EnhancedCode)
	})

	t.Run("ScriptRejectsOneRecipient", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{Script: &smtptest.Script{
			RcptFunc: func(to string) *smtp.SMTPError {
				if strings.HasPrefix(to, "unknown@") {
					return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
				}
				return nil
			},
		}})
		c := dial(t, srv.Addr())
		require.NoError(t, c.Mail("a@example.test", nil))
		require.NoError(t, c.Rcpt("b@example.test", nil))
		err := c.Rcpt("unknown@example.test", nil)
		var smtpErr *smtp.SMTPError
		require.ErrorAs(t, err, &smtpErr)
		require.Equal(t, 550, smtpErr.Code)
	})

	t.Run("Script421ClosesConnection", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{Script: &smtptest.Script{
			MailFunc: func(string) *smtp.SMTPError {
				return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "shutting down"}
			},
		}})
		c := dial(t, srv.Addr())
		require.Error(t, c.Mail("a@example.test", nil))
		require.Error(t, c.Noop())
	})

	t.Run("DropAfterEHLO", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{DropAfterEHLO: true})
		c := dial(t, srv.Addr())
		require.NoError(t, c.Hello("client.example.test"))
		require.Error(t, c.Mail("a@example.test", nil))
	})

	t.Run("DropMidData", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{DropMidData: true})
		c := dial(t, srv.Addr())
		_, err := send(t, c, "a@example.test", "b@example.test")
		require.Error(t, err)
		require.Empty(t, srv.Messages())
	})

	t.Run("ImplicitTLS", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{ImplicitTLS: true})
		c, err := smtp.DialTLS(srv.Addr(), &tls.Config{RootCAs: srv.CertPool()})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		_, err = send(t, c, "a@example.test", "b@example.test")
		require.NoError(t, err)
		require.True(t, srv.WaitMessages(t, 1, time.Second)[0].TLS)
	})

	t.Run("SilentListenerNeverGreets", func(t *testing.T) {
		t.Parallel()
		l := smtptest.NewSilentListener(t)
		conn, err := net.Dial("tcp", l.Addr())
		require.NoError(t, err)
		defer conn.Close()
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
		_, err = conn.Read(make([]byte, 1))
		var netErr net.Error
		require.True(t, errors.As(err, &netErr) && netErr.Timeout())
	})

	t.Run("BlackholeConnectTimesOut", func(t *testing.T) {
		t.Parallel()
		addr := smtptest.NewBlackholeAddr(t)
		_, err := net.DialTimeout("tcp", addr, 150*time.Millisecond)
		var netErr net.Error
		require.True(t, errors.As(err, &netErr) && netErr.Timeout(), "got %v", err)
	})
}
