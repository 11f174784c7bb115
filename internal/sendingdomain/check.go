package sendingdomain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/dnscheck"
	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// Triggers of a check.
const (
	TriggerManual    = "manual"
	TriggerScheduled = "scheduled"
)

// Check is one recorded check of a domain.
type Check struct {
	ID           string
	DomainID     string
	Trigger      string
	Outcome      string
	StatusBefore string
	StatusAfter  string
	Results      []dnscheck.CheckResult
	StartedAt    time.Time
	Duration     time.Duration
}

// RateLimitError refuses a manual check that comes too soon after the previous one.
type RateLimitError struct {
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("this domain was checked moments ago; check again in %s", e.RetryAfter.Round(time.Second))
}

// Check checks a domain now, for the customer's "check" button: at most once per
// ManualCheckInterval per domain (across all processes), else a *RateLimitError.
func (s *Service) Check(ctx context.Context, tenantID, id string) (*Domain, *Check, error) {
	if !ids.Valid(ids.Domain, id) {
		return nil, nil, store.ErrNotFound
	}
	now := s.now()
	notAfter := now.Add(-s.cfg.ManualCheckInterval)
	row, err := s.q.SendingDomainClaimManualCheck(ctx, dbsqlc.SendingDomainClaimManualCheckParams{
		Now: &now, TenantID: tenantID, ID: id, NotAfter: &notAfter,
	})
	if err != nil {
		if err = store.MapError(err); !errors.Is(err, store.ErrNotFound) {
			return nil, nil, fmt.Errorf("error claiming manual check: %w", err)
		}
		d, gerr := s.Get(ctx, tenantID, id)
		if gerr != nil {
			return nil, nil, gerr
		}
		wait := time.Second
		if d.lastManualCheckAt != nil {
			wait = max(d.lastManualCheckAt.Add(s.cfg.ManualCheckInterval).Sub(now), time.Second)
		}
		return nil, nil, &RateLimitError{RetryAfter: wait}
	}
	d, err := s.withKeys(ctx, row)
	if err != nil {
		return nil, nil, err
	}
	return s.checkAndApply(ctx, d, TriggerManual)
}

// RunCheck checks a domain for the scheduler (no rate limit).
func (s *Service) RunCheck(ctx context.Context, tenantID, id string) (*Domain, *Check, error) {
	d, err := s.Get(ctx, tenantID, id)
	if err != nil {
		return nil, nil, err
	}
	return s.checkAndApply(ctx, d, TriggerScheduled)
}

func (s *Service) checkAndApply(ctx context.Context, d *Domain, trigger string) (*Domain, *Check, error) {
	s.metrics.inFlight.Inc()
	// The check's id is taken when it starts, so history sorted by id is sorted by start
	// even when a slower concurrent check finishes later.
	checkID, start, began := ids.New(ids.DomainCheck), s.now(), time.Now()
	results := s.runChecks(ctx, d)
	took := time.Since(began)
	s.metrics.inFlight.Dec()
	material, err := s.rotationMaterial(d, s.now())
	if err != nil {
		return nil, nil, err
	}
	out, chk, err := s.apply(ctx, d.TenantID, d.ID, checkID, trigger, results, material, start, took)
	if err == nil {
		s.metrics.checks.WithLabelValues(trigger, chk.Outcome).Inc()
		for _, r := range results {
			s.metrics.results.WithLabelValues(r.Check, string(r.Status), r.Code).Inc()
		}
	}
	return out, chk, err
}

// runChecks runs the four checks at once against DNS; each bounds its own lookups, and
// CheckTimeout bounds them all.
func (s *Service) runChecks(ctx context.Context, d *Domain) []dnscheck.CheckResult {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CheckTimeout)
	defer cancel()
	return s.runChecksWith(ctx, s.checker, d)
}

// runChecksWith runs the checks with checker: the live one, or a preview's over records
// the tenant has not published yet. Every active and pending DKIM key is checked.
func (s *Service) runChecksWith(ctx context.Context, checker *dnscheck.Checker, d *Domain) []dnscheck.CheckResult {
	checks := []func() dnscheck.CheckResult{
		func() dnscheck.CheckResult {
			return checker.CheckOwnership(ctx, d.Name, s.cfg.VerificationPrefix+"="+d.VerificationToken)
		},
	}
	if s.cfg.SPFChecked() {
		checks = append(checks, func() dnscheck.CheckResult {
			return checker.CheckSPFNetworks(ctx, d.Name, s.cfg.SPFNetworks, s.cfg.SPFInclude)
		})
	}
	for _, k := range d.checkedKeys() {
		checks = append(checks, func() dnscheck.CheckResult { return checker.CheckDKIMKey(ctx, d.Name, k.spec()) })
	}
	checks = append(checks, func() dnscheck.CheckResult { return checker.CheckDMARC(ctx, d.Name) })
	results := make([]dnscheck.CheckResult, len(checks))
	var wg sync.WaitGroup
	for i, check := range checks {
		wg.Go(func() { results[i] = check() })
	}
	wg.Wait()
	return results
}

// apply records a check and moves the domain's state, on the row locked as it is now (a
// concurrent check may have moved it since the DNS queries began).
func (s *Service) apply(ctx context.Context, tenantID, id, checkID, trigger string, results []dnscheck.CheckResult, material map[string]keyMaterial, start time.Time, took time.Duration) (*Domain, *Check, error) {
	raw, err := json.Marshal(results)
	if err != nil {
		return nil, nil, fmt.Errorf("error encoding check results: %w", err)
	}
	var out *Domain
	var chk *Check
	defer s.forgetDomains()
	err = store.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		row, err := q.SendingDomainGetForUpdate(ctx, dbsqlc.SendingDomainGetForUpdateParams{TenantID: tenantID, ID: id})
		if err != nil {
			return fmt.Errorf("error locking domain: %w", store.MapError(err))
		}
		d, err := s.withKeysTx(ctx, q, row)
		if err != nil {
			return err
		}
		now := s.now()
		v := judge(requiredResults(results, d.DKIMKeys))
		st, change := s.cfg.next(stateOf(d), v, now)
		chk = &Check{
			ID: checkID, DomainID: id, Trigger: trigger, Outcome: v.outcome,
			StatusBefore: d.Status, StatusAfter: st.Status, Results: results, StartedAt: start, Duration: took,
		}
		if _, err := q.DomainCheckInsert(ctx, dbsqlc.DomainCheckInsertParams{
			ID: chk.ID, TenantID: tenantID, DomainID: id, Trigger: trigger, Outcome: chk.Outcome,
			StatusBefore: chk.StatusBefore, StatusAfter: chk.StatusAfter, Results: raw, StartedAt: start, DurationMs: took.Milliseconds(),
		}); err != nil {
			return fmt.Errorf("error inserting domain check: %w", err)
		}
		updated, err := q.SendingDomainUpdateState(ctx, dbsqlc.SendingDomainUpdateStateParams{
			TenantID: tenantID, ID: id, Status: st.Status, LastResults: raw, SpfStatus: spfStatus(d, results),
			VerifiedAt: st.VerifiedAt, FirstFailedAt: st.FirstFailedAt, ConsecutiveFailures: int32(st.Failures),
			RevokesAt: st.RevokesAt, LastCheckedAt: &now, NextCheckAt: s.cfg.nextCheck(st.Status, d.CreatedAt, now),
		})
		if err != nil {
			return fmt.Errorf("error updating domain: %w", err)
		}
		if out, err = fromRow(updated); err != nil {
			return err
		}
		out.DKIMKeys = d.DKIMKeys
		if change != nil {
			s.metrics.statusChanges.WithLabelValues(change.To).Inc()
			if err := appendStatusEvent(ctx, tx, out, change.From, change.To, change.Code, change.Reason, chk.ID, now); err != nil {
				return err
			}
			if err := insertEvent(ctx, q, out, "status_changed", change.From, change.To, change.Code, change.Reason, &chk.ID, now); err != nil {
				return err
			}
		}
		events, err := s.advanceKeys(ctx, q, out, results, material, now)
		if err != nil {
			return err
		}
		for _, e := range events {
			if err := insertEvent(ctx, q, out, e.typ, "", out.Status, e.code, e.reason, &chk.ID, now); err != nil {
				return err
			}
		}
		return s.loadKeys(ctx, q, out)
	})
	if err != nil {
		return nil, nil, err
	}
	return out, chk, nil
}

// spfStatus is the new last conclusive SPF status: a temperror keeps the previous one.
func spfStatus(d *Domain, results []dnscheck.CheckResult) *string {
	st := d.SPFStatus
	for _, r := range results {
		if r.Check == CheckSPF && (r.Status == dnscheck.StatusPass || r.Status == dnscheck.StatusFail) {
			st = string(r.Status)
		}
	}
	if st == "" {
		return nil
	}
	return &st
}

// Event is something that happened to a domain: its creation or a status change.
type Event struct {
	ID         string
	DomainID   string
	Type       string
	FromStatus string
	ToStatus   string
	Code       string
	Reason     string
	CheckID    string
	CreatedAt  time.Time
}

func insertEvent(ctx context.Context, q *dbsqlc.Queries, d *Domain, typ, from, to, code, reason string, checkID *string, at time.Time) error {
	p := dbsqlc.SendingDomainEventInsertParams{
		ID: ids.New(ids.Event), TenantID: d.TenantID, DomainID: d.ID, Type: typ, ToStatus: to,
		Code: code, Reason: reason, CheckID: checkID, CreatedAt: at,
	}
	if from != "" {
		p.FromStatus = &from
	}
	if err := q.SendingDomainEventInsert(ctx, p); err != nil {
		return fmt.Errorf("error inserting domain event: %w", err)
	}
	return nil
}

// ListChecks pages through a domain's checks, newest first; beforeID is the last id of
// the previous page.
func (s *Service) ListChecks(ctx context.Context, tenantID, domainID, beforeID string, limit int) ([]*Check, error) {
	if _, err := s.Get(ctx, tenantID, domainID); err != nil {
		return nil, err
	}
	rows, err := s.q.DomainCheckList(ctx, dbsqlc.DomainCheckListParams{TenantID: tenantID, DomainID: domainID, BeforeID: beforeID, Max: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("error listing domain checks: %w", err)
	}
	out := make([]*Check, 0, len(rows))
	for _, r := range rows {
		c := &Check{
			ID: r.ID, DomainID: r.DomainID, Trigger: r.Trigger, Outcome: r.Outcome, StatusBefore: r.StatusBefore,
			StatusAfter: r.StatusAfter, StartedAt: r.StartedAt.UTC(), Duration: time.Duration(r.DurationMs) * time.Millisecond,
		}
		if err := json.Unmarshal(r.Results, &c.Results); err != nil {
			return nil, fmt.Errorf("error decoding domain check: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// ListEvents pages through a domain's events, newest first.
func (s *Service) ListEvents(ctx context.Context, tenantID, domainID, beforeID string, limit int) ([]*Event, error) {
	if _, err := s.Get(ctx, tenantID, domainID); err != nil {
		return nil, err
	}
	rows, err := s.q.SendingDomainEventList(ctx, dbsqlc.SendingDomainEventListParams{TenantID: tenantID, DomainID: domainID, BeforeID: beforeID, Max: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("error listing domain events: %w", err)
	}
	out := make([]*Event, 0, len(rows))
	for _, r := range rows {
		e := &Event{ID: r.ID, DomainID: r.DomainID, Type: r.Type, ToStatus: r.ToStatus, Code: r.Code, Reason: r.Reason, CreatedAt: r.CreatedAt.UTC()}
		if r.FromStatus != nil {
			e.FromStatus = *r.FromStatus
		}
		if r.CheckID != nil {
			e.CheckID = *r.CheckID
		}
		out = append(out, e)
	}
	return out, nil
}

// PurgeChecks deletes check history older than CheckRetention.
func (s *Service) PurgeChecks(ctx context.Context) (int64, error) {
	n, err := s.q.DomainCheckPurge(ctx, s.now().Add(-s.cfg.CheckRetention))
	if err != nil {
		return 0, fmt.Errorf("error purging domain checks: %w", err)
	}
	return n, nil
}
