package message

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/mailaddr"
	"github.com/sendwerk/sendwerk/internal/store"
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
		return q.MessageEventInsert(ctx, queuedEvent(tenantID, p))
	})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	// A test is one attempt: no retry follows, and a hang-up of the caller does not leave the
	// message `sending` (the Deliverer records on a detached context).
	a, err := s.deliverer.Attempt(ctx, tenantID, p.id, AttemptOpts{Last: true})
	if err != nil {
		return nil, err
	}
	out := &TestEmail{ID: p.id, From: p.r.from.String(), To: p.recipients[0], MessageID: "<" + p.r.messageID + ">", Duration: time.Since(start)}
	switch a.Verdict {
	case VerdictGone:
		out.Code, out.Message = "message.cancelled", "the test message was cancelled before it was sent"
		return out, nil
	case VerdictPaused:
		out.Code, out.Message = "connector.paused", "the connector is paused; resume it to send"
		return out, nil
	}
	return describeTest(out, a), nil
}

func describeTest(out *TestEmail, a *Attempt) *TestEmail {
	o := a.Outcome
	if a.Verdict == VerdictDelivered {
		out.OK, out.Message = true, "The server accepted the test message."
		out.Reply, out.QueueID, out.RemoteAddr = &a.Result.Reply, a.Result.QueueID, a.Result.RemoteAddr
		return out
	}
	out.Code, out.Message = o.Code, o.Text
	if a.Err != nil {
		out.Message = a.Err.Error()
	}
	if o.SMTPCode != 0 {
		out.Reply = &delivery.Reply{Code: o.SMTPCode, EnhancedCode: o.EnhancedCode, Text: o.Text}
	}
	return out
}
