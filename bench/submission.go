package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
)

// Submission over SMTP with STARTTLS and AUTH, as a mail server or an application's mail
// library hands mail to a smarthost: Sendwerk's relay host beside Postfix's submission
// service (smtpd with TLS required and Cyrus SASL from a sasldb), both relaying to the
// same sink. smtp-source cannot do STARTTLS or AUTH, so one Go client drives both.

// submissionCreds is a login at one of the two submission services.
type submissionCreds struct {
	addr, user, pass string
}

const (
	postfixSubmitUser = "bench"
	postfixSubmitPass = "bench-submission-password"
)

// addPostfixSubmission writes what Postfix's submission listener needs into etc: a
// self-signed certificate, the Cyrus SASL configuration Debian's Postfix reads from
// etc/sasl/smtpd.conf and a sasldb with one user. It returns the master.cf line.
func addPostfixSubmission(etc string, port int) (string, error) {
	if _, err := exec.LookPath("saslpasswd2"); err != nil {
		return "", fmt.Errorf("saslpasswd2 not found; run make setup (Debian packages sasl2-bin, libsasl2-modules)")
	}
	if err := writeSelfSigned(filepath.Join(etc, "cert.pem"), filepath.Join(etc, "key.pem")); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(etc, "sasl"), 0o755); err != nil {
		return "", err
	}
	db := filepath.Join(etc, "sasldb2")
	conf := fmt.Sprintf("pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\nsasldb_path: %s\n", db)
	if err := os.WriteFile(filepath.Join(etc, "sasl", "smtpd.conf"), []byte(conf), 0o644); err != nil {
		return "", err
	}
	cmd := exec.Command("saslpasswd2", "-p", "-c", "-f", db, "-u", postfixDomain, postfixSubmitUser)
	cmd.Stdin = strings.NewReader(postfixSubmitPass)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("saslpasswd2: %v: %s", err, out)
	}
	// smtpd runs unprivileged (as postfix) and reads the sasldb itself.
	if err := chownPostfix(db); err != nil {
		return "", err
	}
	opts := []string{
		"smtpd_tls_security_level=encrypt",
		"smtpd_tls_cert_file=" + filepath.Join(etc, "cert.pem"),
		"smtpd_tls_key_file=" + filepath.Join(etc, "key.pem"),
		"smtpd_tls_auth_only=yes",
		"smtpd_sasl_auth_enable=yes",
		"smtpd_sasl_type=cyrus",
		"smtpd_sasl_path=smtpd",
		"smtpd_sasl_local_domain=" + postfixDomain,
		"smtpd_relay_restrictions=permit_sasl_authenticated,reject",
		"smtpd_recipient_restrictions=permit_sasl_authenticated,reject",
	}
	line := fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd", port)
	for _, o := range opts {
		line += "\n  -o " + o
	}
	return line + "\n", nil
}

func writeSelfSigned(certPath, keyPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: postfixDomain},
		DNSNames: []string{postfixDomain}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
}

// relayCredential creates a relay login for the benchmark's connector.
func relayCredential(ctx context.Context, baseURL, key, connectorID string) (user, pass string, err error) {
	c, err := newClient(baseURL, key)
	if err != nil {
		return "", "", err
	}
	name := "bench"
	r, err := c.CreateRelayCredentialWithResponse(ctx, connectorID, sendwerk.RelayCredentialCreate{Name: &name})
	if err != nil {
		return "", "", fmt.Errorf("create relay credential: %w", err)
	}
	if r.JSON201 == nil {
		return "", "", fmt.Errorf("create relay credential: HTTP %d %s", r.StatusCode(), r.Body)
	}
	return r.JSON201.Username, r.JSON201.Password, nil
}

// phaseSubmission: the same messages submitted over SMTP (STARTTLS + AUTH PLAIN) to
// Postfix's submission service and to Sendwerk's relay host, from RelaySubmitters
// sessions at a time, each sending SubmissionPerSession messages before it quits.
func (e *env) phaseSubmission(ctx context.Context) error {
	n := e.plan.SubmissionMessages
	sr := &submissionResult{Sessions: e.plan.RelaySubmitters, PerSession: e.plan.SubmissionPerSession, Goal: 1.5}
	pf := submissionCreds{addr: e.postfix.submissionAddr(), user: postfixSubmitUser + "@" + postfixDomain, pass: postfixSubmitPass}
	var err error
	if sr.Postfix, err = e.submitSMTP(ctx, "Postfix submission (STARTTLS, SASL)", pf, "sender@"+postfixDomain, n, e.pfCPU, nil); err != nil {
		return err
	}
	e.settle()
	sw := submissionCreds{addr: e.srv.smtpAddr, user: e.tenant.relayUser, pass: e.tenant.relayPass}
	if sr.Unsigned, err = e.submitSMTP(ctx, "Sendwerk relay host, no DKIM", sw, senderUnsigned, n, e.swCPU, e.pgCPU); err != nil {
		return err
	}
	e.settle()
	if sr.DKIM, err = e.submitSMTP(ctx, "Sendwerk relay host, DKIM", sw, senderDKIM, n, e.swCPU, e.pgCPU); err != nil {
		return err
	}
	if sr.Unsigned.Signed != 0 || sr.DKIM.Signed != int64(n) {
		return fmt.Errorf("DKIM signatures at the sink: %d of the unsigned run, %d of %d of the DKIM run", sr.Unsigned.Signed, sr.DKIM.Signed, n)
	}
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	sr.RatioAccept = ratios{div(sr.Unsigned.AcceptedPerS, sr.Postfix.AcceptedPerS), div(sr.DKIM.AcceptedPerS, sr.Postfix.AcceptedPerS)}
	sr.RatioEnd = ratios{div(sr.Unsigned.EndToEndPerS, sr.Postfix.EndToEndPerS), div(sr.DKIM.EndToEndPerS, sr.Postfix.EndToEndPerS)}
	sr.RatioCPU = ratios{div(sr.Unsigned.CPUPer1000, sr.Postfix.CPUPer1000), div(sr.DKIM.CPUPer1000, sr.Postfix.CPUPer1000)}
	e.res.Submission = sr
	e.settle()
	return nil
}

// submitSMTP sends n messages from `from` over sessions of PerSession messages each, at
// most RelaySubmitters sessions at a time, and waits for all of them at the sink.
func (e *env) submitSMTP(ctx context.Context, name string, to submissionCreds, from string, n int, cpu, pgCPU *cpuGroup) (relayRun, error) {
	e.sink.reset()
	run := relayRun{Name: name, Messages: n}
	per := max(e.plan.SubmissionPerSession, 1)
	cpu0, pg0 := cpu.seconds(), 0.0
	if pgCPU != nil {
		pg0 = pgCPU.seconds()
	}
	var t0, t1, t2 time.Time
	var used float64
	stmts, err := e.stats.perMessage(ctx, n, func() error {
		t0 = time.Now()
		if err := e.submissionLoad(ctx, to, from, n, per); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		t1 = time.Now()
		if err := e.waitSink(ctx, n, relayTimeout(n), func() string { return "see the server's and Postfix's logs in the work directory" }); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		t2 = time.Now()
		used = cpu.seconds() - cpu0
		if pgCPU != nil {
			run.ServerCPU, run.PostgresCPU = used, pgCPU.seconds()-pg0
			used += run.PostgresCPU
			e.settle() // Sendwerk records outcomes just after the sink's 250
		}
		return nil
	})
	if err != nil {
		return run, err
	}
	if pgCPU != nil {
		run.StatementsPerMessage = stmts
	}
	e.finishRun(&run, n, t0, t1, t2, used)
	return run, nil
}

// submissionLoad runs the sessions: at most RelaySubmitters at a time, per messages each.
func (e *env) submissionLoad(ctx context.Context, to submissionCreds, from string, n, per int) error {
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for range e.plan.RelaySubmitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				start := int(next.Add(int64(per))) - per
				if start >= n {
					return
				}
				if err := e.submissionSession(to, from, start, min(per, n-start)); err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// submissionSession is one SMTP session: STARTTLS, AUTH PLAIN, count messages, QUIT.
func (e *env) submissionSession(to submissionCreds, from string, first, count int) error {
	conn, err := net.DialTimeout("tcp", to.addr, 10*time.Second)
	if err != nil {
		return err
	}
	// Both servers present self-signed certificates; the benchmark measures the work, not trust.
	c, err := smtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // loopback benchmark peers with self-signed certificates
	if err != nil {
		return fmt.Errorf("EHLO/STARTTLS: %w", err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Auth(sasl.NewPlainClient("", to.user, to.pass)); err != nil {
		return fmt.Errorf("AUTH: %w", err)
	}
	for i := range count {
		id := fmt.Sprintf("<sub-%d-%d@bench.example>", time.Now().UnixNano(), first+i)
		if err := c.SendMail(from, []string{recipient}, bytes.NewReader(e.submissionMessage(from, id))); err != nil {
			return fmt.Errorf("message %d: %w", first+i, err)
		}
	}
	return c.Quit()
}

func (e *env) submissionMessage(from, id string) []byte {
	return []byte("From: <" + from + ">\r\nTo: <" + recipient + ">\r\nSubject: Your report is ready\r\nMessage-ID: " + id +
		"\r\nDate: " + time.Now().Format(time.RFC1123Z) + "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		strings.ReplaceAll(e.load.text, "\n", "\r\n"))
}

type submissionResult struct {
	Sessions    int      `json:"parallel_sessions"`
	PerSession  int      `json:"messages_per_session"`
	Postfix     relayRun `json:"postfix"`
	Unsigned    relayRun `json:"sendwerk_unsigned"`
	DKIM        relayRun `json:"sendwerk_dkim"`
	RatioAccept ratios   `json:"ratio_accepted"`
	RatioEnd    ratios   `json:"ratio_end_to_end"`
	RatioCPU    ratios   `json:"ratio_cpu_per_1000"`
	Goal        float64  `json:"goal"`
}
