package bounce

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/dsn"
	"github.com/sendwerk/sendwerk/internal/event"
	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
	"github.com/sendwerk/sendwerk/internal/suppression"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// Timeline steps a report adds to its message.
const (
	StepBounced    = "bounced"
	StepComplained = "complained"
)

// Envelope is how a report arrived.
type Envelope struct {
	From       string
	To         string
	RemoteAddr string
}

// Receive takes one report as the listener got it. A report tied to a message by a genuine
// token is recorded on the message's timeline and in the tenant's event stream, and the
// addresses it condemns are suppressed, all in one transaction. Anything else is kept whole
// for the operator. Only a storage failure is an error (the listener then answers 4xx and
// the sender tries again).
func (s *Service) Receive(ctx context.Context, env Envelope, raw []byte) (*Report, error) {
	rep := &Report{ID: ids.New(ids.BounceReport), Kind: KindUnknown, EnvelopeFrom: env.From, RcptTo: env.To,
		RemoteAddr: env.RemoteAddr, SizeBytes: len(raw), Details: map[string]any{}}
	parsed, perr := dsn.Parse(raw)
	if perr != nil {
		return rep, s.keep(ctx, rep, OutcomeUnparsed, perr.Error(), raw)
	}
	rep.Kind = string(parsed.Kind)
	rep.Details = details(parsed)
	msgID, ok := "", false
	if s.tokens != nil {
		msgID, ok = s.tokens.MessageID(env.To)
	}
	if !ok {
		return rep, s.keep(ctx, rep, OutcomeUnmatched, "the envelope recipient is not a genuine bounce address (bounces+<token>@<bounce domain>)", raw)
	}
	var m dbsqlc.Message
	err := store.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		m, err = s.q.WithTx(tx).MessageGetForBounce(ctx, msgID)
		if errors.Is(err, pgx.ErrNoRows) {
			return errMessageGone
		}
		if err != nil {
			return fmt.Errorf("error loading bounced message: %w", err)
		}
		rep.TenantID, rep.MessageID, rep.Outcome = m.TenantID, m.ID, OutcomeRecorded
		if err := s.apply(ctx, tx, m, parsed); err != nil {
			return err
		}
		return s.insert(ctx, s.q.WithTx(tx), rep, nil)
	})
	if errors.Is(err, errMessageGone) {
		return rep, s.keep(ctx, rep, OutcomeUnmatched, "the message "+msgID+" no longer exists", raw)
	}
	if err != nil {
		return nil, err
	}
	s.logger.Info("bounce report recorded", "report", rep.ID, "kind", rep.Kind, "message", m.ID, "tenant", m.TenantID)
	return rep, nil
}

// errMessageGone is a genuine token's message that no longer exists (its tenant was deleted).
var errMessageGone = errors.New("bounced message no longer exists")

// keep stores a report that was not recorded on a message, with its raw bytes.
func (s *Service) keep(ctx context.Context, rep *Report, outcome, problem string, raw []byte) error {
	rep.Outcome, rep.Problem, rep.Raw = outcome, problem, raw
	s.logger.Warn("bounce report kept for the operator", "report", rep.ID, "outcome", outcome, "problem", problem, "rcpt_to", rep.RcptTo, "remote_addr", rep.RemoteAddr)
	return s.insert(ctx, s.q, rep, raw)
}

func (s *Service) insert(ctx context.Context, q *dbsqlc.Queries, rep *Report, raw []byte) error {
	d, err := json.Marshal(rep.Details)
	if err != nil {
		return fmt.Errorf("error encoding bounce report: %w", err)
	}
	err = q.BounceReportInsert(ctx, dbsqlc.BounceReportInsertParams{
		ID: rep.ID, Kind: rep.Kind, Outcome: rep.Outcome, TenantID: nilIfEmpty(rep.TenantID), MessageID: nilIfEmpty(rep.MessageID),
		EnvelopeFrom: clean(rep.EnvelopeFrom), RcptTo: clean(rep.RcptTo), RemoteAddr: rep.RemoteAddr, Problem: clean(rep.Problem),
		Details: d, Raw: raw, SizeBytes: int32(rep.SizeBytes),
	})
	if err != nil {
		return fmt.Errorf("error storing bounce report: %w", err)
	}
	return nil
}

// apply records what the report says about m.
func (s *Service) apply(ctx context.Context, tx pgx.Tx, m dbsqlc.Message, r *dsn.Report) error {
	if r.Kind == dsn.KindARF {
		return s.applyComplaint(ctx, tx, m, r.Feedback)
	}
	for _, rc := range r.Recipients {
		if !rc.Failed() {
			continue
		}
		if err := s.applyBounce(ctx, tx, m, rc); err != nil {
			return err
		}
	}
	return nil
}

// applyBounce records one failed recipient and suppresses it when the mailbox does not exist.
func (s *Service) applyBounce(ctx context.Context, tx pgx.Tx, m dbsqlc.Message, rc dsn.Recipient) error {
	addr := recipientOf(m, rc.OriginalRecipient, rc.FinalRecipient)
	permanent := strings.HasPrefix(rc.Status, "5")
	gone := permanent && (delivery.MailboxGoneStatus(rc.Status) || delivery.DiagnosticGone(rc.DiagnosticCode))
	data := map[string]any{"recipient": rc.FinalRecipient, "action": rc.Action, "status": rc.Status,
		"diagnostic_code": rc.DiagnosticCode, "remote_mta": rc.RemoteMTA, "permanent": permanent, "suppressed": gone && addr != ""}
	if err := timeline(ctx, tx, m, StepBounced, data); err != nil {
		return err
	}
	err := event.Append(ctx, tx, &event.Event{TenantID: m.TenantID, MessageID: m.ID, ConnectorID: m.ConnectorID, Data: event.MessageBouncedData{
		MessageInfo: messageInfo(m), Recipient: rc.FinalRecipient, Action: rc.Action, Status: rc.Status, DiagnosticCode: rc.DiagnosticCode, Permanent: permanent,
	}})
	if err != nil || !gone || addr == "" {
		return err
	}
	return s.suppress(ctx, tx, m, addr, suppression.ReasonHardBounce, strings.TrimSpace(rc.Status+" "+rc.DiagnosticCode))
}

// applyComplaint records a complaint for each recipient it names (or the message's only
// one) and suppresses them; a not-spam or auth-failure report is recorded only.
func (s *Service) applyComplaint(ctx context.Context, tx pgx.Tx, m dbsqlc.Message, f *dsn.Feedback) error {
	var rcpts []string
	for _, a := range f.OriginalRcptTo {
		if r := recipientOf(m, a); r != "" {
			rcpts = append(rcpts, r)
		}
	}
	if len(rcpts) == 0 && len(m.Recipients) == 1 {
		rcpts = m.Recipients
	}
	complaint := f.FeedbackType != "not-spam" && f.FeedbackType != "auth-failure"
	for _, r := range rcpts {
		data := map[string]any{"recipient": r, "feedback_type": f.FeedbackType, "user_agent": f.UserAgent, "suppressed": complaint}
		if err := timeline(ctx, tx, m, StepComplained, data); err != nil {
			return err
		}
		err := event.Append(ctx, tx, &event.Event{TenantID: m.TenantID, MessageID: m.ID, ConnectorID: m.ConnectorID, Data: event.MessageComplainedData{
			MessageInfo: messageInfo(m), Recipient: r, FeedbackType: f.FeedbackType,
		}})
		if err != nil {
			return err
		}
		if complaint {
			if err := s.suppress(ctx, tx, m, r, suppression.ReasonComplaint, "feedback report: "+f.FeedbackType); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Service) suppress(ctx context.Context, tx pgx.Tx, m dbsqlc.Message, addr string, reason suppression.Reason, detail string) error {
	if s.suppressions == nil {
		return nil
	}
	_, err := s.suppressions.AddTx(ctx, tx, m.TenantID, suppression.Entry{Address: addr, Reason: reason, SourceMessageID: m.ID, Detail: detail})
	var ve *validate.Error
	if errors.As(err, &ve) {
		return nil
	}
	return err
}

// recipientOf returns the first of candidates that was a recipient of m, as m has it: a
// report cannot suppress an address the message was not sent to.
func recipientOf(m dbsqlc.Message, candidates ...string) string {
	for _, c := range candidates {
		for _, r := range m.Recipients {
			if c != "" && strings.EqualFold(c, r) {
				return r
			}
		}
	}
	return ""
}

func timeline(ctx context.Context, tx pgx.Tx, m dbsqlc.Message, step string, data map[string]any) error {
	b, _ := json.Marshal(data)
	err := dbsqlc.New(tx).MessageEventInsert(ctx, dbsqlc.MessageEventInsertParams{MessageID: m.ID, TenantID: m.TenantID, Type: step, Data: b})
	if err != nil {
		return fmt.Errorf("error inserting message event: %w", err)
	}
	return nil
}

func messageInfo(m dbsqlc.Message) event.MessageInfo {
	meta := map[string]string{}
	_ = json.Unmarshal(m.Metadata, &meta)
	tags := m.Tags
	if tags == nil {
		tags = []string{}
	}
	return event.MessageInfo{From: m.FromEmail, Recipients: m.Recipients, MessageIDHeader: m.MessageID, Tags: tags, Metadata: meta}
}

// details is the parsed report as the API shows it.
func details(r *dsn.Report) map[string]any {
	b, _ := json.Marshal(r)
	b = bytes.ReplaceAll(b, []byte(`\u0000`), nil) // PostgreSQL's jsonb refuses NUL
	out := map[string]any{}
	_ = json.Unmarshal(b, &out)
	return out
}

// clean keeps text storable: valid UTF-8, no NUL, at most 1,000 bytes.
func clean(s string) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "?"), "\x00", "")
	if len(s) > 1000 {
		s = strings.ToValidUTF8(s[:1000], "")
	}
	return s
}
