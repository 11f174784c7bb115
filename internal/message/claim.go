package message

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// Group commit of claims: an attempt's claim (`sending`, attempts + 1) is handed to a
// claimer that claims every claim waiting in one statement (MessageClaimAttempts) and
// commits them together, with the same self-clocking as the recorder (record.go): a lone
// claim commits at once, one statement without BEGIN and COMMIT (MessageClaimAttempt). A
// message appears at most once in a group.
//
// Each claim gets its row as soon as the statement returned it, and the COMMIT's answer
// apart: the attempt signs the message, takes a connection and sends MAIL and RCPT while
// the COMMIT (an fsync) is in flight, and sends DATA only once the COMMIT succeeded (the
// claim is a delivery.Gate). No message is handed to the upstream before its claim is
// durable, which lets an attempt that dies mid-send be recorded as unknown instead of
// passing as the first. A claim whose COMMIT fails sends no DATA and records nothing: the
// attempt ends with the claim's error, as when its statement fails, and the message is as
// it was.

// claim is one message's claim waiting for its group's statement and commit.
type claim struct {
	tenantID, id string
	done         chan claimResult
	commit       *claimCommit
}

type claimResult struct {
	// m is the claimed message; nil when it could not be claimed.
	m   *dbsqlc.Message
	err error
}

// claimCommit is the COMMIT of a claim's group; it implements delivery.Gate.
type claimCommit struct {
	done chan struct{}
	err  error
}

var _ delivery.Gate = (*claimCommit)(nil)

// Done is closed once the group's COMMIT answered.
func (c *claimCommit) Done() <-chan struct{} { return c.done }

// Err is the COMMIT's error once Done is closed; nil when the claim is durable.
func (c *claimCommit) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// wait waits for the COMMIT's answer (bounded by RecordTimeout, like the group's
// transaction) and returns its error.
func (c *claimCommit) wait() error {
	<-c.done
	return c.err
}

func (c *claimCommit) settle(err error) {
	if err != nil {
		c.err = fmt.Errorf("error claiming message: %w", err)
	}
	close(c.done)
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
// now (gone, final, or its connector paused), as soon as the claim's statement returned; the
// returned claimCommit settles when its COMMIT answered. It waits for its group's statement
// even when the attempt is cancelled meanwhile (the group's transaction is bounded by
// RecordTimeout): a caller that gave up could not tell whether its claim committed, and a
// claim committed behind its back would read as an unknown attempt although nothing was
// sent. A cancelled attempt that was claimed then records its outcome like any other.
func (c *claimer) claim(tenantID, id string) (*dbsqlc.Message, *claimCommit, error) {
	cl := &claim{tenantID: tenantID, id: id, done: make(chan claimResult, 1), commit: &claimCommit{done: make(chan struct{})}}
	c.add(cl)
	r := <-cl.done
	return r.m, cl.commit, r.err
}

// commitGroup claims group's messages in one transaction; when its statement fails for a
// reason other than an unavailable database, each claim is tried again alone.
func (c *claimer) commitGroup(group []*claim) {
	ctx, cancel := context.WithTimeout(context.Background(), RecordTimeout)
	defer cancel()
	err := c.d.claimGroup(ctx, group)
	if err == nil {
		return
	}
	if _, unavailable := store.AsUnavailable(err); !unavailable && len(group) > 1 {
		c.d.logger.Warn("group commit of delivery claims failed; claiming each alone", "claims", len(group), "error", err)
		for _, cl := range group {
			if err := c.d.claimGroup(ctx, []*claim{cl}); err != nil {
				cl.refuse(err)
			}
		}
		return
	}
	for _, cl := range group {
		cl.refuse(err)
	}
}

// refuse answers a claim whose statement failed; nothing was claimed.
func (cl *claim) refuse(err error) {
	cl.done <- claimResult{err: fmt.Errorf("error claiming message: %w", err)}
	cl.commit.settle(err)
}

// claimGroup is one transaction: it claims group's messages, hands each claim its row (nil
// when not claimed) once the statement returned, and settles each claim's commit with the
// COMMIT's answer. It returns the error of a transaction that failed before anything was
// handed out (then no claim was answered); after that it returns nil. Over a single
// transaction (tests) there is one connection, which the attempt's next statements would
// find busy with the COMMIT: the rows are then handed out after it.
func (d *Deliverer) claimGroup(ctx context.Context, group []*claim) error {
	if pool, ok := d.db.(*pgxpool.Pool); ok && len(group) == 1 {
		return d.claimAlone(ctx, pool, group[0])
	}
	_, oneConn := d.db.(pgx.Tx)
	var claimed map[string]*dbsqlc.Message
	handedOut := false
	handOut := func() {
		for _, cl := range group {
			cl.done <- claimResult{m: claimed[cl.id]}
		}
		handedOut = true
	}
	err := store.WithTx(ctx, d.db, func(tx pgx.Tx) error {
		var err error
		if claimed, err = d.claimStatement(ctx, tx, group); err != nil {
			return err
		}
		if !oneConn {
			handOut()
		}
		return nil
	})
	if !handedOut {
		if err != nil {
			return err
		}
		handOut()
	}
	for _, cl := range group {
		cl.commit.settle(err)
	}
	return nil
}

// claimAlone is claimGroup for a lone claim: one statement without BEGIN and COMMIT whose
// row arrives ahead of its implicit transaction's COMMIT (store.Early).
func (d *Deliverer) claimAlone(ctx context.Context, pool *pgxpool.Pool, cl *claim) error {
	e, err := store.BeginEarly(ctx, pool)
	if err != nil {
		return err
	}
	m, err := dbsqlc.New(e).MessageClaimAttempt(ctx, dbsqlc.MessageClaimAttemptParams{TenantID: cl.tenantID, ID: cl.id, UnknownText: unknownText})
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		_ = e.Commit()
		return err
	}
	var claimed *dbsqlc.Message
	if err == nil {
		claimed = &m
	}
	cl.done <- claimResult{m: claimed}
	cl.commit.settle(e.Commit())
	return nil
}

// claimStatement claims group's messages in tx and returns those it claimed by id.
func (d *Deliverer) claimStatement(ctx context.Context, tx pgx.Tx, group []*claim) (map[string]*dbsqlc.Message, error) {
	claimed := map[string]*dbsqlc.Message{}
	q := d.q.WithTx(tx)
	if len(group) == 1 {
		m, err := q.MessageClaimAttempt(ctx, dbsqlc.MessageClaimAttemptParams{TenantID: group[0].tenantID, ID: group[0].id, UnknownText: unknownText})
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
	if err := usePrimaryKeyPlans(ctx, tx); err != nil {
		return nil, err
	}
	rows, err := q.MessageClaimAttempts(ctx, p)
	if err != nil {
		return nil, err
	}
	for i := range rows {
		claimed[rows[i].ID] = &rows[i]
	}
	return claimed, nil
}
