// Package delivery sends rendered, signed messages to upstream SMTP servers over go-mail,
// keeps pools of authenticated connections, probes an upstream step by step for the
// settings page, signs DKIM, and classifies every SMTP failure once, so that workers act
// on a class instead of parsing errors. It knows nothing of the database or River.
package delivery

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Security is how the connection to an upstream is protected.
type Security string

const (
	// SecurityTLS is implicit TLS from the first byte, usually on port 465.
	SecurityTLS Security = "tls"
	// SecurityStartTLS upgrades with STARTTLS and fails when the server does not offer
	// it: never silently downgraded to plain text.
	SecurityStartTLS Security = "starttls"
	// SecurityNone is plain text, for trusted internal relays only; credentials then
	// travel unencrypted, which the customer chose explicitly.
	SecurityNone Security = "none"
)

// AuthMechanism is the SASL mechanism used to log in to the upstream.
type AuthMechanism string

const (
	AuthPlain   AuthMechanism = "plain"
	AuthLogin   AuthMechanism = "login"
	AuthCRAMMD5 AuthMechanism = "cram-md5"
	AuthNone    AuthMechanism = "none"
)

// Timeouts used when Settings leave them zero. Commands get a minute: RFC 5321 allows
// five, but a transactional message that waits longer is better retried.
const (
	DefaultConnectTimeout = 15 * time.Second
	DefaultCommandTimeout = time.Minute
)

// redacted replaces secrets wherever a value is printed.
const redacted = "[redacted]"

// Settings describe one upstream SMTP server. Password is a secret: it never appears in
// String, GoString, LogValue, JSON, error text or probe results.
type Settings struct {
	Host          string        `json:"host"`
	Port          int           `json:"port"`
	Security      Security      `json:"security"`
	AuthMechanism AuthMechanism `json:"auth_mechanism"`
	Username      string        `json:"username,omitempty"`
	Password      string        `json:"-"`
	// HELOName is the name sent in EHLO; empty means the machine's host name.
	HELOName       string        `json:"helo_name,omitempty"`
	ConnectTimeout time.Duration `json:"connect_timeout,omitempty"`
	CommandTimeout time.Duration `json:"command_timeout,omitempty"`
	// TLSServerName is the name the certificate must carry; empty means Host.
	TLSServerName string `json:"tls_server_name,omitempty"`
	TLSSkipVerify bool   `json:"tls_skip_verify,omitempty"`
	// RootCAs verifies certificates; nil means the system pool. Tests set a test CA.
	RootCAs *x509.CertPool `json:"-"`
	// Resolver looks up Host; nil means net.DefaultResolver. Tests point it at a
	// loopback DNS server.
	Resolver *net.Resolver `json:"-"`
	// AllowAddrFunc, when set, decides whether an address may be connected to; it is
	// asked for every address actually dialed, after DNS resolution.
	AllowAddrFunc func(netip.Addr) bool `json:"-"`
}

// String describes the upstream without the password.
func (s Settings) String() string {
	user := ""
	if s.Username != "" {
		user = s.Username + "@"
	}
	return fmt.Sprintf("smtp://%s%s (security %s, auth %s, password %s)",
		user, s.addr(), s.Security, s.AuthMechanism, s.passwordState())
}

// GoString keeps %#v from printing the password field.
func (s Settings) GoString() string { return "delivery.Settings{" + s.String() + "}" }

// LogValue keeps slog from printing the password.
func (s Settings) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("host", s.Host),
		slog.Int("port", s.Port),
		slog.String("security", string(s.Security)),
		slog.String("auth_mechanism", string(s.AuthMechanism)),
		slog.String("username", s.Username),
		slog.String("password", s.passwordState()),
	)
}

// passwordState says whether a password is set, never what it is.
func (s Settings) passwordState() string {
	if s.Password == "" {
		return "unset"
	}
	return redacted
}

// Validate reports settings that cannot work, before any connection is tried.
func (s Settings) Validate() error {
	var errs []error
	if strings.TrimSpace(s.Host) == "" || strings.ContainsAny(s.Host, " \r\n/") {
		errs = append(errs, errors.New("host must be a host name or IP address"))
	}
	if s.Port < 1 || s.Port > 65535 {
		errs = append(errs, errors.New("port must be between 1 and 65535"))
	}
	switch s.Security {
	case SecurityTLS, SecurityStartTLS, SecurityNone:
	default:
		errs = append(errs, fmt.Errorf("security must be tls, starttls or none, not %q", s.Security))
	}
	errs = append(errs, s.validateAuth()...)
	if strings.ContainsAny(s.HELOName, " \r\n") {
		errs = append(errs, errors.New("helo name must be a single host name"))
	}
	return errors.Join(errs...)
}

// validateAuth checks the mechanism and that it has credentials.
func (s Settings) validateAuth() []error {
	switch s.AuthMechanism {
	case AuthNone, "":
		return nil
	case AuthPlain, AuthLogin, AuthCRAMMD5:
		if s.Username == "" || s.Password == "" {
			return []error{errors.New("username and password are required for authentication")}
		}
		return nil
	}
	return []error{fmt.Errorf("auth mechanism must be plain, login, cram-md5 or none, not %q", s.AuthMechanism)}
}

// withDefaults fills zero timeouts and mechanism.
func (s Settings) withDefaults() Settings {
	if s.ConnectTimeout <= 0 {
		s.ConnectTimeout = DefaultConnectTimeout
	}
	if s.CommandTimeout <= 0 {
		s.CommandTimeout = DefaultCommandTimeout
	}
	if s.AuthMechanism == "" {
		s.AuthMechanism = AuthNone
	}
	return s
}

// addr is "host:port", bracketing IPv6 addresses.
func (s Settings) addr() string {
	return net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
}

// serverName is the name the certificate is checked against.
func (s Settings) serverName() string {
	if s.TLSServerName != "" {
		return s.TLSServerName
	}
	return s.Host
}

// tlsConfig is shared by the probe and the pool so both judge certificates alike.
func (s Settings) tlsConfig() *tls.Config {
	return &tls.Config{
		ServerName:         s.serverName(),
		RootCAs:            s.RootCAs,
		InsecureSkipVerify: s.TLSSkipVerify, //nolint:gosec // the customer chose it; the probe reports it.
		MinVersion:         tls.VersionTLS12,
	}
}

// resolver returns the configured resolver or the default one.
func (s Settings) resolver() *net.Resolver {
	if s.Resolver != nil {
		return s.Resolver
	}
	return net.DefaultResolver
}

// redact removes the password from text that may echo it (server replies, wrapped errors).
// Very short passwords are left alone: replacing them would mangle ordinary words.
func (s Settings) redact(text string) string {
	if len(s.Password) < 4 {
		return text
	}
	return strings.ReplaceAll(text, s.Password, redacted)
}
