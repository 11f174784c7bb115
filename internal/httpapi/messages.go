package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/oapi-codegen/nullable"

	"github.com/sendwerk/sendwerk/api"
	"github.com/sendwerk/sendwerk/internal/message"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// SendMessage accepts one message for delivery.
func (s *Server) SendMessage(ctx context.Context, req api.SendMessageRequestObject) (api.SendMessageResponseObject, error) {
	mreq, err := fromAPIMessage(req.Body, "")
	if err != nil {
		return nil, err
	}
	acc, quota, err := s.messages.Submit(ctx, tenantID(ctx), mreq, idempotency(req.Params.IdempotencyKey, "send", req.Body))
	var le *message.LimitError
	switch {
	case errors.As(err, &le):
		return api.SendMessage429ApplicationProblemPlusJSONResponse{LimitReachedApplicationProblemPlusJSONResponse: limitReached(ctx, le)}, nil
	case err != nil:
		return nil, submitError(err)
	}
	limit, remaining, reset := rateHeaders(quota)
	return api.SendMessage202JSONResponse{
		Body:    api.MessageAccepted{Id: acc.ID, Status: api.MessageStatus(acc.Status), MessageId: acc.MessageID, Suppressed: toAPISuppressed(acc.Suppressed)},
		Headers: api.SendMessage202ResponseHeaders{RateLimitLimit: limit, RateLimitRemaining: remaining, RateLimitReset: reset},
	}, nil
}

// SendMessageBatch accepts up to 500 messages, each judged on its own.
func (s *Server) SendMessageBatch(ctx context.Context, req api.SendMessageBatchRequestObject) (api.SendMessageBatchResponseObject, error) {
	reqs := make([]*message.Request, len(req.Body.Messages))
	var v validate.Error
	for i := range req.Body.Messages {
		r, err := fromAPIMessage(&req.Body.Messages[i], fmt.Sprintf("messages[%d].", i))
		var ve *validate.Error
		if errors.As(err, &ve) {
			v.Fields = append(v.Fields, ve.Fields...)
			continue
		}
		reqs[i] = r
	}
	if err := v.Err(); err != nil {
		return nil, err // undecodable content is a malformed request, not one message's problem
	}
	items, quota, err := s.messages.SubmitBatch(ctx, tenantID(ctx), reqs, idempotency(req.Params.IdempotencyKey, "batch", req.Body))
	var le *message.LimitError
	switch {
	case errors.As(err, &le):
		return api.SendMessageBatch429ApplicationProblemPlusJSONResponse{LimitReachedApplicationProblemPlusJSONResponse: limitReached(ctx, le)}, nil
	case err != nil:
		return nil, submitError(err)
	}
	out := api.MessageBatchResult{Items: make([]api.MessageBatchItem, len(items))}
	for i, it := range items {
		out.Items[i] = toAPIBatchItem(it)
		if it.Accepted != nil {
			out.Accepted++
		} else {
			out.Rejected++
		}
	}
	limit, remaining, reset := rateHeaders(quota)
	return api.SendMessageBatch200JSONResponse{Body: out, Headers: api.SendMessageBatch200ResponseHeaders{RateLimitLimit: limit, RateLimitRemaining: remaining, RateLimitReset: reset}}, nil
}

// ListMessages pages through the message log, newest first.
func (s *Server) ListMessages(ctx context.Context, req api.ListMessagesRequestObject) (api.ListMessagesResponseObject, error) {
	p := req.Params
	limit, before, err := page(p.Limit, p.Cursor)
	if err != nil {
		return nil, err
	}
	f := message.Filter{CreatedAfter: p.CreatedAfter, CreatedBefore: p.CreatedBefore}
	if p.Status != nil {
		f.Status = string(*p.Status)
	}
	f.ConnectorID, f.Tag, f.Recipient = deref(p.ConnectorId), deref(p.Tag), strings.ToLower(deref(p.Recipient))
	ms, err := s.messages.List(ctx, tenantID(ctx), f, before, limit)
	if err != nil {
		return nil, err
	}
	out := api.ListMessages200JSONResponse{Items: make([]api.Message, len(ms))}
	for i, m := range ms {
		out.Items[i] = toAPIMessage(m)
	}
	if len(ms) > 0 {
		out.NextCursor = nextCursor(ms[len(ms)-1].ID, len(ms), limit)
	}
	return out, nil
}

// GetMessage returns a message with its timeline.
func (s *Server) GetMessage(ctx context.Context, req api.GetMessageRequestObject) (api.GetMessageResponseObject, error) {
	m, err := s.messages.Get(ctx, tenantID(ctx), req.MessageId)
	if errors.Is(err, store.ErrNotFound) {
		return api.GetMessage404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "message", req.MessageId)}, nil
	}
	if err != nil {
		return nil, err
	}
	base := toAPIMessage(m)
	var detail api.MessageDetail
	b, _ := json.Marshal(base)
	_ = json.Unmarshal(b, &detail)
	detail.Events = make([]api.MessageEvent, len(m.Events))
	for i, e := range m.Events {
		data := e.Data
		if data == nil {
			data = map[string]any{}
		}
		detail.Events[i] = api.MessageEvent{Type: api.MessageEventType(e.Type), At: e.At, Data: data}
	}
	return api.GetMessage200JSONResponse(detail), nil
}

// CancelMessage cancels a queued or deferred message.
func (s *Server) CancelMessage(ctx context.Context, req api.CancelMessageRequestObject) (api.CancelMessageResponseObject, error) {
	m, err := s.messages.Cancel(ctx, tenantID(ctx), req.MessageId)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return api.CancelMessage404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "message", req.MessageId)}, nil
	case errors.Is(err, message.ErrNotCancellable):
		p := newProblem(http.StatusConflict, TypeConflict, "Conflict", "the message is being sent or has finished; only queued or deferred messages can be cancelled")
		return api.CancelMessage409ApplicationProblemPlusJSONResponse{ConflictApplicationProblemPlusJSONResponse: api.ConflictApplicationProblemPlusJSONResponse(stamp(ctx, p.Problem))}, nil
	case err != nil:
		return nil, err
	}
	return api.CancelMessage200JSONResponse(toAPIMessage(m)), nil
}

// GetUsage reports usage against limits.
func (s *Server) GetUsage(ctx context.Context, _ api.GetUsageRequestObject) (api.GetUsageResponseObject, error) {
	u, err := s.messages.Usage(ctx, tenantID(ctx))
	if err != nil {
		return nil, err
	}
	out := api.GetUsage200JSONResponse{Month: toAPICounter(u.Month), Connectors: make([]api.ConnectorUsage, len(u.Connectors))}
	for i, c := range u.Connectors {
		out.Connectors[i] = api.ConnectorUsage{
			ConnectorId: c.ConnectorID, Name: c.Name, Minute: toAPICounter(c.Counters[0]),
			Hour: toAPICounter(c.Counters[1]), Day: toAPICounter(c.Counters[2]), Month: toAPICounter(c.Counters[3]),
		}
	}
	return out, nil
}

func toAPICounter(c message.Counter) api.UsageCounter {
	out := api.UsageCounter{Count: c.Count, ResetsAt: c.Reset, Limit: nullInt64(c.Limit), Remaining: nullable.NewNullNullable[int64]()}
	if c.Limit != nil {
		out.Remaining = nullable.NewNullableWithValue(max(*c.Limit-c.Count, 0))
	}
	return out
}

// submitError maps the expected refusals of a submission to problems.
func submitError(err error) error {
	if p := refusalProblem(err); p != nil {
		return p
	}
	return err
}

// refusalProblem is the one mapping of message's typed refusals to problem documents; nil
// when err is none of them.
func refusalProblem(err error) *problem {
	var le *message.LimitError
	var paused *message.ConnectorPausedError
	var idem *message.IdempotencyConflictError
	switch {
	case errors.As(err, &le):
		p := newProblem(http.StatusTooManyRequests, TypeRateLimited, "Limit reached", le.Error())
		limit, remaining, reset := rateHeaders(&le.Quota)
		p.header = http.Header{}
		p.header.Set("Retry-After", strconv.Itoa(*reset))
		p.header.Set("RateLimit-Limit", strconv.Itoa(*limit))
		p.header.Set("RateLimit-Remaining", strconv.Itoa(*remaining))
		p.header.Set("RateLimit-Reset", strconv.Itoa(*reset))
		return p
	case errors.As(err, &paused):
		return newProblem(http.StatusConflict, TypeConflict, "Conflict", "the connector is paused; resume it (PATCH status active) or send through another connector")
	case errors.As(err, &idem):
		return newProblem(http.StatusConflict, TypeConflict, "Conflict", "this Idempotency-Key was used within 24 hours with a different request; use a new key for a new message")
	}
	if fields := message.FieldErrors(err); fields != nil {
		return problemValidation(http.StatusUnprocessableEntity, fields)
	}
	return nil
}

func limitReached(ctx context.Context, le *message.LimitError) api.LimitReachedApplicationProblemPlusJSONResponse {
	p := newProblem(http.StatusTooManyRequests, TypeRateLimited, "Limit reached", le.Error())
	limit, remaining, reset := rateHeaders(&le.Quota)
	return api.LimitReachedApplicationProblemPlusJSONResponse{
		Body:    stamp(ctx, p.Problem),
		Headers: api.LimitReachedResponseHeaders{RetryAfter: reset, RateLimitLimit: limit, RateLimitRemaining: remaining, RateLimitReset: reset},
	}
}

// rateHeaders are the RateLimit-* values of a quota; nil (no headers) without one.
func rateHeaders(q *message.Quota) (limit, remaining, reset *int) {
	if q == nil {
		return nil, nil, nil
	}
	l, r := int(q.Limit), int(q.Remaining)
	secs := int(max(time.Until(q.Reset).Round(time.Second).Seconds(), 1))
	return &l, &r, &secs
}

func idempotency(key *string, op string, body any) *message.Idempotency {
	if key == nil || *key == "" {
		return nil
	}
	b, _ := json.Marshal(body) // the decoded body, re-encoded: equal requests hash alike
	return message.NewIdempotency(*key, op, b)
}

// fromAPIMessage converts a request; prefix names the message in a batch's field paths.
func fromAPIMessage(b *api.MessageCreate, prefix string) (*message.Request, error) {
	v := &validate.Error{}
	r := &message.Request{
		ConnectorID: deref(b.ConnectorId), Subject: b.Subject, Text: deref(b.Text), HTML: deref(b.Html),
		SendAt: b.SendAt, From: emailAddress(b.From),
	}
	r.To, r.Cc, r.Bcc, r.ReplyTo = recipients(b.To), emailAddresses(b.Cc), emailAddresses(b.Bcc), emailAddresses(b.ReplyTo)
	if b.Headers != nil {
		r.Headers = *b.Headers
	}
	if b.Tags != nil {
		r.Tags = *b.Tags
	}
	if b.Metadata != nil {
		r.Metadata = *b.Metadata
	}
	if b.Attachments != nil {
		for i, a := range *b.Attachments {
			content, err := base64.StdEncoding.DecodeString(a.Content)
			if err != nil {
				v.Add(fmt.Sprintf("%sattachments[%d].content", prefix, i), "must be base64 (RFC 4648, with padding)")
				continue
			}
			r.Attachments = append(r.Attachments, message.Attachment{Filename: a.Filename, ContentType: deref(a.ContentType), Content: content, ContentID: deref(a.ContentId)})
		}
	}
	return r, v.Err()
}

func emailAddress(e api.EmailAddress) message.Address {
	if s, err := e.AsSender(); err == nil && s.Email != "" {
		return message.Address{Email: s.Email, Name: deref(s.Name)}
	}
	s, _ := e.AsEmailAddress0()
	return nameAddr(s)
}

// nameAddr reads "Jane Doe <jane@example.com>" and `"Doe, Jane" <jane@example.com>` as
// Postmark's and Resend's APIs do; anything else is a bare address, judged by the message
// rules. It only splits: the address itself is validated with the rest of the message.
func nameAddr(s string) message.Address {
	s = strings.TrimSpace(s)
	open := strings.LastIndexByte(s, '<')
	if open < 0 || !strings.HasSuffix(s, ">") {
		return message.Address{Email: s}
	}
	name := strings.TrimSpace(s[:open])
	if len(name) >= 2 && name[0] == '"' && name[len(name)-1] == '"' {
		name = strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(name[1 : len(name)-1])
	}
	return message.Address{Email: strings.TrimSpace(s[open+1 : len(s)-1]), Name: name}
}

// recipients reads `to`, a list or a single address.
func recipients(to *api.MessageCreate_To) []message.Address {
	if to == nil {
		return nil
	}
	if list, err := to.AsMessageCreateTo1(); err == nil {
		return emailAddresses(&list)
	}
	one, _ := to.AsEmailAddress()
	return []message.Address{emailAddress(one)}
}

func emailAddresses(list *[]api.EmailAddress) []message.Address {
	if list == nil {
		return nil
	}
	out := make([]message.Address, len(*list))
	for i, e := range *list {
		out[i] = emailAddress(e)
	}
	return out
}

func toAPIMessage(m *message.Message) api.Message {
	out := api.Message{
		Id: m.ID, ConnectorId: m.ConnectorID, Source: api.MessageSource(m.Source), Status: api.MessageStatus(m.Status),
		From: api.Sender{Email: m.From.Email, Name: optString(m.From.Name)}, To: orEmpty(m.To), Cc: orEmpty(m.Cc),
		Recipients: orEmpty(m.Recipients), Subject: m.Subject, MessageId: m.MessageID, Tags: orEmpty(m.Tags),
		Metadata: m.Metadata, SizeBytes: m.SizeBytes, Attempts: m.Attempts, NextAttemptAt: nullTime(m.NextAttempt),
		StatusReason: m.Reason, SendAt: nullTime(m.SendAt), BodyPurged: m.BodyPurged, CreatedAt: m.CreatedAt,
		UpdatedAt: m.UpdatedAt, CompletedAt: nullTime(m.CompletedAt),
	}
	if out.Metadata == nil {
		out.Metadata = map[string]string{}
	}
	if m.LastReply != nil {
		out.LastReply = &api.SMTPReply{Code: m.LastReply.Code, EnhancedCode: optString(m.LastReply.EnhancedCode), Text: m.LastReply.Text}
	}
	return out
}

func toAPIBatchItem(it message.BatchItem) api.MessageBatchItem {
	out := api.MessageBatchItem{Index: it.Index}
	if a := it.Accepted; a != nil {
		st := api.MessageStatus(a.Status)
		out.Id, out.Status, out.MessageId = &a.ID, &st, &a.MessageID
		return out
	}
	p := it.Refusal
	prob := newProblem(http.StatusUnprocessableEntity, TypeValidation, "Validation failed", p.Detail).Problem
	if p.Reason == message.RefusalConnectorPaused {
		prob = newProblem(http.StatusConflict, TypeConflict, "Connector paused", p.Detail).Problem
	}
	if len(p.Errors) > 0 {
		errs := make([]api.FieldError, len(p.Errors))
		for i, f := range p.Errors {
			errs[i] = api.FieldError{Field: f.Field, Message: f.Message}
		}
		prob.Errors = &errs
	}
	out.Problem = &prob
	return out
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
