package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/wneessen/go-mail"
	gmsmtp "github.com/wneessen/go-mail/smtp"
)

// Class is what the deliver worker does with an attempt.
type Class string

const (
	// ClassDelivered: the upstream accepted the message (2xx after DATA).
	ClassDelivered Class = "delivered"
	// ClassTemporary: retry with backoff (4xx, timeouts, dropped connections, and TLS or
	// DNS trouble with an upstream that has worked before).
	ClassTemporary Class = "temporary"
	// ClassPermanent: the upstream refused this message for good (5xx); retrying the same
	// message cannot succeed.
	ClassPermanent Class = "permanent"
	// ClassConfig: the connector's settings are wrong (rejected password, certificate
	// that never verified, STARTTLS missing). The message itself is fine, so it is neither
	// permanent nor temporary: the worker should keep it (snooze or retry) and surface the
	// problem on the connector instead of failing every queued message.
	ClassConfig Class = "config"
)

// Stable failure codes shared by Probe and Classify; the UI and events key on them.
const (
	CodeDelivered                = "delivered"
	CodeDNSNotFound              = "dns.not_found"
	CodeDNSTimeout               = "dns.timeout"
	CodeDNSFailed                = "dns.failed"
	CodeTCPRefused               = "tcp.refused"
	CodeTCPTimeout               = "tcp.timeout"
	CodeTCPUnreachable           = "tcp.unreachable"
	CodeTCPFailed                = "tcp.failed"
	CodeBannerTimeout            = "smtp.banner_timeout"
	CodeNoBanner                 = "smtp.no_banner"
	CodeBannerRejected           = "smtp.banner_rejected"
	CodeProtocolError            = "smtp.protocol_error"
	CodeEHLORejected             = "smtp.ehlo_rejected"
	CodeStartTLSUnsupported      = "smtp.starttls_unsupported"
	CodeCommandTimeout           = "smtp.timeout"
	CodeConnectionDropped        = "smtp.connection_dropped"
	CodeDeferred                 = "smtp.deferred"
	CodeConnectionClosing        = "smtp.connection_closing"
	CodeRejected                 = "smtp.rejected"
	CodeRecipientRejected        = "smtp.recipient_rejected"
	CodeTLSHandshakeFailed       = "tls.handshake_failed"
	CodeTLSCertificateInvalid    = "tls.certificate_invalid"
	CodeTLSNotTLS                = "tls.not_tls"
	CodeAuthFailed               = "auth.failed"
	CodeAuthMechanismUnsupported = "auth.mechanism_unsupported"
	CodeAuthRequiresTLS          = "auth.requires_tls"
	CodeAuthRequired             = "auth.required"
	CodeInvalidMessage           = "message.invalid"
	CodePoolClosed               = "pool.closed"
	CodeCanceled                 = "canceled"
	CodeUnknown                  = "unknown"
)

// Outcome is the classified result of one delivery attempt; it never carries the password.
type Outcome struct {
	Class Class `json:"class"`
	// Code is one of the Code constants.
	Code string `json:"code"`
	// SMTPCode and EnhancedCode come from the upstream's reply, when there was one.
	SMTPCode     int    `json:"smtp_code,omitempty"`
	EnhancedCode string `json:"enhanced_code,omitempty"`
	// Text is the upstream's reply text or a description of the network failure.
	Text string `json:"text,omitempty"`
}

// Stage is the step of a delivery attempt that failed.
type Stage string

const (
	StageConnect Stage = "connect" // dial, banner, EHLO, TLS, AUTH
	StageMail    Stage = "mail"
	StageRcpt    Stage = "rcpt"
	StageData    Stage = "data"
)

// Error is a failed delivery attempt, classified where it happened: the pool knows the
// stage and whether the upstream worked before, which a bare error cannot tell.
type Error struct {
	Outcome Outcome
	Stage   Stage
	// Host is the upstream "host:port".
	Host string
	// Recipients lists every recipient with its RCPT reply when the upstream rejected
	// some of them; the message was then not sent to anyone.
	Recipients []RecipientResult
	err        error
}

// Error describes the failure; the text was redacted when the Outcome was built.
func (e *Error) Error() string {
	return fmt.Sprintf("error delivering via %s at %s (%s): %s", e.Host, e.Stage, e.Outcome.Code, e.Outcome.summary())
}

// summary is the reply as the server wrote it, or the text alone when there was no
// reply or the text already quotes each recipient's reply.
func (o Outcome) summary() string {
	if o.SMTPCode == 0 || o.Code == CodeRecipientRejected {
		return o.Text
	}
	return Reply{Code: o.SMTPCode, EnhancedCode: o.EnhancedCode, Text: o.Text}.String()
}

// Unwrap exposes the underlying error, e.g. for errors.Is(err, context.Canceled).
func (e *Error) Unwrap() error { return e.err }

// Classify turns any error from this package (or go-mail, go-smtp, the network) into an
// Outcome; nil is Delivered. Errors returned by a Pool carry the pool's classification.
func Classify(err error) Outcome {
	if err == nil {
		return Outcome{Class: ClassDelivered, Code: CodeDelivered}
	}
	var de *Error
	if errors.As(err, &de) {
		return de.Outcome
	}
	return classify(err)
}

// IsPermanent reports whether retrying the message cannot help.
func IsPermanent(err error) bool { return err != nil && Classify(err).Class == ClassPermanent }

// IsTemporary reports whether the attempt should be retried later.
func IsTemporary(err error) bool { return err != nil && Classify(err).Class == ClassTemporary }

// IsConfig reports whether the connector's settings must be fixed before delivery can work.
func IsConfig(err error) bool { return err != nil && Classify(err).Class == ClassConfig }

// classify inspects a raw error, most specific kinds first. Setup failures (TLS, DNS
// not-found, missing STARTTLS) come out as Config; a Pool whose upstream has accepted
// mail before downgrades them to Temporary.
func classify(err error) Outcome {
	if r, ok := replyOf(err); ok {
		return classifyReply(r)
	}
	if code, why, ok := tlsProblem(err); ok {
		return Outcome{Class: ClassConfig, Code: code, Text: why}
	}
	if ae, ok := addressRefused(err); ok {
		return Outcome{Class: ClassConfig, Code: CodeAddressNotAllowed, Text: ae.Error()}
	}
	if o, ok := classifyGoMail(err); ok {
		return o
	}
	return classifyNetwork(err)
}

// classifyReply maps a reply code: 4xx temporary, 5xx permanent, authentication
// problems Config.
func classifyReply(r Reply) Outcome {
	o := Outcome{SMTPCode: r.Code, EnhancedCode: r.EnhancedCode, Text: r.Text}
	switch {
	case r.Code >= 200 && r.Code < 300:
		o.Class, o.Code = ClassDelivered, CodeDelivered
	case r.Code == 535 || r.Code == 534:
		o.Class, o.Code = ClassConfig, CodeAuthFailed
	case r.Code == 523 || r.Code == 538:
		o.Class, o.Code = ClassConfig, CodeAuthRequiresTLS
	case r.Code == 530:
		o.Class, o.Code = ClassConfig, CodeAuthRequired
	case r.Code == 421:
		// RFC 5321 3.8: the server is closing the connection, whatever it was answering.
		o.Class, o.Code = ClassTemporary, CodeConnectionClosing
	case r.Code >= 400 && r.Code < 500:
		o.Class, o.Code = ClassTemporary, CodeDeferred
	case r.Code >= 500 && r.Code < 600:
		o.Class, o.Code = ClassPermanent, CodeRejected
	default:
		o.Class, o.Code = ClassTemporary, CodeProtocolError
	}
	return o
}

// classifyGoMail recognises go-mail's setup errors. go-mail reports a missing STARTTLS
// and a missing AUTH extension only as formatted text, hence the string checks.
func classifyGoMail(err error) (Outcome, bool) {
	text := err.Error()
	switch {
	case noAuthOffered(err):
		return Outcome{Class: ClassConfig, Code: CodeAuthMechanismUnsupported, Text: text}, true
	case errors.Is(err, mail.ErrPlainAuthNotSupported), errors.Is(err, mail.ErrLoginAuthNotSupported),
		errors.Is(err, mail.ErrCramMD5AuthNotSupported):
		return Outcome{Class: ClassConfig, Code: CodeAuthMechanismUnsupported, Text: text}, true
	case errors.Is(err, gmsmtp.ErrUnencrypted):
		return Outcome{Class: ClassConfig, Code: CodeAuthRequiresTLS, Text: text}, true
	case strings.Contains(text, "does not support STARTTLS"):
		return Outcome{Class: ClassConfig, Code: CodeStartTLSUnsupported, Text: text}, true
	}
	return Outcome{}, false
}

// noAuthOffered is go-mail's error for a server without the AUTH extension.
func noAuthOffered(err error) bool {
	return strings.Contains(err.Error(), "server does not support SMTP AUTH")
}

// classifyNetwork maps DNS, TCP and timeout errors; all are temporary.
func classifyNetwork(err error) Outcome {
	o := Outcome{Class: ClassTemporary, Code: CodeUnknown, Text: err.Error()}
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, context.Canceled):
		o.Code = CodeCanceled
	case errors.As(err, &dnsErr):
		o.Code = dnsCode(dnsErr)
	case isDialError(err):
		o.Code = dialCode(err)
	case isTimeout(err):
		o.Code = CodeCommandTimeout
	case isDropped(err):
		o.Code = CodeConnectionDropped
	}
	return o
}

// dnsCode names a resolver failure.
func dnsCode(err *net.DNSError) string {
	switch {
	case err.IsNotFound:
		return CodeDNSNotFound
	case err.IsTimeout:
		return CodeDNSTimeout
	}
	return CodeDNSFailed
}

// isDialError reports errors from establishing the TCP connection.
func isDialError(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// dialCode names a TCP connect failure.
func dialCode(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return CodeTCPRefused
	case isTimeout(err):
		return CodeTCPTimeout
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return CodeTCPUnreachable
	}
	return CodeTCPFailed
}

// isTimeout covers deadlines on connections and contexts.
func isTimeout(err error) bool {
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &netErr) && netErr.Timeout())
}

// isDropped reports a connection the server closed or reset.
func isDropped(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}

// tlsProblem names TLS failures and says why in words: certificate problems first
// (expired, unknown authority, name mismatch), then plain text where TLS was expected,
// then handshake alerts.
func tlsProblem(err error) (code, why string, ok bool) {
	if why, ok := certificateProblem(err); ok {
		return CodeTLSCertificateInvalid, why, true
	}
	var rhErr tls.RecordHeaderError
	if errors.As(err, &rhErr) {
		return CodeTLSNotTLS, fmt.Sprintf("the server answered in plain text (%q…) instead of a TLS handshake", plainPrefix(rhErr.RecordHeader[:])), true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && (opErr.Op == "remote error" || opErr.Op == "local error") {
		return CodeTLSHandshakeFailed, opErr.Error(), true
	}
	var alert tls.AlertError
	if errors.As(err, &alert) || strings.HasPrefix(err.Error(), "tls: ") {
		return CodeTLSHandshakeFailed, err.Error(), true
	}
	return "", "", false
}

// certificateProblem explains why a certificate did not verify.
func certificateProblem(err error) (string, bool) {
	var unknown x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		return "unknown authority: the certificate is not signed by a trusted certificate authority (it may be self-signed)", true
	case errors.As(err, &hostErr):
		return fmt.Sprintf("name mismatch: the certificate is valid for %s, not %s", certificateNames(hostErr.Certificate), hostErr.Host), true
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "expired: the certificate expired on " + invalid.Cert.NotAfter.UTC().Format(time.DateOnly), true
	case errors.As(err, &invalid):
		return "invalid certificate: " + invalid.Error(), true
	}
	var verifyErr *tls.CertificateVerificationError
	if errors.As(err, &verifyErr) {
		return "invalid certificate: " + verifyErr.Err.Error(), true
	}
	return "", false
}

// certificateNames lists the names a certificate is valid for.
func certificateNames(cert *x509.Certificate) string {
	if cert == nil {
		return "other names"
	}
	names := append([]string{}, cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && cert.Subject.CommonName != "" {
		names = append(names, cert.Subject.CommonName)
	}
	if len(names) == 0 {
		return "no host names"
	}
	return strings.Join(names, ", ")
}

// plainPrefix shows the bytes a plain-text server sent, without control characters.
func plainPrefix(b []byte) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, string(b))
}
