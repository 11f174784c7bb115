// Package cache keeps rows the hot paths read for every message (a connector, an API key,
// a sending domain) for a short time, so each message does not read them again.
//
// A TTL cache is correct only with two rules, which every user follows: the service that
// changes a row drops it from its cache in the same call (so the process that made a change
// sees it at once), and the TTL bounds how long another process (a second `sendwerk serve`
// on the same database) may act on the old row. Errors are never cached; a "not found" is
// cached only as a value the caller chose to store.
package cache

import (
	"sync"
	"time"
)

// DefaultMaxEntries bounds a cache whose Options leave MaxEntries 0.
const DefaultMaxEntries = 10000

// TTL is a map whose entries expire ttl after the read that filled them began. A TTL of 0
// (or a nil *TTL) disables it: every Get loads.
type TTL[K comparable, V any] struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[K]entry[V]
	// gen counts invalidations: a load that began before one does not store its result,
	// which may be the row as it was before the change.
	gen uint64
}

type entry[V any] struct {
	v       V
	expires time.Time
}

// New returns a cache keeping entries for ttl, at most maxEntries of them
// (DefaultMaxEntries when 0).
func New[K comparable, V any](ttl time.Duration, maxEntries int) *TTL[K, V] {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	return &TTL[K, V]{ttl: ttl, max: maxEntries, now: time.Now, m: map[K]entry[V]{}}
}

// SetClock replaces time.Now, for tests.
func (c *TTL[K, V]) SetClock(now func() time.Time) { c.now = now }

// Get returns key's value, calling load when it is absent or expired. load's result is
// stored unless it failed or the cache was invalidated while it ran.
func (c *TTL[K, V]) Get(key K, load func() (V, error)) (V, error) {
	if c == nil || c.ttl <= 0 {
		return load()
	}
	start := c.now()
	c.mu.Lock()
	e, ok := c.m[key]
	gen := c.gen
	c.mu.Unlock()
	if ok && start.Before(e.expires) {
		return e.v, nil
	}
	v, err := load()
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return v, nil
	}
	if len(c.m) >= c.max {
		c.evictLocked(start)
	}
	c.m[key] = entry[V]{v: v, expires: start.Add(c.ttl)}
	return v, nil
}

// evictLocked drops expired entries, and everything when none had expired.
func (c *TTL[K, V]) evictLocked(now time.Time) {
	for k, e := range c.m {
		if !now.Before(e.expires) {
			delete(c.m, k)
		}
	}
	if len(c.m) >= c.max {
		clear(c.m)
	}
}

// Delete drops key.
func (c *TTL[K, V]) Delete(key K) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.m, key)
}

// DeleteFunc drops every entry for which drop returns true.
func (c *TTL[K, V]) DeleteFunc(drop func(K, V) bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for k, e := range c.m {
		if drop(k, e.v) {
			delete(c.m, k)
		}
	}
}

// Purge drops everything.
func (c *TTL[K, V]) Purge() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.m)
}

// Len is the number of entries, expired ones included.
func (c *TTL[K, V]) Len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
