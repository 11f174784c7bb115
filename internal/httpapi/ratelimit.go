package httpapi

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// keyLimiter bounds requests per API key in this process: a runaway client cannot starve
// others. It is per process by design — message limits and quotas, which are business
// rules, are counted in PostgreSQL across processes.
type keyLimiter struct {
	perSec int
	mu     sync.Mutex
	keys   map[string]*rate.Limiter
}

func newKeyLimiter(perSec int) *keyLimiter {
	return &keyLimiter{perSec: perSec, keys: map[string]*rate.Limiter{}}
}

// allow takes one request from the key's bucket, or returns the problem to answer.
func (l *keyLimiter) allow(keyID string) *problem {
	if l == nil || l.perSec <= 0 {
		return nil
	}
	l.mu.Lock()
	lim, ok := l.keys[keyID]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(l.perSec), 2*l.perSec)
		l.keys[keyID] = lim
	}
	l.mu.Unlock()
	r := lim.Reserve()
	delay := r.Delay()
	if delay == 0 {
		return nil
	}
	r.Cancel()
	wait := int(math.Ceil(max(delay, time.Second).Seconds()))
	p := newProblem(http.StatusTooManyRequests, TypeRateLimited, "Too many requests",
		fmt.Sprintf("this API key may make %d requests per second (bursts of %d); retry after %d s", l.perSec, 2*l.perSec, wait))
	p.header = http.Header{"Retry-After": {strconv.Itoa(wait)}, "Ratelimit-Limit": {strconv.Itoa(l.perSec)}, "Ratelimit-Remaining": {"0"}, "Ratelimit-Reset": {strconv.Itoa(wait)}}
	return p
}
