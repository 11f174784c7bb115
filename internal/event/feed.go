package event

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// Filter narrows a feed read. The zero value reads everything from the start.
type Filter struct {
	// After is the cursor of the last event read ("" = from the oldest kept event).
	After string
	Types []Type
	// ResourceID is a message, domain, connector or webhook id; a connector's id matches the
	// events about the connector itself (its messages' events name it too, but are found by
	// message).
	ResourceID    string
	CreatedAfter  *time.Time
	CreatedBefore *time.Time
	Limit         int
}

// Page is one read of the feed: events in stream order and the cursor to read on from.
// Cursor is After unchanged when no event was found, so a poller keeps asking with it.
type Page struct {
	Events []*Event
	Cursor string
}

// List reads a tenant's events after a cursor. The stream's order is the commit order of
// the transactions that wrote them (roughly time order); a cursor never skips an event
// that commits after the read, so polling with it loses nothing.
func List(ctx context.Context, db DB, tenantID string, f Filter) (*Page, error) {
	p := dbsqlc.EventListParams{TenantID: tenantID, Types: make([]string, len(f.Types)), Max: int32(max(f.Limit, 1)),
		CreatedAfter: f.CreatedAfter, CreatedBefore: f.CreatedBefore}
	var err error
	if p.AfterXid, p.AfterSequence, err = decodeCursor(f.After); err != nil {
		return nil, validate.Field("cursor", "is not a cursor returned by this API")
	}
	for i, t := range f.Types {
		if !Known(t) {
			return nil, validate.Field("type", fmt.Sprintf("unknown event type %q", t))
		}
		p.Types[i] = string(t)
	}
	if err := resourceFilter(&p, f.ResourceID); err != nil {
		return nil, err
	}
	rows, err := dbsqlc.New(db).EventList(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("error listing events: %w", err)
	}
	page := &Page{Events: make([]*Event, 0, len(rows)), Cursor: f.After}
	for _, r := range rows {
		e, err := fromRow(dbsqlc.EventGetRow(r))
		if err != nil {
			return nil, err
		}
		page.Events = append(page.Events, e)
		page.Cursor = encodeCursor(r.Xid, r.Sequence)
	}
	return page, nil
}

func resourceFilter(p *dbsqlc.EventListParams, id string) error {
	if id == "" {
		return nil
	}
	prefix, _, _ := strings.Cut(id, "_")
	if !ids.Valid(prefix, id) {
		return validate.Field("resource_id", "must be a message, domain, connector or webhook id")
	}
	switch prefix {
	case ids.Message:
		p.MessageID = &id
	case ids.Domain:
		p.DomainID = &id
	case ids.Connector:
		p.ConnectorID = &id
	case ids.Webhook:
		p.WebhookID = &id
	default:
		return validate.Field("resource_id", "must be a message, domain, connector or webhook id")
	}
	return nil
}

// FromRow maps a stored event (also for packages that join events into their own reads).
func FromRow(r dbsqlc.EventGetRow) (*Event, error) { return fromRow(r) }

func fromRow(r dbsqlc.EventGetRow) (*Event, error) {
	d, err := decode(Type(r.Type), r.Data)
	if err != nil {
		return nil, fmt.Errorf("error decoding %s event %s: %w", r.Type, r.ID, err)
	}
	return &Event{
		ID: r.ID, TenantID: r.TenantID, Data: d, CreatedAt: r.CreatedAt.UTC(), Sequence: r.Sequence,
		MessageID: str(r.MessageID), DomainID: str(r.DomainID), ConnectorID: str(r.ConnectorID), WebhookID: str(r.WebhookID),
	}, nil
}

// Get reads one event of a tenant.
func Get(ctx context.Context, db DB, tenantID, id string) (*Event, error) {
	r, err := dbsqlc.New(db).EventGet(ctx, dbsqlc.EventGetParams{TenantID: tenantID, ID: id})
	if err != nil {
		return nil, fmt.Errorf("error getting event: %w", err)
	}
	return fromRow(r)
}

// A cursor is the position (transaction id, sequence) of the last event read, opaque to clients.
func encodeCursor(xid string, seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(xid + "." + strconv.FormatInt(seq, 10)))
}

func decodeCursor(c string) (string, int64, error) {
	if c == "" {
		return "", 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", 0, err
	}
	x, s, ok := strings.Cut(string(b), ".")
	if !ok {
		return "", 0, fmt.Errorf("malformed cursor")
	}
	if _, err := strconv.ParseUint(x, 10, 64); err != nil {
		return "", 0, err
	}
	seq, err := strconv.ParseInt(s, 10, 64)
	return x, seq, err
}

// wire is an event as the API and webhooks show it.
type wire struct {
	ID          string    `json:"id"`
	Type        Type      `json:"type"`
	CreatedAt   time.Time `json:"created_at"`
	Sequence    int64     `json:"sequence"`
	MessageID   *string   `json:"message_id,omitempty"`
	DomainID    *string   `json:"domain_id,omitempty"`
	ConnectorID *string   `json:"connector_id,omitempty"`
	WebhookID   *string   `json:"webhook_id,omitempty"`
	Data        Data      `json:"data"`
}

// MarshalJSON writes the event as the API and webhook bodies carry it.
func (e *Event) MarshalJSON() ([]byte, error) {
	return json.Marshal(wire{
		ID: e.ID, Type: e.Type(), CreatedAt: e.CreatedAt.UTC(), Sequence: e.Sequence,
		MessageID: ptr(e.MessageID), DomainID: ptr(e.DomainID), ConnectorID: ptr(e.ConnectorID), WebhookID: ptr(e.WebhookID),
		Data: e.Data,
	})
}

// UnmarshalJSON reads what MarshalJSON wrote (clients of the feed, tests).
func (e *Event) UnmarshalJSON(b []byte) error {
	var w struct {
		wire
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	d, err := decode(w.Type, w.Data)
	if err != nil {
		return err
	}
	*e = Event{ID: w.ID, Data: d, CreatedAt: w.CreatedAt, Sequence: w.Sequence,
		MessageID: str(w.MessageID), DomainID: str(w.DomainID), ConnectorID: str(w.ConnectorID), WebhookID: str(w.WebhookID)}
	return nil
}

// DeleteExpired removes events appended before the cutoff, at most max of them. It goes by
// the time-ordered id (the primary key), so retention needs no index of its own.
func DeleteExpired(ctx context.Context, db DB, before time.Time, max int) (int64, error) {
	n, err := dbsqlc.New(db).EventDeleteExpired(ctx, dbsqlc.EventDeleteExpiredParams{BeforeID: ids.Floor(ids.Event, before), Max: int32(max)})
	if err != nil {
		return 0, fmt.Errorf("error deleting expired events: %w", err)
	}
	return n, nil
}
