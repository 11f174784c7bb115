package connector

import (
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/mailaddr"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// Input is a connector as a tenant describes it, for create and for a test before saving.
type Input struct {
	Name      string
	Kind      string
	SMTP      *SMTPInput
	Sender    Sender
	Limits    Limits
	Status    string // "" means active
	IsDefault bool
}

// SMTPInput is the tenant's own server; nil pointers take defaults.
type SMTPInput struct {
	Host            string
	Port            int
	Security        string
	AuthMechanism   *string
	Username        *string
	Password        *string
	HELOName        *string
	ConnectTimeoutS *int
	CommandTimeoutS *int
	TLSServerName   *string
	TLSSkipVerify   *bool
}

// Patch changes a stored connector; nil fields stay.
type Patch struct {
	Name        *string
	SMTP        *SMTPPatch
	Sender      *Sender
	Limits      *LimitsPatch
	Status      *string
	MakeDefault bool
}

// SMTPPatch changes SMTP settings. For the Optional fields, Set with a nil Value clears.
type SMTPPatch struct {
	Host            *string
	Port            *int
	Security        *string
	AuthMechanism   *string
	Username        *Optional[string]
	Password        *Optional[string]
	HELOName        *Optional[string]
	ConnectTimeoutS *int
	CommandTimeoutS *int
	TLSServerName   *Optional[string]
	TLSSkipVerify   *bool
}

// LimitsPatch replaces limits one by one.
type LimitsPatch struct {
	PerMinute, PerHour, PerDay, MonthlyQuota *Optional[int64]
}

// Optional is a patch value that may be set to null.
type Optional[T any] struct{ Value *T }

// build turns an Input into a connector (without id) and the plaintext password, or a
// validate.Error naming each bad field.
func (s *Service) build(in Input) (*Connector, *string, error) {
	v := &validate.Error{}
	c := &Connector{Name: in.Name, Kind: in.Kind, Status: in.Status, IsDefault: in.IsDefault, Limits: in.Limits}
	if c.Status == "" {
		c.Status = StatusActive
	}
	c.Sender = s.checkSender(v, "default_sender", in.Sender)
	var password *string
	switch in.Kind {
	case KindSMTP:
		if in.SMTP == nil {
			v.Add("smtp", "is required when kind is smtp")
			break
		}
		c.SMTP, password = smtpFromInput(in.SMTP)
		s.checkSMTP(v, c.SMTP, password != nil)
	case KindPlatform:
		if in.SMTP != nil {
			v.Add("smtp", "must be absent when kind is platform: the platform relay's settings are the operator's")
		}
		if s.policy.Platform == nil {
			v.Add("kind", "platform is not available: the operator has not configured a platform relay")
		}
	}
	return c, password, v.Err()
}

func smtpFromInput(in *SMTPInput) (*SMTP, *string) {
	m := &SMTP{
		Host: strings.TrimSuffix(strings.TrimSpace(in.Host), "."), Port: in.Port, Security: delivery.Security(in.Security),
		ConnectTimeout: DefaultConnectTimeout, CommandTimeout: DefaultCommandTimeout,
	}
	if in.Username != nil {
		m.Username = *in.Username
	}
	m.AuthMechanism = delivery.AuthNone
	if m.Username != "" {
		m.AuthMechanism = delivery.AuthPlain
	}
	if in.AuthMechanism != nil {
		m.AuthMechanism = delivery.AuthMechanism(*in.AuthMechanism)
	}
	if in.HELOName != nil {
		m.HELOName = *in.HELOName
	}
	if in.ConnectTimeoutS != nil {
		m.ConnectTimeout = time.Duration(*in.ConnectTimeoutS) * time.Second
	}
	if in.CommandTimeoutS != nil {
		m.CommandTimeout = time.Duration(*in.CommandTimeoutS) * time.Second
	}
	if in.TLSServerName != nil {
		m.TLSServerName = *in.TLSServerName
	}
	if in.TLSSkipVerify != nil {
		m.TLSSkipVerify = *in.TLSSkipVerify
	}
	var password *string
	if in.Password != nil && *in.Password != "" {
		password = in.Password
	}
	m.PasswordSet = password != nil
	return m, password
}

// apply merges a patch into c, sealing a new password, and validates the result.
func (s *Service) apply(c *Connector, p Patch) error {
	v := &validate.Error{}
	if p.Name != nil {
		c.Name = *p.Name
	}
	if p.Status != nil {
		c.Status = *p.Status
	}
	if p.Sender != nil {
		c.Sender = s.checkSender(v, "default_sender", *p.Sender)
	}
	if p.Limits != nil {
		c.Limits.Apply(p.Limits)
	}
	if p.SMTP != nil {
		if c.Kind != KindSMTP {
			v.Add("smtp", "a platform connector has no SMTP settings of its own")
			return v.Err()
		}
		s.applySMTP(c, p.SMTP)
		c.LastTest = nil
		s.checkSMTP(v, c.SMTP, c.SMTP.PasswordSet)
	}
	return v.Err()
}

func (s *Service) applySMTP(c *Connector, p *SMTPPatch) {
	m := c.SMTP
	set(&m.Host, p.Host)
	set(&m.Port, p.Port)
	if p.Security != nil {
		m.Security = delivery.Security(*p.Security)
	}
	if p.AuthMechanism != nil {
		m.AuthMechanism = delivery.AuthMechanism(*p.AuthMechanism)
	}
	setOptional(&m.Username, p.Username)
	setOptional(&m.HELOName, p.HELOName)
	setOptional(&m.TLSServerName, p.TLSServerName)
	set(&m.TLSSkipVerify, p.TLSSkipVerify)
	if p.ConnectTimeoutS != nil {
		m.ConnectTimeout = time.Duration(*p.ConnectTimeoutS) * time.Second
	}
	if p.CommandTimeoutS != nil {
		m.CommandTimeout = time.Duration(*p.CommandTimeoutS) * time.Second
	}
	if p.Password != nil {
		if p.Password.Value == nil || *p.Password.Value == "" {
			c.passwordKeyID, c.password = "", nil
		} else {
			c.passwordKeyID, c.password = s.box.Seal([]byte(*p.Password.Value), PasswordContext(c.ID))
		}
		m.PasswordSet = c.password != nil
	}
}

// Apply replaces the limits p sets.
func (l *Limits) Apply(p *LimitsPatch) {
	for _, f := range []struct {
		dst **int64
		src *Optional[int64]
	}{{&l.PerMinute, p.PerMinute}, {&l.PerHour, p.PerHour}, {&l.PerDay, p.PerDay}, {&l.MonthlyQuota, p.MonthlyQuota}} {
		if f.src != nil {
			*f.dst = f.src.Value
		}
	}
}

func (s *Service) checkSender(v *validate.Error, field string, in Sender) Sender {
	a, err := mailaddr.Parse(strings.TrimSpace(in.Email))
	if err != nil {
		v.Add(field+".email", err.Error())
		return in
	}
	if strings.ContainsAny(in.Name, "\r\n") {
		v.Add(field+".name", "must not contain line breaks")
	}
	return Sender{Email: a.String(), Name: strings.TrimSpace(in.Name)}
}

// checkSMTP applies the rules the schema cannot express and the operator's policy.
func (s *Service) checkSMTP(v *validate.Error, m *SMTP, hasPassword bool) {
	if !validHost(m.Host) {
		v.Add("smtp.host", "must be a host name like smtp.example.com or an IP address")
	} else if ip, err := netip.ParseAddr(m.Host); err == nil && !s.policy.AllowPrivateAddresses && !PublicAddr(ip) {
		v.Add("smtp.host", "must be a public address: loopback, private, link-local, reserved and other special-purpose addresses are not allowed here")
	}
	if m.Security == delivery.SecurityNone && !s.policy.AllowPlaintext {
		v.Add("smtp.security", "none is not allowed by this platform; choose tls or starttls")
	}
	switch {
	case m.AuthMechanism == delivery.AuthNone && !s.policy.AllowNoAuth:
		v.Add("smtp.auth_mechanism", "none is not allowed by this platform; the server must require a login")
	case m.AuthMechanism != delivery.AuthNone && m.Username == "":
		v.Add("smtp.username", "is required when auth_mechanism is "+string(m.AuthMechanism))
	case m.AuthMechanism != delivery.AuthNone && !hasPassword:
		v.Add("smtp.password", "is required when auth_mechanism is "+string(m.AuthMechanism))
	}
	for field, name := range map[string]string{"smtp.helo_name": m.HELOName, "smtp.tls_server_name": m.TLSServerName} {
		if name != "" && !validHost(name) {
			v.Add(field, "must be a host name")
		}
	}
}

func validHost(h string) bool {
	if h == "" || len(h) > 253 || strings.ContainsAny(h, " /\\@:\r\n") && net.ParseIP(h) == nil {
		return false
	}
	if net.ParseIP(h) != nil {
		return true
	}
	_, err := mailaddr.Domain(h)
	return err == nil || isSingleLabel(h)
}

// isSingleLabel accepts an internal host name like "mailrelay" (policy decides whether such
// hosts are reachable).
func isSingleLabel(h string) bool {
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return !strings.HasPrefix(h, "-") && !strings.HasSuffix(h, "-")
}

// PublicAddr reports whether ip may be a tenant's upstream: see delivery.GloballyReachable.
func PublicAddr(ip netip.Addr) bool {
	return delivery.GloballyReachable(ip)
}

func set[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

func setOptional(dst *string, src *Optional[string]) {
	if src == nil {
		return
	}
	*dst = ""
	if src.Value != nil {
		*dst = *src.Value
	}
}
