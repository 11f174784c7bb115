package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// Delivery is one event for one webhook, with every attempt made.
type Delivery struct {
	ID             string
	WebhookID      string
	EventID        string
	EventType      string
	Status         string
	Attempts       []Attempt
	NextAttemptAt  *time.Time
	LastStatusCode *int
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Attempt is one logged request.
type Attempt struct {
	Attempt int
	Answer
}

// ListDeliveries pages through a webhook's deliveries, newest first; status filters.
func (s *Service) ListDeliveries(ctx context.Context, tenantID, webhookID, beforeID, status string, limit int) ([]*Delivery, error) {
	if _, err := s.Get(ctx, tenantID, webhookID); err != nil {
		return nil, err
	}
	p := dbsqlc.WebhookDeliveryListParams{TenantID: tenantID, WebhookID: webhookID, BeforeID: beforeID, Max: int32(limit)}
	if status != "" {
		p.Status = &status
	}
	rows, err := s.q.WebhookDeliveryList(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("error listing webhook deliveries: %w", err)
	}
	out := make([]*Delivery, len(rows))
	byID := make(map[string]*Delivery, len(rows))
	idList := make([]string, len(rows))
	for i, r := range rows {
		out[i] = deliveryFromRow(r)
		byID[r.ID], idList[i] = out[i], r.ID
	}
	attempts, err := s.q.WebhookAttemptList(ctx, idList)
	if err != nil {
		return nil, fmt.Errorf("error listing webhook attempts: %w", err)
	}
	for _, a := range attempts {
		d := byID[a.DeliveryID]
		at := Attempt{Attempt: int(a.Attempt), Answer: Answer{
			AttemptedAt: a.AttemptedAt.UTC(), StatusCode: int(a.StatusCode), Latency: time.Duration(a.LatencyMs) * time.Millisecond,
			Body: a.ResponseBody, Error: a.Error,
		}}
		_ = json.Unmarshal(a.ResponseHeaders, &at.Headers) // written by record from a map
		d.Attempts = append(d.Attempts, at)
	}
	return out, nil
}

// Redeliver makes a delivery pending again and enqueues it now, with a fresh retry schedule.
func (s *Service) Redeliver(ctx context.Context, tenantID, webhookID, deliveryID string) (*Delivery, error) {
	if !ids.Valid(ids.WebhookDelivery, deliveryID) || !ids.Valid(ids.Webhook, webhookID) {
		return nil, store.ErrNotFound
	}
	var out *Delivery
	err := store.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		row, err := q.WebhookDeliveryGet(ctx, dbsqlc.WebhookDeliveryGetParams{TenantID: tenantID, WebhookID: webhookID, ID: deliveryID})
		if err != nil {
			return fmt.Errorf("error getting webhook delivery: %w", store.MapError(err))
		}
		if err := q.WebhookDeliveryReset(ctx, row.ID); err != nil {
			return fmt.Errorf("error resetting webhook delivery: %w", err)
		}
		if _, err := s.jobs.InsertTx(ctx, tx, DeliverArgs{DeliveryID: row.ID, TenantID: tenantID}, s.insertOpts()); err != nil {
			return fmt.Errorf("error enqueueing webhook redelivery: %w", err)
		}
		out = deliveryFromRow(row)
		out.Status = StatusPending
		return nil
	})
	return out, err
}

func deliveryFromRow(r dbsqlc.WebhookDelivery) *Delivery {
	d := &Delivery{ID: r.ID, WebhookID: r.WebhookID, EventID: r.EventID, EventType: r.EventType, Status: r.Status,
		NextAttemptAt: utc(r.NextAttemptAt), CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), Attempts: []Attempt{}}
	if r.LastStatusCode != nil {
		c := int(*r.LastStatusCode)
		d.LastStatusCode = &c
	}
	return d
}
