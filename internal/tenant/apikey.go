package tenant

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// Scope is a permission carried by an API key.
type Scope string

// Scopes.
const (
	ScopeSend   Scope = "messages:send"
	ScopeRead   Scope = "read"
	ScopeManage Scope = "manage"
)

// KeyPrefix starts every API key secret so scanners and humans recognise one.
const KeyPrefix = "sw_"

// Errors of Authenticate. Each says what to fix without revealing whether another tenant's
// key exists.
var (
	ErrKeyInvalid        = errors.New("the API key is not valid")
	ErrKeyRevoked        = errors.New("the API key has been revoked")
	ErrKeyExpired        = errors.New("the API key has expired")
	ErrAddressNotAllowed = errors.New("the API key may not be used from this client address")
	ErrScopeMissing      = errors.New("the API key lacks the scope this operation needs")
)

var secretEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// APIKey is a tenant credential; the secret itself is never stored.
type APIKey struct {
	ID           string
	TenantID     string
	Name         string
	Prefix       string
	Scopes       []Scope
	AllowedCIDRs []netip.Prefix
	ExpiresAt    *time.Time
	LastUsedAt   *time.Time
	RevokedAt    *time.Time
	CreatedAt    time.Time
}

// Status is "revoked", "expired" or "active" at now.
func (k *APIKey) Status(now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return "revoked"
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return "expired"
	default:
		return "active"
	}
}

// HasScope reports whether the key carries s.
func (k *APIKey) HasScope(s Scope) bool { return slices.Contains(k.Scopes, s) }

// KeyParams describe a new key.
type KeyParams struct {
	Name         string
	Scopes       []string
	AllowedCIDRs []string
	ExpiresAt    *time.Time
}

// CreateKey makes a key for tenantID and returns it with its secret, which exists only in
// this return value.
func (s *Service) CreateKey(ctx context.Context, tenantID string, p KeyParams) (*APIKey, string, error) {
	scopes, cidrs, err := s.checkKeyParams(p)
	if err != nil {
		return nil, "", err
	}
	if _, err := s.Get(ctx, tenantID); err != nil {
		return nil, "", err
	}
	secret := newSecret()
	row, err := s.q.APIKeyInsert(ctx, dbsqlc.APIKeyInsertParams{
		ID:           ids.New(ids.APIKey),
		TenantID:     tenantID,
		Name:         p.Name,
		Prefix:       secret[:len(KeyPrefix)+8],
		SecretHash:   hashSecret(secret),
		Scopes:       scopes,
		AllowedCidrs: cidrs,
		ExpiresAt:    p.ExpiresAt,
	})
	if err != nil {
		return nil, "", fmt.Errorf("error inserting api key: %w", err)
	}
	return keyFromRow(row), secret, nil
}

func (s *Service) checkKeyParams(p KeyParams) ([]string, []netip.Prefix, error) {
	v := &validate.Error{}
	scopes := make([]string, 0, len(p.Scopes))
	for i, sc := range p.Scopes {
		if !slices.Contains([]Scope{ScopeSend, ScopeRead, ScopeManage}, Scope(sc)) {
			v.Add(fmt.Sprintf("scopes[%d]", i), "must be one of: messages:send, read, manage")
		}
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	if len(scopes) == 0 {
		v.Add("scopes", "must name at least one scope")
	}
	cidrs := make([]netip.Prefix, 0, len(p.AllowedCIDRs))
	for i, c := range p.AllowedCIDRs {
		pfx, err := parseCIDR(c)
		if err != nil {
			v.Add(fmt.Sprintf("allowed_cidrs[%d]", i), "must be an IPv4 or IPv6 network like 203.0.113.0/24 or an address")
			continue
		}
		cidrs = append(cidrs, pfx)
	}
	if p.ExpiresAt != nil && !p.ExpiresAt.After(s.NowFunc()) {
		v.Add("expires_at", "must be in the future")
	}
	return scopes, cidrs, v.Err()
}

// parseCIDR accepts a network or a single address (as a /32 or /128).
func parseCIDR(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked(), nil
}

// GetKey returns one of tenantID's keys.
func (s *Service) GetKey(ctx context.Context, tenantID, id string) (*APIKey, error) {
	if !ids.Valid(ids.APIKey, id) {
		return nil, store.ErrNotFound
	}
	row, err := s.q.APIKeyGet(ctx, dbsqlc.APIKeyGetParams{TenantID: tenantID, ID: id})
	if err != nil {
		return nil, fmt.Errorf("error getting api key: %w", store.MapError(err))
	}
	return keyFromRow(row), nil
}

// ListKeys returns up to limit of tenantID's keys after afterID.
func (s *Service) ListKeys(ctx context.Context, tenantID, afterID string, limit int) ([]*APIKey, error) {
	rows, err := s.q.APIKeyList(ctx, dbsqlc.APIKeyListParams{TenantID: tenantID, AfterID: afterID, Max: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("error listing api keys: %w", err)
	}
	out := make([]*APIKey, len(rows))
	for i, r := range rows {
		out[i] = keyFromRow(r)
	}
	return out, nil
}

// RevokeKey stops a key from working; revoking twice keeps the first time.
func (s *Service) RevokeKey(ctx context.Context, tenantID, id string) (*APIKey, error) {
	if !ids.Valid(ids.APIKey, id) {
		return nil, store.ErrNotFound
	}
	row, err := s.q.APIKeyRevoke(ctx, dbsqlc.APIKeyRevokeParams{TenantID: tenantID, ID: id})
	s.forgetKey(id)
	if err != nil {
		return nil, fmt.Errorf("error revoking api key: %w", store.MapError(err))
	}
	return keyFromRow(row), nil
}

// DeleteStaleKeys removes keys revoked or expired before the cutoff.
func (s *Service) DeleteStaleKeys(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.q.APIKeyDeleteStale(ctx, before)
	s.keys.Purge()
	if err != nil {
		return 0, fmt.Errorf("error deleting stale api keys: %w", err)
	}
	return n, nil
}

// Principal is an authenticated tenant API key.
type Principal struct {
	Key *APIKey
}

// Authenticate resolves a bearer secret to its key, checking revocation, expiry and the
// client address. Scope checks are the caller's (see Principal.Require). It returns one of
// the Err* values above for every refusal.
func (s *Service) Authenticate(ctx context.Context, secret string, client netip.Addr) (*Principal, error) {
	if !strings.HasPrefix(secret, KeyPrefix) || len(secret) > 200 {
		return nil, ErrKeyInvalid
	}
	ck, err := s.keyBySecret(ctx, secret)
	if err != nil {
		return nil, err
	}
	key := ck.copyKey()
	switch key.Status(s.NowFunc()) {
	case "revoked":
		return nil, ErrKeyRevoked
	case "expired":
		return nil, ErrKeyExpired
	}
	if !addressAllowed(key.AllowedCIDRs, client) {
		return nil, ErrAddressNotAllowed
	}
	// last_used_at has minute resolution: a key used within the minute needs no write.
	if now := s.NowFunc(); key.LastUsedAt == nil || now.Sub(*key.LastUsedAt) >= time.Minute {
		if err := s.q.APIKeyTouch(ctx, dbsqlc.APIKeyTouchParams{TenantID: key.TenantID, ID: key.ID}); err != nil {
			return nil, fmt.Errorf("error recording api key use: %w", err)
		}
		ck.touched.Store(now.UnixNano())
	}
	return &Principal{Key: key}, nil
}

// cachedKey is a key as read, and when this process last recorded its use (the row's
// last_used_at in the cache is as old as the read).
type cachedKey struct {
	key     *APIKey
	touched atomic.Int64 // unix nanoseconds; 0: not since the read
}

// copyKey returns the key for one request, with the latest use this process recorded.
func (c *cachedKey) copyKey() *APIKey {
	k := *c.key
	if t := c.touched.Load(); t != 0 && (k.LastUsedAt == nil || time.Unix(0, t).After(*k.LastUsedAt)) {
		at := time.Unix(0, t)
		k.LastUsedAt = &at
	}
	return &k
}

// keyBySecret finds the key whose secret this is, by its hash: the secret itself is
// neither stored nor cached.
func (s *Service) keyBySecret(ctx context.Context, secret string) (*cachedKey, error) {
	h := sha256.Sum256([]byte(secret))
	return s.keys.Get(h, func() (*cachedKey, error) {
		row, err := s.q.APIKeyGetBySecretHash(ctx, h[:])
		if err != nil {
			if errors.Is(store.MapError(err), store.ErrNotFound) {
				return nil, ErrKeyInvalid // not cached: unknown secrets cannot fill the cache
			}
			return nil, fmt.Errorf("error looking up api key: %w", err)
		}
		return &cachedKey{key: keyFromRow(row)}, nil
	})
}

// forgetKey drops key id from the cache.
func (s *Service) forgetKey(id string) {
	s.keys.DeleteFunc(func(_ [32]byte, k *cachedKey) bool { return k.key.ID == id })
}

// Require returns ErrScopeMissing unless the key has every scope.
func (p *Principal) Require(scopes ...Scope) error {
	for _, sc := range scopes {
		if !p.Key.HasScope(sc) {
			return fmt.Errorf("%w: %s", ErrScopeMissing, sc)
		}
	}
	return nil
}

// TenantID is the tenant every query of this request is scoped to.
func (p *Principal) TenantID() string { return p.Key.TenantID }

func addressAllowed(cidrs []netip.Prefix, client netip.Addr) bool {
	if len(cidrs) == 0 {
		return true
	}
	client = client.Unmap()
	for _, c := range cidrs {
		if c.Contains(client) {
			return true
		}
	}
	return false
}

func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return KeyPrefix + secretEncoding.EncodeToString(b)
}

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func keyFromRow(r dbsqlc.APIKey) *APIKey {
	scopes := make([]Scope, len(r.Scopes))
	for i, s := range r.Scopes {
		scopes[i] = Scope(s)
	}
	return &APIKey{
		ID: r.ID, TenantID: r.TenantID, Name: r.Name, Prefix: r.Prefix, Scopes: scopes,
		AllowedCIDRs: r.AllowedCidrs, ExpiresAt: r.ExpiresAt, LastUsedAt: r.LastUsedAt,
		RevokedAt: r.RevokedAt, CreatedAt: r.CreatedAt,
	}
}
