package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// Settings returns the delivery settings of c with its password opened.
func (s *Service) Settings(c *Connector) (delivery.Settings, error) {
	if c.Kind == KindPlatform {
		if s.policy.Platform == nil {
			return delivery.Settings{}, fmt.Errorf("platform relay is not configured")
		}
		return *s.policy.Platform, nil
	}
	pw, err := s.password(c)
	if err != nil {
		return delivery.Settings{}, err
	}
	return s.smtpSettings(c.SMTP, pw), nil
}

func (s *Service) smtpSettings(m *SMTP, password string) delivery.Settings {
	settings := delivery.Settings{
		Host: m.Host, Port: m.Port, Security: m.Security, AuthMechanism: m.AuthMechanism,
		Username: m.Username, Password: password, HELOName: m.HELOName,
		ConnectTimeout: m.ConnectTimeout, CommandTimeout: m.CommandTimeout,
		TLSServerName: m.TLSServerName, TLSSkipVerify: m.TLSSkipVerify, RootCAs: s.policy.RootCAs,
	}
	if !s.policy.AllowPrivateAddresses {
		// Checked on every dial, after DNS: a tenant's host name cannot lead to the
		// operator's network, not even by resolving differently later.
		settings.AllowAddrFunc = PublicAddr
	}
	return settings
}

// Test runs the staged connection test on a stored connector and stores the result.
func (s *Service) Test(ctx context.Context, tenantID, id string) (*TestResult, error) {
	c, err := s.Get(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	settings, err := s.Settings(c)
	if err != nil {
		return nil, err
	}
	res := s.probe(ctx, settings)
	b, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("error encoding test result: %w", err)
	}
	err = store.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		n, err := s.q.WithTx(tx).ConnectorSetLastTest(ctx, dbsqlc.ConnectorSetLastTestParams{TenantID: tenantID, ID: id, LastTest: b})
		if err != nil {
			return fmt.Errorf("error storing test result: %w", err)
		}
		if n == 0 {
			// Deleted during the test: its tenant may be gone too, and the stream's
			// rows have no foreign key that would refuse an event for it.
			return store.ErrNotFound
		}
		return appendTestFailed(ctx, tx, c, res)
	})
	s.forget(tenantID)
	if err != nil {
		return nil, err
	}
	if res.OK {
		if err := s.resumeAfterTest(ctx, c); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// TestInput runs the staged connection test on settings that are not saved.
func (s *Service) TestInput(ctx context.Context, in Input) (*TestResult, error) {
	c, password, err := s.build(in)
	if err != nil {
		return nil, err
	}
	if c.Kind == KindPlatform {
		return s.probe(ctx, *s.policy.Platform), nil
	}
	pw := ""
	if password != nil {
		pw = *password
	}
	return s.probe(ctx, s.smtpSettings(c.SMTP, pw)), nil
}

func (s *Service) probe(ctx context.Context, settings delivery.Settings) *TestResult {
	return &TestResult{ProbeResult: delivery.Probe(ctx, settings), TestedAt: s.NowFunc().UTC()}
}

// ParsePlatformURL reads SENDWERK_PLATFORM_SMTP_URL: smtp://, smtp+starttls:// or smtps://,
// with optional user:password@ and query parameters auth (plain, login, cram-md5), helo and
// skip_verify. Errors never repeat the URL, which holds a password.
func ParsePlatformURL(raw string) (*delivery.Settings, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("must be a URL like smtp+starttls://user:password@smtp.example.com:587")
	}
	s := &delivery.Settings{Host: u.Hostname(), AuthMechanism: delivery.AuthNone}
	defaultPort := 25
	switch u.Scheme {
	case "smtp":
		s.Security = delivery.SecurityNone
	case "smtp+starttls":
		s.Security, defaultPort = delivery.SecurityStartTLS, 587
	case "smtps":
		s.Security, defaultPort = delivery.SecurityTLS, 465
	default:
		return nil, fmt.Errorf("scheme must be smtp, smtp+starttls or smtps")
	}
	s.Port = defaultPort
	if p := u.Port(); p != "" {
		if s.Port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("port must be a number")
		}
	}
	if u.User != nil {
		s.Username = u.User.Username()
		s.Password, _ = u.User.Password()
		s.AuthMechanism = delivery.AuthPlain
	}
	q := u.Query()
	if a := q.Get("auth"); a != "" {
		s.AuthMechanism = delivery.AuthMechanism(a)
	}
	s.HELOName = q.Get("helo")
	s.TLSSkipVerify = q.Get("skip_verify") == "true"
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}
