// Package event is each tenant's append-only stream of typed events: what happened to its
// messages, domains, connectors, quotas and webhooks. It is an outbox: an event is appended
// in the same transaction as the state change it reports, so a rolled-back change leaves no
// event and a committed change is never without one. The feed (GET /v1/events) and webhook
// delivery both read from it.
//
// Appending, from any package, inside the transaction that changes the state:
//
//	err := event.Append(ctx, tx, event.Event{
//		TenantID:    m.TenantID,
//		MessageID:   m.ID,
//		ConnectorID: m.ConnectorID,
//		Data:        event.MessageBounced{MessageInfo: info, Recipient: rcpt, Status: "5.1.1"},
//	})
//
// The event's type comes from its Data (every payload type has one Type); the id, creation
// time and sequence are assigned by Append. A new type needs a payload struct here (with
// its EventType method and an entry in registry), its schema in openapi.yaml (the Event
// union), and nothing else.
package event

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// DB is what Append writes through: a pgx.Tx (the usual case: the caller's transaction),
// or a pool when the event is the only write.
type DB = dbsqlc.DBTX

// Event is one entry of a tenant's stream.
type Event struct {
	// ID is assigned by Append ("evt_…", time-ordered) unless set.
	ID       string
	TenantID string
	// The resources the event is about; "" when it is not about one. A message event also
	// names the message's connector, so a connector's feed shows its messages.
	MessageID   string
	DomainID    string
	ConnectorID string
	WebhookID   string
	// Data is the typed payload; its EventType is the event's type.
	Data Data
	// CreatedAt is assigned by Append (now) unless set.
	CreatedAt time.Time
	// Sequence is assigned by the database: a later event of the same resource has a
	// larger one, so receivers can order what they got out of order. Gaps are normal.
	Sequence int64
}

// Type returns the event's type, from its payload.
func (e *Event) Type() Type {
	if e.Data == nil {
		return ""
	}
	return e.Data.EventType()
}

// Data is an event's typed payload.
type Data interface {
	EventType() Type
}

// Append writes one event in db (normally the caller's transaction) and fills in its id,
// creation time and sequence.
func Append(ctx context.Context, db DB, e *Event) error {
	p, err := insertParams(e)
	if err != nil {
		return err
	}
	seq, err := dbsqlc.New(db).EventInsert(ctx, p)
	if err != nil {
		return fmt.Errorf("error appending %s event: %w", e.Type(), err)
	}
	e.Sequence = seq
	return nil
}

// AppendMany writes events in one COPY, for batches (a batch submission's queued events).
func AppendMany(ctx context.Context, db DB, es []*Event) error {
	rows := make([]dbsqlc.EventInsertManyParams, len(es))
	for i, e := range es {
		p, err := insertParams(e)
		if err != nil {
			return err
		}
		rows[i] = dbsqlc.EventInsertManyParams(p)
	}
	if _, err := dbsqlc.New(db).EventInsertMany(ctx, rows); err != nil {
		return fmt.Errorf("error appending events: %w", err)
	}
	return nil
}

// AppendForAllTenants writes one event with the same payload to every tenant's stream
// (platform facts concern everyone) and returns how many it wrote.
func AppendForAllTenants(ctx context.Context, db DB, d Data, at time.Time) (int, error) {
	tenants, err := dbsqlc.New(db).EventTenantIDs(ctx)
	if err != nil {
		return 0, fmt.Errorf("error listing tenants: %w", err)
	}
	es := make([]*Event, len(tenants))
	for i, t := range tenants {
		es[i] = &Event{TenantID: t, Data: d, CreatedAt: at}
	}
	return len(es), AppendMany(ctx, db, es)
}

// Row is e as the row Append would write, for callers that write events together with
// other rows in one statement of their own; it gives e its id and time like Append.
func Row(e *Event) (dbsqlc.EventInsertParams, error) { return insertParams(e) }

func insertParams(e *Event) (dbsqlc.EventInsertParams, error) {
	if e.Data == nil || e.TenantID == "" {
		return dbsqlc.EventInsertParams{}, fmt.Errorf("error appending event: tenant and data are required")
	}
	if _, ok := registry[e.Type()]; !ok {
		return dbsqlc.EventInsertParams{}, fmt.Errorf("error appending event: unknown type %q", e.Type())
	}
	b, err := json.Marshal(e.Data)
	if err != nil {
		return dbsqlc.EventInsertParams{}, fmt.Errorf("error encoding %s event: %w", e.Type(), err)
	}
	if e.ID == "" {
		e.ID = ids.New(ids.Event)
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = time.Now()
	}
	e.CreatedAt = e.CreatedAt.UTC()
	return dbsqlc.EventInsertParams{
		ID: e.ID, TenantID: e.TenantID, Type: string(e.Type()), CreatedAt: e.CreatedAt,
		MessageID: ptr(e.MessageID), DomainID: ptr(e.DomainID), ConnectorID: ptr(e.ConnectorID), WebhookID: ptr(e.WebhookID),
		Data: b,
	}, nil
}

func ptr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
