package delivery

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"time"
)

// StepName names a probe step.
type StepName string

const (
	StepResolve StepName = "resolve"
	StepConnect StepName = "connect"
	StepBanner  StepName = "banner"
	StepEHLO    StepName = "ehlo"
	StepTLS     StepName = "tls"
	StepAuth    StepName = "auth"
	StepQuit    StepName = "quit"
)

// StepStatus is the result of one step.
type StepStatus string

const (
	StepOK      StepStatus = "ok"
	StepFailed  StepStatus = "failed"
	StepSkipped StepStatus = "skipped"
)

// CodeSettingsInvalid is the probe failure for settings that fail Validate.
const CodeSettingsInvalid = "settings.invalid"

// ProbeStep is one step of a probe, with what the server said.
type ProbeStep struct {
	Name       StepName   `json:"name"`
	Status     StepStatus `json:"status"`
	DurationMS int64      `json:"duration_ms"`
	Detail     string     `json:"detail"`
	// Reply is the server's reply that decided the step (banner, EHLO, AUTH, QUIT).
	Reply *Reply `json:"reply,omitempty"`
	// Capabilities are the EHLO extensions (on the tls step: those offered after TLS).
	Capabilities []string `json:"capabilities,omitempty"`
	TLS          *TLSInfo `json:"tls,omitempty"`
	// Mechanism is the AUTH mechanism used.
	Mechanism string `json:"mechanism,omitempty"`
}

// TLSInfo describes the negotiated TLS session and the server certificate.
type TLSInfo struct {
	Version     string    `json:"version,omitempty"`
	CipherSuite string    `json:"cipher_suite,omitempty"`
	ServerName  string    `json:"server_name"`
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	DNSNames    []string  `json:"dns_names,omitempty"`
	NotAfter    time.Time `json:"not_after"`
	Verified    bool      `json:"verified"`
	// VerifyError says why the certificate did not verify (also when verification is
	// turned off, so the customer sees what they are skipping).
	VerifyError string `json:"verify_error,omitempty"`
}

// ProbeResult is the outcome of Probe. When a step fails, Code and Message explain it
// and the remaining steps are listed as skipped.
type ProbeResult struct {
	OK         bool        `json:"ok"`
	Code       string      `json:"code,omitempty"`
	Message    string      `json:"message,omitempty"`
	Host       string      `json:"host"`
	Port       int         `json:"port"`
	Security   Security    `json:"security"`
	Steps      []ProbeStep `json:"steps"`
	DurationMS int64       `json:"duration_ms"`
}

// probeFailure is a failed step's stable code and customer-facing message.
type probeFailure struct {
	code    string
	message string
}

// probeStep is one step to run.
type probeStep struct {
	name StepName
	run  func(ctx context.Context, st *ProbeStep) *probeFailure
}

// prober holds the connection state between steps.
type prober struct {
	s       Settings
	addrs   []net.IP
	remote  string
	ctl     *connControl
	tp      *textproto.Conn
	caps    map[string]string
	capList []string
	isTLS   bool
	// unwatch stops interrupting the connection on context cancellation.
	unwatch func() bool
}

// Probe checks an upstream step by step without sending mail: resolve, connect, banner,
// EHLO, TLS (STARTTLS after EHLO; with implicit TLS the tls step comes right after
// connect), AUTH, QUIT. It talks SMTP over net/textproto itself because go-mail does
// not expose the individual steps, and the settings page needs each one's reply.
func Probe(ctx context.Context, s Settings) ProbeResult {
	start := time.Now()
	s = s.withDefaults()
	res := ProbeResult{Host: s.Host, Port: s.Port, Security: s.Security, Steps: []ProbeStep{}}
	if err := s.Validate(); err != nil {
		res.Code, res.Message = CodeSettingsInvalid, "The settings are incomplete: "+s.redact(err.Error())
		return res
	}
	p := &prober{s: s}
	defer p.close()
	steps := p.plan()
	for i, step := range steps {
		st, fail := p.run(ctx, step)
		res.Steps = append(res.Steps, st)
		if fail != nil {
			res.Code, res.Message = fail.code, s.redact(fail.message)
			res.Steps = append(res.Steps, skippedSteps(steps[i+1:])...)
			break
		}
	}
	res.OK = res.Code == ""
	res.DurationMS = time.Since(start).Milliseconds()
	return res
}

// plan orders the steps for the chosen security.
func (p *prober) plan() []probeStep {
	steps := []probeStep{{StepResolve, p.resolve}, {StepConnect, p.connect}}
	if p.s.Security == SecurityTLS {
		steps = append(steps, probeStep{StepTLS, p.implicitTLS}, probeStep{StepBanner, p.banner}, probeStep{StepEHLO, p.ehlo})
	} else {
		steps = append(steps, probeStep{StepBanner, p.banner}, probeStep{StepEHLO, p.ehlo}, probeStep{StepTLS, p.startTLS})
	}
	return append(steps, probeStep{StepAuth, p.auth}, probeStep{StepQuit, p.quit})
}

// run times one step and marks it failed when it returns a failure.
func (p *prober) run(ctx context.Context, step probeStep) (ProbeStep, *probeFailure) {
	st := ProbeStep{Name: step.name, Status: StepOK}
	start := time.Now()
	fail := step.run(ctx, &st)
	st.DurationMS = time.Since(start).Milliseconds()
	if fail != nil {
		st.Status = StepFailed
	}
	st.Detail = p.s.redact(st.Detail)
	if st.Reply != nil {
		st.Reply.Text = p.s.redact(st.Reply.Text)
	}
	return st, fail
}

// skippedSteps lists the steps not run after a failure.
func skippedSteps(steps []probeStep) []ProbeStep {
	out := make([]ProbeStep, 0, len(steps))
	for _, s := range steps {
		out = append(out, ProbeStep{Name: s.name, Status: StepSkipped, Detail: "not run: an earlier step failed"})
	}
	return out
}

// close drops the connection.
func (p *prober) close() {
	if p.ctl != nil {
		p.unwatch()
		_ = p.ctl.nc.Close()
	}
}

// port is the configured port as text, for messages.
func (p *prober) port() string { return strconv.Itoa(p.s.Port) }

// resolve looks up the host's addresses.
func (p *prober) resolve(ctx context.Context, st *ProbeStep) *probeFailure {
	if ip := net.ParseIP(p.s.Host); ip != nil {
		p.addrs = []net.IP{ip}
		st.Detail = p.s.Host + " is an IP address; nothing to resolve"
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, p.s.ConnectTimeout)
	defer cancel()
	addrs, err := p.s.resolver().LookupIPAddr(rctx, p.s.Host)
	if err != nil {
		st.Detail = resolveDetail(p.s.Host, err)
		return p.resolveFailure(err)
	}
	var shown []string
	for _, a := range addrs {
		p.addrs = append(p.addrs, a.IP)
		shown = append(shown, a.IP.String())
	}
	st.Detail = fmt.Sprintf("%s resolved to %s", p.s.Host, strings.Join(shown, ", "))
	return nil
}

// resolveDetail shows the resolver's answer without naming Sendwerk's own DNS server.
func resolveDetail(host string, err error) string {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return fmt.Sprintf("lookup %s: %s", host, dnsErr.Err)
	}
	return err.Error()
}

// resolveFailure explains a DNS failure.
func (p *prober) resolveFailure(err error) *probeFailure {
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return &probeFailure{CodeDNSNotFound, fmt.Sprintf("The host name %s does not exist in DNS. Check it for typos.", p.s.Host)}
	case (errors.As(err, &dnsErr) && dnsErr.IsTimeout) || isTimeout(err):
		return &probeFailure{CodeDNSTimeout, fmt.Sprintf("Looking up %s in DNS took longer than %s. The DNS servers may be having trouble; try again in a few minutes.", p.s.Host, p.s.ConnectTimeout)}
	}
	return &probeFailure{CodeDNSFailed, fmt.Sprintf("Looking up %s in DNS failed: %v.", p.s.Host, err)}
}

// connect opens TCP to the first address that answers.
func (p *prober) connect(ctx context.Context, st *ProbeStep) *probeFailure {
	d := p.s.dialer()
	var firstErr error
	var tried []string
	for _, ip := range p.addrs {
		addr := net.JoinHostPort(ip.String(), p.port())
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			p.setConn(ctx, nc)
			p.remote = addr
			st.Detail = "connected to " + addr
			return nil
		}
		firstErr = cmp.Or(firstErr, err)
		tried = append(tried, err.Error())
	}
	st.Detail = strings.Join(tried, "; ")
	return p.connectFailure(firstErr)
}

// setConn starts talking SMTP over nc and interrupts it when ctx ends.
func (p *prober) setConn(ctx context.Context, nc net.Conn) {
	p.ctl = &connControl{nc: nc}
	p.tp = textproto.NewConn(nc)
	p.unwatch = context.AfterFunc(ctx, p.ctl.interrupt)
}

// connectFailure explains a TCP failure.
func (p *prober) connectFailure(err error) *probeFailure {
	host, port := p.s.Host, p.port()
	if ae, ok := addressRefused(err); ok {
		return &probeFailure{CodeAddressNotAllowed, fmt.Sprintf("%s resolves to %s, which is not a public address (loopback, private, reserved or another special-purpose block); this platform only connects to public mail servers.", host, ae.Addr)}
	}
	switch dialCode(err) {
	case CodeTCPRefused:
		return &probeFailure{CodeTCPRefused, fmt.Sprintf("Nothing accepts connections on %s port %s (connection refused). Check the port: 587 is usually STARTTLS, 465 TLS, 25 plain SMTP with optional STARTTLS.", host, port)}
	case CodeTCPTimeout:
		return &probeFailure{CodeTCPTimeout, fmt.Sprintf("%s did not answer on port %s within %s. A firewall may block the port (many networks block outgoing port 25), or the host or port is wrong.", host, port, p.s.ConnectTimeout)}
	case CodeTCPUnreachable:
		return &probeFailure{CodeTCPUnreachable, fmt.Sprintf("%s cannot be reached from Sendwerk's network (no route to the host).", host)}
	}
	return &probeFailure{CodeTCPFailed, fmt.Sprintf("Connecting to %s port %s failed: %v.", host, port, err)}
}

// probeBannerTimeout caps the wait for a greeting in a probe: a person is waiting at a
// settings page, and the usual cause of silence (STARTTLS chosen on an implicit-TLS port)
// shows within seconds.
const probeBannerTimeout = 10 * time.Second

// banner reads the server's 220 greeting.
func (p *prober) banner(ctx context.Context, st *ProbeStep) *probeFailure {
	if err := p.ctl.setDeadline(ctx, min(p.s.CommandTimeout, probeBannerTimeout)); err != nil {
		return p.lost(ctx, "connecting", err)
	}
	code, msg, err := p.tp.ReadResponse(220)
	reply := parseReply(code, msg)
	if code != 0 {
		st.Reply = &reply
		st.Detail = reply.String()
	}
	if err == nil {
		return nil
	}
	if st.Detail == "" {
		st.Detail = err.Error()
	}
	return p.bannerFailure(ctx, reply, err)
}

// closingFailure is a 421 at any step: the server is closing the connection (RFC 5321
// 3.8), the same code delivery reports for it.
func closingFailure(reply Reply) *probeFailure {
	return &probeFailure{CodeConnectionClosing, fmt.Sprintf("The server is closing the connection (%s): it is shutting down, busy or limiting connections from Sendwerk's address. Try again later; if it persists, ask the server's operator.", reply)}
}

// bannerFailure explains a missing, rejecting or garbled greeting.
func (p *prober) bannerFailure(ctx context.Context, reply Reply, err error) *probeFailure {
	var tpErr *textproto.Error
	var protoErr textproto.ProtocolError
	switch {
	case errors.As(err, &tpErr) && tpErr.Code == 421:
		return closingFailure(reply)
	case errors.As(err, &tpErr):
		return &probeFailure{CodeBannerRejected, fmt.Sprintf("The server refused the connection right away (%s). It may be overloaded or not accept connections from Sendwerk's address.", reply)}
	case isTimeout(err) && ctx.Err() == nil:
		return &probeFailure{CodeBannerTimeout, p.bannerTimeoutMessage(ctx)}
	case errors.As(err, &protoErr):
		return &probeFailure{CodeProtocolError, fmt.Sprintf("The server on port %s does not speak SMTP: %v.", p.port(), err)}
	case isDropped(err):
		return &probeFailure{CodeNoBanner, "The server closed the connection without sending an SMTP greeting. It may not accept connections from Sendwerk's address."}
	}
	return p.lost(ctx, "connecting", err)
}

// bannerTimeoutMessage tells a silent server from one that waits for a TLS handshake:
// with STARTTLS or none on an implicit-TLS port the server says nothing and waits.
func (p *prober) bannerTimeoutMessage(ctx context.Context) string {
	silent := fmt.Sprintf("The server on port %s accepted the connection but sent no SMTP greeting within %s.", p.port(), min(p.s.CommandTimeout, probeBannerTimeout))
	switch {
	case p.s.Security == SecurityTLS:
		return silent + " The TLS connection works, so the server may be overloaded or not be a mail server."
	case p.answersTLS(ctx):
		return fmt.Sprintf("%s It answers a TLS handshake instead: port %s expects implicit TLS. Choose TLS for port %s.", silent, p.port(), p.port())
	case p.s.Port == 465:
		return silent + " Port 465 usually expects implicit TLS; choose TLS."
	}
	return silent + " It may not be a mail server, or it expects implicit TLS (then choose TLS)."
}

// answersTLS opens a second connection and tries a TLS handshake, without verifying:
// the question is only whether the port speaks TLS.
func (p *prober) answersTLS(ctx context.Context) bool {
	hctx, cancel := context.WithTimeout(ctx, min(p.s.CommandTimeout, 5*time.Second))
	defer cancel()
	d := net.Dialer{}
	nc, err := d.DialContext(hctx, "tcp", p.remote)
	if err != nil {
		return false
	}
	defer nc.Close()
	tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true, ServerName: p.s.serverName()}) //nolint:gosec // detection only, nothing is sent.
	return tc.HandshakeContext(hctx) == nil
}

// cmd sends one command and reads the reply; expect 0 accepts any code.
func (p *prober) cmd(ctx context.Context, expect int, format string, args ...any) (int, string, error) {
	if err := p.ctl.setDeadline(ctx, p.s.CommandTimeout); err != nil {
		return 0, "", err
	}
	id, err := p.tp.Cmd(format, args...)
	if err != nil {
		return 0, "", err
	}
	p.tp.StartResponse(id)
	defer p.tp.EndResponse(id)
	return p.tp.ReadResponse(expect)
}

// lost explains a command that got no valid reply.
func (p *prober) lost(ctx context.Context, after string, err error) *probeFailure {
	var protoErr textproto.ProtocolError
	switch {
	case ctx.Err() != nil:
		return &probeFailure{CodeCanceled, "The check was cancelled."}
	case isTimeout(err):
		return &probeFailure{CodeCommandTimeout, fmt.Sprintf("The server did not answer %s within %s.", after, p.s.CommandTimeout)}
	case errors.As(err, &protoErr):
		return &probeFailure{CodeProtocolError, fmt.Sprintf("The server answered %s with something that is not SMTP: %v.", after, err)}
	}
	return &probeFailure{CodeConnectionDropped, fmt.Sprintf("The server closed the connection after %s (%v).", after, err)}
}

// ehlo greets the server and records its capabilities, falling back to HELO for
// servers without ESMTP.
func (p *prober) ehlo(ctx context.Context, st *ProbeStep) *probeFailure {
	code, msg, err := p.cmd(ctx, 250, "EHLO %s", p.heloName())
	reply := parseReply(code, strings.SplitN(msg, "\n", 2)[0])
	if code != 0 {
		st.Reply = &reply
	}
	var tpErr *textproto.Error
	switch {
	case err == nil:
		p.setCaps(msg)
		st.Capabilities = p.capList
		st.Detail = reply.String()
		return nil
	case errors.As(err, &tpErr) && (code == 500 || code == 502):
		return p.helo(ctx, st)
	case errors.As(err, &tpErr) && code == 421:
		st.Detail = reply.String()
		return closingFailure(reply)
	case errors.As(err, &tpErr):
		st.Detail = reply.String()
		return &probeFailure{CodeEHLORejected, fmt.Sprintf("The server rejected our greeting EHLO %s (%s). Some servers require the HELO name to be a real, resolvable host name: set the HELO name.", p.heloName(), reply)}
	}
	st.Detail = err.Error()
	return p.lost(ctx, "EHLO", err)
}

// helo greets a server that does not know EHLO; it then offers no extensions.
func (p *prober) helo(ctx context.Context, st *ProbeStep) *probeFailure {
	code, msg, err := p.cmd(ctx, 250, "HELO %s", p.heloName())
	reply := parseReply(code, msg)
	st.Reply = &reply
	if err != nil {
		st.Detail = reply.String()
		return &probeFailure{CodeEHLORejected, fmt.Sprintf("The server rejected both EHLO and HELO %s (%s).", p.heloName(), reply)}
	}
	p.setCaps("")
	st.Detail = "the server does not support EHLO; HELO accepted without extensions: " + reply.String()
	return nil
}

// heloName is the configured HELO name or the machine's host name, as go-mail uses.
func (p *prober) heloName() string {
	if p.s.HELOName != "" {
		return p.s.HELOName
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		return name
	}
	return "localhost"
}

// setCaps parses the EHLO reply lines after the greeting into capabilities.
func (p *prober) setCaps(msg string) {
	p.caps, p.capList = map[string]string{}, nil
	lines := strings.Split(msg, "\n")
	for _, line := range lines[min(1, len(lines)):] {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		name, args, _ := strings.Cut(line, " ")
		p.caps[strings.ToUpper(name)] = args
		p.capList = append(p.capList, line)
	}
}

// quit ends the session politely; a server that just hangs up is harmless here.
func (p *prober) quit(ctx context.Context, st *ProbeStep) *probeFailure {
	code, msg, err := p.cmd(ctx, 221, "QUIT")
	if err != nil && code == 0 {
		st.Detail = "the server closed the connection without answering QUIT (harmless)"
		return nil
	}
	reply := parseReply(code, msg)
	st.Reply = &reply
	st.Detail = reply.String()
	return nil
}

// certificateVerification verifies a certificate chain by hand, for the report when
// the handshake itself skipped verification.
func certificateVerification(s Settings, certs []*x509.Certificate) error {
	if len(certs) == 0 {
		return errors.New("the server sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{DNSName: s.serverName(), Roots: s.RootCAs, Intermediates: inter})
	return err
}
