package message

import (
	"sync"
	"time"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/delivery"
)

// Pools keeps one SMTP connection pool per connector and process, so consecutive messages
// reuse open, authenticated connections. A connector whose settings changed gets a new pool.
type Pools struct {
	cfg delivery.PoolConfig

	mu     sync.Mutex
	pools  map[string]*poolEntry
	closed bool
}

type poolEntry struct {
	version time.Time
	pool    *delivery.Pool
}

// NewPools returns an empty registry; cfg applies to every pool.
func NewPools(cfg *delivery.PoolConfig) *Pools {
	p := &Pools{pools: map[string]*poolEntry{}}
	if cfg != nil {
		p.cfg = *cfg
	}
	return p
}

// Get returns the pool for a connector at its current version (updated_at).
func (p *Pools) Get(c *connector.Connector, settings delivery.Settings) (*delivery.Pool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.pools[c.ID]; ok {
		if e.version.Equal(c.UpdatedAt) {
			return e.pool, nil
		}
		go e.pool.Close() // sends in flight on the old settings finish first
		delete(p.pools, c.ID)
	}
	cfg := p.cfg
	pool, err := delivery.NewPool(settings, &cfg)
	if err != nil {
		return nil, err
	}
	if !p.closed {
		p.pools[c.ID] = &poolEntry{version: c.UpdatedAt, pool: pool}
	}
	return pool, nil
}

// Close closes every pool.
func (p *Pools) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for id, e := range p.pools {
		_ = e.pool.Close()
		delete(p.pools, id)
	}
}
