// Package webhook delivers a tenant's events to its HTTPS endpoints, signed per the Standard
// Webhooks specification (webhook-id, webhook-timestamp, webhook-signature: v1,<base64
// HMAC-SHA256 of "id.timestamp.body">, whsec_ secrets). A dispatcher reads the event stream
// (the outbox) and enqueues one River job per event and endpoint; the job makes one attempt,
// logs it, and River retries on the published schedule. Delivery is at least once and
// unordered: receivers deduplicate by webhook-id and order by the event's sequence.
package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/sendwerk/sendwerk/internal/event"
	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/secret"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// DefaultRetrySchedule is the wait after each failed attempt: eight attempts over about 32 hours.
var DefaultRetrySchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// Config is the operator's webhook policy.
type Config struct {
	RetrySchedule []time.Duration
	// Timeout bounds one attempt: connecting, sending and reading the answer.
	Timeout time.Duration
	// DisableAfter disables an endpoint whose attempts have failed this long without a success.
	DisableAfter time.Duration
	// SecretOverlap is how long a rotated-out secret still signs (both signatures are sent).
	SecretOverlap time.Duration
	// AllowPrivateAddresses lets endpoints be on loopback, private or link-local addresses
	// (the upstream SMTP policy); checked when dialing, after DNS.
	AllowPrivateAddresses bool
	// AllowHTTP accepts http:// endpoints (development); otherwise https is required.
	AllowHTTP bool
	// AllowAddrFunc decides which addresses may be dialed when private ones are not allowed.
	AllowAddrFunc func(netip.Addr) bool
}

func (c *Config) defaults() {
	if len(c.RetrySchedule) == 0 {
		c.RetrySchedule = DefaultRetrySchedule
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.DisableAfter <= 0 {
		c.DisableAfter = 5 * 24 * time.Hour
	}
	if c.SecretOverlap <= 0 {
		c.SecretOverlap = 24 * time.Hour
	}
}

// Webhook is an endpoint as the API shows it; the secret is never part of it.
type Webhook struct {
	ID             string
	TenantID       string
	URL            string
	Description    string
	EventTypes     []event.Type
	Enabled        bool
	DisabledReason string
	DisabledAt     *time.Time
	FailingSince   *time.Time
	// PreviousSecretExpiresAt is when a rotated-out secret stops signing (nil: none).
	PreviousSecretExpiresAt *time.Time
	CreatedAt               time.Time
	UpdatedAt               time.Time
}

// Input creates a webhook.
type Input struct {
	URL         string
	Description string
	EventTypes  []event.Type
	Enabled     *bool
}

// Patch changes a webhook; nil fields stay.
type Patch struct {
	URL         *string
	Description *string
	EventTypes  *[]event.Type
	Enabled     *bool
}

// core is what the service and the worker share: storage, secrets, policy and the sender.
type core struct {
	db     store.DB
	q      *dbsqlc.Queries
	box    *secret.Box
	cfg    Config
	sender *sender
	// NowFunc is the clock (tests move it).
	NowFunc func() time.Time
}

func newCore(db store.DB, box *secret.Box, cfg Config) *core {
	cfg.defaults()
	return &core{db: db, q: dbsqlc.New(db), box: box, cfg: cfg, sender: newSender(&cfg), NowFunc: time.Now}
}

// JobInserter enqueues jobs in the caller's transaction (a River client).
type JobInserter interface {
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	InsertManyFastTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) (int, error)
}

// Service manages webhooks and their delivery log.
type Service struct {
	*core
	jobs JobInserter
}

// NewService returns the service; jobs enqueues redeliveries.
func NewService(db store.DB, box *secret.Box, jobs JobInserter, cfg Config) *Service {
	return &Service{core: newCore(db, box, cfg), jobs: jobs}
}

// RetrySchedule is the published schedule (for the API and docs).
func (s *core) RetrySchedule() []time.Duration { return s.cfg.RetrySchedule }

// Policy is the delivery policy in effect, defaults filled in (for GET /v1/platform).
func (s *core) Policy() Config { return s.cfg }

// NewSecret makes a signing secret: whsec_ and base64 of 32 random bytes.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// SecretContext binds a webhook's sealed signing secrets (current and previous) to its row
// (secret.Box context).
func SecretContext(id string) string { return "webhook:" + id + ":secret" }

// Create adds a webhook and returns it with its secret, which is shown this once.
func (s *Service) Create(ctx context.Context, tenantID string, in Input) (*Webhook, string, error) {
	v := &validate.Error{}
	s.checkURL(v, "url", in.URL)
	checkTypes(v, in.EventTypes)
	if err := v.Err(); err != nil {
		return nil, "", err
	}
	id, sec := ids.New(ids.Webhook), NewSecret()
	keyID, sealed := s.box.Seal([]byte(sec), SecretContext(id))
	row, err := s.q.WebhookInsert(ctx, dbsqlc.WebhookInsertParams{
		ID: id, TenantID: tenantID, Url: in.URL, Description: in.Description, EventTypes: typeStrings(in.EventTypes),
		Enabled: in.Enabled == nil || *in.Enabled, Secret: sealed, SecretKeyID: keyID,
	})
	if err != nil {
		return nil, "", fmt.Errorf("error inserting webhook: %w", err)
	}
	return fromRow(row), sec, nil
}

// Get returns one webhook.
func (s *Service) Get(ctx context.Context, tenantID, id string) (*Webhook, error) {
	if !ids.Valid(ids.Webhook, id) {
		return nil, store.ErrNotFound
	}
	row, err := s.q.WebhookGet(ctx, dbsqlc.WebhookGetParams{TenantID: tenantID, ID: id})
	if err != nil {
		return nil, fmt.Errorf("error getting webhook: %w", store.MapError(err))
	}
	return fromRow(row), nil
}

// List pages through a tenant's webhooks, oldest first.
func (s *Service) List(ctx context.Context, tenantID, afterID string, limit int) ([]*Webhook, error) {
	rows, err := s.q.WebhookList(ctx, dbsqlc.WebhookListParams{TenantID: tenantID, AfterID: afterID, Max: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("error listing webhooks: %w", err)
	}
	out := make([]*Webhook, len(rows))
	for i, r := range rows {
		out[i] = fromRow(r)
	}
	return out, nil
}

// Update applies a patch. Enabling a disabled webhook clears its reason and failure streak.
func (s *Service) Update(ctx context.Context, tenantID, id string, p Patch) (*Webhook, error) {
	if !ids.Valid(ids.Webhook, id) {
		return nil, store.ErrNotFound
	}
	var out *Webhook
	err := store.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		row, err := q.WebhookGetForUpdate(ctx, dbsqlc.WebhookGetForUpdateParams{TenantID: tenantID, ID: id})
		if err != nil {
			return fmt.Errorf("error getting webhook: %w", store.MapError(err))
		}
		params := dbsqlc.WebhookUpdateParams{TenantID: tenantID, ID: id, Url: row.Url, Description: row.Description,
			EventTypes: row.EventTypes, Enabled: row.Enabled, FailingSince: row.FailingSince, DisabledReason: row.DisabledReason, DisabledAt: row.DisabledAt}
		v := &validate.Error{}
		if p.URL != nil {
			s.checkURL(v, "url", *p.URL)
			params.Url = *p.URL
		}
		if p.Description != nil {
			params.Description = *p.Description
		}
		if p.EventTypes != nil {
			checkTypes(v, *p.EventTypes)
			params.EventTypes = typeStrings(*p.EventTypes)
		}
		if err := v.Err(); err != nil {
			return err
		}
		if p.Enabled != nil {
			params.Enabled = *p.Enabled
			if *p.Enabled && !row.Enabled {
				params.FailingSince, params.DisabledReason, params.DisabledAt = nil, "", nil
			}
		}
		updated, err := q.WebhookUpdate(ctx, params)
		if err != nil {
			return fmt.Errorf("error updating webhook: %w", err)
		}
		out = fromRow(updated)
		return nil
	})
	return out, err
}

// Delete removes a webhook and its delivery log.
func (s *Service) Delete(ctx context.Context, tenantID, id string) error {
	if !ids.Valid(ids.Webhook, id) {
		return store.ErrNotFound
	}
	n, err := s.q.WebhookDelete(ctx, dbsqlc.WebhookDeleteParams{TenantID: tenantID, ID: id})
	if err != nil {
		return fmt.Errorf("error deleting webhook: %w", err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// RotateSecret replaces the signing secret and returns the new one (shown this once). The
// old one keeps signing beside it for overlap (the configured default when zero), so
// receivers can switch without missing a delivery.
func (s *Service) RotateSecret(ctx context.Context, tenantID, id string, overlap time.Duration) (*Webhook, string, error) {
	if !ids.Valid(ids.Webhook, id) {
		return nil, "", store.ErrNotFound
	}
	if overlap <= 0 {
		overlap = s.cfg.SecretOverlap
	}
	sec := NewSecret()
	keyID, sealed := s.box.Seal([]byte(sec), SecretContext(id))
	row, err := s.q.WebhookRotateSecret(ctx, dbsqlc.WebhookRotateSecretParams{
		TenantID: tenantID, ID: id, Secret: sealed, SecretKeyID: keyID, PreviousExpiresAt: new(s.NowFunc().Add(overlap).UTC()),
	})
	if err != nil {
		return nil, "", fmt.Errorf("error rotating webhook secret: %w", store.MapError(err))
	}
	return fromRow(row), sec, nil
}

// secrets opens the secrets that sign now: the current one, and the previous one during
// its overlap.
func (s *core) secrets(w dbsqlc.Webhook, now time.Time) ([]string, error) {
	cur, err := s.box.Open(w.SecretKeyID, w.Secret, SecretContext(w.ID))
	if err != nil {
		return nil, fmt.Errorf("error opening webhook secret: %w", err)
	}
	out := []string{string(cur)}
	if w.PreviousSecret != nil && w.PreviousSecretKeyID != nil && w.PreviousSecretExpiresAt != nil && now.Before(*w.PreviousSecretExpiresAt) {
		prev, err := s.box.Open(*w.PreviousSecretKeyID, w.PreviousSecret, SecretContext(w.ID))
		if err != nil {
			return nil, fmt.Errorf("error opening previous webhook secret: %w", err)
		}
		out = append(out, string(prev))
	}
	return out, nil
}

// checkURL applies the URL policy that can be judged without dialing; the address policy
// is applied again on every connection, after DNS.
func (s *Service) checkURL(v *validate.Error, field, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		v.Add(field, "must be an absolute http(s) URL, e.g. https://example.com/hooks/sendwerk")
		return
	case u.Scheme == "http" && !s.cfg.AllowHTTP:
		v.Add(field, "must use https on this platform")
		return
	case u.User != nil:
		v.Add(field, "must not carry credentials; authenticate deliveries by their signature")
		return
	case len(raw) > 2000:
		v.Add(field, "must be at most 2000 characters")
		return
	}
	if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !s.cfg.AllowPrivateAddresses && !s.allowAddr(ip) {
		v.Add(field, "points to an address this platform does not deliver to (loopback, private or special-purpose)")
	}
}

func (s *Service) allowAddr(ip netip.Addr) bool {
	if s.cfg.AllowAddrFunc == nil {
		return true
	}
	return s.cfg.AllowAddrFunc(ip)
}

func checkTypes(v *validate.Error, ts []event.Type) {
	for _, t := range ts {
		if !event.Known(t) || t == event.WebhookTest {
			v.Add("event_types", fmt.Sprintf("unknown event type %q", t))
			return
		}
	}
}

func typeStrings(ts []event.Type) []string {
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		if !slices.Contains(out, string(t)) {
			out = append(out, string(t))
		}
	}
	return out
}

func fromRow(r dbsqlc.Webhook) *Webhook {
	w := &Webhook{
		ID: r.ID, TenantID: r.TenantID, URL: r.Url, Description: r.Description, Enabled: r.Enabled,
		DisabledReason: r.DisabledReason, DisabledAt: utc(r.DisabledAt), FailingSince: utc(r.FailingSince),
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), EventTypes: make([]event.Type, len(r.EventTypes)),
	}
	if r.PreviousSecret != nil && r.PreviousSecretExpiresAt != nil && time.Now().Before(*r.PreviousSecretExpiresAt) {
		w.PreviousSecretExpiresAt = utc(r.PreviousSecretExpiresAt)
	}
	for i, t := range r.EventTypes {
		w.EventTypes[i] = event.Type(t)
	}
	return w
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// IsNotFound reports a missing webhook or delivery.
func IsNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
