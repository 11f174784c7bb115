package message

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/event"
	"github.com/sendwerk/sendwerk/internal/mailaddr"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// TestEmail is the outcome of a connector's test e-mail.
type TestEmail struct {
	ID         string
	OK         bool
	Code       string
	Message    string
	From, To   string
	MessageID  string
	Reply      *delivery.Reply
	QueueID    string
	RemoteAddr string
	Duration   time.Duration
}

// SendTest sends a short test message from a connector's default sender, through the
// pipeline (so it appears in the message log with source "test"), and waits for the one
// attempt: a test is not retried, and it does not count against limits.
func (s *Service) SendTest(ctx context.Context, tenantID, connectorID, to string) (*TestEmail, error) {
	rcpt, err := mailaddr.Parse(strings.TrimSpace(to))
	if err != nil {
		return nil, validate.Field("to", err.Error())
	}
	conn, err := s.connectors.Get(ctx, tenantID, connectorID)
	if err != nil {
		return nil, err
	}
	now := s.NowFunc()
	req := &Request{
		ConnectorID: conn.ID, From: Address{Email: conn.Sender.Email, Name: conn.Sender.Name}, To: []Address{{Email: rcpt.String()}},
		Subject: "Sendwerk test e-mail",
		Text: fmt.Sprintf("This is a test e-mail sent through the connector %q (%s) at %s.\r\nIf you can read this, the connector can deliver mail.\r\n",
			conn.Name, conn.ID, now.UTC().Format(time.RFC1123Z)),
	}
	p, err := s.prepareWith(ctx, tenantID, conn, req)
	if err != nil {
		return nil, err
	}
	p.source = SourceTest
	err = store.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if err := q.MessageInsert(ctx, insertRow(tenantID, p)); err != nil {
			return fmt.Errorf("error inserting test message: %w", err)
		}
		if err := q.MessageEventInsert(ctx, queuedEvent(tenantID, p)); err != nil {
			return err
		}
		return event.Append(ctx, tx, queuedStreamEvent(tenantID, p))
	})
	if err != nil {
		return nil, err
	}
	row, err := s.q.MessageGet(ctx, dbsqlc.MessageGetParams{TenantID: tenantID, ID: p.id})
	if err != nil {
		return nil, fmt.Errorf("error reading test message: %w", err)
	}
	start := time.Now()
	once := &river.Job[DeliverArgs]{JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: 1}}
	ar, _ := s.deliverer.try(ctx, once, row, conn) // the outcome is recorded on the message
	out := &TestEmail{ID: p.id, From: p.r.from.String(), To: p.recipients[0], MessageID: "<" + p.r.messageID + ">", Duration: time.Since(start)}
	if ar == nil {
		out.Code, out.Message = "message.cancelled", "the test message was cancelled before it was sent"
		return out, nil
	}
	return describeTest(out, ar), nil
}

func describeTest(out *TestEmail, ar *attemptResult) *TestEmail {
	o := ar.outcome
	if o.Class == delivery.ClassDelivered {
		out.OK, out.Message = true, "The server accepted the test message."
		out.Reply, out.QueueID, out.RemoteAddr = &ar.result.Reply, ar.result.QueueID, ar.result.RemoteAddr
		return out
	}
	out.Code, out.Message = o.Code, o.Text
	if ar.sendErr != nil {
		out.Message = ar.sendErr.Error()
	}
	if o.SMTPCode != 0 {
		out.Reply = &delivery.Reply{Code: o.SMTPCode, EnhancedCode: o.EnhancedCode, Text: o.Text}
	}
	return out
}
