package message

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// MaxBatch is the most messages one batch may carry.
const MaxBatch = 500

// BatchItem is the outcome of one message of a batch: accepted, or refused.
type BatchItem struct {
	Index    int          `json:"index"`
	Accepted *Accepted    `json:"accepted,omitempty"`
	Refusal  *ItemRefusal `json:"problem,omitempty"`
}

// Reasons a message of a batch was refused.
const (
	// RefusalInvalid: the message breaks a rule on its content; Errors names the fields.
	RefusalInvalid = "invalid"
	// RefusalConnectorPaused: its connector is paused.
	RefusalConnectorPaused = "connector_paused"
)

// ItemRefusal says why one message of a batch was refused, in a form that is stored for
// idempotent replays (so it is data, not an error value).
type ItemRefusal struct {
	Reason string                `json:"reason"`
	Detail string                `json:"detail"`
	Errors []validate.FieldError `json:"errors,omitempty"`
}

// SubmitBatch validates each message on its own and commits the accepted ones together,
// with their jobs, in one transaction. Limits apply to the accepted ones as a whole: if
// they would exceed a limit, none is accepted (a *LimitError).
func (s *Service) SubmitBatch(ctx context.Context, tenantID string, reqs []*Request, idem *Idempotency) ([]BatchItem, *Quota, error) {
	if idem != nil {
		if raw, err := s.replay(ctx, tenantID, idem); raw != nil || err != nil {
			return decodeBatch(raw, err)
		}
	}
	items, accepted, perConnector, err := s.prepareBatch(ctx, tenantID, reqs)
	if err != nil {
		return nil, nil, err
	}
	if len(accepted) == 0 {
		return items, nil, nil
	}
	var quota *Quota
	var replayed []byte
	err = store.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		if idem != nil {
			if replayed, err = s.claim(ctx, tx, tenantID, idem); replayed != nil || err != nil {
				return err
			}
		}
		if err := s.insert(ctx, tx, tenantID, accepted); err != nil {
			return err
		}
		if quota, err = s.addUsage(ctx, tx, tenantID, perConnector); err != nil {
			return err
		}
		return s.remember(ctx, tx, tenantID, idem, items)
	})
	if replayed != nil || err != nil {
		return decodeBatch(replayed, err)
	}
	return items, quota, nil
}

// prepareBatch validates and renders each message of a batch. What the messages share is
// looked up once per batch: each connector, the sender rule's answer for each domain, and
// the suppression list for all recipients in one query.
func (s *Service) prepareBatch(ctx context.Context, tenantID string, reqs []*Request) ([]BatchItem, []*prepared, map[*connector.Connector]int, error) {
	items := make([]BatchItem, len(reqs))
	conns := map[string]*connector.Connector{}
	memo := newSenderMemo()
	candidates := make([]*prepared, 0, len(reqs))
	at := make([]int, 0, len(reqs)) // each candidate's index in reqs
	for i, req := range reqs {
		items[i].Index = i
		p, err := s.prepareCached(ctx, tenantID, req, conns, memo)
		if err == nil {
			candidates = append(candidates, p)
			at = append(at, i)
			continue
		}
		if items[i].Refusal, err = itemRefusal(err); err != nil {
			return nil, nil, nil, err
		}
	}
	hits, err := s.matchSuppressed(ctx, tenantID, candidates)
	if err != nil {
		return nil, nil, nil, err
	}
	var accepted []*prepared
	perConnector := map[*connector.Connector]int{}
	for j, p := range candidates {
		i := at[j]
		if err := hits.drop(p); err != nil {
			if items[i].Refusal, err = itemRefusal(err); err != nil {
				return nil, nil, nil, err
			}
			continue
		}
		accepted = append(accepted, p)
		perConnector[p.conn]++
		items[i].Accepted = &Accepted{ID: p.id, Status: StatusQueued, MessageID: "<" + p.r.messageID + ">", Suppressed: p.suppressed}
	}
	return items, accepted, perConnector, nil
}

// prepareCached renders and checks one message of a batch with the batch's shared lookups;
// suppressions are applied afterwards, for the whole batch at once.
func (s *Service) prepareCached(ctx context.Context, tenantID string, req *Request, conns map[string]*connector.Connector, memo *senderMemo) (*prepared, error) {
	c, ok := conns[req.ConnectorID]
	if !ok {
		var err error
		if c, err = s.connectorFor(ctx, tenantID, req.ConnectorID); err != nil {
			return nil, err
		}
		conns[req.ConnectorID] = c
	}
	if c.Status == connector.StatusPaused {
		return nil, &ConnectorPausedError{ConnectorID: c.ID}
	}
	return s.renderChecked(ctx, tenantID, c, req, memo)
}

// itemRefusal describes an expected refusal; other errors abort the whole batch.
func itemRefusal(err error) (*ItemRefusal, error) {
	var paused *ConnectorPausedError
	if errors.As(err, &paused) {
		return &ItemRefusal{Reason: RefusalConnectorPaused, Detail: "the connector is paused; resume it or choose another"}, nil
	}
	if fields := FieldErrors(err); fields != nil {
		return &ItemRefusal{Reason: RefusalInvalid, Detail: err.Error(), Errors: fields}, nil
	}
	return nil, err
}

func decodeBatch(raw []byte, err error) ([]BatchItem, *Quota, error) {
	if err != nil {
		return nil, nil, err
	}
	var items []BatchItem
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, nil, fmt.Errorf("error decoding stored response: %w", err)
	}
	return items, nil, nil
}
