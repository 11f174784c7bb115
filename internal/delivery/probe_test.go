package delivery_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// probe runs Probe and checks that the password never shows.
func probe(t *testing.T, s delivery.Settings) delivery.ProbeResult {
	t.Helper()
	res := delivery.Probe(context.Background(), s)
	requireNoSecret(t, testPassword, res)
	return res
}

// requireFailure checks the failure code, that the failing step is the given one and
// that the message mentions each fragment.
func requireFailure(t *testing.T, res delivery.ProbeResult, code string, step delivery.StepName, fragments ...string) {
	t.Helper()
	require.False(t, res.OK, "%+v", res)
	require.Equal(t, code, res.Code, "message: %s; steps: %v", res.Message, stepStatuses(res))
	require.Equal(t, delivery.StepFailed, stepByName(t, res, step).Status, "%v", stepStatuses(res))
	for _, f := range fragments {
		require.Contains(t, res.Message, f)
	}
}

func TestProbeSucceeds(t *testing.T) {
	t.Parallel()

	t.Run("PlainWithoutAuth", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{})
		res := probe(t, serverSettings(srv, delivery.SecurityNone))
		require.True(t, res.OK, res.Message)
		require.Equal(t, []string{"resolve=ok", "connect=ok", "banner=ok", "ehlo=ok", "tls=skipped", "auth=skipped", "quit=ok"}, stepStatuses(res))
		require.Contains(t, stepByName(t, res, delivery.StepBanner).Detail, "220")
		require.Contains(t, stepByName(t, res, delivery.StepEHLO).Capabilities, "8BITMIME")
		require.Contains(t, stepByName(t, res, delivery.StepEHLO).Capabilities, "SMTPUTF8")
		require.Equal(t, 221, stepByName(t, res, delivery.StepQuit).Reply.Code)
		require.Empty(t, srv.Messages())
	})

	t.Run("StartTLSWithTestCA", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{StartTLS: true, CA: smtptest.NewCA(t)})
		res := probe(t, serverSettings(srv, delivery.SecurityStartTLS))
		require.True(t, res.OK, res.Message)
		tlsStep := stepByName(t, res, delivery.StepTLS)
		require.Equal(t, delivery.StepOK, tlsStep.Status)
		require.True(t, tlsStep.TLS.Verified)
		require.Equal(t, "TLS 1.3", tlsStep.TLS.Version)
		require.NotEmpty(t, tlsStep.TLS.CipherSuite)
		require.Contains(t, tlsStep.TLS.Subject, "smtptest server")
		require.Contains(t, tlsStep.TLS.Issuer, "smtptest CA")
		require.WithinDuration(t, srv.Certificate().NotAfter, tlsStep.TLS.NotAfter, time.Second)
		require.NotContains(t, tlsStep.Capabilities, "STARTTLS")
	})

	t.Run("ImplicitTLSWithTestCA", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{ImplicitTLS: true, CA: smtptest.NewCA(t)})
		res := probe(t, serverSettings(srv, delivery.SecurityTLS))
		require.True(t, res.OK, res.Message)
		require.Equal(t, []string{"resolve=ok", "connect=ok", "tls=ok", "banner=ok", "ehlo=ok", "auth=skipped", "quit=ok"}, stepStatuses(res))
	})

	t.Run("LocalhostResolves", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{StartTLS: true, CA: smtptest.NewCA(t)})
		s := serverSettings(srv, delivery.SecurityStartTLS)
		s.Host = "localhost"
		res := probe(t, s)
		require.True(t, res.OK, res.Message)
		require.Contains(t, stepByName(t, res, delivery.StepResolve).Detail, "127.0.0.1")
	})

	t.Run("SelfSignedWithSkipVerify", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{StartTLS: true})
		s := serverSettings(srv, delivery.SecurityStartTLS)
		s.RootCAs, s.TLSSkipVerify = nil, true
		res := probe(t, s)
		require.True(t, res.OK, res.Message)
		info := stepByName(t, res, delivery.StepTLS).TLS
		require.False(t, info.Verified)
		require.Contains(t, info.VerifyError, "unknown authority")
		require.Contains(t, stepByName(t, res, delivery.StepTLS).Detail, "NOT verified")
	})

	for _, mech := range []delivery.AuthMechanism{delivery.AuthPlain, delivery.AuthLogin, delivery.AuthCRAMMD5} {
		t.Run("AuthOverStartTLS/"+string(mech), func(t *testing.T) {
			t.Parallel()
			srv := smtptest.NewServer(t, smtptest.Opts{StartTLS: true, CA: smtptest.NewCA(t), Auth: true, Users: testUsers(), RequireTLSForAuth: true})
			res := probe(t, withAuth(serverSettings(srv, delivery.SecurityStartTLS), mech))
			require.True(t, res.OK, res.Message)
			auth := stepByName(t, res, delivery.StepAuth)
			require.Equal(t, delivery.StepOK, auth.Status)
			require.Equal(t, 235, auth.Reply.Code)
			require.Equal(t, "2.0.0", auth.Reply.EnhancedCode)
			require.Contains(t, auth.Detail, testUser)
		})
	}
}

func TestProbeFailures(t *testing.T) {
	t.Parallel()

	t.Run("DNSNotFound", func(t *testing.T) {
		t.Parallel()
		s := settingsFor("missing.example.test", 587, delivery.SecurityStartTLS)
		s.Resolver = newDNSResolver(t, dnsmessage.RCodeNameError, false)
		requireFailure(t, probe(t, s), delivery.CodeDNSNotFound, delivery.StepResolve, "missing.example.test", "does not exist")
	})

	t.Run("DNSTimeout", func(t *testing.T) {
		t.Parallel()
		s := settingsFor("slow.example.test", 587, delivery.SecurityStartTLS)
		s.Resolver = newDNSResolver(t, 0, true)
		s.ConnectTimeout = 300 * time.Millisecond
		res := probe(t, s)
		requireFailure(t, res, delivery.CodeDNSTimeout, delivery.StepResolve, "took longer")
		require.Equal(t, []string{"resolve=failed", "connect=skipped", "banner=skipped", "ehlo=skipped", "tls=skipped", "auth=skipped", "quit=skipped"}, stepStatuses(res))
	})

	t.Run("TCPRefused", func(t *testing.T) {
		t.Parallel()
		port := smtptest.ClosedPort(t)
		res := probe(t, settingsFor("127.0.0.1", port, delivery.SecurityStartTLS))
		requireFailure(t, res, delivery.CodeTCPRefused, delivery.StepConnect, "connection refused", strconv.Itoa(port))
	})

	t.Run("TCPTimeout", func(t *testing.T) {
		t.Parallel()
		host, port, err := net.SplitHostPort(smtptest.NewBlackholeAddr(t))
		require.NoError(t, err)
		s := settingsFor(host, mustAtoi(t, port), delivery.SecurityStartTLS)
		s.ConnectTimeout = 300 * time.Millisecond
		requireFailure(t, probe(t, s), delivery.CodeTCPTimeout, delivery.StepConnect, "did not answer", "firewall")
	})

	t.Run("BannerTimeout", func(t *testing.T) {
		t.Parallel()
		l := smtptest.NewSilentListener(t)
		s := settingsFor(l.Host(), l.Port(), delivery.SecurityStartTLS)
		s.CommandTimeout = 300 * time.Millisecond
		requireFailure(t, probe(t, s), delivery.CodeBannerTimeout, delivery.StepBanner, "no SMTP greeting")
	})

	t.Run("StartTLSOnImplicitTLSPort", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{ImplicitTLS: true})
		s := serverSettings(srv, delivery.SecurityStartTLS)
		s.CommandTimeout = 300 * time.Millisecond
		port := strconv.Itoa(srv.Port())
		requireFailure(t, probe(t, s), delivery.CodeBannerTimeout, delivery.StepBanner, "expects implicit TLS", "Choose TLS for port "+port)
	})

	t.Run("ImplicitTLSOnPlainPort", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{StartTLS: true})
		port := strconv.Itoa(srv.Port())
		requireFailure(t, probe(t, serverSettings(srv, delivery.SecurityTLS)), delivery.CodeTLSNotTLS, delivery.StepTLS,
			"port "+port+" answered in plain text", "choose STARTTLS for port "+port)
	})

	t.Run("StartTLSUnsupported", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{})
		requireFailure(t, probe(t, serverSettings(srv, delivery.SecurityStartTLS)), delivery.CodeStartTLSUnsupported, delivery.StepTLS,
			"does not offer STARTTLS", "never falls back")
	})

	t.Run("SelfSignedCertificate", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{StartTLS: true})
		s := serverSettings(srv, delivery.SecurityStartTLS)
		s.RootCAs = nil
		res := probe(t, s)
		requireFailure(t, res, delivery.CodeTLSCertificateInvalid, delivery.StepTLS, "unknown authority")
		info := stepByName(t, res, delivery.StepTLS).TLS
		require.Contains(t, info.Subject, "smtptest self-signed")
		require.False(t, info.Verified)
	})

	t.Run("ExpiredCertificate", func(t *testing.T) {
		t.Parallel()
		ca := smtptest.NewCA(t)
		cert := ca.Issue(t, smtptest.CertOpts{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
		srv := smtptest.NewServer(t, smtptest.Opts{StartTLS: true, CA: ca, Cert: &cert})
		requireFailure(t, probe(t, serverSettings(srv, delivery.SecurityStartTLS)), delivery.CodeTLSCertificateInvalid, delivery.StepTLS, "expired", "renew")
	})

	t.Run("CertificateNameMismatch", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{ImplicitTLS: true, CA: smtptest.NewCA(t)})
		s := serverSettings(srv, delivery.SecurityTLS)
		s.TLSServerName = "mail.example.test"
		requireFailure(t, probe(t, s), delivery.CodeTLSCertificateInvalid, delivery.StepTLS, "name mismatch", "127.0.0.1", "mail.example.test")
	})

	t.Run("WrongPassword", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{StartTLS: true, CA: smtptest.NewCA(t), Auth: true, Users: map[string]string{testUser: "another-password"}})
		res := probe(t, withAuth(serverSettings(srv, delivery.SecurityStartTLS), delivery.AuthPlain))
		requireFailure(t, res, delivery.CodeAuthFailed, delivery.StepAuth, "rejected the user name or password", "535 5.7.8")
		reply := stepByName(t, res, delivery.StepAuth).Reply
		require.Equal(t, 535, reply.Code)
		require.Equal(t, "5.7.8", reply.EnhancedCode)
	})

	t.Run("MechanismNotOffered", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{Auth: true, Users: testUsers(), AuthMechanisms: []string{smtptest.MechPlain, smtptest.MechLogin}})
		requireFailure(t, probe(t, withAuth(serverSettings(srv, delivery.SecurityNone), delivery.AuthCRAMMD5)),
			delivery.CodeAuthMechanismUnsupported, delivery.StepAuth, "does not offer CRAM-MD5", "LOGIN, PLAIN")
	})

	t.Run("AuthRequiresTLS", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{StartTLS: true, Auth: true, Users: testUsers(), RequireTLSForAuth: true})
		requireFailure(t, probe(t, withAuth(serverSettings(srv, delivery.SecurityNone), delivery.AuthPlain)),
			delivery.CodeAuthRequiresTLS, delivery.StepAuth, "Choose STARTTLS")
	})

	t.Run("ClosingAtEHLO421", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{Script: &smtptest.Script{HelloFunc: func(string) *smtp.SMTPError {
			return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "too many connections"}
		}}})
		requireFailure(t, probe(t, serverSettings(srv, delivery.SecurityNone)), delivery.CodeConnectionClosing, delivery.StepEHLO,
			"closing the connection", "421 4.7.0 too many connections")
	})

	t.Run("EHLORejected", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{Script: &smtptest.Script{HelloFunc: func(string) *smtp.SMTPError {
			return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "HELO name not resolvable"}
		}}})
		requireFailure(t, probe(t, serverSettings(srv, delivery.SecurityNone)), delivery.CodeEHLORejected, delivery.StepEHLO,
			"EHLO sendwerk.test", "554 5.7.1 HELO name not resolvable", "set the HELO name")
	})

	t.Run("ConnectionDroppedAfterEHLO", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.NewServer(t, smtptest.Opts{StartTLS: true, DropAfterEHLO: true})
		requireFailure(t, probe(t, serverSettings(srv, delivery.SecurityStartTLS)), delivery.CodeConnectionDropped, delivery.StepTLS, "after STARTTLS")
	})

	t.Run("NotAnSMTPServer", func(t *testing.T) {
		t.Parallel()
		addr := newRawServer(t, func(c net.Conn) {
			_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			time.Sleep(100 * time.Millisecond)
		})
		requireFailure(t, probe(t, settingsFor(addr.IP.String(), addr.Port, delivery.SecurityStartTLS)), delivery.CodeProtocolError, delivery.StepBanner, "does not speak SMTP")
	})

	t.Run("NoBanner", func(t *testing.T) {
		t.Parallel()
		addr := newRawServer(t, func(net.Conn) {})
		requireFailure(t, probe(t, settingsFor(addr.IP.String(), addr.Port, delivery.SecurityStartTLS)), delivery.CodeNoBanner, delivery.StepBanner, "without sending an SMTP greeting")
	})

	t.Run("InvalidSettings", func(t *testing.T) {
		t.Parallel()
		s := settingsFor("", 0, "ssl")
		s.Password = testPassword
		res := probe(t, s)
		require.False(t, res.OK)
		require.Equal(t, delivery.CodeSettingsInvalid, res.Code)
		require.Contains(t, res.Message, "port must be between")
	})
}

func TestProbeHonoursCancellation(t *testing.T) {
	t.Parallel()
	l := smtptest.NewSilentListener(t)
	s := settingsFor(l.Host(), l.Port(), delivery.SecurityStartTLS)
	s.CommandTimeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := delivery.Probe(ctx, s)
	require.False(t, res.OK)
	require.Less(t, time.Since(start), 5*time.Second)
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}
