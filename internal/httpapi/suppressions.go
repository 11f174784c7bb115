package httpapi

import (
	"context"
	"errors"

	"github.com/sendwerk/sendwerk/api"
	"github.com/sendwerk/sendwerk/internal/bounce"
	"github.com/sendwerk/sendwerk/internal/message"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/suppression"
)

// ListSuppressions pages through the tenant's suppression list, newest first.
func (s *Server) ListSuppressions(ctx context.Context, req api.ListSuppressionsRequestObject) (api.ListSuppressionsResponseObject, error) {
	limit, before, err := page(req.Params.Limit, req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	f := suppression.Filter{AddressPrefix: deref(req.Params.Address)}
	if req.Params.Reason != nil {
		f.Reason = suppression.Reason(*req.Params.Reason)
	}
	list, err := s.suppressions.List(ctx, tenantID(ctx), f, before, limit)
	if err != nil {
		return nil, err
	}
	out := api.ListSuppressions200JSONResponse{Items: make([]api.Suppression, len(list))}
	for i, e := range list {
		out.Items[i] = toAPISuppression(e)
	}
	if len(list) > 0 {
		out.NextCursor = nextCursor(list[len(list)-1].ID, len(list), limit)
	}
	return out, nil
}

// CreateSuppression adds an address (or replaces its entry).
func (s *Server) CreateSuppression(ctx context.Context, req api.CreateSuppressionRequestObject) (api.CreateSuppressionResponseObject, error) {
	b := req.Body
	e := suppression.Entry{Address: b.Address, Reason: suppression.ReasonManual, Detail: deref(b.Detail)}
	if b.Reason != nil {
		e.Reason = suppression.Reason(*b.Reason)
	}
	if v, err := b.ExpiresAt.Get(); err == nil {
		e.ExpiresAt = &v
	}
	sup, err := s.suppressions.Add(ctx, tenantID(ctx), e)
	if err != nil {
		return nil, err
	}
	return api.CreateSuppression201JSONResponse(toAPISuppression(sup)), nil
}

// GetSuppression answers whether an address is suppressed.
func (s *Server) GetSuppression(ctx context.Context, req api.GetSuppressionRequestObject) (api.GetSuppressionResponseObject, error) {
	sup, err := s.suppressions.Get(ctx, tenantID(ctx), req.Address)
	if errors.Is(err, store.ErrNotFound) {
		return api.GetSuppression404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "suppression for address", req.Address)}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.GetSuppression200JSONResponse(toAPISuppression(sup)), nil
}

// DeleteSuppression lifts a suppression.
func (s *Server) DeleteSuppression(ctx context.Context, req api.DeleteSuppressionRequestObject) (api.DeleteSuppressionResponseObject, error) {
	err := s.suppressions.Delete(ctx, tenantID(ctx), req.Address)
	if errors.Is(err, store.ErrNotFound) {
		return api.DeleteSuppression404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "suppression for address", req.Address)}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.DeleteSuppression204Response{}, nil
}

// ListBounceReports shows the operator what the bounce listener received.
func (s *Server) ListBounceReports(ctx context.Context, req api.ListBounceReportsRequestObject) (api.ListBounceReportsResponseObject, error) {
	limit, before, err := page(req.Params.Limit, req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	out := api.ListBounceReports200JSONResponse{Items: []api.BounceReport{}}
	if s.bounces == nil {
		return out, nil
	}
	outcome := ""
	if req.Params.Outcome != nil {
		outcome = string(*req.Params.Outcome)
	}
	list, err := s.bounces.List(ctx, outcome, before, limit)
	if err != nil {
		return nil, err
	}
	for _, r := range list {
		out.Items = append(out.Items, toAPIBounceReport(r))
	}
	if len(list) > 0 {
		out.NextCursor = nextCursor(list[len(list)-1].ID, len(list), limit)
	}
	return out, nil
}

func toAPISuppression(s *suppression.Suppression) api.Suppression {
	out := api.Suppression{Id: s.ID, Address: s.Address, Reason: api.SuppressionReason(s.Reason), Detail: s.Detail,
		CreatedAt: s.CreatedAt, ExpiresAt: nullTime(s.ExpiresAt)}
	if s.SourceMessageID != "" {
		out.SourceMessageId = &s.SourceMessageID
	}
	return out
}

func toAPISuppressed(list []message.SuppressedRecipient) *[]api.SuppressedRecipient {
	if len(list) == 0 {
		return nil
	}
	out := make([]api.SuppressedRecipient, len(list))
	for i, r := range list {
		out[i] = api.SuppressedRecipient{Address: r.Address, Reason: string(r.Reason)}
	}
	return &out
}

func toAPIBounceReport(r *bounce.Report) api.BounceReport {
	out := api.BounceReport{Id: r.ID, Kind: api.BounceReportKind(r.Kind), Outcome: api.BounceReportOutcome(r.Outcome),
		EnvelopeFrom: r.EnvelopeFrom, RcptTo: r.RcptTo, RemoteAddr: r.RemoteAddr, Problem: r.Problem,
		Details: r.Details, SizeBytes: r.SizeBytes, ReceivedAt: r.ReceivedAt}
	if out.Details == nil {
		out.Details = map[string]any{}
	}
	if r.TenantID != "" {
		out.TenantId = &r.TenantID
	}
	if r.MessageID != "" {
		out.MessageId = &r.MessageID
	}
	if r.Raw != nil {
		raw := string(r.Raw)
		out.Raw = &raw
	}
	return out
}
