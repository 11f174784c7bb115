package message

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"

	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// ErrNotCancellable is returned for messages being delivered or already finished.
var ErrNotCancellable = errors.New("message can no longer be cancelled")

// Get returns a message with its event timeline.
func (s *Service) Get(ctx context.Context, tenantID, id string) (*Message, error) {
	if !ids.Valid(ids.Message, id) {
		return nil, store.ErrNotFound
	}
	row, err := s.q.MessageGet(ctx, dbsqlc.MessageGetParams{TenantID: tenantID, ID: id})
	if err != nil {
		return nil, fmt.Errorf("error getting message: %w", store.MapError(err))
	}
	m := fromRow(row)
	events, err := s.q.MessageEventList(ctx, dbsqlc.MessageEventListParams{TenantID: tenantID, MessageID: id})
	if err != nil {
		return nil, fmt.Errorf("error listing message events: %w", err)
	}
	for _, e := range events {
		ev := Event{Type: e.Type, At: e.At}
		_ = json.Unmarshal(e.Data, &ev.Data)
		m.Events = append(m.Events, ev)
	}
	return m, nil
}

// Filter narrows the message log; zero fields do not filter.
type Filter struct {
	Status        string
	ConnectorID   string
	Tag           string
	Recipient     string
	CreatedAfter  *time.Time
	CreatedBefore *time.Time
}

// List returns up to limit messages older than beforeID (all when empty), newest first.
func (s *Service) List(ctx context.Context, tenantID string, f Filter, beforeID string, limit int) ([]*Message, error) {
	rows, err := s.q.MessageList(ctx, dbsqlc.MessageListParams{
		TenantID: tenantID, BeforeID: beforeID, Status: nilIfEmpty(f.Status), ConnectorID: nilIfEmpty(f.ConnectorID),
		Tag: nilIfEmpty(f.Tag), Recipient: nilIfEmpty(f.Recipient), CreatedAfter: f.CreatedAfter, CreatedBefore: f.CreatedBefore,
		Max: int32(limit),
	})
	if err != nil {
		return nil, fmt.Errorf("error listing messages: %w", err)
	}
	out := make([]*Message, len(rows))
	for i, r := range rows {
		out[i] = fromRow(r)
	}
	return out, nil
}

// Cancel stops a message that is queued or deferred; its job is cancelled in the same
// transaction.
func (s *Service) Cancel(ctx context.Context, tenantID, id string) (*Message, error) {
	if !ids.Valid(ids.Message, id) {
		return nil, store.ErrNotFound
	}
	var out *Message
	err := store.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		row, err := q.MessageCancel(ctx, dbsqlc.MessageCancelParams{TenantID: tenantID, ID: id, StatusReason: "cancelled by the API"})
		if errors.Is(err, pgx.ErrNoRows) {
			if _, gerr := q.MessageGet(ctx, dbsqlc.MessageGetParams{TenantID: tenantID, ID: id}); gerr != nil {
				return fmt.Errorf("error getting message: %w", store.MapError(gerr))
			}
			return ErrNotCancellable
		}
		if err != nil {
			return fmt.Errorf("error cancelling message: %w", err)
		}
		if row.JobID != nil {
			if _, err := s.jobs.JobCancelTx(ctx, tx, *row.JobID); err != nil && !isJobGone(err) {
				return fmt.Errorf("error cancelling delivery job: %w", err)
			}
		}
		if err := addEvent(ctx, q, tenantID, id, "cancelled", map[string]any{"reason": "cancelled by the API"}); err != nil {
			return err
		}
		if err := appendMessageEvent(ctx, tx, row, "cancelled", map[string]any{"reason": "cancelled by the API"}); err != nil {
			return err
		}
		out = fromRow(row)
		return nil
	})
	return out, err
}

// isJobGone is a job already finished and removed by retention.
func isJobGone(err error) bool { return errors.Is(err, rivertype.ErrNotFound) }

func addEvent(ctx context.Context, q *dbsqlc.Queries, tenantID, messageID, typ string, data map[string]any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("error encoding event: %w", err)
	}
	if err := q.MessageEventInsert(ctx, dbsqlc.MessageEventInsertParams{MessageID: messageID, TenantID: tenantID, Type: typ, Data: b}); err != nil {
		return fmt.Errorf("error inserting message event: %w", err)
	}
	return nil
}

func fromRow(r dbsqlc.Message) *Message {
	m := &Message{
		ID: r.ID, TenantID: r.TenantID, ConnectorID: r.ConnectorID, Source: r.Source, Status: r.Status,
		From: Address{Email: r.FromEmail, Name: r.FromName}, EnvelopeFrom: r.EnvelopeFrom, Recipients: r.Recipients,
		To: r.ToAddrs, Cc: r.CcAddrs, Subject: r.Subject, MessageID: r.MessageID, Tags: r.Tags, SizeBytes: int(r.SizeBytes),
		SendAt: r.SendAt, Attempts: int(r.Attempts), NextAttempt: r.NextAttemptAt, Reason: r.StatusReason,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, CompletedAt: r.CompletedAt, BodyPurged: r.BodyPurgedAt != nil,
	}
	_ = json.Unmarshal(r.Metadata, &m.Metadata)
	if len(r.LastReply) > 0 {
		var rep Reply
		if json.Unmarshal(r.LastReply, &rep) == nil && rep.Code != 0 {
			m.LastReply = &rep
		}
	}
	return m
}

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
