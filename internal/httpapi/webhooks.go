package httpapi

import (
	"context"
	"time"

	"github.com/sendwerk/sendwerk/api"
	"github.com/sendwerk/sendwerk/internal/event"
	"github.com/sendwerk/sendwerk/internal/webhook"
)

// ListWebhooks pages through the tenant's webhooks.
func (s *Server) ListWebhooks(ctx context.Context, req api.ListWebhooksRequestObject) (api.ListWebhooksResponseObject, error) {
	limit, after, err := page(req.Params.Limit, req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	ws, err := s.webhooks.List(ctx, tenantID(ctx), after, limit)
	if err != nil {
		return nil, err
	}
	out := api.ListWebhooks200JSONResponse{Items: make([]api.Webhook, len(ws))}
	for i, w := range ws {
		out.Items[i] = toAPIWebhook(w)
	}
	if len(ws) > 0 {
		out.NextCursor = nextCursor(ws[len(ws)-1].ID, len(ws), limit)
	}
	return out, nil
}

// CreateWebhook adds a webhook and shows its secret once.
func (s *Server) CreateWebhook(ctx context.Context, req api.CreateWebhookRequestObject) (api.CreateWebhookResponseObject, error) {
	b := req.Body
	in := webhook.Input{URL: b.Url, Enabled: b.Enabled, EventTypes: eventTypes(b.EventTypes)}
	if b.Description != nil {
		in.Description = *b.Description
	}
	w, sec, err := s.webhooks.Create(ctx, tenantID(ctx), in)
	if err != nil {
		return nil, err
	}
	return api.CreateWebhook201JSONResponse(withSecret(w, sec)), nil
}

// GetWebhook returns one webhook.
func (s *Server) GetWebhook(ctx context.Context, req api.GetWebhookRequestObject) (api.GetWebhookResponseObject, error) {
	w, err := s.webhooks.Get(ctx, tenantID(ctx), req.WebhookId)
	if webhook.IsNotFound(err) {
		return api.GetWebhook404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "webhook", req.WebhookId)}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.GetWebhook200JSONResponse(toAPIWebhook(w)), nil
}

// UpdateWebhook changes a webhook.
func (s *Server) UpdateWebhook(ctx context.Context, req api.UpdateWebhookRequestObject) (api.UpdateWebhookResponseObject, error) {
	b := req.Body
	p := webhook.Patch{URL: b.Url, Description: b.Description, Enabled: b.Enabled}
	if b.EventTypes != nil {
		ts := eventTypes(b.EventTypes)
		p.EventTypes = &ts
	}
	w, err := s.webhooks.Update(ctx, tenantID(ctx), req.WebhookId, p)
	if webhook.IsNotFound(err) {
		return api.UpdateWebhook404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "webhook", req.WebhookId)}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.UpdateWebhook200JSONResponse(toAPIWebhook(w)), nil
}

// DeleteWebhook removes a webhook.
func (s *Server) DeleteWebhook(ctx context.Context, req api.DeleteWebhookRequestObject) (api.DeleteWebhookResponseObject, error) {
	err := s.webhooks.Delete(ctx, tenantID(ctx), req.WebhookId)
	if webhook.IsNotFound(err) {
		return api.DeleteWebhook404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "webhook", req.WebhookId)}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.DeleteWebhook204Response{}, nil
}

// RotateWebhookSecret replaces the signing secret; the old one signs beside it for the overlap.
func (s *Server) RotateWebhookSecret(ctx context.Context, req api.RotateWebhookSecretRequestObject) (api.RotateWebhookSecretResponseObject, error) {
	var overlap time.Duration
	if req.Body != nil && req.Body.OverlapSeconds != nil {
		overlap = time.Duration(*req.Body.OverlapSeconds) * time.Second
	}
	w, sec, err := s.webhooks.RotateSecret(ctx, tenantID(ctx), req.WebhookId, overlap)
	if webhook.IsNotFound(err) {
		return api.RotateWebhookSecret404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "webhook", req.WebhookId)}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.RotateWebhookSecret200JSONResponse(withSecret(w, sec)), nil
}

// TestWebhook sends a webhook.test event now and returns the endpoint's answer.
func (s *Server) TestWebhook(ctx context.Context, req api.TestWebhookRequestObject) (api.TestWebhookResponseObject, error) {
	a, err := s.webhooks.Test(ctx, tenantID(ctx), req.WebhookId)
	if webhook.IsNotFound(err) {
		return api.TestWebhook404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "webhook", req.WebhookId)}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.TestWebhook200JSONResponse(toAPIAttempt(webhook.Attempt{Answer: *a})), nil
}

// ListWebhookDeliveries pages through a webhook's delivery log, newest first.
func (s *Server) ListWebhookDeliveries(ctx context.Context, req api.ListWebhookDeliveriesRequestObject) (api.ListWebhookDeliveriesResponseObject, error) {
	limit, before, err := page(req.Params.Limit, req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	status := ""
	if req.Params.Status != nil {
		status = string(*req.Params.Status)
	}
	ds, err := s.webhooks.ListDeliveries(ctx, tenantID(ctx), req.WebhookId, before, status, limit)
	if webhook.IsNotFound(err) {
		return api.ListWebhookDeliveries404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "webhook", req.WebhookId)}, nil
	}
	if err != nil {
		return nil, err
	}
	out := api.ListWebhookDeliveries200JSONResponse{Items: make([]api.WebhookDelivery, len(ds))}
	for i, d := range ds {
		out.Items[i] = toAPIDelivery(d)
	}
	if len(ds) > 0 {
		out.NextCursor = nextCursor(ds[len(ds)-1].ID, len(ds), limit)
	}
	return out, nil
}

// RedeliverWebhookDelivery sends a delivery's event again.
func (s *Server) RedeliverWebhookDelivery(ctx context.Context, req api.RedeliverWebhookDeliveryRequestObject) (api.RedeliverWebhookDeliveryResponseObject, error) {
	d, err := s.webhooks.Redeliver(ctx, tenantID(ctx), req.WebhookId, req.DeliveryId)
	if webhook.IsNotFound(err) {
		return api.RedeliverWebhookDelivery404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "webhook delivery", req.DeliveryId)}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.RedeliverWebhookDelivery202JSONResponse(toAPIDelivery(d)), nil
}

// GetPlatform returns the operator's published facts and webhook policy.
func (s *Server) GetPlatform(context.Context, api.GetPlatformRequestObject) (api.GetPlatformResponseObject, error) {
	f := s.platform
	out := api.GetPlatform200JSONResponse{
		EgressNetworks: orEmpty(f.EgressNetworks), SpfInclude: f.SPFInclude, BounceDomain: f.BounceDomain,
		RelayHosts: make([]api.PlatformRelayHost, len(f.RelayHosts)),
	}
	for i, h := range f.RelayHosts {
		out.RelayHosts[i] = api.PlatformRelayHost{Host: h.Host, Port: h.Port, Security: api.PlatformRelayHostSecurity(h.Security)}
	}
	if s.webhooks != nil {
		sched := s.webhooks.RetrySchedule()
		out.Webhooks.MaxAttempts = len(sched) + 1
		out.Webhooks.RetryScheduleSeconds = make([]int, len(sched))
		for i, d := range sched {
			out.Webhooks.RetryScheduleSeconds[i] = int(d / time.Second)
		}
		p := s.webhooks.Policy()
		out.Webhooks.TimeoutSeconds, out.Webhooks.DisableAfterSeconds, out.Webhooks.SecretOverlapSeconds =
			int(p.Timeout/time.Second), int(p.DisableAfter/time.Second), int(p.SecretOverlap/time.Second)
	}
	return out, nil
}

func eventTypes(ts *[]api.EventType) []event.Type {
	if ts == nil {
		return nil
	}
	out := make([]event.Type, len(*ts))
	for i, t := range *ts {
		out[i] = event.Type(t)
	}
	return out
}

func toAPIWebhook(w *webhook.Webhook) api.Webhook {
	out := api.Webhook{
		Id: w.ID, Url: w.URL, Description: w.Description, Enabled: w.Enabled, DisabledReason: w.DisabledReason,
		DisabledAt: nullTime(w.DisabledAt), FailingSince: nullTime(w.FailingSince), PreviousSecretExpiresAt: nullTime(w.PreviousSecretExpiresAt),
		CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt, EventTypes: make([]api.EventType, len(w.EventTypes)),
	}
	for i, t := range w.EventTypes {
		out.EventTypes[i] = api.EventType(t)
	}
	return out
}

func withSecret(w *webhook.Webhook, secret string) api.WebhookWithSecret {
	a := toAPIWebhook(w)
	return api.WebhookWithSecret{
		Id: a.Id, Url: a.Url, Description: a.Description, Enabled: a.Enabled, DisabledReason: a.DisabledReason,
		DisabledAt: a.DisabledAt, FailingSince: a.FailingSince, PreviousSecretExpiresAt: a.PreviousSecretExpiresAt,
		CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt, EventTypes: a.EventTypes, Secret: secret,
	}
}

func toAPIAttempt(a webhook.Attempt) api.WebhookAttempt {
	out := api.WebhookAttempt{
		AttemptedAt: a.AttemptedAt, StatusCode: a.StatusCode, LatencyMs: int(a.Latency.Milliseconds()),
		ResponseHeaders: a.Headers, ResponseBody: a.Body, Error: a.Error,
	}
	if out.ResponseHeaders == nil {
		out.ResponseHeaders = map[string]string{}
	}
	if a.Attempt > 0 {
		n := a.Attempt
		out.Attempt = &n
	}
	return out
}

func toAPIDelivery(d *webhook.Delivery) api.WebhookDelivery {
	out := api.WebhookDelivery{
		Id: d.ID, WebhookId: d.WebhookID, EventId: d.EventID, EventType: d.EventType, Status: api.WebhookDeliveryStatus(d.Status),
		NextAttemptAt: nullTime(d.NextAttemptAt), CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
		Attempts: make([]api.WebhookAttempt, len(d.Attempts)),
	}
	for i, a := range d.Attempts {
		out.Attempts[i] = toAPIAttempt(a)
	}
	return out
}
