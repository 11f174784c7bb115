package message

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
	"github.com/sendwerk/sendwerk/internal/tenant"
)

// Periods of usage counters, shortest first.
var periods = []string{"minute", "hour", "day", "month"}

// periodStart is the UTC start of the period containing t.
func periodStart(period string, t time.Time) time.Time {
	t = t.UTC()
	switch period {
	case "minute":
		return t.Truncate(time.Minute)
	case "hour":
		return t.Truncate(time.Hour)
	case "day":
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	}
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// periodEnd is when the period containing t ends (when its counter resets).
func periodEnd(period string, t time.Time) time.Time {
	start := periodStart(period, t)
	switch period {
	case "minute":
		return start.Add(time.Minute)
	case "hour":
		return start.Add(time.Hour)
	case "day":
		return start.AddDate(0, 0, 1)
	}
	return start.AddDate(0, 1, 0)
}

// Quota is the limit closest to being reached after a submission, for the RateLimit-*
// headers; nil when nothing limits the caller.
type Quota struct {
	Limit     int64
	Remaining int64
	Reset     time.Time
}

// LimitError is a submission refused by a limit or quota.
type LimitError struct {
	Scope  string // "connector" or "tenant"
	Period string
	Quota
}

func (e *LimitError) Error() string {
	what := map[string]string{"minute": "per-minute limit", "hour": "hourly limit", "day": "daily limit", "month": "monthly quota"}[e.Period]
	return fmt.Sprintf("the %s %s of %d messages is reached; it resets at %s", e.Scope, what, e.Limit, e.Reset.UTC().Format(time.RFC3339))
}

type counterKey struct {
	scope, period string
}

// counterShards spreads unlimited counters over rows, so concurrent submissions of one
// tenant do not queue on a single locked row until each other's commit.
const counterShards = 16

// addUsage counts n messages per connector (and their sum for the tenant) in tx and
// refuses when a limit would be exceeded; the caller's rollback undoes the counting. It runs
// last in a submission, so counter rows stay locked only until the commit. A period with a
// limit counts exactly, in shard 0, whose lock serialises the submissions it limits; a
// period without one counts into a random shard and is summed when read.
func (s *Service) addUsage(ctx context.Context, tx pgx.Tx, tenantID string, perConnector map[*connector.Connector]int) (*Quota, error) {
	now := s.NowFunc()
	tenants := s.cfg.Tenants
	if tenants == nil {
		tenants = tenant.NewService(tx)
	}
	t, err := tenants.GetTx(ctx, tx, tenantID)
	if err != nil {
		return nil, err
	}
	// A fixed order (by connector id, tenant last) keeps concurrent batches from locking
	// counter rows in opposite orders.
	conns := slices.SortedFunc(maps.Keys(perConnector), func(a, b *connector.Connector) int { return strings.Compare(a.ID, b.ID) })
	var tightest *Quota
	total := 0
	for _, conn := range conns {
		n := perConnector[conn]
		total += n
		limits := map[string]*int64{"minute": conn.Limits.PerMinute, "hour": conn.Limits.PerHour, "day": conn.Limits.PerDay, "month": conn.Limits.MonthlyQuota}
		counts, err := s.add(ctx, tx, conn.ID, periods, limits, now, n)
		if err != nil {
			return nil, err
		}
		if tightest, err = check("connector", counts, limits, now, tightest); err != nil {
			return nil, err
		}
		if err := appendQuotaEvents(ctx, tx, tenantID, conn.ID, counts, limits, n, now); err != nil {
			return nil, err
		}
	}
	limits := map[string]*int64{"month": t.MonthlyQuota}
	counts, err := s.add(ctx, tx, tenantID, []string{"month"}, limits, now, total)
	if err != nil {
		return nil, err
	}
	if tightest, err = check("tenant", counts, limits, now, tightest); err != nil {
		return nil, err
	}
	return tightest, appendQuotaEvents(ctx, tx, tenantID, "", counts, limits, total, now)
}

// add increments one scope's counters and returns the totals of its limited periods.
func (s *Service) add(ctx context.Context, tx pgx.Tx, scope string, ps []string, limits map[string]*int64, now time.Time, n int) (map[string]int64, error) {
	scopes, starts, shards := make([]string, len(ps)), make([]time.Time, len(ps)), make([]int16, len(ps))
	var limited []string
	for i, p := range ps {
		scopes[i], starts[i] = scope, periodStart(p, now)
		if limits[p] != nil {
			limited = append(limited, p)
		} else {
			shards[i] = int16(1 + rand.IntN(counterShards-1))
		}
	}
	q := s.q.WithTx(tx)
	if err := q.UsageAdd(ctx, dbsqlc.UsageAddParams{N: int64(n), ScopeIds: scopes, Periods: ps, PeriodStarts: starts, Shards: shards}); err != nil {
		return nil, fmt.Errorf("error counting usage: %w", err)
	}
	out := map[string]int64{}
	if len(limited) == 0 {
		return out, nil
	}
	lscopes, lstarts := make([]string, len(limited)), make([]time.Time, len(limited))
	for i, p := range limited {
		lscopes[i], lstarts[i] = scope, periodStart(p, now)
	}
	rows, err := q.UsageGet(ctx, dbsqlc.UsageGetParams{ScopeIds: lscopes, Periods: limited, PeriodStarts: lstarts})
	if err != nil {
		return nil, fmt.Errorf("error reading usage: %w", err)
	}
	for _, r := range rows {
		out[r.Period] = r.Count
	}
	return out, nil
}

// check compares counts with limits and keeps the quota with the least room left.
func check(scope string, counts map[string]int64, limits map[string]*int64, now time.Time, tightest *Quota) (*Quota, error) {
	for _, p := range periods {
		limit := limits[p]
		if limit == nil {
			continue
		}
		q := Quota{Limit: *limit, Remaining: max(*limit-counts[p], 0), Reset: periodEnd(p, now)}
		if counts[p] > *limit {
			return nil, &LimitError{Scope: scope, Period: p, Quota: q}
		}
		if tightest == nil || q.Remaining < tightest.Remaining {
			tightest = &q
		}
	}
	return tightest, nil
}

// Counter is one period's usage against its limit (nil: unlimited).
type Counter struct {
	Period string
	Count  int64
	Limit  *int64
	Reset  time.Time
}

// ConnectorUsage is a connector's counters.
type ConnectorUsage struct {
	ConnectorID string
	Name        string
	Counters    []Counter
}

// Usage is a tenant's usage now.
type Usage struct {
	Month      Counter
	Connectors []ConnectorUsage
}

// Usage reads the current counters of a tenant and its connectors.
func (s *Service) Usage(ctx context.Context, tenantID string) (*Usage, error) {
	now := s.NowFunc()
	t, err := tenant.NewService(s.db).Get(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	conns, err := s.connectors.List(ctx, tenantID, "", 1000)
	if err != nil {
		return nil, err
	}
	var scopes, ps []string
	var starts []time.Time
	for _, c := range conns {
		for _, p := range periods {
			scopes, ps, starts = append(scopes, c.ID), append(ps, p), append(starts, periodStart(p, now))
		}
	}
	scopes, ps, starts = append(scopes, tenantID), append(ps, "month"), append(starts, periodStart("month", now))
	rows, err := s.q.UsageGet(ctx, dbsqlc.UsageGetParams{ScopeIds: scopes, Periods: ps, PeriodStarts: starts})
	if err != nil {
		return nil, fmt.Errorf("error reading usage: %w", err)
	}
	counts := map[counterKey]int64{}
	for _, r := range rows {
		counts[counterKey{r.ScopeID, r.Period}] = r.Count
	}
	u := &Usage{Month: Counter{Period: "month", Count: counts[counterKey{tenantID, "month"}], Limit: t.MonthlyQuota, Reset: periodEnd("month", now)}}
	for _, c := range conns {
		limits := map[string]*int64{"minute": c.Limits.PerMinute, "hour": c.Limits.PerHour, "day": c.Limits.PerDay, "month": c.Limits.MonthlyQuota}
		cu := ConnectorUsage{ConnectorID: c.ID, Name: c.Name}
		for _, p := range periods {
			cu.Counters = append(cu.Counters, Counter{Period: p, Count: counts[counterKey{c.ID, p}], Limit: limits[p], Reset: periodEnd(p, now)})
		}
		u.Connectors = append(u.Connectors, cu)
	}
	return u, nil
}

// PurgeUsage deletes counters of periods that ended more than a month ago.
func (s *Service) PurgeUsage(ctx context.Context) (int64, error) {
	n, err := s.q.UsageDeleteExpired(ctx, periodStart("month", s.NowFunc()).AddDate(0, -1, 0))
	if err != nil {
		return 0, fmt.Errorf("error purging usage counters: %w", err)
	}
	return n, nil
}
