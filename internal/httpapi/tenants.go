package httpapi

import (
	"context"
	"time"

	"github.com/sendwerk/sendwerk/api"
	"github.com/sendwerk/sendwerk/internal/tenant"
)

// ListTenants pages through tenants, oldest first.
func (s *Server) ListTenants(ctx context.Context, req api.ListTenantsRequestObject) (api.ListTenantsResponseObject, error) {
	limit, after, err := page(req.Params.Limit, req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	ts, err := s.tenants.List(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := api.ListTenants200JSONResponse{Items: make([]api.Tenant, len(ts))}
	for i, t := range ts {
		out.Items[i] = toAPITenant(t)
	}
	if len(ts) > 0 {
		out.NextCursor = nextCursor(ts[len(ts)-1].ID, len(ts), limit)
	}
	return out, nil
}

// CreateTenant adds a customer.
func (s *Server) CreateTenant(ctx context.Context, req api.CreateTenantRequestObject) (api.CreateTenantResponseObject, error) {
	var quota *int64
	if q, err := req.Body.MonthlyQuota.Get(); err == nil {
		quota = &q
	}
	t, err := s.tenants.Create(ctx, req.Body.Name, quota)
	if err != nil {
		return nil, err
	}
	return api.CreateTenant201JSONResponse(toAPITenant(t)), nil
}

// GetTenant returns one tenant.
func (s *Server) GetTenant(ctx context.Context, req api.GetTenantRequestObject) (api.GetTenantResponseObject, error) {
	t, err := s.tenants.Get(ctx, req.TenantId)
	if tenant.IsNotFound(err) {
		return api.GetTenant404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: api.NotFoundApplicationProblemPlusJSONResponse(problemNotFound(ctx, "tenant", req.TenantId))}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.GetTenant200JSONResponse(toAPITenant(t)), nil
}

// UpdateTenant applies the fields present in the body.
func (s *Server) UpdateTenant(ctx context.Context, req api.UpdateTenantRequestObject) (api.UpdateTenantResponseObject, error) {
	patch := tenant.Patch{Name: req.Body.Name}
	if req.Body.MonthlyQuota.IsSpecified() {
		patch.MonthlyQuota = &tenant.Optional[int64]{}
		if q, err := req.Body.MonthlyQuota.Get(); err == nil {
			patch.MonthlyQuota.Value = &q
		}
	}
	t, err := s.tenants.Update(ctx, req.TenantId, patch)
	if tenant.IsNotFound(err) {
		return api.UpdateTenant404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: api.NotFoundApplicationProblemPlusJSONResponse(problemNotFound(ctx, "tenant", req.TenantId))}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.UpdateTenant200JSONResponse(toAPITenant(t)), nil
}

// DeleteTenant removes a tenant and all it owns.
func (s *Server) DeleteTenant(ctx context.Context, req api.DeleteTenantRequestObject) (api.DeleteTenantResponseObject, error) {
	err := s.tenants.Delete(ctx, req.TenantId)
	if tenant.IsNotFound(err) {
		return api.DeleteTenant404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: api.NotFoundApplicationProblemPlusJSONResponse(problemNotFound(ctx, "tenant", req.TenantId))}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.DeleteTenant204Response{}, nil
}

// ListTenantApiKeys lists a tenant's keys for the operator.
func (s *Server) ListTenantApiKeys(ctx context.Context, req api.ListTenantApiKeysRequestObject) (api.ListTenantApiKeysResponseObject, error) {
	if _, err := s.tenants.Get(ctx, req.TenantId); tenant.IsNotFound(err) {
		return api.ListTenantApiKeys404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: api.NotFoundApplicationProblemPlusJSONResponse(problemNotFound(ctx, "tenant", req.TenantId))}, nil
	} else if err != nil {
		return nil, err
	}
	list, err := s.listKeys(ctx, req.TenantId, req.Params.Limit, req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	return api.ListTenantApiKeys200JSONResponse(list), nil
}

// CreateTenantApiKey makes a key for a tenant and shows its secret once.
func (s *Server) CreateTenantApiKey(ctx context.Context, req api.CreateTenantApiKeyRequestObject) (api.CreateTenantApiKeyResponseObject, error) {
	k, secret, err := s.tenants.CreateKey(ctx, req.TenantId, keyParams(req.Body))
	if tenant.IsNotFound(err) {
		return api.CreateTenantApiKey404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: api.NotFoundApplicationProblemPlusJSONResponse(problemNotFound(ctx, "tenant", req.TenantId))}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.CreateTenantApiKey201JSONResponse(toAPIKeyCreated(k, secret, time.Now())), nil
}

// RevokeTenantApiKey revokes one of a tenant's keys.
func (s *Server) RevokeTenantApiKey(ctx context.Context, req api.RevokeTenantApiKeyRequestObject) (api.RevokeTenantApiKeyResponseObject, error) {
	k, err := s.tenants.RevokeKey(ctx, req.TenantId, req.KeyId)
	if tenant.IsNotFound(err) {
		return api.RevokeTenantApiKey404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: api.NotFoundApplicationProblemPlusJSONResponse(problemNotFound(ctx, "api key", req.KeyId))}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.RevokeTenantApiKey200JSONResponse(toAPIKey(k, time.Now())), nil
}

func (s *Server) listKeys(ctx context.Context, tenantID string, limitP *int, cursor *string) (api.ApiKeyList, error) {
	limit, after, err := page(limitP, cursor)
	if err != nil {
		return api.ApiKeyList{}, err
	}
	keys, err := s.tenants.ListKeys(ctx, tenantID, after, limit)
	if err != nil {
		return api.ApiKeyList{}, err
	}
	out := api.ApiKeyList{Items: make([]api.ApiKey, len(keys))}
	now := time.Now()
	for i, k := range keys {
		out.Items[i] = toAPIKey(k, now)
	}
	if len(keys) > 0 {
		out.NextCursor = nextCursor(keys[len(keys)-1].ID, len(keys), limit)
	}
	return out, nil
}
