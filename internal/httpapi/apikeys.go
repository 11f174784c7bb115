package httpapi

import (
	"context"
	"time"

	"github.com/sendwerk/sendwerk/api"
	"github.com/sendwerk/sendwerk/internal/tenant"
)

// GetMe describes the calling key and its tenant.
func (s *Server) GetMe(ctx context.Context, _ api.GetMeRequestObject) (api.GetMeResponseObject, error) {
	p := principalFrom(ctx)
	t, err := s.tenants.Get(ctx, p.TenantID())
	if err != nil {
		return nil, err
	}
	return api.GetMe200JSONResponse{Tenant: toAPITenant(t), ApiKey: toAPIKey(p.Key, time.Now())}, nil
}

// ListApiKeys lists the calling tenant's keys.
func (s *Server) ListApiKeys(ctx context.Context, req api.ListApiKeysRequestObject) (api.ListApiKeysResponseObject, error) {
	list, err := s.listKeys(ctx, tenantID(ctx), req.Params.Limit, req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	return api.ListApiKeys200JSONResponse(list), nil
}

// CreateApiKey makes another key for the calling tenant.
func (s *Server) CreateApiKey(ctx context.Context, req api.CreateApiKeyRequestObject) (api.CreateApiKeyResponseObject, error) {
	k, secret, err := s.tenants.CreateKey(ctx, tenantID(ctx), keyParams(req.Body))
	if err != nil {
		return nil, err
	}
	return api.CreateApiKey201JSONResponse(toAPIKeyCreated(k, secret, time.Now())), nil
}

// GetApiKey returns one of the calling tenant's keys.
func (s *Server) GetApiKey(ctx context.Context, req api.GetApiKeyRequestObject) (api.GetApiKeyResponseObject, error) {
	k, err := s.tenants.GetKey(ctx, tenantID(ctx), req.KeyId)
	if tenant.IsNotFound(err) {
		return api.GetApiKey404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: api.NotFoundApplicationProblemPlusJSONResponse(problemNotFound(ctx, "api key", req.KeyId))}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.GetApiKey200JSONResponse(toAPIKey(k, time.Now())), nil
}

// RevokeApiKey revokes one of the calling tenant's keys.
func (s *Server) RevokeApiKey(ctx context.Context, req api.RevokeApiKeyRequestObject) (api.RevokeApiKeyResponseObject, error) {
	k, err := s.tenants.RevokeKey(ctx, tenantID(ctx), req.KeyId)
	if tenant.IsNotFound(err) {
		return api.RevokeApiKey404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: api.NotFoundApplicationProblemPlusJSONResponse(problemNotFound(ctx, "api key", req.KeyId))}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.RevokeApiKey200JSONResponse(toAPIKey(k, time.Now())), nil
}
