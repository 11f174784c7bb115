package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"time"
)

// implicitTLS performs the handshake that implicit TLS starts with.
func (p *prober) implicitTLS(ctx context.Context, st *ProbeStep) *probeFailure {
	return p.handshake(ctx, st)
}

// startTLS upgrades with STARTTLS, which must be offered: security starttls never falls
// back to plain text. After the handshake EHLO is sent again, as RFC 3207 requires.
func (p *prober) startTLS(ctx context.Context, st *ProbeStep) *probeFailure {
	if p.s.Security == SecurityNone {
		st.Status = StepSkipped
		st.Detail = "security is none: the connection stays unencrypted"
		return nil
	}
	if _, ok := p.caps["STARTTLS"]; !ok {
		st.Detail = "STARTTLS is not among the server's capabilities"
		return &probeFailure{CodeStartTLSUnsupported, fmt.Sprintf("The server on port %s does not offer STARTTLS, so the connection cannot be encrypted; Sendwerk never falls back to plain text. If the server expects implicit TLS (usually port 465), choose TLS; choose none only for a trusted internal relay.", p.port())}
	}
	code, msg, err := p.cmd(ctx, 220, "STARTTLS")
	if err != nil && code == 0 {
		st.Detail = err.Error()
		return p.lost(ctx, "STARTTLS", err)
	}
	if reply := parseReply(code, msg); err != nil {
		st.Reply, st.Detail = &reply, reply.String()
		return &probeFailure{CodeStartTLSUnsupported, fmt.Sprintf("The server offers STARTTLS but refused to start it (%s).", reply)}
	}
	if fail := p.handshake(ctx, st); fail != nil {
		return fail
	}
	return p.ehloAfterTLS(ctx, st)
}

// ehloAfterTLS greets again over TLS; servers often offer AUTH only now.
func (p *prober) ehloAfterTLS(ctx context.Context, st *ProbeStep) *probeFailure {
	code, msg, err := p.cmd(ctx, 250, "EHLO %s", p.heloName())
	if err != nil && code == 0 {
		return p.lost(ctx, "EHLO over TLS", err)
	}
	if err != nil {
		reply := parseReply(code, msg)
		st.Reply = &reply
		return &probeFailure{CodeEHLORejected, fmt.Sprintf("The server rejected our greeting after TLS (%s).", reply)}
	}
	p.setCaps(msg)
	st.Capabilities = p.capList
	return nil
}

// handshake runs the TLS handshake over the current connection and reports the session.
func (p *prober) handshake(ctx context.Context, st *ProbeStep) *probeFailure {
	if err := p.ctl.setDeadline(ctx, p.s.CommandTimeout); err != nil {
		return p.lost(ctx, "connecting", err)
	}
	rec := &recordingConn{Conn: p.ctl.nc}
	tc := tls.Client(rec, p.s.tlsConfig())
	if err := tc.HandshakeContext(ctx); err != nil {
		st.Detail = err.Error()
		st.TLS = tlsInfoFromError(p.s, err)
		return p.tlsFailure(ctx, err, rec.first)
	}
	state := tc.ConnectionState()
	st.TLS = tlsInfoFromState(p.s, state)
	st.Detail = tlsDetail(st.TLS)
	p.tp = textproto.NewConn(tc)
	p.isTLS = true
	return nil
}

// tlsFailure explains a failed handshake in the customer's terms.
func (p *prober) tlsFailure(ctx context.Context, err error, first []byte) *probeFailure {
	code, why, ok := tlsProblem(err)
	switch {
	case ok && code == CodeTLSNotTLS:
		return &probeFailure{CodeTLSNotTLS, p.notTLSMessage(first)}
	case ok && code == CodeTLSCertificateInvalid:
		return &probeFailure{CodeTLSCertificateInvalid, certificateMessage(why)}
	case ok && strings.Contains(why, "protocol version"):
		return &probeFailure{CodeTLSHandshakeFailed, fmt.Sprintf("The TLS handshake failed (%s). The server may only support TLS versions older than 1.2, which Sendwerk does not use.", why)}
	case ok:
		return &probeFailure{CodeTLSHandshakeFailed, fmt.Sprintf("The TLS handshake with the server failed (%s).", why)}
	case ctx.Err() != nil:
		return p.lost(ctx, "the TLS handshake", err)
	case isTimeout(err):
		return &probeFailure{CodeTLSHandshakeFailed, fmt.Sprintf("The server did not complete the TLS handshake within %s.", p.s.CommandTimeout)}
	case isDropped(err):
		return &probeFailure{CodeTLSHandshakeFailed, "The server closed the connection during the TLS handshake."}
	}
	return &probeFailure{CodeTLSHandshakeFailed, fmt.Sprintf("The TLS handshake with the server failed: %v.", err)}
}

// notTLSMessage is for implicit TLS against a plain-text server: it sent its greeting
// where a TLS handshake was expected.
func (p *prober) notTLSMessage(first []byte) string {
	line, _, _ := strings.Cut(string(first), "\n")
	sent := ""
	if line = plainPrefix([]byte(line)); line != "" {
		sent = fmt.Sprintf(" (%q)", line)
	}
	advice := "choose STARTTLS"
	if p.s.Port == 25 {
		advice = "choose STARTTLS (or none for a trusted internal relay)"
	}
	return fmt.Sprintf("The server on port %s answered in plain text%s, not with TLS: %s for port %s.", p.port(), sent, advice, p.port())
}

// certificateMessage turns the reason from certificateProblem into advice.
func certificateMessage(why string) string {
	switch {
	case strings.HasPrefix(why, "expired"):
		return "The server's TLS certificate " + strings.TrimPrefix(why, "expired: the certificate ") + ". The mail provider must renew it."
	case strings.HasPrefix(why, "unknown authority"):
		return "The server's TLS certificate is not trusted: " + why + ". Use a certificate from a public authority or, for an internal server only, turn off certificate verification."
	case strings.HasPrefix(why, "name mismatch"):
		return "The server's TLS certificate does not match the host: " + why + ". Enter one of those names as host or TLS server name."
	}
	return "The server's TLS certificate is not valid: " + why + "."
}

// tlsInfoFromState reports a completed handshake, verifying by hand when verification
// was turned off so the customer still learns what is wrong with the certificate.
func tlsInfoFromState(s Settings, state tls.ConnectionState) *TLSInfo {
	info := certificateInfo(s, state.PeerCertificates)
	info.Version = tls.VersionName(state.Version)
	info.CipherSuite = tls.CipherSuiteName(state.CipherSuite)
	info.Verified = true
	if s.TLSSkipVerify {
		if err := certificateVerification(s, state.PeerCertificates); err != nil {
			info.Verified = false
			info.VerifyError = verifyReason(err)
		}
	}
	return info
}

// tlsInfoFromError reports the certificate the handshake rejected, when there was one.
func tlsInfoFromError(s Settings, err error) *TLSInfo {
	var verifyErr *tls.CertificateVerificationError
	if !errors.As(err, &verifyErr) {
		return nil
	}
	info := certificateInfo(s, verifyErr.UnverifiedCertificates)
	info.VerifyError = verifyReason(err)
	return info
}

// verifyReason is certificateProblem's explanation, or the raw error.
func verifyReason(err error) string {
	if why, ok := certificateProblem(err); ok {
		return why
	}
	return err.Error()
}

// certificateInfo describes the leaf certificate.
func certificateInfo(s Settings, certs []*x509.Certificate) *TLSInfo {
	info := &TLSInfo{ServerName: s.serverName()}
	if len(certs) == 0 {
		return info
	}
	leaf := certs[0]
	info.Subject = leaf.Subject.String()
	info.Issuer = leaf.Issuer.String()
	info.DNSNames = append(append([]string{}, leaf.DNSNames...), ipStrings(leaf)...)
	info.NotAfter = leaf.NotAfter.UTC()
	return info
}

// ipStrings lists a certificate's IP addresses.
func ipStrings(cert *x509.Certificate) []string {
	var out []string
	for _, ip := range cert.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// tlsDetail summarises a TLS session in one line.
func tlsDetail(info *TLSInfo) string {
	verified := "certificate verified"
	if !info.Verified {
		verified = "certificate NOT verified (verification is turned off): " + info.VerifyError
	}
	return fmt.Sprintf("%s, %s; certificate %q issued by %q, valid until %s; %s",
		info.Version, info.CipherSuite, info.Subject, info.Issuer, info.NotAfter.Format(time.DateOnly), verified)
}

// recordingConn keeps the first bytes read, so that when a plain-text server answers a
// TLS handshake the message can quote its greeting (the TLS client swallows it).
type recordingConn struct {
	net.Conn
	first []byte
}

// Read records up to 256 bytes.
func (c *recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if room := 256 - len(c.first); room > 0 {
		c.first = append(c.first, b[:min(n, room)]...)
	}
	return n, err
}
