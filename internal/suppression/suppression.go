// Package suppression keeps each tenant's list of addresses its mail must not go to: hard
// bounces and complaints (added automatically by delivery and bounce intake), manual entries
// and unsubscribes. Submission drops suppressed recipients and the relay refuses them at RCPT.
package suppression

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/mailaddr"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// Reason says why an address is suppressed.
type Reason string

// Reasons.
const (
	ReasonHardBounce  Reason = "hard_bounce"
	ReasonComplaint   Reason = "complaint"
	ReasonManual      Reason = "manual"
	ReasonUnsubscribe Reason = "unsubscribe"
)

// Valid reports a known reason.
func (r Reason) Valid() bool {
	switch r {
	case ReasonHardBounce, ReasonComplaint, ReasonManual, ReasonUnsubscribe:
		return true
	}
	return false
}

// Suppression is one suppressed address of a tenant.
type Suppression struct {
	ID       string
	TenantID string
	// Address is lower-case with an A-label domain.
	Address string
	Reason  Reason
	// SourceMessageID is the message whose bounce or complaint added the address.
	SourceMessageID string
	// Detail is what the receiving side said, or the tenant's note.
	Detail    string
	CreatedAt time.Time
	ExpiresAt *time.Time
}

// Entry is an address to suppress.
type Entry struct {
	Address         string
	Reason          Reason
	SourceMessageID string
	Detail          string
	ExpiresAt       *time.Time
}

// Filter narrows a list.
type Filter struct {
	// AddressPrefix matches addresses that start with it ("jane@", "jane@example.org").
	AddressPrefix string
	Reason        Reason
}

// Service reads and writes suppression lists.
type Service struct {
	db      store.DB
	q       *dbsqlc.Queries
	NowFunc func() time.Time
}

// NewService returns a Service over a pool or transaction.
func NewService(db store.DB) *Service {
	return &Service{db: db, q: dbsqlc.New(db), NowFunc: time.Now}
}

// Normalize is the form addresses are stored and compared in: the local part lower-cased
// (receivers treat it case-insensitively in practice), the domain as its A-label.
func Normalize(address string) (string, error) {
	a, err := mailaddr.Parse(strings.TrimSpace(address))
	if err != nil {
		return "", err
	}
	return strings.ToLower(a.String()), nil
}

// Add suppresses an address, or renews its entry; a validate.Error names bad input.
func (s *Service) Add(ctx context.Context, tenantID string, e Entry) (*Suppression, error) {
	return s.add(ctx, s.q, tenantID, e)
}

// AddTx is Add inside the caller's transaction, so the entry commits with what caused it.
func (s *Service) AddTx(ctx context.Context, tx pgx.Tx, tenantID string, e Entry) (*Suppression, error) {
	return s.add(ctx, s.q.WithTx(tx), tenantID, e)
}

func (s *Service) add(ctx context.Context, q *dbsqlc.Queries, tenantID string, e Entry) (*Suppression, error) {
	v := &validate.Error{}
	addr, err := Normalize(e.Address)
	if err != nil {
		v.Add("address", err.Error())
	}
	if !e.Reason.Valid() {
		v.Add("reason", "must be one of: hard_bounce, complaint, manual, unsubscribe")
	}
	if e.ExpiresAt != nil && !e.ExpiresAt.After(s.NowFunc()) {
		v.Add("expires_at", "must be in the future")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	row, err := q.SuppressionUpsert(ctx, dbsqlc.SuppressionUpsertParams{
		TenantID: tenantID, Address: addr, ID: ids.New(ids.Suppression), Reason: string(e.Reason),
		SourceMessageID: nilIfEmpty(e.SourceMessageID), Detail: clip(e.Detail, 1000), ExpiresAt: e.ExpiresAt,
	})
	if err != nil {
		return nil, fmt.Errorf("error suppressing address: %w", store.MapError(err))
	}
	return fromRow(row), nil
}

// Get returns the live entry for an address, or store.ErrNotFound.
func (s *Service) Get(ctx context.Context, tenantID, address string) (*Suppression, error) {
	addr, err := Normalize(address)
	if err != nil {
		return nil, store.ErrNotFound
	}
	row, err := s.q.SuppressionGet(ctx, dbsqlc.SuppressionGetParams{TenantID: tenantID, Address: addr})
	if err != nil {
		return nil, fmt.Errorf("error getting suppression: %w", store.MapError(err))
	}
	return fromRow(row), nil
}

// Delete lifts a suppression; store.ErrNotFound when the address was not suppressed.
func (s *Service) Delete(ctx context.Context, tenantID, address string) error {
	addr, err := Normalize(address)
	if err != nil {
		return store.ErrNotFound
	}
	n, err := s.q.SuppressionDelete(ctx, dbsqlc.SuppressionDeleteParams{TenantID: tenantID, Address: addr})
	if err != nil {
		return fmt.Errorf("error deleting suppression: %w", err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// List returns up to limit live entries older than beforeID, newest first.
func (s *Service) List(ctx context.Context, tenantID string, f Filter, beforeID string, limit int) ([]*Suppression, error) {
	p := dbsqlc.SuppressionListParams{TenantID: tenantID, BeforeID: beforeID, AddressPrefix: strings.ToLower(strings.TrimSpace(f.AddressPrefix)), Max: int32(limit)}
	if f.Reason != "" {
		r := string(f.Reason)
		p.Reason = &r
	}
	rows, err := s.q.SuppressionList(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("error listing suppressions: %w", err)
	}
	out := make([]*Suppression, len(rows))
	for i, r := range rows {
		out[i] = fromRow(r)
	}
	return out, nil
}

// Match returns the live entries among addresses, keyed by the address as given.
func (s *Service) Match(ctx context.Context, tenantID string, addresses []string) (map[string]*Suppression, error) {
	norm := make(map[string]string, len(addresses)) // normalized -> as given
	keys := make([]string, 0, len(addresses))
	for _, a := range addresses {
		n, err := Normalize(a)
		if err != nil {
			continue // invalid addresses are refused elsewhere
		}
		norm[n] = a
		keys = append(keys, n)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	rows, err := s.q.SuppressionMatch(ctx, dbsqlc.SuppressionMatchParams{TenantID: tenantID, Addresses: keys})
	if err != nil {
		return nil, fmt.Errorf("error matching suppressions: %w", err)
	}
	out := make(map[string]*Suppression, len(rows))
	for _, r := range rows {
		out[norm[r.Address]] = fromRow(r)
	}
	return out, nil
}

// Key is one tenant's address, as given.
type Key struct {
	TenantID string
	Address  string
}

// MatchKeys is Match for addresses of several tenants, in one query: the live entries
// among keys, keyed by the key as given.
func (s *Service) MatchKeys(ctx context.Context, keys []Key) (map[Key]*Suppression, error) {
	given := make(map[Key]Key, len(keys)) // normalized -> as given
	p := dbsqlc.SuppressionMatchPairsParams{TenantIds: make([]string, 0, len(keys)), Addresses: make([]string, 0, len(keys))}
	for _, k := range keys {
		n, err := Normalize(k.Address)
		if err != nil {
			continue // invalid addresses are refused elsewhere
		}
		given[Key{k.TenantID, n}] = k
		p.TenantIds = append(p.TenantIds, k.TenantID)
		p.Addresses = append(p.Addresses, n)
	}
	if len(p.Addresses) == 0 {
		return nil, nil
	}
	rows, err := s.q.SuppressionMatchPairs(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("error matching suppressions: %w", err)
	}
	out := make(map[Key]*Suppression, len(rows))
	for _, r := range rows {
		out[given[Key{r.TenantID, r.Address}]] = fromRow(r)
	}
	return out, nil
}

// Check returns the live entry for one recipient, or nil.
func (s *Service) Check(ctx context.Context, tenantID, address string) (*Suppression, error) {
	sup, err := s.Get(ctx, tenantID, address)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return sup, err
}

// DeleteExpired removes entries past their expiry.
func (s *Service) DeleteExpired(ctx context.Context) (int64, error) {
	n, err := s.q.SuppressionDeleteExpired(ctx)
	if err != nil {
		return 0, fmt.Errorf("error deleting expired suppressions: %w", err)
	}
	return n, nil
}

func fromRow(r dbsqlc.Suppression) *Suppression {
	s := &Suppression{ID: r.ID, TenantID: r.TenantID, Address: r.Address, Reason: Reason(r.Reason), Detail: r.Detail, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt}
	if r.SourceMessageID != nil {
		s.SourceMessageID = *r.SourceMessageID
	}
	return s
}

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func clip(s string, n int) string {
	if len(s) > n {
		return strings.ToValidUTF8(s[:n], "")
	}
	return strings.ToValidUTF8(s, "")
}
