// Package tenant manages the platform's customers and their API keys, and turns a bearer
// secret into an authenticated principal.
package tenant

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/cache"
	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// Tenant is a customer of the platform.
type Tenant struct {
	ID           string
	Name         string
	MonthlyQuota *int64 // nil: no quota
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Patch holds the fields of an update; a nil pointer leaves the field alone.
type Patch struct {
	Name *string
	// MonthlyQuota set with Value nil removes the quota.
	MonthlyQuota *Optional[int64]
}

// Optional distinguishes "set to null" from "absent" in a patch.
type Optional[T any] struct {
	Value *T
}

// Service is the tenant and API-key store.
type Service struct {
	db      dbsqlc.DBTX
	q       *dbsqlc.Queries
	NowFunc func() time.Time

	// keys holds API keys by the SHA-256 of their secret (never the secret), tenants
	// tenants by id; both nil unless Options.CacheTTL is set (see package cache).
	keys    *cache.TTL[[32]byte, *cachedKey]
	tenants *cache.TTL[string, *Tenant]
	// onDelete are told of each deleted tenant (other services' caches forget it).
	onDelete []func(tenantID string)
}

// OnDelete registers f to be called with a tenant's id after the tenant is deleted through
// this service, so caches kept elsewhere (connectors, relay credentials, sender domains)
// forget what it owned at once instead of after their TTL. Register before serving.
func (s *Service) OnDelete(f func(tenantID string)) {
	s.onDelete = append(s.onDelete, f)
}

// Options configure a Service.
type Options struct {
	// CacheTTL is how long API keys and tenants read are reused; 0 reads them every time.
	// A key revoked through this Service stops working at once, one revoked by another
	// process within CacheTTL.
	CacheTTL time.Duration
}

// NewService returns a Service over a pool or a transaction, without caches.
func NewService(db dbsqlc.DBTX) *Service {
	return NewServiceWith(db, Options{})
}

// NewServiceWith returns a Service over a pool with opts; the one Service of a process
// should be the only one that changes tenants and keys, so its caches see every change.
func NewServiceWith(db dbsqlc.DBTX, opts Options) *Service {
	s := &Service{db: db, q: dbsqlc.New(db), NowFunc: time.Now}
	if opts.CacheTTL > 0 {
		s.keys = cache.New[[32]byte, *cachedKey](opts.CacheTTL, 0)
		s.tenants = cache.New[string, *Tenant](opts.CacheTTL, 0)
		now := func() time.Time { return s.NowFunc() }
		s.keys.SetClock(now)
		s.tenants.SetClock(now)
	}
	return s
}

// forgetTenant drops a tenant and its keys from the caches.
func (s *Service) forgetTenant(id string) {
	s.tenants.Delete(id)
	s.keys.DeleteFunc(func(_ [32]byte, k *cachedKey) bool { return k.key.TenantID == id })
}

// Create adds a tenant.
func (s *Service) Create(ctx context.Context, name string, monthlyQuota *int64) (*Tenant, error) {
	row, err := s.q.TenantInsert(ctx, dbsqlc.TenantInsertParams{
		ID: ids.New(ids.Tenant), Name: name, MonthlyQuota: monthlyQuota,
	})
	if err != nil {
		return nil, fmt.Errorf("error inserting tenant: %w", err)
	}
	return tenantFromRow(row), nil
}

// Get returns a tenant or store.ErrNotFound.
func (s *Service) Get(ctx context.Context, id string) (*Tenant, error) {
	if !ids.Valid(ids.Tenant, id) {
		return nil, store.ErrNotFound
	}
	return s.get(ctx, s.q, id)
}

// GetTx is Get reading through tx on a cache miss, for callers inside a transaction (which
// must not wait for a second connection of the pool).
func (s *Service) GetTx(ctx context.Context, tx pgx.Tx, id string) (*Tenant, error) {
	if !ids.Valid(ids.Tenant, id) {
		return nil, store.ErrNotFound
	}
	return s.get(ctx, s.q.WithTx(tx), id)
}

func (s *Service) get(ctx context.Context, q *dbsqlc.Queries, id string) (*Tenant, error) {
	t, err := s.tenants.Get(id, func() (*Tenant, error) {
		row, err := q.TenantGet(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("error getting tenant: %w", store.MapError(err))
		}
		return tenantFromRow(row), nil
	})
	if err != nil {
		return nil, err
	}
	cp := *t
	return &cp, nil
}

// List returns up to limit tenants with ids after afterID, oldest first.
func (s *Service) List(ctx context.Context, afterID string, limit int) ([]*Tenant, error) {
	rows, err := s.q.TenantList(ctx, dbsqlc.TenantListParams{AfterID: afterID, Max: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("error listing tenants: %w", err)
	}
	out := make([]*Tenant, len(rows))
	for i, r := range rows {
		out[i] = tenantFromRow(r)
	}
	return out, nil
}

// Update applies a patch.
func (s *Service) Update(ctx context.Context, id string, p Patch) (*Tenant, error) {
	if !ids.Valid(ids.Tenant, id) {
		return nil, store.ErrNotFound
	}
	params := dbsqlc.TenantUpdateParams{ID: id}
	if p.Name != nil {
		params.SetName, params.Name = true, *p.Name
	}
	if p.MonthlyQuota != nil {
		params.SetMonthlyQuota, params.MonthlyQuota = true, p.MonthlyQuota.Value
	}
	row, err := s.q.TenantUpdate(ctx, params)
	s.tenants.Delete(id)
	if err != nil {
		return nil, fmt.Errorf("error updating tenant: %w", store.MapError(err))
	}
	return tenantFromRow(row), nil
}

// Delete removes a tenant and everything it owns: most rows by cascade, then its event
// stream and message timelines, which have no foreign key (they are written with every
// message state change, and a key check per row locked the tenant's or message's row). They
// are deleted after the cascade, in new statements of the same transaction: the cascade
// waited for every transaction that held one of the tenant's rows (a submission, a claim,
// an outcome, a connector's pause), so what those wrote is visible to the deletes, and a
// writer that comes later finds its row gone and writes nothing.
func (s *Service) Delete(ctx context.Context, id string) error {
	if !ids.Valid(ids.Tenant, id) {
		return store.ErrNotFound
	}
	err := s.deleteAll(ctx, id)
	s.forgetTenant(id)
	for _, f := range s.onDelete {
		f(id)
	}
	return err
}

func (s *Service) deleteAll(ctx context.Context, id string) error {
	db, ok := s.db.(store.Beginner)
	if !ok {
		return errors.New("error deleting tenant: the service's database cannot begin a transaction")
	}
	return store.WithTx(ctx, db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		n, err := q.TenantDelete(ctx, id)
		if err != nil {
			return fmt.Errorf("error deleting tenant: %w", err)
		}
		if n == 0 {
			return store.ErrNotFound
		}
		if _, err := q.MessageEventDeleteForTenant(ctx, id); err != nil {
			return fmt.Errorf("error deleting tenant's message timelines: %w", err)
		}
		if _, err := q.EventDeleteForTenant(ctx, id); err != nil {
			return fmt.Errorf("error deleting tenant's events: %w", err)
		}
		return nil
	})
}

// IsNotFound reports whether err means "no such row for this caller".
func IsNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

func tenantFromRow(r dbsqlc.Tenant) *Tenant {
	return &Tenant{ID: r.ID, Name: r.Name, MonthlyQuota: r.MonthlyQuota, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}
