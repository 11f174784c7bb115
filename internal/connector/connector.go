// Package connector manages how a tenant's mail leaves Sendwerk: its own upstream SMTP
// server (kind smtp) or the operator's relay (kind platform), with a default sender, limits,
// a write-only password encrypted at rest, a staged connection test and a test e-mail.
package connector

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/cache"
	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/secret"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// Kinds of connector.
const (
	KindSMTP     = "smtp"
	KindPlatform = "platform"
)

// Statuses of a connector.
const (
	StatusActive = "active"
	StatusPaused = "paused"
)

// Default timeouts for a tenant's server.
const (
	DefaultConnectTimeout = 15 * time.Second
	DefaultCommandTimeout = 60 * time.Second
)

// Connector is how one tenant's mail leaves.
type Connector struct {
	ID        string
	TenantID  string
	Name      string
	Kind      string
	Status    string
	IsDefault bool
	SMTP      *SMTP // nil for platform connectors
	Sender    Sender
	Limits    Limits
	LastTest  *TestResult
	CreatedAt time.Time
	UpdatedAt time.Time
	// Breaker is the circuit breaker's state: why the connector is paused, and the
	// failures it counted.
	Breaker Breaker

	passwordKeyID string
	password      []byte // ciphertext
}

// SMTP is a tenant's own server as stored; the password stays sealed.
type SMTP struct {
	Host           string
	Port           int
	Security       delivery.Security
	AuthMechanism  delivery.AuthMechanism
	Username       string
	PasswordSet    bool
	HELOName       string
	ConnectTimeout time.Duration
	CommandTimeout time.Duration
	TLSServerName  string
	TLSSkipVerify  bool
}

// Sender is a default From address.
type Sender struct {
	Email string
	Name  string
}

// Limits cap sending; nil means unlimited.
type Limits struct {
	PerMinute    *int64
	PerHour      *int64
	PerDay       *int64
	MonthlyQuota *int64
}

// TestResult is a stored connection test.
type TestResult struct {
	delivery.ProbeResult
	TestedAt time.Time `json:"tested_at"`
}

// Warnings name settings that work but weaken security, for the settings page.
func (c *Connector) Warnings() []string {
	var w []string
	if c.SMTP == nil {
		return w
	}
	if c.SMTP.Security == delivery.SecurityNone {
		w = append(w, "security is none: messages and the password travel unencrypted")
	}
	if c.SMTP.TLSSkipVerify {
		w = append(w, "tls_skip_verify is on: the server's certificate is not checked, so the connection can be intercepted")
	}
	return w
}

// Policy is the operator's rules for connectors.
type Policy struct {
	// AllowNoAuth permits smtp connectors that send without logging in.
	AllowNoAuth bool
	// AllowPlaintext permits security "none".
	AllowPlaintext bool
	// AllowPrivateAddresses permits servers on loopback, private and link-local addresses;
	// off in production so tenants cannot make Sendwerk probe the operator's network.
	AllowPrivateAddresses bool
	// Platform is the operator's relay for platform connectors; nil when none is configured.
	Platform *delivery.Settings
	// RootCAs verifies upstream certificates; nil means the system pool.
	RootCAs *x509.CertPool
	// BreakerThreshold is how many delivery attempts in a row may fail with a rejected
	// password (or a certificate that does not verify) before the connector is paused;
	// 0 means DefaultBreakerThreshold.
	BreakerThreshold int
	// CacheTTL is how long Get and Default reuse a connector they read; 0 reads it every
	// time. Every change through this Service (update, delete, pause, resume, a breaker
	// trip, a test result) drops the tenant's connectors from the cache at once; a change
	// by another process is seen within CacheTTL.
	CacheTTL time.Duration
}

// Service stores connectors and talks to their servers.
type Service struct {
	db      store.DB
	q       *dbsqlc.Queries
	box     *secret.Box
	policy  Policy
	NowFunc func() time.Time

	// cache holds connectors read by Get and Default; nil without Policy.CacheTTL.
	cache *cache.TTL[cacheKey, *Connector]
}

// cacheKey names a connector of a tenant; an empty id is the tenant's default.
type cacheKey struct{ tenantID, id string }

// NewService returns a Service over a pool or transaction.
func NewService(db store.DB, box *secret.Box, policy Policy) *Service {
	s := &Service{db: db, q: dbsqlc.New(db), box: box, policy: policy, NowFunc: time.Now}
	if policy.CacheTTL > 0 {
		s.cache = cache.New[cacheKey, *Connector](policy.CacheTTL, 0)
		s.cache.SetClock(func() time.Time { return s.NowFunc() })
	}
	return s
}

// Get returns one of tenantID's connectors, or store.ErrNotFound.
func (s *Service) Get(ctx context.Context, tenantID, id string) (*Connector, error) {
	if !ids.Valid(ids.Connector, id) {
		return nil, store.ErrNotFound
	}
	return s.cached(cacheKey{tenantID, id}, func() (dbsqlc.Connector, error) {
		row, err := s.q.ConnectorGet(ctx, dbsqlc.ConnectorGetParams{TenantID: tenantID, ID: id})
		if err != nil {
			return row, fmt.Errorf("error getting connector: %w", store.MapError(err))
		}
		return row, nil
	})
}

// Default returns tenantID's default connector, or store.ErrNotFound when it has none.
func (s *Service) Default(ctx context.Context, tenantID string) (*Connector, error) {
	return s.cached(cacheKey{tenantID, ""}, func() (dbsqlc.Connector, error) {
		row, err := s.q.ConnectorGetDefault(ctx, tenantID)
		if err != nil {
			return row, fmt.Errorf("error getting default connector: %w", store.MapError(err))
		}
		return row, nil
	})
}

// cached returns a copy of the connector at key, reading it with load when the cache has
// none. "Not found" is not cached: a connector created here or elsewhere is found at once.
func (s *Service) cached(key cacheKey, load func() (dbsqlc.Connector, error)) (*Connector, error) {
	c, err := s.cache.Get(key, func() (*Connector, error) {
		row, err := load()
		if err != nil {
			return nil, err
		}
		return fromRow(row)
	})
	if err != nil {
		return nil, err
	}
	cp := *c // callers may change the fields they were given, never the cached connector's
	return &cp, nil
}

// ForgetTenant drops a tenant's connectors from the cache (its deletion, through the
// tenant service).
func (s *Service) ForgetTenant(tenantID string) { s.forget(tenantID) }

// forget drops tenantID's connectors from the cache: any change to one may change which
// is the default, so all of them go. It runs after the change committed.
func (s *Service) forget(tenantID string) {
	s.cache.DeleteFunc(func(k cacheKey, _ *Connector) bool { return k.tenantID == tenantID })
}

// List returns up to limit connectors after afterID.
func (s *Service) List(ctx context.Context, tenantID, afterID string, limit int) ([]*Connector, error) {
	rows, err := s.q.ConnectorList(ctx, dbsqlc.ConnectorListParams{TenantID: tenantID, AfterID: afterID, Max: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("error listing connectors: %w", err)
	}
	out := make([]*Connector, 0, len(rows))
	for _, r := range rows {
		c, err := fromRow(r)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Create validates and stores a connector. The tenant's first connector becomes its default.
func (s *Service) Create(ctx context.Context, tenantID string, in Input) (*Connector, error) {
	c, password, err := s.build(in)
	if err != nil {
		return nil, err
	}
	c.ID, c.TenantID = ids.New(ids.Connector), tenantID
	if password != nil {
		c.passwordKeyID, c.password = s.box.Seal([]byte(*password), PasswordContext(c.ID))
	}
	var out *Connector
	err = store.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if _, err := q.TenantLock(ctx, tenantID); err != nil {
			return fmt.Errorf("error locking tenant: %w", store.MapError(err))
		}
		if err := checkSenderClaim(ctx, q, tenantID, c); err != nil {
			return err
		}
		if c.IsDefault {
			if err := q.ConnectorClearDefault(ctx, dbsqlc.ConnectorClearDefaultParams{TenantID: tenantID, ID: c.ID}); err != nil {
				return fmt.Errorf("error clearing default connector: %w", err)
			}
		}
		row, err := q.ConnectorInsert(ctx, insertParams(c))
		if err != nil {
			return fmt.Errorf("error inserting connector: %w", err)
		}
		out, err = fromRow(row)
		return err
	})
	s.forget(tenantID)
	return out, err
}

// Update applies a patch. Changing SMTP settings clears the last test, which described the
// old ones.
func (s *Service) Update(ctx context.Context, tenantID, id string, p Patch) (*Connector, error) {
	if !ids.Valid(ids.Connector, id) {
		return nil, store.ErrNotFound
	}
	var out *Connector
	err := store.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if _, err := q.TenantLock(ctx, tenantID); err != nil {
			return fmt.Errorf("error locking tenant: %w", store.MapError(err))
		}
		row, err := q.ConnectorGetForUpdate(ctx, dbsqlc.ConnectorGetForUpdateParams{TenantID: tenantID, ID: id})
		if err != nil {
			return fmt.Errorf("error getting connector: %w", store.MapError(err))
		}
		c, err := fromRow(row)
		if err != nil {
			return err
		}
		before := c.Status
		if err := s.apply(c, p); err != nil {
			return err
		}
		if c.Breaker.Tripped() && p.Status == nil {
			c.Status = StatusActive // the tenant changed something: try again
		}
		if p.Sender != nil { // a stale default sender is refused when used, not when pausing
			if err := checkSenderClaim(ctx, q, tenantID, c); err != nil {
				return err
			}
		}
		if p.MakeDefault {
			if err := q.ConnectorClearDefault(ctx, dbsqlc.ConnectorClearDefaultParams{TenantID: tenantID, ID: id}); err != nil {
				return fmt.Errorf("error clearing default connector: %w", err)
			}
			if _, err := q.ConnectorSetDefault(ctx, dbsqlc.ConnectorSetDefaultParams{TenantID: tenantID, ID: id}); err != nil {
				return fmt.Errorf("error setting default connector: %w", err)
			}
		}
		updated, err := q.ConnectorUpdate(ctx, updateParams(c))
		if err != nil {
			return fmt.Errorf("error updating connector: %w", err)
		}
		if updated, err = s.recordPauseReason(ctx, q, updated, before); err != nil {
			return err
		}
		if out, err = fromRow(updated); err != nil {
			return err
		}
		return appendStatusEvent(ctx, tx, out, before, "manual", "changed through the API")
	})
	s.forget(tenantID)
	return out, err
}

// Delete removes a connector; if it was the default, the oldest remaining one takes over.
func (s *Service) Delete(ctx context.Context, tenantID, id string) error {
	if !ids.Valid(ids.Connector, id) {
		return store.ErrNotFound
	}
	defer s.forget(tenantID)
	return store.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if _, err := q.TenantLock(ctx, tenantID); err != nil {
			return fmt.Errorf("error locking tenant: %w", store.MapError(err))
		}
		n, err := q.ConnectorDelete(ctx, dbsqlc.ConnectorDeleteParams{TenantID: tenantID, ID: id})
		if err != nil {
			return fmt.Errorf("error deleting connector: %w", err)
		}
		if n == 0 {
			return store.ErrNotFound
		}
		if err := q.ConnectorPromoteOldest(ctx, tenantID); err != nil {
			return fmt.Errorf("error promoting default connector: %w", err)
		}
		return nil
	})
}

// PasswordContext binds a connector's sealed SMTP password to its row (secret.Box context).
func PasswordContext(connectorID string) string { return "connector:" + connectorID + ":smtp_password" }

// password opens the stored password; "" when none is stored.
func (s *Service) password(c *Connector) (string, error) {
	if c.password == nil {
		return "", nil
	}
	pt, err := s.box.Open(c.passwordKeyID, c.password, PasswordContext(c.ID))
	if err != nil {
		return "", fmt.Errorf("error opening connector password: %w", err)
	}
	return string(pt), nil
}

func fromRow(r dbsqlc.Connector) (*Connector, error) {
	c := &Connector{
		ID: r.ID, TenantID: r.TenantID, Name: r.Name, Kind: r.Kind, Status: r.Status, IsDefault: r.IsDefault,
		Sender:    Sender{Email: r.DefaultSenderEmail, Name: r.DefaultSenderName},
		Limits:    Limits{PerMinute: r.LimitPerMinute, PerHour: r.LimitPerHour, PerDay: r.LimitPerDay, MonthlyQuota: r.MonthlyQuota},
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		password: r.SmtpPasswordCiphertext,
	}
	if err := c.Breaker.fromRow(r); err != nil {
		return nil, err
	}
	if r.SmtpPasswordKeyID != nil {
		c.passwordKeyID = *r.SmtpPasswordKeyID
	}
	if r.Kind == KindSMTP && r.SmtpHost != nil && r.SmtpPort != nil && r.SmtpSecurity != nil {
		c.SMTP = &SMTP{
			Host: *r.SmtpHost, Port: int(*r.SmtpPort), Security: delivery.Security(*r.SmtpSecurity),
			AuthMechanism: delivery.AuthMechanism(deref(r.SmtpAuthMechanism)), Username: deref(r.SmtpUsername),
			PasswordSet: r.SmtpPasswordCiphertext != nil, HELOName: deref(r.SmtpHeloName),
			ConnectTimeout: time.Duration(r.SmtpConnectTimeoutS) * time.Second,
			CommandTimeout: time.Duration(r.SmtpCommandTimeoutS) * time.Second,
			TLSServerName:  deref(r.SmtpTlsServerName), TLSSkipVerify: r.SmtpTlsSkipVerify,
		}
	}
	if len(r.LastTest) > 0 {
		var t TestResult
		if err := json.Unmarshal(r.LastTest, &t); err != nil {
			return nil, fmt.Errorf("error decoding connector test result: %w", err)
		}
		c.LastTest = &t
	}
	return c, nil
}

func insertParams(c *Connector) dbsqlc.ConnectorInsertParams {
	u := updateParams(c)
	return dbsqlc.ConnectorInsertParams{
		ID: c.ID, TenantID: c.TenantID, Name: c.Name, Kind: c.Kind, Status: c.Status, IsDefault: c.IsDefault,
		SmtpHost: u.SmtpHost, SmtpPort: u.SmtpPort, SmtpSecurity: u.SmtpSecurity, SmtpAuthMechanism: u.SmtpAuthMechanism,
		SmtpUsername: u.SmtpUsername, SmtpPasswordKeyID: u.SmtpPasswordKeyID, SmtpPasswordCiphertext: u.SmtpPasswordCiphertext,
		SmtpHeloName: u.SmtpHeloName, SmtpConnectTimeoutS: u.SmtpConnectTimeoutS, SmtpCommandTimeoutS: u.SmtpCommandTimeoutS,
		SmtpTlsServerName: u.SmtpTlsServerName, SmtpTlsSkipVerify: u.SmtpTlsSkipVerify,
		DefaultSenderEmail: c.Sender.Email, DefaultSenderName: c.Sender.Name,
		LimitPerMinute: c.Limits.PerMinute, LimitPerHour: c.Limits.PerHour, LimitPerDay: c.Limits.PerDay, MonthlyQuota: c.Limits.MonthlyQuota,
	}
}

func updateParams(c *Connector) dbsqlc.ConnectorUpdateParams {
	p := dbsqlc.ConnectorUpdateParams{
		TenantID: c.TenantID, ID: c.ID, Name: c.Name, Status: c.Status,
		DefaultSenderEmail: c.Sender.Email, DefaultSenderName: c.Sender.Name,
		LimitPerMinute: c.Limits.PerMinute, LimitPerHour: c.Limits.PerHour, LimitPerDay: c.Limits.PerDay, MonthlyQuota: c.Limits.MonthlyQuota,
		SmtpConnectTimeoutS: int32(DefaultConnectTimeout / time.Second), SmtpCommandTimeoutS: int32(DefaultCommandTimeout / time.Second),
	}
	if c.LastTest != nil {
		p.LastTest, _ = json.Marshal(c.LastTest)
	}
	if c.SMTP == nil {
		return p
	}
	m := c.SMTP
	port := int32(m.Port)
	p.SmtpHost, p.SmtpPort = &m.Host, &port
	p.SmtpSecurity, p.SmtpAuthMechanism = ptr(string(m.Security)), ptr(string(m.AuthMechanism))
	p.SmtpUsername, p.SmtpHeloName, p.SmtpTlsServerName = nilIfEmpty(m.Username), nilIfEmpty(m.HELOName), nilIfEmpty(m.TLSServerName)
	p.SmtpConnectTimeoutS, p.SmtpCommandTimeoutS = int32(m.ConnectTimeout/time.Second), int32(m.CommandTimeout/time.Second)
	p.SmtpTlsSkipVerify = m.TLSSkipVerify
	if c.password != nil {
		p.SmtpPasswordKeyID, p.SmtpPasswordCiphertext = &c.passwordKeyID, c.password
	}
	return p
}

// IsNotFound reports whether err means "no such connector for this tenant".
func IsNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func ptr[T any](v T) *T { return &v }
