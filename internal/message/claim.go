package message

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// Group commit of claims: an attempt's claim (`sending`, attempts + 1, committed before
// anything is sent) is handed to a claimer that commits every claim waiting in one
// statement (MessageClaimAttempts), with the same self-clocking as the recorder (record.go):
// a lone claim commits at once, in one statement without BEGIN and COMMIT
// (MessageClaimAttempt). No attempt sends before its claim's commit. A message appears at
// most once in a group.

// claim is one message's claim waiting for its group's commit.
type claim struct {
	tenantID, id string
	done         chan claimResult
}

type claimResult struct {
	// m is the claimed message; nil when it could not be claimed.
	m   *dbsqlc.Message
	err error
}

// claimer group-commits claims.
type claimer struct {
	groupQueue[*claim]
	d *Deliverer
}

func newClaimer(d *Deliverer, n int) *claimer {
	c := &claimer{d: d}
	c.max, c.commit, c.key = n, c.commitGroup, func(c *claim) string { return c.id }
	return c
}

// claim claims a message for an attempt and returns it, or nil when it cannot be attempted
// now (gone, final, or its connector paused). It waits for its group's answer even when the
// attempt is cancelled meanwhile (the group's transaction is bounded by RecordTimeout): a
// caller that gave up could not tell whether its claim committed, and a claim committed
// behind its back would read as an unknown attempt although nothing was sent. A cancelled
// attempt that was claimed then records its outcome like any other.
func (c *claimer) claim(tenantID, id string) (*dbsqlc.Message, error) {
	cl := &claim{tenantID: tenantID, id: id, done: make(chan claimResult, 1)}
	c.add(cl)
	r := <-cl.done
	return r.m, r.err
}

// commitGroup commits group's claims in one transaction; when that fails for a reason other
// than an unavailable database, each claim is tried again alone.
func (c *claimer) commitGroup(group []*claim) {
	ctx, cancel := context.WithTimeout(context.Background(), RecordTimeout)
	defer cancel()
	claimed, err := c.d.claimGroup(ctx, group)
	if _, unavailable := store.AsUnavailable(err); err != nil && !unavailable && len(group) > 1 {
		c.d.logger.Warn("group commit of delivery claims failed; claiming each alone", "claims", len(group), "error", err)
		for _, cl := range group {
			one, err := c.d.claimGroup(ctx, []*claim{cl})
			cl.answer(one, err)
		}
		return
	}
	for _, cl := range group {
		cl.answer(claimed, err)
	}
}

func (cl *claim) answer(claimed map[string]*dbsqlc.Message, err error) {
	if err != nil {
		cl.done <- claimResult{err: fmt.Errorf("error claiming message: %w", err)}
		return
	}
	cl.done <- claimResult{m: claimed[cl.id]}
}

// claimGroup claims group's messages and returns those it claimed by id.
func (d *Deliverer) claimGroup(ctx context.Context, group []*claim) (map[string]*dbsqlc.Message, error) {
	claimed := map[string]*dbsqlc.Message{}
	if len(group) == 1 {
		m, err := d.q.MessageClaimAttempt(ctx, dbsqlc.MessageClaimAttemptParams{TenantID: group[0].tenantID, ID: group[0].id, UnknownText: unknownText})
		if errors.Is(err, pgx.ErrNoRows) {
			return claimed, nil
		}
		if err != nil {
			return nil, err
		}
		claimed[m.ID] = &m
		return claimed, nil
	}
	p := dbsqlc.MessageClaimAttemptsParams{UnknownText: unknownText}
	for _, cl := range group {
		p.TenantIds = append(p.TenantIds, cl.tenantID)
		p.Ids = append(p.Ids, cl.id)
	}
	err := store.WithTx(ctx, d.db, func(tx pgx.Tx) error {
		if err := usePrimaryKeyPlans(ctx, tx); err != nil {
			return err
		}
		rows, err := d.q.WithTx(tx).MessageClaimAttempts(ctx, p)
		if err != nil {
			return err
		}
		for i := range rows {
			claimed[rows[i].ID] = &rows[i]
		}
		return nil
	})
	return claimed, err
}
