package message

import (
	"context"
	"encoding/json"
	"time"

	"github.com/sendwerk/sendwerk/internal/event"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// This file turns the message timeline's steps into the tenant's event stream. Each hook is
// one call beside the timeline write, in the same transaction.

// queuedEvent is the stream's message.queued for a prepared submission.
func queuedStreamEvent(tenantID string, p *prepared) *event.Event {
	return &event.Event{TenantID: tenantID, MessageID: p.id, ConnectorID: p.conn.ID, Data: event.MessageQueuedData{
		MessageInfo: event.MessageInfo{
			From: p.r.from.String(), Recipients: p.recipients, MessageIDHeader: "<" + p.r.messageID + ">",
			Tags: orEmptySlice(p.tags()), Metadata: orEmpty(p.metadata()),
		},
		Source: p.source, SizeBytes: len(p.r.mime), SendAt: p.sendAt(),
	}}
}

// appendMessageEvent appends the stream event for a timeline step ("delivered", "deferred",
// "failed", "cancelled") of m, with the step's data as the timeline recorded it. Steps the
// stream does not carry ("attempt") append nothing.
func appendMessageEvent(ctx context.Context, db event.DB, m dbsqlc.Message, step string, data map[string]any) error {
	e := messageStreamEvent(m, step, data)
	if e == nil {
		return nil
	}
	return event.Append(ctx, db, e)
}

// messageStreamEvent is the stream event of a timeline step of m, or nil for a step the
// stream does not carry.
func messageStreamEvent(m dbsqlc.Message, step string, data map[string]any) *event.Event {
	info := messageInfo(m)
	reply := eventReply(data["reply"])
	reason, _ := data["reason"].(string)
	var d event.Data
	switch step {
	case "delivered":
		queueID, _ := data["queue_id"].(string)
		d = event.MessageDeliveredData{MessageInfo: info, Attempt: int(m.Attempts), Reply: reply, QueueID: queueID}
	case "deferred":
		next, _ := data["next_attempt_at"].(time.Time)
		d = event.MessageDeferredData{MessageInfo: info, Attempt: int(m.Attempts), Reason: reason, Reply: reply, NextAttemptAt: next.UTC()}
	case "failed":
		d = event.MessageFailedData{MessageInfo: info, Attempt: int(m.Attempts), Reason: reason, Reply: reply}
	case "cancelled":
		d = event.MessageCancelledData{MessageInfo: info, Reason: reason}
	default:
		return nil
	}
	return &event.Event{TenantID: m.TenantID, MessageID: m.ID, ConnectorID: m.ConnectorID, Data: d}
}

func messageInfo(m dbsqlc.Message) event.MessageInfo {
	meta := map[string]string{}
	_ = json.Unmarshal(m.Metadata, &meta) // written by insertRow from a map[string]string
	return event.MessageInfo{From: m.FromEmail, Recipients: m.Recipients, MessageIDHeader: m.MessageID, Tags: orEmptySlice(m.Tags), Metadata: meta}
}

func eventReply(v any) *event.Reply {
	switch r := v.(type) {
	case *Reply:
		if r != nil {
			return &event.Reply{Code: r.Code, EnhancedCode: r.EnhancedCode, Text: r.Text}
		}
	case Reply:
		return &event.Reply{Code: r.Code, EnhancedCode: r.EnhancedCode, Text: r.Text}
	}
	return nil
}

// QuotaThresholds are the shares of a monthly quota whose crossing appends quota.threshold.
var QuotaThresholds = []int{80, 90, 100}

// appendQuotaEvents appends quota.threshold for each threshold of a monthly quota that the
// submission of n messages crossed (connectorID "" is the tenant's quota). The monthly
// counter of a limited scope counts exactly under its row lock, so each crossing is seen by
// exactly one submission.
func appendQuotaEvents(ctx context.Context, db event.DB, tenantID, connectorID string, counts map[string]int64, limits map[string]*int64, n int, now time.Time) error {
	limit := limits["month"]
	if limit == nil || *limit <= 0 {
		return nil
	}
	after := counts["month"]
	before := after - int64(n)
	scope := "tenant"
	if connectorID != "" {
		scope = "connector"
	}
	for _, pct := range QuotaThresholds {
		mark := *limit * int64(pct) // compared in hundredths, so no rounding
		if before*100 >= mark || after*100 < mark {
			continue
		}
		err := event.Append(ctx, db, &event.Event{TenantID: tenantID, ConnectorID: connectorID, Data: event.QuotaThresholdData{
			Scope: scope, Period: "month", ThresholdPercent: pct, Limit: *limit, Used: after, ResetsAt: periodEnd("month", now).UTC(),
		}})
		if err != nil {
			return err
		}
	}
	return nil
}
