package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"
	"github.com/wneessen/go-mail"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
	"github.com/sendwerk/sendwerk/internal/config"
	"github.com/sendwerk/sendwerk/internal/dnstest"
	"github.com/sendwerk/sendwerk/internal/postfixtest"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// relayHostname is the relay's SENDWERK_SMTP_HOSTNAME in these tests; the generated
// development certificate carries it.
const relayHostname = "relay.sendwerk.test"

// relayBundle is a server with its SMTP relay host on loopback and a relay credential for
// the tenant's connector.
type relayBundle struct {
	*sendBundle
	cred  *sendwerk.RelayCredentialCreated
	roots *x509.CertPool
}

// relayEnv turns the relay host on (it is off in setup) with a data dir of the test's own,
// where the development certificate is generated.
func relayEnv(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{
		"SENDWERK_SMTP_ADDR": "127.0.0.1:0", "SENDWERK_SMTPS_ADDR": "127.0.0.1:0",
		"SENDWERK_DATA_DIR": t.TempDir(), "SENDWERK_SMTP_HOSTNAME": relayHostname,
	}
	for k, v := range env {
		out[k] = v
	}
	return out
}

// withRelay creates a relay credential for s's connector and trusts the relay's certificate.
func withRelay(t *testing.T, s *sendBundle, dataDir string) *relayBundle {
	t.Helper()
	r, err := s.c.CreateRelayCredentialWithResponse(context.Background(), s.connector, sendwerk.RelayCredentialCreate{Name: ptr("erp")})
	require.NoError(t, err)
	require.Equal(t, 201, r.StatusCode(), string(r.Body))
	pemBytes, err := os.ReadFile(filepath.Join(dataDir, "tls", "cert.pem"))
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(pemBytes))
	return &relayBundle{sendBundle: s, cred: r.JSON201, roots: roots}
}

func setupRelayE2E(t *testing.T, env map[string]string) *relayBundle {
	t.Helper()
	env = relayEnv(t, env)
	return withRelay(t, setupSend(t, env, smtptest.Opts{}, nil), env["SENDWERK_DATA_DIR"])
}

// goMail is go-mail set up the way a mail server's relay-host form is filled in.
func (r *relayBundle) goMail(t *testing.T, implicitTLS bool, password string) *mail.Client {
	t.Helper()
	port, auth := r.cred.RelayHost.StarttlsPort, mail.SMTPAuthPlain
	opts := []mail.Option{mail.WithTLSPolicy(mail.TLSMandatory)}
	if implicitTLS {
		port, auth = r.cred.RelayHost.TlsPort, mail.SMTPAuthLogin
		opts = []mail.Option{mail.WithSSL()}
	}
	require.NotNil(t, port)
	c, err := mail.NewClient("127.0.0.1", append(opts, mail.WithPort(*port), mail.WithSMTPAuth(auth),
		mail.WithUsername(r.cred.Username), mail.WithPassword(password), mail.WithHELO("erp.acme.example"),
		mail.WithTimeout(10*time.Second), mail.WithTLSConfig(&tls.Config{RootCAs: r.roots, ServerName: r.cred.RelayHost.Host}))...)
	require.NoError(t, err)
	return c
}

func relayMessage(t *testing.T, from, subject string, to ...string) *mail.Msg {
	t.Helper()
	m := mail.NewMsg()
	require.NoError(t, m.FromFormat("Acme ERP", from))
	require.NoError(t, m.To(to...))
	m.Subject(subject)
	m.SetMessageIDWithValue(strings.ReplaceAll(strings.ToLower(subject), " ", "-") + "@erp.acme.example")
	m.SetBodyString(mail.TypeTextPlain, "Invoice 2025-0042 is attached.\nKind regards, the ERP")
	return m
}

// messageBySubject finds a message of the log by subject.
func (s *sendBundle) messageBySubject(t *testing.T, subject string) sendwerk.Message {
	t.Helper()
	l, err := s.c.ListMessagesWithResponse(context.Background(), &sendwerk.ListMessagesParams{Limit: ptr(100)})
	require.NoError(t, err)
	require.Equal(t, 200, l.StatusCode(), string(l.Body))
	for _, m := range l.JSON200.Items {
		if m.Subject == subject {
			return m
		}
	}
	t.Fatalf("no message %q in the log", subject)
	return sendwerk.Message{}
}

func TestRelayHost(t *testing.T) {
	t.Parallel()
	r := setupRelayE2E(t, nil)
	ctx := context.Background()

	require.Regexp(t, `^sw-[a-z2-9]{12}$`, r.cred.Username)
	require.Len(t, r.cred.Password, 32)
	require.Equal(t, relayHostname, r.cred.RelayHost.Host)
	require.Equal(t, sendwerk.RelayCredentialCreatedStatusActive, r.cred.Status)
	require.NotEmpty(t, r.smtpAddr)
	require.Equal(t, r.smtpAddr, net.JoinHostPort("127.0.0.1", strconv.Itoa(*r.cred.RelayHost.StarttlsPort)))
	require.Equal(t, r.smtpsAddr, net.JoinHostPort("127.0.0.1", strconv.Itoa(*r.cred.RelayHost.TlsPort)))

	t.Run("StartTLSDeliveredAndLogged", func(t *testing.T) {
		require.NoError(t, r.goMail(t, false, r.cred.Password).DialAndSend(relayMessage(t, "noreply@acme.example", "Invoice 42", "jane@customer.example")))
		logged := r.messageBySubject(t, "Invoice 42")
		require.Equal(t, sendwerk.MessageSourceSmtp, logged.Source)
		require.Equal(t, "<invoice-42@erp.acme.example>", logged.MessageId, "the client's Message-ID is kept")
		got := r.waitStatus(t, logged.Id, sendwerk.MessageStatusDelivered, 15*time.Second)
		require.Equal(t, []string{"jane@customer.example"}, got.Recipients)
		require.Equal(t, "smtp", got.Events[0].Data["source"])

		up := r.up.WaitMessages(t, 1, 5*time.Second)[0]
		require.Equal(t, "noreply@acme.example", up.From)
		data := string(up.Data)
		require.True(t, strings.HasPrefix(data, "Received: from erp.acme.example ([127.0.0.1])\r\n\tby "+relayHostname+" (Sendwerk) with ESMTPSA (TLS"), data)
		require.Contains(t, data, "\tid "+logged.Id+"\r\n\tfor <jane@customer.example>; ")
		require.Contains(t, data, "Message-ID: <invoice-42@erp.acme.example>")
		require.Contains(t, data, "User-Agent: go-mail", "the client's MIME is delivered as sent")
		require.Contains(t, data, "Invoice 2025-0042 is attached.")
	})
	t.Run("ImplicitTLSWithLogin", func(t *testing.T) {
		require.NoError(t, r.goMail(t, true, r.cred.Password).DialAndSend(relayMessage(t, "noreply@acme.example", "Invoice 43", "john@customer.example")))
		logged := r.messageBySubject(t, "Invoice 43")
		r.waitStatus(t, logged.Id, sendwerk.MessageStatusDelivered, 15*time.Second)
	})
	t.Run("UnverifiedSender", func(t *testing.T) {
		err := r.goMail(t, false, r.cred.Password).DialAndSend(relayMessage(t, "ceo@other.example", "Spoof", "jane@customer.example"))
		var se *mail.SendError
		require.True(t, errors.As(err, &se), "%v", err)
		require.Equal(t, 550, se.ErrorCode())
		require.Equal(t, "5.7.1", se.EnhancedStatusCode())
		require.Contains(t, err.Error(), "other.example is not a sender domain")
	})
	t.Run("CredentialsListedWithoutSecrets", func(t *testing.T) {
		raw := r.do(t, "GET", "/v1/connectors/"+r.connector+"/relay-credentials", r.key, "", "")
		require.Equal(t, 200, raw.status, string(raw.body))
		require.NotContains(t, string(raw.body), r.cred.Password)
		require.NotContains(t, string(raw.body), "password")
		l, err := r.c.ListRelayCredentialsWithResponse(ctx, r.connector, nil)
		require.NoError(t, err)
		require.Len(t, l.JSON200.Items, 1)
		require.Equal(t, r.cred.Username, l.JSON200.Items[0].Username)
		require.Equal(t, "erp", l.JSON200.Items[0].Name)
		require.True(t, l.JSON200.Items[0].LastUsedAt.IsSpecified() && !l.JSON200.Items[0].LastUsedAt.IsNull(), "logins are recorded")
	})
	t.Run("ScopesAndIsolation", func(t *testing.T) {
		_, _, readKey := r.newTenantKey(t, "Reader", sendwerk.ScopeRead)
		other := r.client(t, readKey)
		l, err := other.ListRelayCredentialsWithResponse(ctx, r.connector, nil)
		require.NoError(t, err)
		require.Equal(t, 404, l.StatusCode(), "another tenant's connector does not exist for it")
		rv, err := other.RevokeRelayCredentialWithResponse(ctx, r.connector, r.cred.Id)
		require.NoError(t, err)
		require.Equal(t, 403, rv.StatusCode(), "a read key may not revoke")

		kr, err := r.admin.CreateTenantApiKeyWithResponse(ctx, r.tenantOf(t), sendwerk.ApiKeyCreate{Name: "reader", Scopes: []sendwerk.Scope{sendwerk.ScopeRead}})
		require.NoError(t, err)
		reader := r.client(t, kr.JSON201.Secret)
		l, err = reader.ListRelayCredentialsWithResponse(ctx, r.connector, nil)
		require.NoError(t, err)
		require.Equal(t, 200, l.StatusCode(), "read lists")
		cr, err := reader.CreateRelayCredentialWithResponse(ctx, r.connector, sendwerk.RelayCredentialCreate{})
		require.NoError(t, err)
		require.Equal(t, 403, cr.StatusCode(), "creating needs manage")

		c, err := r.c.CreateRelayCredentialWithResponse(ctx, "con_06h08583y1r596y07grz39yhqm", sendwerk.RelayCredentialCreate{})
		require.NoError(t, err)
		require.Equal(t, 404, c.StatusCode(), string(c.Body))
		bad := r.do(t, "POST", "/v1/connectors/"+r.connector+"/relay-credentials", r.key, "application/json", `{"name":"`+strings.Repeat("x", 101)+`"}`)
		require.Equal(t, 422, bad.status, string(bad.body))
		require.Contains(t, fieldsOf(bad.problem), "name")
		noBody := r.do(t, "POST", "/v1/connectors/"+r.connector+"/relay-credentials", r.key, "", "")
		require.Equal(t, 201, noBody.status, "the body is optional: %s", noBody.body)
	})
	t.Run("RevokedCredentialFails", func(t *testing.T) {
		rv, err := r.c.RevokeRelayCredentialWithResponse(ctx, r.connector, r.cred.Id)
		require.NoError(t, err)
		require.Equal(t, 200, rv.StatusCode(), string(rv.Body))
		require.Equal(t, sendwerk.RelayCredentialStatusRevoked, rv.JSON200.Status)
		err = r.goMail(t, false, r.cred.Password).DialAndSend(relayMessage(t, "noreply@acme.example", "After revoke", "jane@customer.example"))
		require.ErrorContains(t, err, "535")
		nf, err := r.c.RevokeRelayCredentialWithResponse(ctx, r.connector, "rel_06h08583y1r596y07grz39yhqm")
		require.NoError(t, err)
		require.Equal(t, 404, nf.StatusCode())
	})
	t.Run("Metrics", func(t *testing.T) {
		m := r.do(t, "GET", "/metrics", "", "", "")
		require.Contains(t, string(m.body), `sendwerk_smtp_messages_total{result="accepted"} 2`)
		require.Contains(t, string(m.body), `sendwerk_smtp_auth_total{result="revoked"} 1`)
	})
	logs := r.logs.String()
	require.Contains(t, logs, `"msg":"smtp message accepted"`)
	require.NotContains(t, logs, r.cred.Password, "relay passwords never reach the log")
	require.NotContains(t, logs, "Invoice 2025-0042", "message bodies never reach the log")
}

// verifiedPlatform is a server whose tenant has a platform connector and the verified
// domain acme.example (DKIM key published in a test zone), with the relay host on.
type verifiedPlatform struct {
	*relayBundle
	zone *dnstest.Server
}

func setupVerifiedPlatform(t *testing.T) *verifiedPlatform {
	t.Helper()
	up := smtptest.NewServer(t, smtptest.Opts{})
	zone := dnstest.NewServer(t, "$ORIGIN example.\n@ 3600 IN SOA ns.example. hostmaster.example. 1 3600 600 86400 60\n")
	env := relayEnv(t, map[string]string{
		"SENDWERK_DNS_SERVERS":             zone.Addr(),
		"SENDWERK_PLATFORM_SMTP_URL":       fmt.Sprintf("smtp://%s:%d", up.Host(), up.Port()),
		"SENDWERK_SPF_INCLUDE":             "_spf.sendwerk.example",
		"SENDWERK_DELIVERY_RETRY_SCHEDULE": "1s,1s",
	})
	b := setup(t, env)
	ctx := context.Background()
	_, _, key := b.newTenantKey(t, "Acme", sendwerk.ScopeManage, sendwerk.ScopeMessagesSend)
	c := b.client(t, key)
	conn, err := c.CreateConnectorWithResponse(ctx, sendwerk.ConnectorCreate{Name: "platform", Kind: sendwerk.ConnectorKindPlatform, DefaultSender: sendwerk.Sender{Email: "noreply@acme.example"}})
	require.NoError(t, err)
	require.Equal(t, 201, conn.StatusCode(), string(conn.Body))
	d, err := c.CreateDomainWithResponse(ctx, sendwerk.DomainCreate{Domain: "acme.example"})
	require.NoError(t, err)
	require.Equal(t, 201, d.StatusCode(), string(d.Body))
	zoneText := b.do(t, "GET", "/v1/domains/"+d.JSON201.Id+"/records?format=zone", key, "", "")
	require.Equal(t, 200, zoneText.status, string(zoneText.body))
	zone.SetZone("$ORIGIN example.\n@ 3600 IN SOA ns.example. hostmaster.example. 1 3600 600 86400 60\n" +
		"_spf.sendwerk 3600 IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n" + string(zoneText.body))
	chk, err := c.CheckDomainWithResponse(ctx, d.JSON201.Id)
	require.NoError(t, err)
	require.Equal(t, "verified", string(chk.JSON200.Domain.Status), string(chk.Body))
	s := &sendBundle{testBundle: b, up: up, key: key, c: c, connector: conn.JSON201.Id}
	return &verifiedPlatform{relayBundle: withRelay(t, s, env["SENDWERK_DATA_DIR"]), zone: zone}
}

// requireDKIM verifies the delivered bytes' signature against the test zone.
func (v *verifiedPlatform) requireDKIM(t *testing.T, raw []byte) {
	t.Helper()
	require.True(t, bytes.HasPrefix(raw, []byte("DKIM-Signature:")), "the signature is the first header")
	verifications, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		return lookupTXT(t, v.zone.Addr(), name)
	}})
	require.NoError(t, err)
	require.Len(t, verifications, 1)
	require.NoError(t, verifications[0].Err)
	require.Equal(t, "acme.example", verifications[0].Domain)
}

func TestRelayDKIMSignedFromVerifiedDomain(t *testing.T) {
	t.Parallel()
	v := setupVerifiedPlatform(t)
	require.NoError(t, v.goMail(t, false, v.cred.Password).DialAndSend(relayMessage(t, "billing@acme.example", "Signed", "jane@customer.example")))
	logged := v.messageBySubject(t, "Signed")
	v.waitStatus(t, logged.Id, sendwerk.MessageStatusDelivered, 15*time.Second)
	raw := v.up.WaitMessages(t, 1, 5*time.Second)[0].Data
	v.requireDKIM(t, raw)
	require.Contains(t, string(raw), "\r\nReceived: from erp.acme.example ([127.0.0.1])\r\n\tby "+relayHostname)

	// The platform connector sends only from verified domains: the default-sender
	// exception of smtp connectors does not apply.
	err := v.goMail(t, false, v.cred.Password).DialAndSend(relayMessage(t, "ceo@acme-corp.example", "Refused", "jane@customer.example"))
	require.ErrorContains(t, err, "MAIL FROM command: 550")
	require.ErrorContains(t, err, "5.7.1 Sender <ceo@acme-corp.example> refused: domain acme-corp.example is not a sender domain of this account")
}

// TestRelaySwaks drives the relay with swaks, an SMTP client nobody here wrote.
func TestRelaySwaks(t *testing.T) {
	t.Parallel()
	_, err := exec.LookPath("swaks")
	require.NoError(t, err, "swaks is needed (make setup installs it)")
	r := setupRelayE2E(t, nil)
	swaks := func(args ...string) (string, error) {
		cmd := exec.Command("swaks", append([]string{"--server", "127.0.0.1", "--from", "noreply@acme.example", "--to", "jane@customer.example",
			"--auth-user", r.cred.Username, "--helo", "printer.acme.example"}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	port := func(p *int) string { return strconv.Itoa(*p) }

	out, err := swaks("--port", port(r.cred.RelayHost.StarttlsPort), "--tls", "--auth", "PLAIN", "--auth-password", r.cred.Password, "--header", "Subject: swaks starttls")
	require.NoError(t, err, out)
	require.Contains(t, out, "<-  220 2.0.0 Ready to start TLS")
	require.Regexp(t, `<~  250 2\.0\.0 Ok: queued as msg_[0-9a-z]{26}`, out)

	out, err = swaks("--port", port(r.cred.RelayHost.TlsPort), "--tlsc", "--auth", "LOGIN", "--auth-password", r.cred.Password, "--header", "Subject: swaks smtps")
	require.NoError(t, err, out)
	require.Contains(t, out, "<~  235 2.0.0 Authentication succeeded")

	out, err = swaks("--port", port(r.cred.RelayHost.StarttlsPort), "--tls", "--auth", "PLAIN", "--auth-password", "not-the-password")
	require.Error(t, err)
	require.Contains(t, out, "<~* 535 5.7.8 Authentication credentials invalid")

	out, err = swaks("--port", port(r.cred.RelayHost.StarttlsPort), "--auth", "PLAIN", "--auth-password", r.cred.Password)
	require.Error(t, err, "no AUTH without TLS")
	require.Contains(t, out, "Host did not advertise authentication")

	for _, subject := range []string{"swaks starttls", "swaks smtps"} {
		logged := r.messageBySubject(t, subject)
		require.Equal(t, sendwerk.MessageSourceSmtp, logged.Source)
		r.waitStatus(t, logged.Id, sendwerk.MessageStatusDelivered, 15*time.Second)
	}
	require.Len(t, r.up.Messages(), 2)
}

// TestRelayPostfixRelayhost makes Debian's Postfix use Sendwerk as its relayhost with SASL
// and TLS: a message handed to Postfix's sendmail arrives at the upstream DKIM-signed and
// is in the message log.
func TestRelayPostfixRelayhost(t *testing.T) {
	t.Parallel()
	v := setupVerifiedPlatform(t)
	pf := postfixtest.Start(t, postfixtest.Opts{RelayHost: v.smtpAddr, RelayHostTLS: true, RelayHostUser: v.cred.Username, RelayHostPassword: v.cred.Password})
	msg := "From: Acme Billing <billing@acme.example>\nTo: jane@customer.example\nSubject: From Postfix\n\nYour invoice is ready.\n"
	pf.Sendmail(t, "billing@acme.example", []string{"jane@customer.example"}, []byte(msg))

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("postfix log:\n%s\nsendwerk log:\n%s", pf.Log(), v.logs.String())
		}
	})
	got := v.up.WaitMessages(t, 1, 60*time.Second)[0]
	require.Equal(t, []string{"jane@customer.example"}, got.To)
	v.requireDKIM(t, got.Data)
	data := string(got.Data)
	require.Contains(t, data, "Received: from "+postfixtest.Domain+" ([127.0.0.1])\r\n\tby "+relayHostname+" (Sendwerk) with ESMTPSA (TLS")
	require.Contains(t, data, "(Postfix", "Postfix's own Received line is kept below ours")
	logged := v.messageBySubject(t, "From Postfix")
	require.Equal(t, sendwerk.MessageSourceSmtp, logged.Source)
	v.waitStatus(t, logged.Id, sendwerk.MessageStatusDelivered, 15*time.Second)
	require.Contains(t, pf.Log(), "status=sent", pf.Log())
	require.Contains(t, pf.Log(), "Ok: queued as "+logged.Id, "Postfix logs Sendwerk's message id")
}

// TestReadmeRelay runs the README's relay-host block as written — curl, swaks, the Postfix
// password map — and then a Postfix configured with the README's main.cf snippet, with only
// the relay host's name and port and Postfix's configuration directory swapped for the test's.
func TestReadmeRelay(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl", "jq", "swaks", "postmap"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "%s is needed (make setup installs it)", tool)
	}
	ctx := context.Background()
	up := smtptest.NewServer(t, smtptest.Opts{})
	env := relayEnv(t, nil)
	b := setup(t, env)
	_, _, key := b.newTenantKey(t, "Example", sendwerk.ScopeManage, sendwerk.ScopeMessagesSend)
	c := b.client(t, key)
	one := int64(1)
	conn, err := c.CreateConnectorWithResponse(ctx, sendwerk.ConnectorCreate{
		Name: "Office mail", Kind: sendwerk.ConnectorKindSmtp, Smtp: &sendwerk.SMTPSettingsInput{Host: up.Host(), Port: up.Port(), Security: sendwerk.SMTPSecurityNone},
		DefaultSender: sendwerk.Sender{Email: "noreply@example.com", Name: ptr("Example")},
		Limits:        &sendwerk.ConnectorLimits{PerMinute: nullableInt64(one)},
	})
	require.NoError(t, err)
	require.Equal(t, 201, conn.StatusCode(), string(conn.Body))
	// As the messages section leaves it: the per-minute limit is used up.
	m := simpleMessage("c@example.org")
	m.From = addr("noreply@example.com")
	sent, err := c.SendMessageWithResponse(ctx, nil, m)
	require.NoError(t, err)
	require.Equal(t, 202, sent.StatusCode(), string(sent.Body))

	_, port, _ := net.SplitHostPort(b.smtpAddr)
	mainCF := readmeBlock(t, "relay-postfix")
	mainCF = strings.TrimSuffix(strings.TrimPrefix(mainCF, "```"), "```")
	require.Equal(t, 1, strings.Count(mainCF, "[smtp.sendwerk.example]:587"))
	mainCF = strings.ReplaceAll(mainCF, "[smtp.sendwerk.example]:587", "[127.0.0.1]:"+port)
	mainCF = strings.ReplaceAll(mainCF, "/etc/postfix/", "$config_directory/")
	pf := postfixtest.Start(t, postfixtest.Opts{MainCF: mainCF})

	// The block a reader runs beside `make run` (development values), then the one marked
	// for the mail server (its production host name), each with the test's address swapped in.
	script := readmeBlock(t, "relay")
	script = strings.TrimSuffix(strings.TrimPrefix(script, "```sh"), "```")
	require.Equal(t, 1, strings.Count(script, "--server localhost --port 2587"), "swaks uses make run's relay host")
	require.NotContains(t, script, "/etc/postfix", "the mail server's part is a block of its own")
	script = strings.ReplaceAll(script, "--server localhost --port 2587", "--server 127.0.0.1 --port "+port)
	passwd := readmeBlock(t, "relay-postfix-passwd")
	passwd = strings.TrimSuffix(strings.TrimPrefix(passwd, "```sh"), "```")
	require.Equal(t, 1, strings.Count(passwd, "[smtp.sendwerk.example]:587"))
	passwd = strings.ReplaceAll(passwd, "[smtp.sendwerk.example]:587", "[127.0.0.1]:"+port)
	script += strings.ReplaceAll(passwd, "/etc/postfix/", pf.EtcDir()+"/")
	script = "BASE=" + b.baseURL + "\nAPI_KEY=" + key + "\nCONNECTOR_ID=" + conn.JSON201.Id + "\n" + script
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "MAIL_CONFIG="+pf.EtcDir()) // postmap finds this Postfix's main.cf
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	text := string(out)
	require.Regexp(t, `"username": "sw-[a-z2-9]{12}"`, text)
	require.Contains(t, text, `"host": "`+relayHostname+`"`)
	require.Contains(t, text, `"starttls_port": `+port)
	require.Regexp(t, `<~  250 2\.0\.0 Ok: queued as msg_`, text, "swaks sent through the relay host")
	require.FileExists(t, filepath.Join(pf.EtcDir(), "sasl_passwd.db"))

	pf.Sendmail(t, "noreply@example.com", []string{"you@example.com"}, []byte("From: Example <noreply@example.com>\nTo: you@example.com\nSubject: Through Postfix\n\nHello.\n"))
	msgs := up.WaitMessages(t, 3, 60*time.Second) // the REST message, swaks's, Postfix's
	require.Contains(t, string(msgs[2].Data), "Subject: Through Postfix")
	require.Contains(t, string(msgs[2].Data), "by "+relayHostname+" (Sendwerk) with ESMTPSA")
	s := &sendBundle{testBundle: b, up: up, key: key, c: c, connector: conn.JSON201.Id}
	require.Equal(t, sendwerk.MessageSourceSmtp, s.messageBySubject(t, "Through Postfix").Source)
}

func nullableInt64(v int64) nullable.Nullable[int64] { return nullable.NewNullableWithValue(v) }

func TestBannerNamesSMTPEndpoints(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{HTTPAddr: "localhost:8080", DataDir: ".data"}
	var buf bytes.Buffer
	printBanner(&buf, cfg, listenAddrs{HTTP: "127.0.0.1:8080", SMTP: "127.0.0.1:2587", SMTPS: "127.0.0.1:2465", SelfSignedCert: ".data/tls/cert.pem"}, false)
	require.Contains(t, buf.String(), "  SMTP relay host: 127.0.0.1:2587 (STARTTLS), 127.0.0.1:2465 (implicit TLS); log in with a connector's relay credentials")
	require.Contains(t, buf.String(), "  SMTP TLS certificate: self-signed, .data/tls/cert.pem (development only")

	buf.Reset()
	printBanner(&buf, cfg, listenAddrs{HTTP: "127.0.0.1:8080", SMTPS: "[::]:465"}, false)
	require.Contains(t, buf.String(), "  SMTP relay host: [::]:465 (implicit TLS);")
	require.NotContains(t, buf.String(), "self-signed")

	buf.Reset()
	printBanner(&buf, cfg, listenAddrs{HTTP: "127.0.0.1:8080"}, false)
	require.NotContains(t, buf.String(), "SMTP")
}
