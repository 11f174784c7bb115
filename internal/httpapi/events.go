package httpapi

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sendwerk/sendwerk/api"
	"github.com/sendwerk/sendwerk/internal/event"
)

// ListEvents reads the tenant's event stream from a cursor.
func (s *Server) ListEvents(ctx context.Context, req api.ListEventsRequestObject) (api.ListEventsResponseObject, error) {
	p := req.Params
	f := event.Filter{Limit: 100, CreatedAfter: p.CreatedAfter, CreatedBefore: p.CreatedBefore}
	if p.Limit != nil {
		f.Limit = min(max(*p.Limit, 1), 500)
	}
	if p.Cursor != nil {
		f.After = *p.Cursor
	}
	if p.ResourceId != nil {
		f.ResourceID = *p.ResourceId
	}
	if p.Type != nil {
		for _, t := range *p.Type {
			f.Types = append(f.Types, event.Type(t))
		}
	}
	page, err := event.List(ctx, s.pool, tenantID(ctx), f)
	if err != nil {
		return nil, err
	}
	out := api.ListEvents200JSONResponse{Items: make([]api.Event, len(page.Events)), NextCursor: page.Cursor}
	for i, e := range page.Events {
		if out.Items[i], err = toAPIEvent(e); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// toAPIEvent maps an event through its wire form, the one webhooks carry: the API's union
// type holds exactly those bytes, so the feed and the webhooks cannot drift apart.
func toAPIEvent(e *event.Event) (api.Event, error) {
	var out api.Event
	b, err := json.Marshal(e)
	if err != nil {
		return out, fmt.Errorf("error encoding event: %w", err)
	}
	if err := out.UnmarshalJSON(b); err != nil {
		return out, fmt.Errorf("error mapping event: %w", err)
	}
	return out, nil
}
